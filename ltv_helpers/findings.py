"""The report's summary page: headline numbers read from a run's hand-over files, and the findings
written from them, in English or Chinese.

The four stage notebooks write their results to the run folder (``collection.json``,
``transactions.parquet``, ``segments.parquet``, ``prediction.json``, ``evaluation.json``,
``evaluation_metrics.parquet``) and, where the run has them, the channel table (``channels.parquet``)
and the check of the last report (``monitoring.json``); :func:`headline` collects the numbers an executive reads first,
and :func:`cards`, :func:`findings` and :func:`tier_summary` turn them into the page; :func:`load_run`
reads the files once for all of them.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers import data
from ltv_helpers import segments as sg
from ltv_helpers.labels import money  # noqa: F401 (findings.money is public)
from ltv_helpers.channels import CHANNELS_FILE, clear_gap
from ltv_helpers.labels import (FINDING_CHANNEL, FINDING_CHURN_RISK, FINDING_CONCENTRATION, FINDING_FORECAST,
                                FINDING_MODEL_BETTER, FINDING_MODEL_WORSE, FINDING_MONITORING, FINDING_ONE_TIME,
                                FINDING_WATCH,
                                label, markdown, md_escape)
from ltv_helpers.monitoring import MONITORING_FILE
from ltv_helpers.schema import LTVError

#: The files of a run the summary page reads; the forecast's are absent when the data allow none.
RUN_FILES = ("collection.json", "transactions.parquet", "segments.parquet")
FORECAST_FILES = ("prediction.json", "evaluation.json", "evaluation_metrics.parquet")

@dataclass(frozen=True)
class Headline:
    """The numbers of a run's summary page (money in the client's currency)."""

    client: str
    currency: str
    observation_end: str
    customers: int
    revenue: float
    repeat_share: float
    top20_share: float
    high_customers: int
    high_share: float
    high_revenue_share: float
    risk_customers: int
    risk_revenue_share: float
    past_revenue: float = 0.0
    # The forecast and its check: None when the data allow no forecast (see no_forecast_markdown).
    horizon_months: int | None = None
    gross_margin: float | None = None
    annual_discount_rate: float | None = None
    purchases: tuple[float, float, float] | None = None
    forecast_revenue: tuple[float, float, float] | None = None
    clv: tuple[float, float, float] | None = None
    model: str | None = None
    holdout_days: float | None = None
    mae: float = np.nan
    total_error_pct: float = np.nan
    baseline: str | None = None
    baseline_mae: float = np.nan
    # LTV operations: the channel whose LTV/CAC is clearly below the others' (channels.clear_gap),
    # and the check of the last report (monitoring.json).
    channel_gap: dict | None = None
    monitoring: dict | None = None

    @property
    def gain(self) -> float:
        """How much smaller the model's error per customer is than the best baseline's (a share)."""
        return 1 - self.mae / self.baseline_mae


@dataclass(frozen=True)
class RunFiles:
    """What the summary page needs from a run folder, read once: the cleaned transactions and
    collection metadata, the customer history, each customer's value tier, the prediction and
    evaluation summaries and the metrics table."""

    transactions: pd.DataFrame
    meta: dict
    history: pd.DataFrame
    tiers: pd.Series
    prediction: dict
    evaluation: dict
    metrics: pd.DataFrame
    # LTV operations, where the run has them: the channel table and the check of the last report.
    channels: pd.DataFrame | None = None
    monitoring: dict | None = None


def load_run(run_dir) -> RunFiles:
    """Read the files the four stage notebooks wrote to ``run_dir`` (see :data:`RUN_FILES`)."""
    run_dir = Path(run_dir)
    forecast = [name for name in FORECAST_FILES if (run_dir / name).is_file()]
    missing = [name for name in RUN_FILES + (FORECAST_FILES if forecast else ()) if not (run_dir / name).is_file()]
    if missing:
        raise LTVError(f"{run_dir} lacks {', '.join(missing)}; run the four stage notebooks into it first.")
    transactions, meta = data.load_collection(run_dir)
    history = data.customer_history(transactions, observation_end=meta["observation_end"])
    tiers = (pd.read_parquet(run_dir / "segments.parquet")["tier"].astype(pd.CategoricalDtype(sg.TIERS))
             .reindex(history.index))
    read_json = lambda name: json.loads((run_dir / name).read_text(encoding="utf-8"))  # noqa: E731
    operations = dict(
        channels=pd.read_parquet(run_dir / CHANNELS_FILE) if (run_dir / CHANNELS_FILE).is_file() else None,
        monitoring=read_json(MONITORING_FILE) if (run_dir / MONITORING_FILE).is_file() else None)
    if not forecast:  # collection and segmentation only: no model could forecast this data
        return RunFiles(transactions, meta, history, tiers, None, None, None, **operations)
    return RunFiles(transactions, meta, history, tiers, read_json("prediction.json"), read_json("evaluation.json"),
                    pd.read_parquet(run_dir / "evaluation_metrics.parquet"), **operations)


def _run(run) -> RunFiles:
    return run if isinstance(run, RunFiles) else load_run(run)


def headline(run) -> Headline:
    """The summary page's numbers, from a run folder or its :class:`RunFiles`."""
    run = _run(run)
    transactions, meta, history, tiers = run.transactions, run.meta, run.history, run.tiers
    prediction, evaluation, metrics = run.prediction, run.evaluation, run.metrics
    revenue = float(history["revenue"].sum())
    base = dict(
        client=meta.get("client", ""), currency=meta.get("currency", ""), observation_end=meta["observation_end"],
        customers=len(history), revenue=revenue, repeat_share=float((history["orders"] > 1).mean()),
        top20_share=float(sg.concentration(history["revenue"]).top_shares.loc[0.2]),
        high_customers=int((tiers == "high value").sum()), high_share=float((tiers == "high value").mean()),
        high_revenue_share=float(history.loc[tiers == "high value", "revenue"].sum() / revenue),
        risk_customers=int((tiers == "churn risk").sum()),
        risk_revenue_share=float(history.loc[tiers == "churn risk", "revenue"].sum() / revenue))
    base.update(channel_gap=None if run.channels is None else clear_gap(run.channels), monitoring=run.monitoring)
    if prediction is None:
        return Headline(**base)
    end = pd.Timestamp(meta["observation_end"])
    baselines = metrics[(metrics["kind"] == "baseline") & metrics["mae"].notna()]
    if baselines.empty:
        raise LTVError("The evaluation has no baseline with a per-customer error to compare the model with.")
    best_baseline = baselines["mae"].idxmin()
    months = int(prediction["horizon_months"])
    recent = transactions["order_date"] >= end + pd.Timedelta(days=1) - pd.DateOffset(months=months)
    ints = prediction["intervals"]
    # The model that made the forecast (notebook 03), and its own backtest error where 04 tested
    # it; never another model's error under its name (NaN: not checked on the holdout).
    model = prediction.get("model") or evaluation["chosen_model"]
    checked = metrics.loc[model] if model in metrics.index else {"mae": np.nan, "total_error_pct": np.nan}
    return Headline(
        **base, past_revenue=float(transactions.loc[recent, "amount"].sum()),
        horizon_months=months, gross_margin=float(prediction["gross_margin"]),
        annual_discount_rate=float(prediction["annual_discount_rate"]),
        purchases=(ints["expected_purchases"], ints["purchases_low"], ints["purchases_high"]),
        forecast_revenue=(ints["expected_revenue"], ints["revenue_low"], ints["revenue_high"]),
        clv=(ints["clv"], ints["clv_low"], ints["clv_high"]),
        model=model, holdout_days=float(evaluation["holdout_units"]),
        mae=float(checked["mae"]), total_error_pct=float(checked["total_error_pct"]),
        baseline=str(best_baseline), baseline_mae=float(baselines.loc[best_baseline, "mae"]),
    )


def title(h: Headline, language: str = "en", text: str | None = None) -> str:
    """The report's title (``text`` when given) and the line under it, as Markdown."""
    heading = md_escape(text) if text else markdown("{client}: customer lifetime value", language, client=h.client)
    values = dict(end=h.observation_end, customers=f"{h.customers:,}", currency=h.currency or "–")
    line = (markdown("Data to {end} · {customers} customers · money in {currency} · no forecast", language, **values)
            if h.purchases is None else
            markdown("Data to {end} · {customers} customers · money in {currency} · forecast over {months} months",
                     language, months=h.horizon_months, **values))
    return f"# {heading}\n\n{line}"


def cards(h: Headline, language: str = "en") -> str:
    """The headline numbers as a grid of cards (HTML), each with its label and, for forecasts,
    the 90% interval."""
    interval = label("90% interval {low} to {high}", language)
    over = label("next {months} months", language).format(months=h.horizon_months)
    history = [
        (f"{h.customers:,}", label("customers", language), ""),
        (money(h.revenue, h.currency), label("revenue to date", language), ""),
        (f"{h.repeat_share:.0%}", label("bought more than once", language), ""),
        (f"{h.top20_share:.0%}", label("of revenue from the top 20% of customers", language), ""),
    ]
    if h.purchases is None:  # no forecast: the history's cards only
        return _card_grid(history)
    ahead = lambda what: label("{what}, {horizon}", language).format(what=label(what, language), horizon=over)  # noqa: E731
    per_customer = label("{value} per customer", language)
    each = lambda v: per_customer.format(value=money(v / max(h.customers, 1), h.currency, decimals=2))  # noqa: E731
    if h.gross_margin < 1:
        value_name = ahead("CLV")
        value_note = label("margin {margin}, discounted at {rate} a year; {interval}", language)
    else:  # a margin of 100% (the default): the value is revenue, and the card says how to get CLV
        value_name = ahead("discounted expected revenue")
        value_note = label("CLV = this x gross margin (a margin of 100% was used); discounted at {rate} a year; "
                           "{interval}", language)
    if np.isnan(h.gain):
        model_card = (label("repeat-purchase model", language), label("forecast model", language),
                      label("not checked on the holdout", language))
    elif h.gain > 0:
        model_card = (f"{h.gain:.0%}", label("less error per customer than the best simple baseline", language),
                      label("repeat-purchase model, tested on the last {days} days", language).format(
                          days=f"{h.holdout_days:,.0f}"))
    else:
        model_card = (label("no gain", language), label("over the best simple baseline", language),
                      label("read the forecast with caution", language))
    items = history + [
        (f"{h.purchases[0]:,.0f}", ahead("expected purchases"),
         interval.format(low=f"{h.purchases[1]:,.0f}", high=f"{h.purchases[2]:,.0f}")),
        (money(h.forecast_revenue[0], h.currency), ahead("expected revenue"),
         each(h.forecast_revenue[0]) + "; " + interval.format(
             low=money(h.forecast_revenue[1], h.currency), high=money(h.forecast_revenue[2], h.currency))),
        (money(h.clv[0], h.currency), value_name,
         each(h.clv[0]) + "; " + value_note.format(
             margin=f"{h.gross_margin:.0%}", rate=f"{h.annual_discount_rate:.0%}",
             interval=interval.format(low=money(h.clv[1], h.currency), high=money(h.clv[2], h.currency)))),
        model_card,
    ]
    return _card_grid(items)


def _card_grid(items) -> str:
    """Cards (value, label, note) as HTML, every text escaped."""
    cells = "".join(
        f'<div class="ltv-card"><div class="ltv-value">{html.escape(value)}</div>'
        f'<div class="ltv-label">{html.escape(name)}</div>'
        + (f'<div class="ltv-note">{html.escape(note)}</div>' if note else "") + "</div>"
        for value, name, note in items)
    return f'<div class="ltv-cards">{cells}</div>'


def findings(h: Headline, language: str = "en") -> list[str]:
    """Three to seven sentences written from the numbers, most important first."""
    pct = lambda v: f"{v:.0%}"  # noqa: E731
    out = [label(FINDING_CONCENTRATION, language).format(
        top20=pct(h.top20_share), high=f"{h.high_customers:,}", high_share=pct(h.high_share),
        high_revenue=pct(h.high_revenue_share))]
    out.append(label(FINDING_ONE_TIME, language).format(one_time=pct(1 - h.repeat_share)))
    if h.risk_customers:
        out.append(label(FINDING_CHURN_RISK, language).format(
            risk=f"{h.risk_customers:,}", risk_revenue=pct(h.risk_revenue_share)))
    out += _operations_findings(h, language)
    if h.purchases is None:
        return out
    if h.past_revenue > 0:
        ratio = h.forecast_revenue[0] / h.past_revenue - 1
        change = label("{pct} above" if ratio >= 0 else "{pct} below", language).format(pct=pct(abs(ratio)))
    else:
        change = label("against no revenue in", language)
    out.append(label(FINDING_FORECAST, language).format(
        months=h.horizon_months, purchases=f"{h.purchases[0]:,.0f}", revenue=money(h.forecast_revenue[0], h.currency),
        low=money(h.forecast_revenue[1], h.currency), high=money(h.forecast_revenue[2], h.currency),
        change=change, past=money(h.past_revenue, h.currency)))
    values = {"holdout": f"{h.holdout_days:,.0f}", "model": label("repeat-purchase model", language),
              "mae": f"{h.mae:.2f}",
              "baseline": label(h.baseline, language), "gain": pct(h.gain),
              "error": label("{pct} too low" if h.total_error_pct < 0 else "{pct} too high", language).format(
                  pct=f"{abs(h.total_error_pct):.1f}%")}
    if not np.isnan(h.gain):  # a model the evaluation did not test has no holdout finding
        out.append(label(FINDING_MODEL_BETTER if h.gain > 0 else FINDING_MODEL_WORSE, language).format(**values))
    return out


def _operations_findings(h: Headline, language: str) -> list[str]:
    """The findings of LTV operations: how the last report's forecast held, and a channel whose
    customers clearly do not return their acquisition cost as the others do."""
    from ltv_helpers.monitoring import verdict

    out = []
    m = h.monitoring
    if m is not None:
        watch = m.get("watchlist")
        text = label(FINDING_MONITORING, language).format(
            before=m["baseline_observation_end"], end=m["window_end"], predicted=f"{m['predicted_purchases']:,.0f}",
            actual=f"{m['actual_purchases']:,}",
            verdict=label(verdict(m["actual_purchases"], m["purchases_low"], m["purchases_high"]), language))
        if watch and watch["customers"]:  # none when this run has no forecast, or nobody slipped
            text += label(FINDING_WATCH, language).format(watch=f"{watch['customers']:,}")
        out.append(text)
    gap = h.channel_gap
    if gap is not None:
        others = ", ".join(f"{label(name, language)} {value:.1f}" for name, value in gap["others"].items())
        out.append(label(FINDING_CHANNEL, language).format(
            channel=label(gap["channel"], language), ratio=f"{gap['ratio']:.1f}", low=f"{gap['low']:.1f}",
            high=f"{gap['high']:.1f}", others=others))
    return out


def no_forecast_markdown(run, language: str = "en") -> str:
    """For a run without a forecast, a section saying why (the data's own numbers) and what data
    would allow one, as Markdown; '' when the run has a forecast."""
    from ltv_helpers.evaluation import forecast_blocker
    from ltv_helpers.labels import NO_FORECAST_WHAT

    run = _run(run)
    if run.prediction is not None:
        return ""
    note = forecast_blocker(run.transactions, observation_end=run.meta["observation_end"])
    why = md_escape(note.text(language)) + "\n\n" if note is not None else ""
    return f"## {label('Why there is no forecast', language)}\n\n{why}{md_escape(label(NO_FORECAST_WHAT, language))}"


def findings_markdown(h: Headline, language: str = "en") -> str:
    """:func:`findings` as a numbered Markdown list."""
    return "\n".join(f"{i}. {md_escape(text)}" for i, text in enumerate(findings(h, language), start=1))


def tier_summary(run, language: str = "en") -> pd.DataFrame:
    """The value tiers with customers, revenue, their shares and the recommended actions (from a run
    folder or its :class:`RunFiles`)."""
    run = _run(run)
    table = sg.segment_table(run.tiers, run.history, language=language)
    keep = ["customers", "share of customers", "revenue", "share of revenue", "recommended actions"]
    return table[[label(c, language) for c in keep]]
