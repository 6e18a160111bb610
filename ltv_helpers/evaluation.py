"""Evaluation: holdout backtests of the models against baselines, the classic BG/NBD validation.

``backtest`` fits every model on a calibration period and predicts the holdout period that
follows; ``.metrics`` compares models and baselines on the same customers. The classic checks of
Fader, Hardie and Lee (2005) are ``conditional_expectations`` (holdout purchases by calibration
frequency) and ``tracking`` (repeat transactions per period, incremental and cumulative).
"""

from __future__ import annotations

import functools
import json
import warnings
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers import models as mdl
from ltv_helpers.data.collection import collection_kept
from ltv_helpers.data.engines import DuckDBEngine, connect
from ltv_helpers.data.parse import _end_cut, id_positions
from ltv_helpers.data.summary import (
    _PERIOD_SQL,
    OrderDays,
    _check_freq,
    _instant_after,
    calibration_holdout,
    customer_history,
    id_hashes,
    lowest_hashes,
    order_days,
    period_of,
    shared,
)
from ltv_helpers.labels import label
from ltv_helpers.memory import release_memory
from ltv_helpers.schema import AMOUNT, CUSTOMER_ID, ORDER_DATE, LTVError

#: Baselines every metrics table carries, so a model has to beat something.
BASELINES = {
    "naive": "repeat purchases per unit of time since the first purchase x holdout length, at the "
             "customer's own average order value",
    "rfm": "the R + F + M score: ranks customers, forecasts nothing",
    "simple_formula": "for an average customer: population average order value x purchases per customer-day x "
                      "holdout days, the same for everyone",
    "ml": "on RFM and tenure features, trained on the previous window (as long as the holdout, or "
          "the second half of the calibration period if that is shorter, scaled up)",
}


@dataclass
class BacktestResult:
    """What :func:`backtest` produced.

    ``predictions``: one row per calibration customer: ``actual_purchases`` (distinct purchase
    periods in the holdout), ``actual_spend`` (holdout revenue) and per model or baseline
    ``<name>_purchases`` and ``<name>_spend``. ``metrics``: one row per model and baseline.
    ``summary``: the calibration/holdout summary. ``fitted``: the fitted models by name.
    ``left_out``: the models that could not be fitted or predicted, with the reason (a sentence).
    ``model_errors``: per fitted model, the :class:`ModelError` measured inside the calibration
    period that widened its ``predicted_low`` / ``predicted_high`` interval.
    """

    predictions: pd.DataFrame
    metrics: pd.DataFrame
    summary: pd.DataFrame
    fitted: dict = field(repr=False)
    calibration_end: pd.Timestamp = None
    observation_end: pd.Timestamp = None
    duration: float = 0.0
    left_out: dict = field(default_factory=dict)
    model_errors: dict = field(default_factory=dict, repr=False)
    level: float = 0.9

    def best(self, metric: str = "mae") -> str:
        """The model (not baseline) with the best value of ``metric``."""
        rows = self.metrics.loc[[m for m in self.fitted if m in self.metrics.index]]
        if rows.empty:
            by_reason: dict[str, list[str]] = {}
            for m, reason in self.left_out.items():  # one reason often stops every model
                by_reason.setdefault(reason.rstrip("."), []).append(mdl.model_label(m))
            why = "; ".join(f"{', '.join(names)}: {reason}" for reason, names in by_reason.items())
            raise LTVError("No purchase model could be fitted and predicted on the calibration period"
                           + (f" ({why})." if why else "."))
        col = rows[metric].abs() if metric.endswith("error_pct") else rows[metric]
        return str(col.idxmax() if metric in HIGHER_IS_BETTER else col.idxmin())

    def charges(self) -> pd.Series:
        """Per fitted model, the charge of :data:`~ltv_helpers.labels.CHOICE_RULE`: percent by which
        its mean absolute error per customer exceeds the best model's, plus its absolute total error
        in percent (NaN totals, e.g. no holdout purchase, count as 0)."""
        self.best("mae")  # one sentence when no model is left
        rows = self.metrics.loc[[m for m in self.fitted if m in self.metrics.index]]
        mae = rows["mae"].astype(float)
        return (100 * (mae / mae.min() - 1) + rows["total_error_pct"].astype(float).abs().fillna(0.0)).rename("charge")

    def without_customers(self) -> "BacktestResult":
        """This result without its per-customer tables (``predictions`` and ``summary`` emptied,
        their columns and attributes kept): what a notebook holds on to for the model choice (its
        metrics, fits and model errors) once :func:`save_backtest` has written the whole (at 1M
        customers 150 MB less for the rest of the notebook)."""
        import dataclasses

        return dataclasses.replace(self, predictions=self.predictions.iloc[:0].copy(),
                                   summary=self.summary.iloc[:0].copy())

    def choose(self) -> str:
        """The model for the forecast by :data:`~ltv_helpers.labels.CHOICE_RULE` (lowest charge;
        ties go to the smaller error per customer)."""
        charges = self.charges()
        mae = self.metrics.loc[charges.index, "mae"].astype(float)
        return str(pd.DataFrame({"c": charges.round(9), "m": mae}).sort_values(["c", "m"]).index[0])


#: Metrics where a larger value is better; for the others smaller is better (errors by size).
HIGHER_IS_BETTER = {"correlation", "spend_spearman", "top10_capture", "top20_capture", "gains_gini",
                    "top20_precision", "log_likelihood"}
#: Metrics that are shares, shown as percentages.
SHARE_METRICS = ("top10_capture", "top20_capture", "top20_precision")


def default_calibration_end(transactions: pd.DataFrame, observation_end) -> pd.Timestamp:
    """Two thirds of the way from the first order to ``observation_end``: the last third is holdout."""
    return _two_thirds(transactions[ORDER_DATE].min(), pd.Timestamp(observation_end))


def _two_thirds(first: pd.Timestamp, end: pd.Timestamp) -> pd.Timestamp:
    return (first + (end - first) * 2 / 3).normalize()


def forecast_blocker(transactions: pd.DataFrame, *, observation_end=None, calibration_end=None,
                     orders: OrderDays | None = None):
    """Why no purchase model can forecast these transactions, as a :class:`~ltv_helpers.labels.Note`
    (a sentence in either language), or None when a forecast and its backtest are possible.

    Checked in order: at least ``models.MIN_CUSTOMERS`` customers; orders on more than one day;
    at least ``models.MIN_REPEAT_BUYERS`` customers who bought on two or more days, in the whole
    history and before ``calibration_end`` (default :func:`default_calibration_end`), where the
    backtest fits the models. ``orders``: the transactions as an :class:`OrderDays`, when the caller
    has them so (counted on them: :meth:`OrderDays.buyer_counts`).
    """
    from ltv_helpers.data.summary import buyer_counts

    tx = transactions
    day = tx[ORDER_DATE].to_numpy(dtype="datetime64[us]").astype("datetime64[D]")
    counts = orders.buyer_counts if orders is not None else (
        lambda before=None: buyer_counts(tx if before is None else tx[tx[ORDER_DATE] < before]))
    return _blocker(counts,
                    first=tx[ORDER_DATE].min(), one_day=len(day) > 0 and day.min() == day.max(),
                    last_day=pd.Timestamp(day.max()) if len(day) else None, observation_end=observation_end,
                    calibration_end=calibration_end)


def collection_blocker(folder, *, calibration_end=None):
    """:func:`forecast_blocker` of the transactions that ``01_collection`` wrote to ``folder``, to
    its observation end, counted by DuckDB in the Parquet file: ``ltv report`` decides whether to
    forecast without holding the transactions in its own process while the notebooks run (at 1M
    customers, 480 MB it kept). Where this process keeps the file's transactions
    (:func:`~ltv_helpers.data.collection.collection_kept`: a report's kernel after 01_collection),
    they are counted on their prepared orders instead (1.5 s of DuckDB became 0.03 s at 1M)."""
    folder = Path(folder)
    meta = json.loads((folder / "collection.json").read_text(encoding="utf-8"))
    kept = collection_kept(folder / "transactions.parquet")
    if kept is not None:
        return forecast_blocker(kept, observation_end=meta["observation_end"], calibration_end=calibration_end,
                                orders=order_days(kept))  # the next notebooks' too
    path = str(folder / "transactions.parquet")
    with connect(config={"threads": 2}) as con:
        con.read_parquet(path).select(CUSTOMER_ID, ORDER_DATE).create_view("tx")

        def counts(before=None) -> tuple[int, int]:
            where = "" if before is None else f"WHERE {ORDER_DATE} < $1"
            sql = (f"SELECT count(*), count(*) FILTER (WHERE n_days > 1) FROM (SELECT {CUSTOMER_ID}, "
                   f"count(DISTINCT CAST({ORDER_DATE} AS DATE)) AS n_days FROM tx {where} GROUP BY 1)")
            found = con.execute(sql, [] if before is None else [pd.Timestamp(before).to_pydatetime()]).fetchone()
            return int(found[0]), int(found[1] or 0)

        first, last_day = con.execute(f"SELECT min({ORDER_DATE}), max(CAST({ORDER_DATE} AS DATE)) FROM tx").fetchone()
        return _blocker(counts, first=pd.Timestamp(first) if first is not None else pd.NaT,
                        one_day=first is not None and first.date() == last_day,
                        last_day=pd.Timestamp(last_day) if last_day is not None else None,
                        observation_end=meta["observation_end"], calibration_end=calibration_end)


def _blocker(counts, *, first, one_day: bool, last_day, observation_end, calibration_end):
    """The checks of :func:`forecast_blocker`, on ``counts(before=None)``: (customers, repeat
    buyers) of the orders before ``before`` (all when None)."""
    from ltv_helpers.labels import (NO_FORECAST_CALIBRATION, NO_FORECAST_CUSTOMERS, NO_FORECAST_REPEAT,
                                    NO_FORECAST_SPAN, Note)

    customers, repeat = counts()
    if customers < mdl.MIN_CUSTOMERS:
        return Note(NO_FORECAST_CUSTOMERS, {"customers": f"{customers:,}", "needed": f"{mdl.MIN_CUSTOMERS:,}"})
    if one_day:
        return Note(NO_FORECAST_SPAN)
    needed = f"{mdl.MIN_REPEAT_BUYERS:,}"
    if repeat < mdl.MIN_REPEAT_BUYERS:
        return Note(NO_FORECAST_REPEAT, {"repeat": f"{repeat:,}", "needed": needed})
    end = pd.Timestamp(observation_end) if observation_end is not None else last_day
    cal_end = pd.Timestamp(calibration_end) if calibration_end is not None else _two_thirds(first, end)
    repeat_cal = counts(before=_end_cut(cal_end))[1]
    if repeat_cal < mdl.MIN_REPEAT_BUYERS:
        return Note(NO_FORECAST_CALIBRATION, {"repeat": f"{repeat_cal:,}", "needed": needed,
                                              "calibration_end": cal_end.date().isoformat()})
    return None


@mdl.one_blas_thread
def backtest(transactions: pd.DataFrame, *, calibration_end=None, observation_end=None,
             models: tuple[str, ...] | list[str] = ("bgnbd", "pareto_nbd", "mbgnbd"), freq: str = "D",
             freq_multiplier: float = 1, baselines: bool = True, intervals: bool = True,
             level: float = 0.9, reuse: BacktestResult | None = None,
             orders: OrderDays | None = None) -> BacktestResult:
    """Fit each model on the calibration period, predict the holdout, score models and baselines.

    ``calibration_end`` defaults to :func:`default_calibration_end`; ``observation_end`` to the
    last order. Model predictions of spend are expected purchases x Gamma-Gamma expected order
    value, undiscounted. The baselines are :data:`BASELINES`. Metrics, per row:

    - purchases: ``mae``, ``rmse`` per customer, ``predicted``, ``actual`` totals,
      ``total_error_pct``, ``correlation`` (Pearson);
    - spend: ``spend_mae``, ``spend_total_error_pct``, ``spend_spearman`` (rank correlation);
    - ranking by predicted spend: ``top10_capture`` / ``top20_capture`` (share of holdout revenue
      from the predicted top 10% / 20%), ``gains_gini`` (area between the cumulative-gains curve
      and the diagonal over that of the perfect ranking: 1 perfect, 0 random), ``top20_precision``
      (share of the predicted top 20% who are in the actual top 20%);
    - ``log_likelihood`` and ``bic`` of the calibration fit (models only);
    - ``predicted_low`` / ``predicted_high`` (models only, unless ``intervals=False``): the
      ``level`` interval for the holdout's total purchases, made as the report's forecast
      intervals are (:func:`ltv_helpers.models.intervals`: the fitted parameters' uncertainty, the
      luck of individual customers, and the model error :func:`model_error` measures at earlier
      cut-offs), from calibration data only; ``actual`` inside it is what an honest interval
      promises ``level`` of the time.

    ``reuse``: an earlier result on the same data, split and settings (the prediction notebook's,
    read back with :func:`load_backtest`); its models are taken as they are instead of being
    fitted, backtested and given intervals again, so only the rest (e.g. the baselines) is
    computed. The result is the same as without it (tested). A result on other data or another
    split is not used. ``orders``: the same transactions as an :class:`OrderDays`, when the caller
    makes many backtests of them (made here when the model errors need summaries at earlier cut-offs).
    """
    if observation_end is None:
        observation_end = transactions[ORDER_DATE].max().normalize()
    if calibration_end is None:
        calibration_end = default_calibration_end(transactions, observation_end)
    cal_end, obs_end = pd.Timestamp(calibration_end), pd.Timestamp(observation_end)
    _check_models(models)
    if reuse is not None and not _reusable(reuse, transactions, cal_end, obs_end, freq, freq_multiplier,
                                           intervals, level):
        reuse = None
    # With intervals, the model errors make a summary at every earlier cut-off: prepare the orders once.
    orders = _orders(transactions, orders, freq, freq_multiplier, many=reuse is None and intervals)
    summary = (reuse.summary if reuse is not None else
               _summarize(transactions, orders)(calibration_end=cal_end, observation_end=obs_end, freq=freq,
                                                freq_multiplier=freq_multiplier))
    summary.attrs["backtest_freq"] = [freq, float(freq_multiplier)]
    duration = float(summary["duration_holdout"].iloc[0])
    holdout = transactions[(transactions[ORDER_DATE] >= _end_cut(cal_end))
                           & (transactions[ORDER_DATE] < _end_cut(obs_end))]
    spend = holdout.groupby(CUSTOMER_ID)[AMOUNT].sum()
    spend.index = spend.index.astype("str")
    pred = pd.DataFrame({"actual_purchases": summary["frequency_holdout"],
                         "actual_spend": _on(summary.index, spend, 0.0)})
    fitted, fit_stats, left_out, errors = {}, {}, {}, {}
    reused = [name for name in models if reuse is not None and (name in reuse.fitted or name in reuse.left_out)]
    to_fit = [name for name in models if name not in reused]
    fits = dict(zip(to_fit, _in_threads(lambda name: _fit_and_predict(summary, name, duration), to_fit)))
    for name in models:
        if name in reused:
            if name in reuse.left_out:
                left_out[name] = reuse.left_out[name]
                continue
            for col in (f"{name}_purchases", f"{name}_spend"):
                pred[col] = reuse.predictions[col]
            fitted[name] = reuse.fitted[name]
            kept = _FIT_STATS if intervals else _FIT_STATS[:2]
            fit_stats[name] = {k: reuse.metrics.loc[name, k] for k in kept if k in reuse.metrics.columns}
            if intervals and name in reuse.model_errors:
                errors[name] = reuse.model_errors[name]
            continue
        fit = fits[name]
        if isinstance(fit, str):
            warnings.warn(f"{mdl.model_label(name)} left out of the backtest: {fit}", stacklevel=2)
            left_out[name] = fit
            continue
        m, p = fit
        pred[f"{name}_purchases"] = p["expected_purchases"]
        pred[f"{name}_spend"] = p["clv"]
        fitted[name] = m
        fit_stats[name] = {"log_likelihood": m.log_likelihood, "bic": m.bic}
    fresh = tuple(name for name in fitted if name not in reused)
    if intervals and fresh:
        # One set of earlier cut-offs for all the models (their summaries are made once).
        errors.update(model_errors(transactions, as_of=cal_end, horizon_days=duration * mdl._time_unit(summary, None),
                                   models=fresh, freq=freq, freq_multiplier=freq_multiplier, orders=orders))
        for name, stats in zip(fresh, _in_threads(
                lambda name: _holdout_interval(fitted[name], summary, duration, pred[f"{name}_purchases"].sum(),
                                               errors[name], level), fresh)):
            fit_stats[name].update(stats)
    errors = {name: errors[name] for name in fitted if name in errors}
    if baselines:
        _add_baselines(pred, summary, transactions, cal_end, duration, freq, freq_multiplier)
    names = [c[: -len("_purchases")] for c in pred.columns if c.endswith("_purchases") and c != "actual_purchases"]
    holdout = _Holdout(pred)
    # A reused model's holdout metrics are those it was scored with (the same predictions and
    # holdout): taken, not sorted and ranked again (0.4 s at 1M customers).
    scored = [c for c in (reuse.metrics.columns if reuse is not None else []) if c not in (*_FIT_STATS, "kind")]
    rows = {name: {**({k: reuse.metrics.loc[name, k] for k in scored} if name in reused and name in fitted
                      else _metrics(pred, name, holdout)), **fit_stats.get(name, {})} for name in names}
    metrics = pd.DataFrame(rows).T
    metrics.index.name = "model"
    metrics["kind"] = ["model" if n in fitted else "baseline" for n in metrics.index]
    release_memory()  # the fits' and summaries' freed arrays, which the allocators would keep
    return BacktestResult(pred, metrics, summary, fitted, cal_end, obs_end, duration, left_out, errors, level)


def _check_models(models) -> None:
    """Each name a registered model of orders in continuous time (what a backtest on transactions fits)."""
    for name in models:
        if name not in mdl.order_models():
            raise LTVError(f"models must be among {', '.join(mdl.order_models())}, got {name!r}.")


def _orders(transactions: pd.DataFrame, orders: OrderDays | None, freq: str, freq_multiplier: float,
            many: bool) -> OrderDays | None:
    """The :class:`OrderDays` to make calibration summaries of ``transactions`` from: ``orders``
    when given (they must be of these transactions), made here when ``many`` summaries are to come
    in days or weeks (preparing costs about what two queries do), else None (one query each)."""
    if orders is not None:
        if orders.transactions is not transactions and orders is not shared(transactions).orders:
            raise LTVError("orders must be OrderDays of the same transactions the backtest is given.")
        return orders
    if not many or _check_freq(freq, freq_multiplier) not in OrderDays.FREQS:
        return None
    return order_days(transactions)


def _summarize(transactions: pd.DataFrame, orders: OrderDays | None):
    """:func:`calibration_holdout` of ``transactions``, through ``orders`` when there are."""
    return orders.calibration_holdout if orders is not None else partial(calibration_holdout, transactions)


def _fit_and_predict(summary: pd.DataFrame, name: str, duration: float):
    """``model`` fitted on a calibration summary and its prediction of the holdout (its
    ``expected_purchases`` and ``clv``, the columns a backtest keeps), or the sentence saying why it
    could not be fitted or predicted."""
    try:
        m = mdl.fit(summary, model=name)
        # The two columns a backtest keeps, as their own block: the others (and the block they
        # share) are let go at once (at 1M customers, 32 MB a model kept for 16).
        return m, m.predict(summary, horizon=duration)[["expected_purchases", "clv"]].copy()
    except LTVError as err:
        return str(err)


#: What a backtest keeps of each model's calibration fit beside its holdout metrics.
_FIT_STATS = ("log_likelihood", "bic", "predicted_low", "predicted_high")
#: The files a backtest is handed over in (the prediction notebook to the evaluation notebook).
BACKTEST_FILES = ("backtest.json", "backtest_predictions.parquet", "backtest_summary.parquet",
                  "backtest_metrics.parquet")


def _reusable(reuse: BacktestResult, transactions: pd.DataFrame, cal_end, obs_end, freq, freq_multiplier,
              intervals: bool, level: float) -> bool:
    """Whether ``reuse`` was made on these very transactions (their content, hashed) with this
    split, time unit and interval level, and has intervals if they are asked for."""
    attrs = reuse.summary.attrs
    same = (reuse.calibration_end == cal_end and reuse.observation_end == obs_end and reuse.level == level
            and attrs.get("backtest_freq") == [freq, float(freq_multiplier)]
            and attrs.get("transactions") is not None)
    if not same:
        return False
    has_intervals = all("predicted_low" in reuse.metrics.columns and pd.notna(reuse.metrics.loc[n, "predicted_low"])
                        for n in reuse.fitted)
    return bool((has_intervals or not intervals) and attrs["transactions"] == _fingerprint(transactions))


def _on(index: pd.Index, values: pd.Series, missing: float, at: np.ndarray | None = None) -> pd.Series:
    """``values.reindex(index, fill_value=missing)``, as floats, by one hash lookup of the ids
    (:func:`~ltv_helpers.data.parse.id_positions`); ``at``: that lookup, when the caller has it
    (several columns of one frame)."""
    at = id_positions(index, values.index) if at is None else at
    out = np.where(at >= 0, values.to_numpy(dtype=float)[np.maximum(at, 0)] if len(values) else missing, missing)
    return pd.Series(out, index=index, name=values.name)


def _among(ids: pd.Series, index: pd.Index) -> np.ndarray:
    """Whether each id is in ``index`` (unique ids, a summary's): a hash lookup, ten times faster
    than ``Series.isin`` on pandas' Arrow strings (3.7 s for 1M ids among 900k)."""
    return id_positions(ids.astype("str"), index) >= 0


def _fingerprint(transactions: pd.DataFrame) -> str:
    """The identity of the transactions a backtest ran on: a SHA-256 of every customer id, order
    time and amount, in order (another client, export, re-keyed ids or one moved order differ)."""
    import hashlib

    kept = shared(transactions)
    if kept.fingerprint is None:
        hashed = pd.util.hash_pandas_object(transactions[[CUSTOMER_ID, ORDER_DATE, AMOUNT]], index=False)
        kept.fingerprint = hashlib.sha256(hashed.to_numpy().tobytes()).hexdigest()
    return kept.fingerprint


def save_backtest(result: BacktestResult, folder, transactions: pd.DataFrame) -> list[Path]:
    """Write ``result`` (its models, predictions, metrics and model errors) to ``folder`` for
    :func:`load_backtest`: the evaluation notebook reuses what the prediction notebook computed.
    ``transactions`` are the ones the backtest ran on (checked against its holdout revenue);
    their hash goes with it, so that it is reused on the same transactions only. The JSON file is
    written last: without it nothing is loaded."""
    from ltv_helpers.files import write_parquet, write_text

    holdout = transactions[(transactions[ORDER_DATE] >= _end_cut(result.calibration_end))
                           & (transactions[ORDER_DATE] < _end_cut(result.observation_end))]
    # The backtest's customers are those seen by the calibration end; newcomers in the holdout are not.
    holdout = holdout[_among(holdout[CUSTOMER_ID], result.predictions.index)]
    if not np.isclose(float(holdout[AMOUNT].sum()), float(result.predictions["actual_spend"].sum()), rtol=1e-9,
                      atol=1e-6):
        raise LTVError("These are not the transactions the backtest ran on (their holdout revenue differs).")
    folder = Path(folder)
    spec = {"calibration_end": str(result.calibration_end), "observation_end": str(result.observation_end),
            "duration": result.duration, "level": result.level, "left_out": result.left_out,
            "freq": result.summary.attrs.get("backtest_freq"), "transactions": _fingerprint(transactions),
            "unit_days": result.summary.attrs.get("unit_days", 1.0),
            "models": {name: m.to_dict() for name, m in result.fitted.items()},
            # Python's JSON writes floats exactly (pandas' to_json rounds them to 10 digits).
            "model_errors": {name: e.to_dict() for name, e in result.model_errors.items()}}
    names = BACKTEST_FILES
    (folder / names[0]).unlink(missing_ok=True)  # a half-written set is never read
    paths = [write_parquet(result.predictions, folder / names[1]),
             write_parquet(result.summary, folder / names[2]),
             write_parquet(result.metrics, folder / names[3])]
    return [write_text(folder / names[0], json.dumps(spec, indent=1, default=str)), *paths]


def load_backtest(folder) -> BacktestResult | None:
    """The backtest :func:`save_backtest` wrote to ``folder``, or None when there is none or it
    cannot be read (then :func:`backtest` simply computes everything)."""
    folder = Path(folder)
    if not all((folder / name).is_file() for name in BACKTEST_FILES):
        return None
    try:
        spec = json.loads((folder / BACKTEST_FILES[0]).read_text(encoding="utf-8"))
        summary = pd.read_parquet(folder / BACKTEST_FILES[2])
        summary.attrs = {"unit_days": spec["unit_days"], "backtest_freq": spec["freq"],
                         "transactions": spec["transactions"]}
        metrics = pd.read_parquet(folder / BACKTEST_FILES[3])
        errors = {name: ModelError.from_dict(e) for name, e in spec["model_errors"].items()}
        return BacktestResult(pd.read_parquet(folder / BACKTEST_FILES[1]), metrics, summary,
                              {name: mdl.model_from_dict(d) for name, d in spec["models"].items()},
                              pd.Timestamp(spec["calibration_end"]), pd.Timestamp(spec["observation_end"]),
                              spec["duration"], spec["left_out"], errors, spec["level"])
    except (LTVError, KeyError, ValueError, TypeError, OSError):
        return None


def _noise_variances(m, summary: pd.DataFrame, horizon: float) -> tuple[dict, dict]:
    """Parameter and customer variances of the log totals (purchases, revenue) the model expects."""
    params = mdl.parameter_variance(m, summary, horizon=horizon)
    spread = mdl.customer_spread(m, summary, horizon=horizon).iloc[0]
    with np.errstate(all="ignore"):
        customers = {"purchases": spread["purchases_var"] / spread["purchases"] ** 2,
                     "revenue": spread["revenue_var"] / spread["revenue"] ** 2}
    return params, customers


def _holdout_interval(m, summary: pd.DataFrame, duration: float, predicted: float, error: "ModelError",
                      level: float) -> dict:
    params, customers = _noise_variances(m, summary, duration)
    low, high = mdl.combined_interval(predicted, parameters=params["purchases"], customers=customers["purchases"],
                                      model_error=error.purchases_var, level=level)
    return {"predicted_low": float(low), "predicted_high": float(high)}


#: Earlier cut-offs (at most) at which :func:`model_error` measures how far a model misses; the
#: longest holdout after them, as a share of the history; the share of the history that stays
#: before every one of them (fits on the first months of a cohort say little about later ones).
MODEL_ERROR_ORIGINS = 6
MODEL_ERROR_HOLDOUT_SHARE = 1 / 3
MODEL_ERROR_MIN_HISTORY = 0.4
#: Customers an earlier cut-off of :func:`model_error` is measured on at most: beyond, those whose
#: ids hash lowest (the same in every run; one chosen at a cut-off is chosen at every earlier one
#: they were at, as customers only accumulate). What the model misses by is a matter of the whole
#: population (a trend, a season), which so many customers show as well; the extra luck of a
#: sample is in the noise taken off each squared error. A report at 1M customers fits about 20
#: such cut-offs, Pareto/NBD's at 2 s each on all customers.
MODEL_ERROR_MAX_CUSTOMERS = 200_000
#: Fits a backtest makes at the same time (its models; the model errors' cut-offs), in threads:
#: NumPy lets go of the interpreter in the fits' array work, and BLAS stays on one thread in each.
#: 11.1 s became 6.5 s for three models' model errors at 1M customers on 2 cores. The results
#: do not depend on it (tested).
FIT_THREADS = 2


def _in_threads(func, items: list) -> list:
    """``[func(item) for item in items]``, :data:`FIT_THREADS` at a time."""
    if len(items) < 2 or FIT_THREADS < 2:
        return [func(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(FIT_THREADS) as pool:
        return list(pool.map(func, items))


@dataclass
class ModelError:
    """How far a model's totals missed at earlier cut-offs of one history (:func:`model_error`).

    ``origins``: one row per earlier cut-off with the ``holdout_days`` after it, the ``predicted``
    and ``actual`` total purchases and revenue, the ``log_error`` log(actual / predicted) of each,
    and the ``noise_var`` the model itself expected (parameters and customers). ``purchases_var``
    and ``revenue_var``: the variance of the log total that the model does not explain, at
    ``horizon_days``; ``cutoffs``: the number of cut-offs it rests on. NaN and a ``reason`` when the
    history is too short to measure it.
    """

    model: str
    horizon_days: float
    origins: pd.DataFrame
    purchases_var: float
    revenue_var: float
    cutoffs: int
    reason: str | None = None

    @property
    def purchases_sd(self) -> float:
        """The relative standard deviation of total purchases from model error (about the share a
        total may miss by, one time in three)."""
        return float(np.sqrt(self.purchases_var))

    def scaled(self, horizon_days: float) -> ModelError:
        """The same model error for a forecast ``horizon_days`` long: the variances in proportion
        to the horizon, the rule :func:`model_error` scales its holdouts by."""
        from dataclasses import replace

        ratio = float(horizon_days) / self.horizon_days
        return replace(self, horizon_days=float(horizon_days), purchases_var=self.purchases_var * ratio,
                       revenue_var=self.revenue_var * ratio)

    def to_dict(self) -> dict:
        """Plain JSON values (the origins as pandas' "split" form); :meth:`from_dict` reads them."""
        return {**{k: v for k, v in vars(self).items() if k != "origins"},
                "origins": self.origins.to_dict(orient="split")}

    @classmethod
    def from_dict(cls, spec: dict) -> ModelError:
        spec = dict(spec)
        split = spec.pop("origins")
        origins = pd.DataFrame(split["data"], index=split["index"], columns=split["columns"])
        if "cutoff" in origins:
            origins["cutoff"] = [pd.Timestamp(c).date() for c in origins["cutoff"]]  # dates, as model_errors makes
        return cls(origins=origins, **spec)


def model_error(transactions: pd.DataFrame, *, as_of, horizon_days: float, model: str = "bgnbd",
                freq: str = "D", freq_multiplier: float = 1, origins: int = MODEL_ERROR_ORIGINS,
                orders: OrderDays | None = None) -> ModelError:
    """The model error of ``model`` for a forecast ``horizon_days`` long made at ``as_of``,
    measured on the orders before it (rolling-origin backtests).

    Holdouts are ``h = min(horizon_days, a third of the history)`` long
    (:data:`MODEL_ERROR_HOLDOUT_SHARE`); the cut-offs step back from ``as_of - h`` by ``h / 4``
    (overlapping holdouts) while at least 40% of the history stays before them
    (:data:`MODEL_ERROR_MIN_HISTORY`), ``origins`` at most. At each, the model is fitted and its total purchases
    and revenue compared with the actual. What the model itself expects to miss by (its
    parameters' uncertainty and the luck of customers) is taken off each squared log error; the
    mean of the rest is the model error, scaled to the forecast's length by ``horizon_days / h``
    (variance growing in proportion to the horizon: an assumption, between a level error that would
    not grow and a drift that would grow with its square; the coverage benchmark and the CDNOW
    test check the result) and floored at 0. A model's bias counts as error: the
    squared error includes it. Each cut-off is measured on :data:`MODEL_ERROR_MAX_CUSTOMERS`
    customers at most (the ``customers`` of ``origins``).
    """
    return model_errors(transactions, as_of=as_of, horizon_days=horizon_days, models=(model,), freq=freq,
                        freq_multiplier=freq_multiplier, origins=origins, orders=orders)[model]


@mdl.one_blas_thread
def model_errors(transactions: pd.DataFrame, *, as_of, horizon_days: float, models: tuple[str, ...],
                 freq: str = "D", freq_multiplier: float = 1, origins: int = MODEL_ERROR_ORIGINS,
                 orders: OrderDays | None = None) -> dict:
    """:func:`model_error` of several models at once, by model: each earlier cut-off's summary is
    made once and every model backtested on it. ``orders``: the transactions as an
    :class:`OrderDays` when the caller has them so (made here otherwise, for days and weeks)."""
    _check_models(models)
    as_of = pd.Timestamp(as_of)
    dates = transactions[ORDER_DATE]
    before = dates[dates < _end_cut(as_of)]  # the order dates alone, not a copy of every order
    # Every summary ends by as_of, so the orders after it change none of them.
    prepared = _orders(transactions, orders, freq, freq_multiplier, many=len(before) > 0)
    known = shared(transactions).origins  # each model's row at each cut-off, whoever asked first
    columns = ["cutoff", "holdout_days", "customers", "predicted", "actual", "log_error", "noise_var",
               "revenue_predicted", "revenue_actual", "revenue_log_error", "revenue_noise_var"]
    cuts, h = [], 0
    if len(before):
        first = before.min().normalize()
        span = (as_of - first).days
        h = int(min(horizon_days, span * MODEL_ERROR_HOLDOUT_SHARE))
        step = max(h // 4, 1)
        for j in range(origins if h >= 1 else 0):
            cut = as_of - pd.Timedelta(days=h + j * step)
            if cut < first + pd.Timedelta(days=span * MODEL_ERROR_MIN_HISTORY):
                break
            cuts.append(cut)
    del dates, before

    def origin(cut) -> dict:
        """Each model's row at one cut-off (None: no row): only the totals count here (the
        calibration summary and each model's fit and prediction, without a backtest's per-customer
        metrics). A row already made at this cut-off, with this holdout and time unit, is taken."""
        keys = {name: (cut, h, freq, float(freq_multiplier), name, MODEL_ERROR_MAX_CUSTOMERS) for name in models}
        out = {name: known[key] for name, key in keys.items() if key in known}
        missing = [name for name in models if name not in out]
        if not missing:
            return out
        try:  # at most MODEL_ERROR_MAX_CUSTOMERS of them (_some_customers)
            summary = (prepared.calibration_holdout(calibration_end=cut, observation_end=cut + pd.Timedelta(days=h),
                                                    freq=freq, freq_multiplier=freq_multiplier,
                                                    most=MODEL_ERROR_MAX_CUSTOMERS) if prepared is not None else
                       _some_customers(calibration_holdout(transactions, calibration_end=cut,
                                                           observation_end=cut + pd.Timedelta(days=h), freq=freq,
                                                           freq_multiplier=freq_multiplier), MODEL_ERROR_MAX_CUSTOMERS))
        except LTVError:
            summary = None
        if summary is not None:
            duration = float(summary["duration_holdout"].iloc[0])
            actual = [float(summary["frequency_holdout"].sum()),
                      float((summary["frequency_holdout"] * summary["monetary_value_holdout"]).sum())]
        for name in missing:  # each model's totals only: its per-customer table is let go at once
            out[name] = None if summary is None else _origin_row(summary, name, duration, actual, cut, h)
            known[keys[name]] = out[name]
        return out

    # Warnings are silenced here, once, around the threads: the filters are the process's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        found = _in_threads(origin, cuts)
    rows = {name: [at[name] for at in found if at.get(name) is not None] for name in models}
    out = {}
    for name in models:
        table = pd.DataFrame(rows[name], columns=columns)
        if len(table) < 2:
            out[name] = ModelError(name, float(horizon_days), table, np.nan, np.nan, len(table),
                                   "the history is too short to backtest at two earlier cut-offs")
            continue
        scale = horizon_days / table["holdout_days"]
        excess = {w: float(max(0.0, ((table[f"{w}log_error"] ** 2 - table[f"{w}noise_var"].fillna(0)) * scale).mean()))
                  for w in ("", "revenue_")}
        out[name] = ModelError(name, float(horizon_days), table, excess[""], excess["revenue_"], len(table))
    return out


def _origin_row(summary: pd.DataFrame, name: str, duration: float, actual: list, cut, h: int) -> list | None:
    """One model's row of :func:`model_errors` at one cut-off (``summary``: its calibration
    summary; ``actual``: the holdout's total purchases and revenue), or None when it cannot be fitted
    or a total is zero (no log error)."""
    fit = _fit_and_predict(summary, name, duration)
    if isinstance(fit, str):
        return None
    m = fit[0]
    totals = [float(fit[1]["expected_purchases"].sum()), actual[0], float(fit[1]["clv"].sum()), actual[1]]
    del fit
    if min(totals) <= 0:
        return None
    params, customers = _noise_variances(m, summary, duration)
    return [cut.date(), h, len(summary), totals[0], totals[1], np.log(totals[1] / totals[0]),
            params["purchases"] + customers["purchases"], totals[2], totals[3],
            np.log(totals[3] / totals[2]), params["revenue"] + customers["revenue"]]


def _some_customers(summary: pd.DataFrame, most: int) -> pd.DataFrame:
    """``summary`` (one row per customer), or the ``most`` of its customers whose ids hash lowest."""
    if len(summary) <= most:
        return summary
    keep = lowest_hashes(id_hashes(summary.index), most)
    return summary.iloc[keep]


def _add_baselines(pred, summary, transactions, cal_end, duration, freq, mult):
    f, T_ = summary["frequency_cal"], summary["T_cal"]
    unit_days = summary.attrs.get("unit_days", 1.0)
    # Each customer's orders and spend up to the calibration end: the history at that end, of the
    # transactions' prepared orders (the ML baseline's features too; no copy of the calibration
    # orders and no group-by of their ids).
    history = customer_history(transactions, observation_end=cal_end)
    # The ML baseline first, while nothing else of the baselines is held but that history (its own
    # history and trees are the largest part of them); its columns go in after the others.
    ml_columns = {}
    try:
        # Train on a window as long as the holdout if the calibration period allows, else on its
        # second half, and scale the forecast to the holdout's length. The history to the
        # calibration end is all it sees of the transactions (they are cut there).
        horizon = duration * unit_days
        span = (pd.Timestamp(cal_end) - transactions[ORDER_DATE].min()).days
        window = min(horizon, span / 2)
        ml = mdl.fit_ml_baseline(transactions, observation_end=cal_end, horizon_days=window)
        release_memory()
        ml_pred = (ml.predict(transactions, observation_end=cal_end, history=history).reindex(summary.index)
                   * (horizon / window))
        ml_columns = {"ml_purchases": ml_pred["expected_purchases"].fillna(0.0),
                      "ml_spend": ml_pred["expected_revenue"].fillna(0.0)}
        del ml, ml_pred
    except LTVError as err:
        warnings.warn(f"ML baseline left out: {err}", stacklevel=3)
    release_memory()
    at = id_positions(summary.index, history.index)
    per = pd.DataFrame({"sum": _on(summary.index, history["revenue"], np.nan, at),
                        "size": _on(summary.index, history["orders"], np.nan, at)})
    del history
    aov = per["sum"] / per["size"]
    rate = np.where(T_ > 0, f / T_.where(T_ > 0, 1.0), 0.0)
    pred["naive_purchases"] = rate * duration
    pred["naive_spend"] = pred["naive_purchases"] * aov
    # RFM: a score, not a forecast; value columns stay NaN, ranking uses the score.
    from ltv_helpers.segments import rfm_scores

    hist = pd.DataFrame({"frequency": f, "recency": summary["recency_cal"], "T": T_,
                         "monetary_value": summary["monetary_value_cal"], "revenue": per["sum"]})
    scores = rfm_scores(hist)
    score = (scores["R"] + scores["F"] + scores["M"]).astype(float)
    pred["rfm_purchases"] = np.nan
    pred["rfm_spend"] = np.nan
    pred["rfm_score"] = score
    population_aov = per["sum"].sum() / per["size"].sum()
    customer_days = (T_ * unit_days).clip(lower=1).sum()
    repeat_per_day = f.sum() / customer_days
    pred["simple_formula_purchases"] = repeat_per_day * duration * unit_days
    pred["simple_formula_spend"] = pred["simple_formula_purchases"] * population_aov
    for name, values in ml_columns.items():
        pred[name] = values


class _Holdout:
    """What the metrics of every row of one backtest share, computed once (not per model): the
    actual holdout purchases and spend, whether they vary, the spend's ranks and its order from
    the largest down, and the area of the perfect ranking's gains curve. At 1M customers these
    sorts and ranks took 8 s of a backtest with baselines when made for each row."""

    def __init__(self, pred: pd.DataFrame):
        self.purchases, self.spend = pred["actual_purchases"], pred["actual_spend"]
        self.purchases_vary = self.purchases.nunique() > 1
        self.spend_vary = self.spend.nunique() > 1
        self.values = self.spend.to_numpy(dtype=float)
        self.total = float(self.values.sum())
        n = len(self.values)
        self.x = np.arange(n + 1) / n if n else np.zeros(1)
        self.order = _descending(self.values)
        self.perfect_area = (float(np.trapezoid(self.curve(self.order), self.x)) - 0.5
                             if n and self.total > 0 else np.nan)

    def curve(self, order: np.ndarray) -> np.ndarray:
        """The share of holdout spend captured by the first customers of ``order`` (gains_curve's y)."""
        return np.concatenate(([0.0], np.cumsum(self.values[order]) / self.total))

    @functools.cached_property
    def ranks(self) -> np.ndarray:
        return _average_ranks(self.values, self.order)


def _descending(values: np.ndarray) -> np.ndarray:
    """The positions of ``values`` from the largest down, ties in their order (a stable sort)."""
    return np.argsort(-values, kind="stable")


def _average_ranks(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Ranks of ``values`` (1 the smallest, ties sharing their average, as scipy's ``rankdata``)
    from ``order``, their :func:`_descending` sort: one sort serves the ranking and the ranks."""
    n = len(values)
    ranks = np.empty(n)
    if n == 0:
        return ranks
    ordered = values[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
    ends = np.r_[starts[1:], n]
    # Positions i..j-1 from the top hold ascending ranks n - i down to n - j + 1: their mean.
    ranks[order] = np.repeat(n - (starts + ends - 1) / 2, ends - starts)
    return ranks


def _metrics(pred: pd.DataFrame, name: str, holdout: _Holdout | None = None) -> dict:
    """The metrics of one row (a model or baseline) of a backtest's predictions; ``holdout``: what
    the rows share (:class:`_Holdout` of ``pred``), when the caller scores several."""
    h = holdout if holdout is not None else _Holdout(pred)
    actual_p, actual_s = h.purchases, h.spend
    p, s = pred[f"{name}_purchases"], pred[f"{name}_spend"]
    spend = s.to_numpy(dtype=float)
    spend_order = _descending(spend)  # the ranking's one sort, and the spend's ranks
    order = _descending(pred["rfm_score"].to_numpy(dtype=float)) if name == "rfm" else spend_order
    out = {}
    if p.notna().all():
        err = p - actual_p
        out.update(mae=float(err.abs().mean()), rmse=float(np.sqrt((err**2).mean())),
                   predicted=float(p.sum()), actual=float(actual_p.sum()),
                   total_error_pct=float(100 * (p.sum() / actual_p.sum() - 1)) if actual_p.sum() else np.nan,
                   correlation=float(np.corrcoef(p, actual_p)[0, 1])
                   if h.purchases_vary and p.nunique() > 1 else np.nan)
    if s.notna().all():
        varies = h.spend_vary and s.nunique() > 1  # a constant has no rank correlation
        # Spearman's correlation: Pearson's of the average ranks (as pandas' and scipy's).
        out.update(spend_mae=float((s - actual_s).abs().mean()),
                   spend_total_error_pct=float(100 * (s.sum() / actual_s.sum() - 1)) if actual_s.sum() else np.nan,
                   spend_spearman=float(np.corrcoef(_average_ranks(spend, spend_order), h.ranks)[0, 1])
                   if varies else np.nan)
    out.update(_ranking(order, h))
    return out


def gains_curve(score: pd.Series, actual: pd.Series) -> pd.DataFrame:
    """Cumulative share of ``actual`` value captured by customers sorted by ``score`` (descending).

    Ties in the score are broken by customer order after a stable sort, i.e. as a random
    ranking would: a constant score gives the diagonal on average.
    x = share of customers (0 to 1), y = share of actual value.
    """
    order = np.argsort(-score.to_numpy(dtype=float), kind="stable")
    values = actual.to_numpy(dtype=float)[order]
    total = values.sum()
    n = len(values)
    y = np.concatenate(([0.0], np.cumsum(values) / total)) if total > 0 else np.linspace(0, 1, n + 1)
    return pd.DataFrame({"share of customers": np.arange(n + 1) / n, "share of value": y})


def _ranking(order: np.ndarray, h: _Holdout) -> dict:
    """Captures, Gini and precision of ranking the customers in ``order`` (a score's
    :func:`_descending` sort)."""
    n = len(order)
    if n == 0 or h.total <= 0:
        return {}
    y = h.curve(order)
    area = float(np.trapezoid(y, h.x)) - 0.5
    k10, k20 = max(1, int(np.ceil(0.1 * n))), max(1, int(np.ceil(0.2 * n)))
    # The same customers in the same order (columns of one table), compared by position.
    return {"top10_capture": float(y[k10]), "top20_capture": float(y[k20]),
            "gains_gini": area / h.perfect_area if h.perfect_area > 0 else np.nan,
            "top20_precision": len(np.intersect1d(order[:k20], h.order[:k20], assume_unique=True)) / k20}


def conditional_expectations(result: BacktestResult, *, max_frequency: int = 7) -> pd.DataFrame:
    """Mean actual and predicted holdout purchases by calibration frequency 0, 1, ..., ``max_frequency``+.

    One row per frequency group: ``customers``, ``actual`` and one column per model. This is the
    classic BG/NBD validation table (Fader, Hardie and Lee 2005, figure 5).
    """
    freq = result.summary["frequency_cal"].clip(upper=max_frequency).astype(int)
    cols = {"actual": result.predictions["actual_purchases"]}
    cols.update({name: result.predictions[f"{name}_purchases"] for name in result.fitted})
    table = pd.DataFrame(cols).groupby(freq.to_numpy()).mean()
    table.insert(0, "customers", freq.value_counts().sort_index().to_numpy())
    table.index = [str(i) if i < max_frequency else f"{max_frequency}+" for i in table.index]
    table.index.name = "calibration frequency"
    return table


def tracking(transactions: pd.DataFrame, result: BacktestResult, *, freq: str = "W") -> pd.DataFrame:
    """Actual and predicted repeat transactions per period, over calibration and holdout.

    Repeat transactions are purchase days after a customer's first (purchase weeks for a weekly
    backtest, as its summary counts them), counted in ``freq`` periods (weekly by default), for the
    backtest's customers. Predicted: for each group of customers
    whose first purchase was on day f, the model's unconditional
    ``expected_number_of_purchases_up_to_time`` from f to the period's end, in the backtest's time
    unit, times the group's size, summed; this is lifetimes' ``expected_cumulative_transactions``
    (tested equal on daily periods). Columns: ``actual``, one per model (incremental per period) and
    ``cumulative_<name>``; ``holdout`` marks periods after the calibration end, ``complete`` the
    periods the data cover whole (the last one may be cut by the end of the data).
    """
    freq = _check_freq(freq, 1)
    unit_days = result.summary.attrs.get("unit_days", 1.0)
    # Purchases are counted in the periods the backtest's summary merged them in: days, or weeks
    # for a weekly backtest (two purchases in a week are one to a weekly model).
    unit = (result.summary.attrs.get("backtest_freq") or ["D", 1.0])[0]
    unit = unit if unit in _PERIOD_SQL else "D"
    ids = result.summary.index
    if ids.empty:
        raise LTVError("The backtest has no customers to track (its per-customer tables were left out); "
                       "track the whole backtest.")
    if unit in OrderDays.FREQS:  # days or weeks: counted on the transactions' prepared orders
        repeats, fd, counts = order_days(transactions).repeat_counts(ids, result.observation_end, unit=unit,
                                                                     freq=freq)
    else:
        repeats, fd, counts = _repeat_counts_query(transactions, ids, result.observation_end, unit=unit, freq=freq)
    lo = int(repeats.index.min())
    hi = period_of(result.observation_end, freq)
    cal_p = period_of(result.calibration_end, freq)
    periods = np.arange(lo, hi + 1)
    # Each period is evaluated at its end boundary, the first day of the next period (day index
    # since 1970-01-01): purchases on earlier days against the expectation up to that instant, as
    # lifetimes' expected_cumulative_transactions does.
    starts = _period_start_days(periods, freq)
    full = np.append(starts[1:], _period_start_days(np.array([hi + 1]), freq))
    end_day = int((result.observation_end.normalize() - pd.Timestamp("1970-01-01")).days)
    bounds = np.minimum(full, end_day + 1)
    actual = repeats.reindex(periods, fill_value=0).astype(float)
    out = pd.DataFrame({"actual": actual.to_numpy()}, index=periods)
    for name, m in result.fitted.items():
        elapsed = (bounds[:, None] - fd[None, :] + 0.0)  # days from first purchase to period end
        mask = elapsed > 0
        times = np.where(mask, elapsed, 0.0) / unit_days
        with np.errstate(all="ignore"):
            expected = m.new_customer_purchases(times.ravel()).reshape(times.shape)
        cumulative = (np.where(mask, expected, 0.0) * counts[None, :]).sum(axis=1)
        out[f"cumulative_{name}"] = cumulative
        out[name] = np.diff(np.concatenate(([0.0], cumulative)))
    out["cumulative_actual"] = out["actual"].cumsum()
    out["holdout"] = out.index > cal_p
    out["complete"] = bounds == full  # the last period may end with the data, part-way through
    out.index = pd.to_datetime(starts, unit="D")
    out.index.name = "period start"
    return out


def _repeat_counts_query(transactions: pd.DataFrame, ids: pd.Index, observation_end, *, unit: str, freq: str):
    """:meth:`OrderDays.repeat_counts <ltv_helpers.data.summary.OrderDays.repeat_counts>` as a
    DuckDB query, for the units it does not count in (months, quarters, years, hours)."""
    tx = transactions[_among(transactions[CUSTOMER_ID], ids) & (transactions[ORDER_DATE] < _end_cut(observation_end))]
    with DuckDBEngine(tx[[CUSTOMER_ID, ORDER_DATE, AMOUNT]]) as src:
        per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
        day = _PERIOD_SQL["D"].format(c=ORDER_DATE)
        counted = _PERIOD_SQL[unit].format(c=ORDER_DATE)
        # Repeat transactions: lifetimes' definition in the backtest's own unit, counted in the
        # tracking period that contains the first day of each.
        rows = src.query(f"""
            WITH days AS (SELECT {CUSTOMER_ID} AS cid, {counted} AS d, MIN({per}) AS p FROM src GROUP BY ALL),
            marked AS (SELECT p, d = MIN(d) OVER (PARTITION BY cid) AS is_first FROM days)
            SELECT p, SUM(CASE WHEN is_first THEN 0 ELSE 1 END) AS repeat FROM marked GROUP BY p ORDER BY p
        """)
        first_days = src.query(f"""
            SELECT first_day, COUNT(*) AS n
            FROM (SELECT MIN({day}) AS first_day FROM src GROUP BY {CUSTOMER_ID})
            GROUP BY first_day ORDER BY first_day
        """)
    return (pd.Series(rows["repeat"].to_numpy(dtype=float), index=rows["p"].to_numpy(dtype=np.int64)),
            first_days["first_day"].to_numpy(dtype=np.int64), first_days["n"].to_numpy(dtype=float))


def _period_start_days(periods: np.ndarray, freq: str) -> np.ndarray:
    """Day index (days since 1970-01-01) of the first day of each period index of ``_PERIOD_SQL``."""
    if freq == "D":
        return periods.astype(int)
    if freq == "W":
        return periods.astype(int) * 7 + 4  # weeks start on Monday 1970-01-05
    if freq == "M":
        years, months = np.divmod(periods.astype(int), 12)
        starts = pd.to_datetime({"year": years, "month": months + 1, "day": 1})
        return ((starts - pd.Timestamp("1970-01-01")).dt.days).to_numpy()
    raise LTVError("tracking supports freq D, W or M.")


#: Customers :func:`rolling_backtest` measures the stability on at most: beyond, those whose ids
#: hash lowest (the same customers at every cut-off). Whether parameters and errors move over time is
#: a matter of the whole base, which so many customers show as well; at 1M customers the three
#: cut-offs with their intervals took 25 s on all of them.
STABILITY_MAX_CUSTOMERS = 200_000


def _sample_customers(transactions: pd.DataFrame, most: int | None, by) -> tuple[pd.DataFrame, int]:
    """The orders of ``most`` of the customers who had bought by ``by`` (the last cut-off), those
    whose ids, as text, hash lowest: the customers :func:`_some_customers` takes at that cut-off, and
    those of them who had arrived at an earlier one; and how many customers had bought by ``by``."""
    if most is not None and most < 1:
        raise LTVError(f"max_customers must be at least 1 (or None: every customer), got {most}.")
    # On the transactions' prepared orders: their ids' hashes and first orders, kept for the
    # model errors and the ML comparison (no factorizing, grouping or hashing of the ids again).
    orders = order_days(transactions)
    arrived = np.flatnonzero(orders.first_orders < _instant_after(by, "the last cut-off"))
    if most is None or len(arrived) <= most:
        return transactions, len(arrived)
    chosen = np.zeros(len(orders.ids), dtype=bool)
    chosen[arrived[lowest_hashes(orders.id_hashes[arrived], most)]] = True
    return transactions[orders.rows_of(chosen)], len(arrived)


@mdl.one_blas_thread
def rolling_backtest(transactions: pd.DataFrame, *, cutoffs, holdout_days: float,
                     models: tuple[str, ...] = ("bgnbd",), freq: str = "D", freq_multiplier: float = 1,
                     intervals: bool = True, reuse: BacktestResult | None = None,
                     max_customers: int | None = STABILITY_MAX_CUSTOMERS) -> pd.DataFrame:
    """Backtests at several calibration cut-offs, each with a holdout of ``holdout_days``.

    One row per (cutoff, model): the fitted parameters and the main metrics (mae,
    total_error_pct, top20_capture, gains_gini), to show how stable they are over time; with
    ``intervals``, also ``predicted_low`` / ``predicted_high`` (:func:`backtest`) and
    ``inside`` (whether the actual total fell in them). ``reuse``: a backtest already made on
    these transactions (the evaluation's main one); the cut-off it shares is taken from it, not
    fitted again (:func:`backtest`'s ``reuse``). Beyond ``max_customers`` customers by the last
    cut-off (None: no limit), every cut-off is measured on the orders of ``max_customers`` of them, the
    model error's sample (:func:`_some_customers`) at the last cut-off and those of them who had
    arrived at the earlier ones; ``reuse`` is then not used. ``attrs["customers"]``: (customers
    measured at the last cut-off, customers who had bought by then).
    """
    rows, edges = [], {}
    cuts = [pd.Timestamp(c) for c in cutoffs]
    sample, everyone = _sample_customers(transactions, max_customers, max(cuts)) if cuts else (transactions, 0)
    if sample is not transactions:
        transactions, reuse = sample, None
    orders = _orders(transactions, None, freq, freq_multiplier, many=True)
    for cutoff in cutoffs:
        cut = pd.Timestamp(cutoff)
        res = backtest(transactions, calibration_end=cut, observation_end=cut + pd.Timedelta(days=holdout_days),
                       models=models, freq=freq, freq_multiplier=freq_multiplier, baselines=False,
                       intervals=intervals, reuse=reuse, orders=orders)
        keys = ["mae", "total_error_pct", "top20_capture", "gains_gini"]
        for name, m in res.fitted.items():
            met = res.metrics.loc[name]
            row = {"cutoff": cut.date(), "model": name, **m.params, **{k: met[k] for k in keys}}
            if m.edge_parameters():
                edges[(cut.date(), name)] = m.edge_parameters()
            if intervals:
                row.update(predicted_low=met["predicted_low"], predicted_high=met["predicted_high"],
                           inside=bool(met["predicted_low"] <= met["actual"] <= met["predicted_high"]))
            rows.append(row)
    if not rows:
        raise LTVError("No backtest could be fitted at any cutoff.")
    out = pd.DataFrame(rows).set_index(["cutoff", "model"])
    out.attrs["edge"] = edges  # (cutoff, model) -> the parameters that ran to the edge
    out.attrs["customers"] = (min(everyone, max_customers or everyone), everyone)
    return out


def stability_note(stability: pd.DataFrame, language: str = "en") -> str:
    """Sentences explaining the rows of :func:`rolling_backtest` whose fit ran to the edge of the
    parameter space (a parameter near 0 or very large, which looks like an error in the table), and
    the customers it was measured on when they are a sample; '' when there is nothing to say."""
    from ltv_helpers.labels import EDGE_FIT, EDGE_MEANING, STABILITY_SAMPLE

    notes = []
    measured, everyone = stability.attrs.get("customers", (0, 0))
    if measured < everyone:
        notes.append(label(STABILITY_SAMPLE, language).format(measured=f"{measured:,}", everyone=f"{everyone:,}"))
    for (cutoff, name), params in stability.attrs.get("edge", {}).items():
        values = ", ".join(f"{p} = {stability.loc[(cutoff, name), p]:,.4g}" for p in params
                           if p in stability.columns)
        meaning = EDGE_MEANING.get(name, "")
        notes.append(label(EDGE_FIT, language).format(cutoff=cutoff, model=mdl.model_label(name), values=values,
                                                      meaning=label(meaning, language) if meaning else ""))
    return " ".join(notes).strip()


def verdict(result: BacktestResult, language: str = "en") -> str:
    """A plain-language reading of the backtest for the client (Markdown)."""
    m = result.metrics
    best = result.choose()
    row = m.loc[best]
    beat = [b for b in BASELINES if b in m.index and pd.notna(m.loc[b].get("mae")) and m.loc[b, "mae"] > row["mae"]]
    name = mdl.model_label(best)
    unit_days = result.summary.attrs.get("unit_days", 1.0)
    span = (f"{result.duration:g} days" if unit_days == 1 else f"{result.duration * unit_days:g} days")
    span_zh = span.replace(" days", " 天")
    lines = []
    lowest = result.best("mae")  # the choice weighs the total too: another model can err less per customer
    other = (None if lowest == best else
             (mdl.model_label(lowest), m.loc[lowest, "mae"]))
    if language == "zh":
        lines.append(f"- 建议使用 **{name}**：在未参与拟合的 {span_zh}里，"
                     f"它的单客户误差与总量偏差合计最小（单客户平均误差 {row['mae']:.3f} 次购买"
                     + (f"；只看单客户误差，{other[0]} 最小，为 {other[1]:.3f}" if other else "") + "）。")
        lines.append(f"- 总购买次数预测为 {row['predicted']:,.0f}，实际为 {row['actual']:,.0f}"
                     f"（偏差 {row['total_error_pct']:+.1f}%）。")
        lines += _interval_line(row, language)
        lines.append(f"- 按预测价值排名前 20% 的客户贡献了保留期 {row['top20_capture']:.0%} 的销售额。")
        if beat:
            lines.append(f"- 在单客户误差上优于基准方法：{'、'.join(label(b, language) for b in beat)}。")
    else:
        lines.append(f"- Use **{name}**: over the {span} it had not seen, it had the smallest error per customer "
                     f"and on the total taken together. Its error per customer was {row['mae']:.3f} purchases"
                     + (f"; {other[0]} had the smallest on its own ({other[1]:.3f})" if other else "") + ".")
        lines.append(f"- It forecast {row['predicted']:,.0f} purchases in total against {row['actual']:,.0f} "
                     f"actual ({row['total_error_pct']:+.1f}%).")
        lines += _interval_line(row, language)
        lines.append(f"- The 20% of customers it ranked highest brought {row['top20_capture']:.0%} of the "
                     "holdout revenue.")
        if beat:
            lines.append(f"- It beats the baselines {', '.join(label(b, language) for b in beat)} on error per "
                         "customer.")
    return "\n".join(lines)


def _interval_line(row: pd.Series, language: str) -> list[str]:
    from ltv_helpers.labels import VERDICT_INTERVAL

    if pd.isna(row.get("predicted_low", np.nan)):
        return []
    inside = row["predicted_low"] <= row["actual"] <= row["predicted_high"]
    return ["- " + label(VERDICT_INTERVAL, language).format(
        low=f"{row['predicted_low']:,.0f}", high=f"{row['predicted_high']:,.0f}",
        inside=label("fell inside it" if inside else "fell outside it", language))]


def interval_note(intervals: pd.DataFrame, error: "ModelError | None", language: str = "en") -> str:
    """The forecast intervals of :func:`ltv_helpers.models.intervals` in plain words (Markdown):
    the size of each part and, when it was measured, how far the model missed at earlier
    cut-offs."""
    from ltv_helpers.labels import INTERVAL_NOTE, INTERVAL_NOTE_UNMEASURED, markdown

    row = intervals.iloc[0]
    pct = lambda v: f"{v:.0%}" if v >= 0.01 else f"{v:.1%}"  # noqa: E731
    if error is None or not np.isfinite(error.purchases_var):
        reason = error.reason if error is not None and error.reason else "no earlier cut-off was checked"
        return markdown(INTERVAL_NOTE_UNMEASURED, language, parameters=pct(row["purchases_sd_parameters"]),
                        customers=pct(row["purchases_sd_customers"]), reason=label(reason, language))
    misses = ", ".join(f"{np.expm1(-e):+.0%}" for e in error.origins["log_error"])
    return markdown(INTERVAL_NOTE, language, parameters=pct(row["purchases_sd_parameters"]),
                    customers=pct(row["purchases_sd_customers"]), model=pct(error.purchases_sd),
                    cutoffs=str(error.cutoffs), misses=misses)


def save_evaluation(output_dir, result: BacktestResult, chosen: str) -> pd.DataFrame:
    """Write ``evaluation_metrics.parquet`` (the metrics table), ``evaluation_predictions.parquet``
    and ``evaluation.json`` (the chosen model, calibration and observation ends, and the chosen
    model's main metrics, for the report to quote) to ``output_dir``."""
    from pathlib import Path

    from ltv_helpers.files import write_json, write_parquet

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(result.metrics, out / "evaluation_metrics.parquet")
    write_parquet(result.predictions, out / "evaluation_predictions.parquet")
    row = result.metrics.loc[chosen]
    meta = {"chosen_model": chosen, "calibration_end": str(result.calibration_end.date()),
            "observation_end": str(result.observation_end.date()), "holdout_units": result.duration,
            **{k: (None if pd.isna(row[k]) else float(row[k]))
               for k in ("mae", "total_error_pct", "top20_capture", "gains_gini", "spend_total_error_pct",
                         "predicted", "actual", "predicted_low", "predicted_high") if k in row}}
    write_json(out / "evaluation.json", meta)
    return pd.DataFrame({"rows": [len(result.metrics), len(result.predictions), None]},
                        index=pd.Index(["evaluation_metrics.parquet", "evaluation_predictions.parquet",
                                        "evaluation.json"], name="file")).astype("Int64")


def highlight_best(metrics: pd.DataFrame, language: str = "en"):
    """The metrics table turned so models are columns, as a Styler with the best value of each
    metric in bold green (``predicted`` and ``actual`` totals are not ranked); metric and model
    names are shown in ``language``."""
    shown = metrics.drop(columns=["kind"], errors="ignore").astype("float64").T
    shown.index.name = label("metric", language)
    shown.columns.name = label(str(shown.columns.name), language) if shown.columns.name else None

    def mark(row):
        if row.name in ("predicted", "actual", "predicted_low", "predicted_high") or row.notna().sum() == 0:
            return [""] * len(row)
        values = row.abs() if row.name.endswith("error_pct") else row
        best = values.max() if row.name in HIGHER_IS_BETTER else values.min()
        return ["font-weight: bold; color: #1a7f37" if v == best else "" for v in values]

    # Each metric in the unit it has everywhere in the report: shares in %, money to the cent.
    formats = {}
    for name in shown.index:
        formats[name] = ("{:+.1f}%" if name.endswith("error_pct") else
                         "{:.1%}" if name in SHARE_METRICS else
                         "{:,.2f}" if name == "spend_mae" else
                         "{:,.0f}" if name in ("predicted", "actual", "predicted_low", "predicted_high",
                                                "log_likelihood", "bic") else "{:,.3f}")
    styler = shown.style.apply(mark, axis=1).format("{:,.3f}", na_rep="–")
    for name, fmt in formats.items():
        styler = styler.format(fmt, subset=pd.IndexSlice[[name], :], na_rep="–")
    names = {"actual": "actual purchases"}
    styler = styler.relabel_index([label(names.get(m, m), language) for m in shown.index], axis=0)
    styler = styler.relabel_index([label(str(c), language) for c in shown.columns], axis=1)
    return styler


def stability_cutoffs(transactions: pd.DataFrame, *, calibration_end, observation_end,
                      n: int = 3) -> tuple[list, float]:
    """``n`` calibration cut-offs for :func:`rolling_backtest`, ending at ``calibration_end`` and
    spaced by a third of the holdout, each followed by a holdout of the same length that fits in
    the data. Returns (cut-offs, holdout_days)."""
    cal_end, obs_end = pd.Timestamp(calibration_end), pd.Timestamp(observation_end)
    holdout = (obs_end - cal_end).days
    step = max(holdout // 3, 1)
    first = transactions[ORDER_DATE].min()
    cuts = [cal_end - pd.Timedelta(days=step * k) for k in range(n)]
    cuts = [c for c in cuts if c > first + pd.Timedelta(days=step)]
    return sorted(cuts), float(holdout)
