"""Each report checks the one before: the last run's forecast against what its customers did
since, how customers moved between value tiers, and a watch list of valuable customers who are
slipping away.

A client's folder holds its runs side by side (``reports/<client>/<YYYY-MM-DD_HHMMSS>/``). The
*baseline* of a new run is the newest complete run in that folder whose data end before the new
run's (:func:`find_baseline`); it is refused in one sentence when it belongs to another client or
was read with another currency or other columns (:func:`check_baseline`): two clients, or two
readings of an export, are never compared. :func:`compare` makes the comparison and
:func:`save_monitoring` writes ``monitoring.json`` and ``watchlist.csv`` into the new run.

Purchases are counted as the models count them: distinct purchase days per customer. The window
is the days after the baseline's observation end up to the new run's, and only the baseline's
customers count (its forecast was for them); customers acquired in the window are reported apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ltv_helpers.schema import AMOUNT, CUSTOMER_ID, ORDER_DATE, LTVError

if TYPE_CHECKING:  # imported where used: finding and checking a baseline (ltv report's own process) needs neither
    import pandas as pd

#: A customer is on the watch list when they were high value in the baseline run and their
#: probability of being active fell from at least this to below it.
WATCH_THRESHOLD = 0.5
#: The tier of the watch list, and the rows and columns of the migration table beyond the tiers.
WATCHED_TIER = "high value"
NEW = "new since the last report"
GONE = "not in this run"
#: The column roles whose mapping changes what a purchase or its amount is: a baseline read with
#: another mapping of one of them is not comparable (a channel column added later is).
COMPARED_ROLES = ("customer_id", "order_date", "amount", "order_id", "quantity", "unit_price")
#: The files a run needs to serve as a baseline (notebooks 01-03).
BASELINE_FILES = ("run.json", "collection.json", "transactions.parquet", "segments.parquet",
                  "predictions.parquet", "prediction.json", "model.json")
WATCHLIST_FILE = "watchlist.csv"
MONITORING_FILE = "monitoring.json"


def _stamp(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def check_client_folder(output, client: str) -> None:
    """Refuse a client's folder whose newest run belongs to another client (one sentence): the
    runs of two clients never share a folder, so one's report never becomes the other's baseline."""
    latest = Path(output) / "latest"
    other = _meta(latest).get("client") if (latest / "collection.json").is_file() else None
    if client is not None and other is not None and other != client:
        raise LTVError(f"{Path(output)} holds the runs of client {other!r}, not {client!r}; give each client "
                       "its own --output folder.")


def runs(client_dir) -> list[Path]:
    """The complete runs of a client's folder that can serve as a baseline, newest data first (of
    two runs with the same data end, the later run)."""
    client_dir = Path(client_dir)
    if not client_dir.is_dir():
        return []
    found = [p for p in client_dir.iterdir()
             if p.is_dir() and not p.is_symlink() and all((p / f).is_file() for f in BASELINE_FILES)
             and _stamp(p).get("status") == "complete"]
    return sorted(found, key=lambda p: (_when(_meta(p)["observation_end"]), p.name), reverse=True)


def _when(value):
    """A date or time to compare: ISO text (collection.json's) read without pandas, anything else
    as ``pd.Timestamp`` reads it."""
    from datetime import datetime

    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            pass
    import pandas as pd

    return pd.Timestamp(value).to_pydatetime()


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "collection.json").read_text(encoding="utf-8"))


def find_baseline(client_dir, *, observation_end) -> Path | None:
    """The newest complete run in ``client_dir`` whose data end before ``observation_end``
    (a run of the same month again compares with the month before), or None."""
    end = _when(observation_end)
    for run in runs(client_dir):
        if _when(_meta(run)["observation_end"]) < end:
            return run
    return None


def check_baseline(baseline_dir, meta: dict, client: str | None = None, *, folder=None) -> None:
    """Refuse ``baseline_dir`` as the baseline of a run whose collection metadata is ``meta`` (of
    ``client``, default ``meta``'s), in one sentence: not a complete run (of the client's
    ``folder``, when given), another client, another currency, another reading of the columns
    that make purchases and amounts (:data:`COMPARED_ROLES`), or data that do not end before the
    new run's."""
    baseline_dir = Path(baseline_dir)
    missing = [f for f in BASELINE_FILES if not (baseline_dir / f).is_file()]
    if missing:
        raise LTVError(f"{baseline_dir.name} cannot be the baseline: it has no {', '.join(missing)} (a run without a "
                       "forecast, or made by an older toolkit).")
    if folder is not None and baseline_dir.resolve().parent != Path(folder).resolve():
        raise LTVError(f"The baseline {baseline_dir} is not a run of this client's folder {folder}; a report is only "
                       "checked against the earlier runs beside it.")
    status = _stamp(baseline_dir).get("status")
    if status != "complete":
        raise LTVError(f"{baseline_dir.name} cannot be the baseline: the run is {status or 'without a run.json'}, "
                       "not complete.")
    old = _meta(baseline_dir)
    old_client = old.get("client")
    client = meta.get("client") if client is None else client
    advice = "; pass --no-baseline to report without the comparison, or use a new --output folder."
    if old_client != client:
        raise LTVError(f"The last run {baseline_dir.name} is of client {old_client!r}, not {client!r}: two clients are "
                       "never compared; give each client its own --output folder.")
    if (old.get("currency") or "") != (meta.get("currency") or ""):
        raise LTVError(f"The last run {baseline_dir.name} counted money in {old.get('currency') or 'no currency'}, "
                       f"this run in {meta.get('currency') or 'no currency'}{advice}")
    roles = lambda m: {k: v for k, v in m.get("columns", {}).items() if k in COMPARED_ROLES}  # noqa: E731
    if roles(old) != roles(meta):
        role = sorted(set(roles(old).items()) ^ set(roles(meta).items()))[0][0]
        raise LTVError(f"The last run {baseline_dir.name} read the export with other columns ({role}: "
                       f"{old.get('columns', {}).get(role, 'none')} then, {meta.get('columns', {}).get(role, 'none')} "
                       f"now){advice}")
    if _when(old["observation_end"]) >= _when(meta["observation_end"]):
        raise LTVError(f"The last run {baseline_dir.name} has data to {old['observation_end']}, not before this run's "
                       f"{meta['observation_end']}: there is no time between them to check.")


@dataclass(frozen=True)
class Monitoring:
    """The comparison of a run with its baseline (:func:`compare`).

    ``forecast``: one row for all the baseline's customers and one per baseline tier, with
    ``customers``, ``predicted_purchases`` and its interval, ``actual_purchases``, and the same for
    revenue. ``migrations``: baseline tier (rows, plus :data:`NEW`) x this run's tier (columns, plus
    :data:`GONE`), customers. ``watchlist``: one row per customer on the watch list, raw ids
    (None when this run has no forecast). ``facts``: the window, the baseline and the counts.
    """

    forecast: pd.DataFrame
    migrations: pd.DataFrame
    watchlist: pd.DataFrame | None
    facts: dict


def _tiers(run_dir: Path) -> pd.Series:
    import pandas as pd

    from ltv_helpers.segments import TIERS

    tiers = pd.read_parquet(run_dir / "segments.parquet")["tier"]
    tiers.index = tiers.index.astype("str")
    return tiers.astype(pd.CategoricalDtype(TIERS))


def purchase_days(transactions: pd.DataFrame, customers, *, start, end) -> pd.DataFrame:
    """Per customer of ``customers``: distinct purchase ``days`` and ``revenue`` from ``start``
    through ``end`` (dates, both included), zero for a customer who did not buy."""
    import pandas as pd

    day = transactions[ORDER_DATE].dt.normalize()
    inside = (day >= pd.Timestamp(start)) & (day <= pd.Timestamp(end))
    tx = pd.DataFrame({CUSTOMER_ID: transactions.loc[inside, CUSTOMER_ID].astype("str").to_numpy(),
                       "day": day[inside].to_numpy(), AMOUNT: transactions.loc[inside, AMOUNT].to_numpy(float)})
    index = pd.Index(customers, name=CUSTOMER_ID).astype("str")
    tx = tx[tx[CUSTOMER_ID].isin(index)]
    days = tx.drop_duplicates([CUSTOMER_ID, "day"]).groupby(CUSTOMER_ID).size()
    revenue = tx.groupby(CUSTOMER_ID)[AMOUNT].sum()
    return pd.DataFrame({"days": days.reindex(index, fill_value=0).astype("int64"),
                         "revenue": revenue.reindex(index, fill_value=0.0)})


def compare(baseline_dir, run_dir, *, threshold: float = WATCH_THRESHOLD, draws: int = 100) -> Monitoring:
    """Compare the run in ``run_dir`` (its collection, segments and, if any, forecast) with the
    baseline run in ``baseline_dir``: the baseline's forecast over the days between the two
    observation ends against what its customers did (intervals from
    :func:`ltv_helpers.models.intervals` with the baseline's own model error, scaled to the
    window), tier migrations and the watch list."""
    import numpy as np
    import pandas as pd

    from ltv_helpers import data, models

    if not 0 < threshold < 1:
        raise LTVError(f"The watch list's threshold is a probability between 0 and 1, got {threshold}.")
    baseline_dir, run_dir = Path(baseline_dir), Path(run_dir)
    transactions, meta = data.load_collection(run_dir)
    check_baseline(baseline_dir, meta)
    old_tx, old_meta = data.load_collection(baseline_dir)
    before = pd.Timestamp(old_meta["observation_end"])
    end = pd.Timestamp(meta["observation_end"])
    start = before + pd.Timedelta(days=1)
    window_days = float((end - before).days)
    forecast = models.load_forecast(baseline_dir)
    fitted = forecast.model
    history = data.customer_history(old_tx, observation_end=old_meta["observation_end"])
    history.index = history.index.astype("str")
    old_tiers = _tiers(baseline_dir).reindex(history.index)
    error = forecast.model_error
    totals = models.intervals(fitted, history, horizon=window_days / fitted.unit_days, groups=old_tiers,
                              draws=draws, model_error=None if error is None else error.scaled(window_days))
    actual = purchase_days(transactions, history.index, start=start, end=end)
    groups = pd.concat([pd.Series("all customers", index=history.index), old_tiers.astype("str")],
                       keys=["all", "tier"]).droplevel(0)
    done = actual.reindex(groups.index).groupby(groups.to_numpy()).sum()
    table = pd.DataFrame({
        "customers": groups.groupby(groups.to_numpy()).size(),
        "predicted_purchases": totals["expected_purchases"], "purchases_low": totals["purchases_low"],
        "purchases_high": totals["purchases_high"], "actual_purchases": done["days"],
        "predicted_revenue": totals["expected_revenue"], "revenue_low": totals["revenue_low"],
        "revenue_high": totals["revenue_high"], "actual_revenue": done["revenue"]}).reindex(totals.index)
    table.index.name = "group"
    table["customers"] = table["customers"].fillna(0).astype("int64")
    table["actual_purchases"] = table["actual_purchases"].fillna(0).astype("int64")
    table["actual_revenue"] = table["actual_revenue"].fillna(0.0)

    new_tiers = _tiers(run_dir)
    migrations = _migrations(old_tiers, new_tiers)
    first = transactions.groupby(transactions[CUSTOMER_ID].astype("str"))[ORDER_DATE].min()
    new_ids = first.index[(first.dt.normalize() >= start).to_numpy() & ~first.index.isin(history.index)]
    new = purchase_days(transactions, new_ids, start=start, end=end)
    watch = None
    if (run_dir / "predictions.parquet").is_file():
        current = models.load_forecast(run_dir).predictions
        watch = _watchlist(forecast.predictions, current, old_tiers, new_tiers, transactions, threshold)
    facts = {
        "baseline_run": baseline_dir.name, "baseline_observation_end": str(before.date()),
        "window_start": str(start.date()), "window_end": str(end.date()), "window_days": int(window_days),
        "model": fitted.model, "currency": meta.get("currency") or "",
        "new_customers": int(len(new_ids)), "new_customer_purchases": int(new["days"].sum()),
        "new_customer_revenue": float(new["revenue"].sum()), "threshold": float(threshold),
        "model_error_measured": error is not None and bool(np.isfinite(error.purchases_var)),
    }
    return Monitoring(table, migrations, watch, facts)


def _migrations(old: pd.Series, new: pd.Series) -> pd.DataFrame:
    """Customers by baseline tier (rows, :data:`NEW` for customers the baseline did not have) and
    this run's tier (columns, :data:`GONE` for customers this run does not have)."""
    import pandas as pd

    ids = old.index.union(new.index)
    rows = old.reindex(ids).astype("str").where(ids.isin(old.index), NEW)
    cols = new.reindex(ids).astype("str").where(ids.isin(new.index), GONE)
    order = list(old.cat.categories)
    table = pd.crosstab(rows.rename("last report"), cols.rename("this report"))
    return table.reindex(index=order + [NEW], columns=order + [GONE], fill_value=0).astype("int64")


def _watchlist(old_pred: pd.DataFrame, new_pred: pd.DataFrame, old_tiers: pd.Series, new_tiers: pd.Series,
               transactions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """High-value customers of the baseline whose P(alive) fell from at least ``threshold`` to
    below it, with the value the baseline expected of them at stake, most valuable first, and
    their orders, revenue and last order to this run's data end."""
    import pandas as pd

    ids = old_pred.index.intersection(new_pred.index)
    before, now = old_pred.loc[ids, "p_alive"], new_pred.loc[ids, "p_alive"]
    hit = (old_tiers.reindex(ids) == WATCHED_TIER) & (before >= threshold) & (now < threshold)
    ids = ids[hit.to_numpy()]
    key = transactions[CUSTOMER_ID].astype("str")
    mine = transactions[key.isin(ids).to_numpy()]  # their orders to this run's data end
    per = mine.groupby(key[key.isin(ids)].to_numpy()).agg(orders=(ORDER_DATE, "size"), revenue=(AMOUNT, "sum"),
                                                          last=(ORDER_DATE, "max"))
    out = pd.DataFrame({
        "tier_before": old_tiers.reindex(ids).astype("str"), "tier_now": new_tiers.reindex(ids).astype("str"),
        "p_alive_before": before[ids], "p_alive_now": now[ids], "p_alive_change": now[ids] - before[ids],
        "value_at_stake": old_pred.loc[ids, "clv"], "clv_now": new_pred.loc[ids, "clv"],
        "orders": per["orders"].reindex(ids), "revenue": per["revenue"].reindex(ids),
        "last_order": per["last"].reindex(ids).dt.date})
    out.index.name = CUSTOMER_ID
    return out.sort_values("value_at_stake", ascending=False, kind="stable")


def save_monitoring(result: Monitoring, output_dir) -> list[Path]:
    """Write ``monitoring.json`` (the window, the forecast against the actual overall and per
    tier, the migrations, the watch list's size and value) and ``watchlist.csv`` (raw customer
    ids for the CRM, formula cells neutralised) into ``output_dir``."""
    from ltv_helpers.files import write_csv, write_json

    out = Path(output_dir)
    rows = {name: {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
            for name, row in result.forecast.to_dict(orient="index").items()}
    overall = rows.pop("all customers")
    watch = result.watchlist
    spec = {**{k: v for k, v in result.facts.items()}, **overall, "tiers": rows,
            "migrations": {str(k): {str(c): int(n) for c, n in v.items()}
                           for k, v in result.migrations.to_dict(orient="index").items()},
            "watchlist": None if watch is None else {
                "customers": int(len(watch)), "value_at_stake": float(watch["value_at_stake"].sum()),
                "file": WATCHLIST_FILE}}
    paths = [write_json(out / MONITORING_FILE, spec)]
    if watch is not None:
        paths.append(write_csv(watch, out / WATCHLIST_FILE))
    return paths


# ---------------------------------------------------------------------------------- the report's text

def verdict(actual: float, low: float, high: float) -> str:
    """Where the actual total fell against the interval (a label key)."""
    import numpy as np

    if not (np.isfinite(low) and np.isfinite(high)) or low <= actual <= high:
        return "within the interval"
    return "below the interval" if actual < low else "above the interval"


def header_markdown(result: Monitoring, language: str = "en") -> str:
    from ltv_helpers.labels import MONITORING_HEADER, markdown

    f = result.facts
    return markdown(MONITORING_HEADER, language, run=f["baseline_run"], before=f["baseline_observation_end"],
                    end=f["window_end"], days=f"{f['window_days']:,}", currency=f["currency"] or "–")


def forecast_markdown(result: Monitoring, language: str = "en") -> str:
    """The last forecast against what happened, in sentences (Markdown)."""
    from ltv_helpers.labels import MONITORING_CHECK, MONITORING_NEW, MONITORING_UNMEASURED, label, markdown, money

    f, row, cur = result.facts, result.forecast.loc["all customers"], result.facts["currency"]
    text = markdown(MONITORING_CHECK, language, start=f["window_start"], end=f["window_end"],
                    customers=f"{int(row['customers']):,}", predicted=f"{row['predicted_purchases']:,.0f}",
                    low=f"{row['purchases_low']:,.0f}", high=f"{row['purchases_high']:,.0f}",
                    actual=f"{int(row['actual_purchases']):,}",
                    verdict=label(verdict(row["actual_purchases"], row["purchases_low"], row["purchases_high"]),
                                  language),
                    revenue=money(row["predicted_revenue"], cur), revenue_low=money(row["revenue_low"], cur),
                    revenue_high=money(row["revenue_high"], cur), revenue_actual=money(row["actual_revenue"], cur))
    if f["new_customers"]:
        text += " " + markdown(MONITORING_NEW, language, new=f"{f['new_customers']:,}",
                               revenue=money(f["new_customer_revenue"], cur))
    if not f["model_error_measured"]:
        text += " " + markdown(MONITORING_UNMEASURED, language)
    return text


def forecast_table(result: Monitoring) -> pd.DataFrame:
    """The forecast check overall and per tier, without tiers that had no customer."""
    return result.forecast[result.forecast["customers"] > 0]


def migration_markdown(result: Monitoring, language: str = "en") -> str:
    import numpy as np

    from ltv_helpers.labels import MIGRATION_NOTE, markdown

    table = result.migrations.drop(index=NEW, columns=GONE)
    both = int(table.to_numpy().sum())
    kept = int(np.trace(table.to_numpy()))
    high = int(table.loc[WATCHED_TIER].sum())
    return markdown(MIGRATION_NOTE, language, kept=f"{kept:,}", both=f"{both:,}",
                    high_kept=f"{int(table.loc[WATCHED_TIER, WATCHED_TIER]):,}", high=f"{high:,}")


def migration_table(result: Monitoring, language: str = "en") -> pd.DataFrame:
    """The migration table with its labels in ``language`` (rows: the last report's tiers)."""
    from ltv_helpers.labels import label
    from ltv_helpers.segments import group_name

    name = lambda v: label(v, language) if v in (NEW, GONE) else group_name(v, language)  # noqa: E731
    out = result.migrations.rename(index=name, columns=name)
    out.index.name, out.columns.name = label("last report", language), label("this report", language)
    return out


def watch_markdown(result: Monitoring, language: str = "en", *, shown: int = 15) -> str:
    from ltv_helpers.labels import WATCH_NO_FORECAST, WATCH_NONE, WATCH_NOTE, markdown, money

    watch, f = result.watchlist, result.facts
    if watch is None:
        return markdown(WATCH_NO_FORECAST, language)
    threshold = f"{f['threshold']:.0%}"
    if watch.empty:
        return markdown(WATCH_NONE, language, threshold=threshold)
    return markdown(WATCH_NOTE, language, count=f"{len(watch):,}", threshold=threshold,
                    value=money(watch["value_at_stake"].sum(), f["currency"]), shown=f"{min(shown, len(watch)):,}")


def watch_table(result: Monitoring, *, client: str, shown: int = 15, language: str = "en") -> pd.DataFrame | None:
    """The watch list's first ``shown`` customers for the report: pseudonyms, never raw ids; the
    tiers in ``language``."""
    import pandas as pd

    from ltv_helpers.report import pseudonymize
    from ltv_helpers.segments import group_name

    watch = result.watchlist
    if watch is None or watch.empty:
        return None
    # Every one was high value then, and the change is the difference of the two: the CSV has them.
    top = watch.head(shown)[["tier_now", "p_alive_before", "p_alive_now", "value_at_stake", "clv_now", "last_order"]]
    top["tier_now"] = top["tier_now"].map(lambda v: group_name(v, language) if isinstance(v, str) else v)
    top.index = pd.Index(pseudonymize(top.index, client=client).to_numpy(), name="customer")
    return top
