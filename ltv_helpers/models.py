"""Fitted purchase and spend models (lifetimes' BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma), CLV.

``fit(summary, model=...)`` returns an :class:`LTVModel`; ``LTVModel.predict(summary, horizon=...)``
gives one row per customer with ``expected_purchases``, ``p_alive``, ``expected_spend`` and
``clv``. The mathematics is lifetimes'; what this module adds:

- speed: customers with identical ``(frequency, recency, T)`` share one likelihood term, so
  fits run on the distinct rows with their counts as weights, on our own implementations of
  lifetimes' objectives with analytic gradients (tested equal in value and gradient, reaching
  lifetimes' optimum), and predictions are computed once per distinct row (CLV steps once per
  distinct (frequency, T) pair) and broadcast;
- stability: Pareto/NBD's likelihood in a series form that gives no NaN for any customer;
- determinism: every fit starts from a fixed point (lifetimes' Pareto/NBD starts at random);
- standard errors from the Hessian of the exact gradient for every model;
- clear errors for data no model can fit, warnings naming the model when a fit needs help.

The time unit is the summary's: a summary in days (``freq="D"``) gives parameters per day and a
horizon in days; ``freq="D", freq_multiplier=7`` gives weeks. Coarser units fit faster (more
customers share a row) at the price of resolution: two purchases in the same unit count once.
"""

from __future__ import annotations

import functools
import json
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ltv_helpers.schema import (
    CUSTOMERS,
    FREQUENCY,
    MONETARY_VALUE,
    PART,
    RECENCY,
    LTVError,
    T,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import (
        BetaGeoFitter,
        GammaGammaFitter,
        ModifiedBetaGeoFitter,
        ParetoNBDFitter,
    )
    from lifetimes.utils import ConvergenceError

PURCHASE_MODELS = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}
_FITTERS = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter, "pareto_nbd": ParetoNBDFitter}
#: Smallest number of customers, and of repeat buyers, a fit is attempted on.
MIN_CUSTOMERS = 20
MIN_REPEAT_BUYERS = 5
#: Penalizer tried once when a fit does not converge.
FALLBACK_PENALIZER = 1e-3
#: |correlation| between frequency and average spend above which Gamma-Gamma is questionable.
SPEND_CORRELATION_WARNING = 0.3
DAYS_PER_YEAR = 365.25
#: Rows per block of the purchase likelihoods' per-row work: the temporaries stay small (a few
#: hundred kB) whatever the number of customers, at the speed of whole-array operations.
OBJECTIVE_BLOCK = 32_768


# ---------------------------------------------------------------------------------- input

_BLAS_LOCK = threading.Lock()
_BLAS = {"depth": 0, "limits": None}  # the process's: threadpoolctl's limits are not per thread


def one_blas_thread(func):
    """Run ``func`` with BLAS (NumPy's dot products) on one thread. The likelihoods' reductions are
    small: on shared cores (a batch with ``--workers 2`` on 2 cores, or any other work) BLAS threads
    wait on each other. Measured here, BG/NBD + Gamma-Gamma at 100k customers beside two
    NumPy-busy processes: 0.4-0.8 s with the default threads, 0.15-0.26 s with one; quiet, the
    same 0.05-0.07 s. Nested calls, and calls in several threads at once, share one limit: the
    first to start sets it and the last to end lifts it."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _BLAS_LOCK:
            if _BLAS["depth"] == 0:
                _BLAS["limits"] = threadpool_limits(1, user_api="blas")
            _BLAS["depth"] += 1
        try:
            return func(*args, **kwargs)
        finally:
            with _BLAS_LOCK:
                _BLAS["depth"] -= 1
                if _BLAS["depth"] == 0:
                    _BLAS["limits"].restore_original_limits()
                    _BLAS["limits"] = None
    return wrapper


def _summary_columns(summary: pd.DataFrame) -> pd.DataFrame:
    """frequency, recency, T (and monetary_value) from a summary or a calibration summary, and
    ``customers`` (the weight of each row) from a compressed one (``rfm_summary(compress=True)``)."""
    if not isinstance(summary, pd.DataFrame):
        raise LTVError("summary must be a DataFrame (the output of rfm_summary or calibration_holdout).")
    cols = [FREQUENCY, RECENCY, T, MONETARY_VALUE]
    if all(f"{c}_cal" in summary for c in cols[:3]):
        out = summary[[f"{c}_cal" for c in cols if f"{c}_cal" in summary]].copy()
        out.columns = [c[:-4] for c in out.columns]
    else:
        missing = [c for c in cols[:3] if c not in summary]
        if missing:
            raise LTVError(f"The summary has no {', '.join(missing)} column; it has: "
                           f"{', '.join(map(str, summary.columns))}. Use rfm_summary's output.")
        out = summary[[c for c in cols if c in summary]].copy()
    out = out.astype("float64")
    if CUSTOMERS in summary:  # a compressed summary: each row stands for that many customers
        counts = summary[CUSTOMERS].to_numpy(dtype=float)
        if not (np.isfinite(counts).all() and (counts > 0).all() and (counts == np.round(counts)).all()):
            raise LTVError("customers must be a whole number of customers, 1 or more, on every row.")
        out[CUSTOMERS] = counts
    if out.isna().any().any() or not np.isfinite(out.to_numpy()).all():
        raise LTVError("The summary has missing or infinite values; rebuild it with rfm_summary.")
    if (out[FREQUENCY] < 0).any() or (out[FREQUENCY] != np.round(out[FREQUENCY])).any():
        raise LTVError("frequency must be a whole number of repeat purchases, 0 or more.")
    if (out[RECENCY] < 0).any():
        raise LTVError("recency must not be negative.")
    over = out[RECENCY] - out[T]
    if (over > 0).any():
        # Rounding (e.g. a summary stored with 2 decimals) can put recency a hair above T.
        if (over > 1e-6 * np.maximum(out[T], 1) + 0.01).any():
            bad = over.idxmax()
            raise LTVError(f"Customer {bad!r} has recency {out.loc[bad, RECENCY]} > T "
                           f"{out.loc[bad, T]}: the summary is inconsistent.")
        warnings.warn(f"recency was above T by rounding for {(over > 0).sum()} customers; "
                      "it was set to T.", stacklevel=3)
        out[RECENCY] = np.minimum(out[RECENCY], out[T])
    return out


def check_prediction_options(horizon: float, gross_margin: float, annual_discount_rate: float) -> None:
    """:meth:`LTVModel.predict`'s options, checked up front (also before a Spark job starts)."""
    if not np.isfinite(horizon) or horizon <= 0:
        raise LTVError(f"horizon must be a positive number of time units, got {horizon}.")
    if not 0 <= gross_margin <= 1:
        raise LTVError(f"gross_margin must be a share between 0 and 1, got {gross_margin}.")
    if annual_discount_rate < 0:
        raise LTVError(f"annual_discount_rate must not be negative, got {annual_discount_rate}.")


def _parts(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The purchase rows and the spend rows of a compressed summary (``rfm_summary(compress=True)``,
    column ``part``); any other summary is its own purchase rows, with no separate spend rows."""
    if not isinstance(summary, pd.DataFrame) or PART not in summary:
        return summary, None
    parts = summary[PART].astype("str")
    unknown = sorted(set(parts) - {"purchases", "spend"})
    if unknown:
        raise LTVError(f"part must be 'purchases' or 'spend', got {unknown[0]!r}: rebuild the summary with "
                       "rfm_summary(compress=True).")
    purchases = summary[parts == "purchases"].drop(columns=PART)
    purchases.attrs = dict(summary.attrs)
    return purchases, summary[parts == "spend"].drop(columns=PART)


def _prepare(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A summary's columns (monetary value 0 when absent), its distinct (frequency, recency, T)
    rows and each customer's row: what predictions are computed on."""
    data = _summary_columns(summary)
    if MONETARY_VALUE not in data:
        data[MONETARY_VALUE] = 0.0
        data.attrs["no_monetary_value"] = True
    rows, _, inverse = compress(data, [FREQUENCY, RECENCY, T])
    return data, rows, inverse


def purchase_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows predictions are made for: a compressed summary's purchase part, else all rows."""
    return _parts(summary)[0]


def _spend_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """frequency, monetary_value and customers of a compressed summary's spend rows, checked."""
    names = [FREQUENCY, MONETARY_VALUE, CUSTOMERS]
    if f"{FREQUENCY}_cal" in rows:
        rows = rows.rename(columns={f"{FREQUENCY}_cal": FREQUENCY, f"{MONETARY_VALUE}_cal": MONETARY_VALUE})
    missing = [c for c in names if c not in rows]
    if missing:
        raise LTVError(f"The spend rows have no {', '.join(missing)} column; rebuild the summary with "
                       "rfm_summary(compress=True).")
    out = rows[names].astype("float64")
    if not np.isfinite(out.to_numpy()).all() or (out[CUSTOMERS] <= 0).any():
        raise LTVError("The spend rows have missing values or counts below 1; rebuild the summary with "
                       "rfm_summary(compress=True).")
    return out


def _time_unit(summary: pd.DataFrame, unit_days: float | None) -> float:
    if unit_days is not None:
        if unit_days <= 0:
            raise LTVError(f"unit_days must be positive, got {unit_days}.")
        return float(unit_days)
    return float(summary.attrs.get("unit_days", 1.0))


def _distinct_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values of an array. Whole numbers from 0 up to four times the array's
    length (frequencies, days or weeks of a large summary) through a table indexed by value
    (distinct values ascending; about twice as fast as hashing at 1M values); anything else by hashing (in
    order of appearance; no sort)."""
    values = np.asarray(values, dtype=float)
    if len(values) and values.min() >= 0 and values.max() < 4 * len(values) + 1000 \
            and (values == np.floor(values)).all():
        whole = values.astype(np.int64)
        present = np.bincount(whole) > 0
        return (np.cumsum(present) - 1)[whole], np.flatnonzero(present).astype(float)
    codes, uniques = pd.factorize(values)
    return codes, np.asarray(uniques, dtype=float)


def _row_codes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One code per distinct combination of ``columns``, numbered in order of appearance. Columns of
    whole non-negative numbers (daily or weekly summaries) are packed into one integer and
    hashed; anything else goes through a pandas group-by."""
    arrays = [frame[c].to_numpy(dtype=float) for c in columns]
    whole = all(len(a) == 0 or (np.isfinite(a).all() and a.min() >= 0 and (a == np.floor(a)).all())
                for a in arrays)
    sizes = [int(a.max()) + 1 if len(a) else 1 for a in arrays]
    if whole and float(np.prod(sizes, dtype=float)) < 2**62:
        key = np.zeros(len(frame), dtype=np.int64)
        for a, size in zip(arrays, sizes):
            key = key * size + a.astype(np.int64)
        return pd.factorize(key)[0]
    return frame.groupby(columns, sort=False).ngroup().to_numpy()


def compress(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Distinct rows of ``frame[columns]``, their counts (customers: a compressed summary's rows
    count ``customers`` times), and each original row's distinct row.

    ``unique.iloc[inverse]`` rebuilds ``frame[columns]`` row by row.
    """
    codes = _row_codes(frame, columns)
    unique = frame[columns].iloc[_first_rows(codes)].reset_index(drop=True)
    return unique, np.bincount(codes, weights=_weights(frame)), codes


def _weights(frame: pd.DataFrame) -> np.ndarray:
    """Customers per row: the ``customers`` column of a compressed summary, else 1."""
    return frame[CUSTOMERS].to_numpy(dtype=float) if CUSTOMERS in frame else np.ones(len(frame))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of values repeated ``weights`` times (the lower one, no interpolation)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of the first occurrence of each code 0, 1, 2 ... of codes numbered in order of
    appearance (``pd.factorize``, ``groupby(sort=False).ngroup()``): a code is new where the
    running maximum rises (linear time; ``np.unique`` would sort)."""
    if len(codes) == 0:
        return np.array([], dtype=int)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.r_[True, running[1:] > running[:-1]])


# ---------------------------------------------------------------------------------- fitted objects

@dataclass
class SpendModel:
    """Fitted Gamma-Gamma spend model (Fader and Hardie 2013)."""

    params: dict
    standard_errors: dict
    log_likelihood: float
    n_customers: int
    frequency_spend_correlation: float
    fitter: GammaGammaFitter = field(repr=False)
    cov_log: np.ndarray = field(repr=False, default=None)

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v:.4g}" for k, v in self.params.items())
        return (f"GammaGamma({p}; n={self.n_customers} repeat buyers, "
                f"corr(frequency, spend)={self.frequency_spend_correlation:.2f})")

    def expected_spend(self, frequency, monetary_value) -> np.ndarray:
        """E[average spend per purchase | history]; the population mean for non-repeat buyers."""
        p, q, v = self.params["p"], self.params["q"], self.params["gamma"]
        # Series.to_numpy: np.asarray would look each array attribute up among a string index's ids.
        f, m = (x.to_numpy(dtype=float) if isinstance(x, pd.Series) else np.asarray(x, dtype=float)
                for x in (frequency, monetary_value))
        population = p * v / (q - 1)
        weight = (q - 1) / (p * f + q - 1)
        return np.where(f > 0, weight * population + (1 - weight) * m, population)


@dataclass
class LTVModel:
    """A fitted purchase model (and optional spend model) with what the fit learned.

    ``params``: parameter name -> value (r, alpha, a, b; r, alpha, s, beta for Pareto/NBD), in
    the summary's time unit. ``standard_errors``: same keys. ``log_likelihood``: total over
    customers, for purchase times measured in the summary's time unit (lifetimes reports it in
    rescaled time; models fitted on the same summary compare directly). ``n_customers``, ``n_distinct``: customers and distinct (frequency, recency, T)
    rows the fit ran on. ``unit_days``: days per time unit.
    """

    model: str
    params: dict
    standard_errors: dict
    log_likelihood: float
    n_customers: int
    n_distinct: int
    unit_days: float
    penalizer: float
    spend_model: SpendModel | None
    fitter: object = field(repr=False)
    #: Covariance of the log parameters (asymptotic, from the Hessian), for intervals.
    cov_log: np.ndarray = field(repr=False, default=None)
    #: Longest observation T and the 99th percentile of frequency in the fitted data (figures).
    t_max: float = 0.0
    typical_max_frequency: int = 0

    def __repr__(self) -> str:
        p = ", ".join(f"{k}={v:.4g} (se {self.standard_errors.get(k, np.nan):.2g})"
                      for k, v in self.params.items())
        unit = "days" if self.unit_days == 1 else f"units of {self.unit_days:g} days"
        out = (f"LTVModel({PURCHASE_MODELS[self.model]}: {p}; log-likelihood "
               f"{self.log_likelihood:,.1f}; {self.n_customers:,} customers in "
               f"{self.n_distinct:,} distinct rows; time in {unit}")
        if self.penalizer:
            out += f"; penalizer {self.penalizer:g}"
        return out + (f"; spend {self.spend_model!r})" if self.spend_model else ")")

    @property
    def bic(self) -> float:
        """Bayesian information criterion: k ln(n) - 2 LL."""
        return len(self.params) * np.log(self.n_customers) - 2 * self.log_likelihood

    # ------------------------------------------------------------------ saving

    def to_dict(self) -> dict:
        """Everything needed to predict and to draw intervals, as plain JSON values
        (:func:`model_from_dict` rebuilds the model; predictions are then identical)."""
        out = {"format": MODEL_FORMAT, "model": self.model, "params": self.params,
               "standard_errors": self.standard_errors, "log_likelihood": self.log_likelihood,
               "n_customers": self.n_customers, "n_distinct": self.n_distinct, "unit_days": self.unit_days,
               "penalizer": self.penalizer, "t_max": self.t_max,
               "typical_max_frequency": self.typical_max_frequency, "cov_log": _matrix(self.cov_log),
               "spend_model": None}
        if self.spend_model is not None:
            sm = self.spend_model
            out["spend_model"] = {"params": sm.params, "standard_errors": sm.standard_errors,
                                  "log_likelihood": sm.log_likelihood, "n_customers": sm.n_customers,
                                  "frequency_spend_correlation": sm.frequency_spend_correlation,
                                  "cov_log": _matrix(sm.cov_log)}
        return out

    def save(self, path) -> Path:
        """Write the model to a JSON file (``ltv fit``); :func:`load_model` reads it back."""
        from ltv_helpers import __version__
        from ltv_helpers.files import write_text

        return write_text(path, json.dumps({**self.to_dict(), "toolkit": __version__}, indent=2))

    # ------------------------------------------------------------------ predictions

    def _on_rows(self, method: str, rows: pd.DataFrame, *before) -> np.ndarray:
        """lifetimes' ``fitter.<method>(*before, frequency, recency, T)`` on distinct rows."""
        f, r, T_ = (rows[c].to_numpy() for c in (FREQUENCY, RECENCY, T))
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = getattr(self.fitter, method)(*before, f, r, T_)
        return np.asarray(out, dtype=float)

    def _alive(self, rows: pd.DataFrame) -> np.ndarray:
        """P(alive) of each row: our stable form for Pareto/NBD, lifetimes' closed form otherwise."""
        if self.model == "pareto_nbd":
            return _pareto_alive(self, rows)
        return self._on_rows("conditional_probability_alive", rows)

    @one_blas_thread
    def predict(self, summary: pd.DataFrame, *, horizon: float, gross_margin: float = 1.0,
                annual_discount_rate: float = 0.0) -> pd.DataFrame:
        """Per-customer predictions over the next ``horizon`` time units.

        - ``expected_purchases``: E[repeat purchases in (T, T + horizon] | history];
        - ``p_alive``: P(still active | history);
        - ``expected_spend``: Gamma-Gamma E[average order value | history] (population mean for
          customers without repeat purchases); without a spend model, the customer's own average
          (``monetary_value``), and missing (NaN, as ``clv``) when the summary has no
          ``monetary_value``: a purchase model alone does not know what customers spend;
        - ``clv`` = gross_margin x sum over monthly steps k of
          (E[N(t_k)] - E[N(t_{k-1})]) x expected_spend / (1 + annual_discount_rate)^(t_k in years),
          with steps of 365.25 / 12 days expressed in the model's time unit, the last step ending
          at ``horizon``. The annual rate is thus converted to the time unit by compounding:
          per-unit rate = (1 + annual)^(unit_days / 365.25) - 1.

        Purchases and P(alive) are computed once per distinct (frequency, recency, T) row and
        broadcast.
        """
        check_prediction_options(horizon, gross_margin, annual_discount_rate)
        summary = purchase_rows(summary)
        prepared = _prepare(summary)
        alive = self._alive(prepared[1])
        purchases, spend, clv = self._predicted(prepared, horizon, gross_margin, annual_discount_rate, alive)
        out = pd.DataFrame({"expected_purchases": purchases, "p_alive": alive[prepared[2]],
                            "expected_spend": spend, "clv": clv}, index=summary.index)
        unknown_spend = self.spend_model is None and prepared[0].attrs.get("no_monetary_value")
        checked = out.iloc[:, :2] if unknown_spend else out  # spend and CLV are NaN by design then
        bad = ~np.isfinite(checked.to_numpy()).all(axis=1)
        if bad.any():  # a count, never a customer's id: messages reach logs and batch tables
            raise LTVError(f"{PURCHASE_MODELS[self.model]} gave no finite prediction for "
                           f"{int(bad.sum()):,} of {len(out):,} customers; try another model.")
        return out

    def _spend(self, data: pd.DataFrame) -> np.ndarray:
        """Expected spend per customer of :func:`_prepare` d columns: a closed form per customer
        (no need to compress on monetary_value too); the customer's own average without a spend model."""
        if self.spend_model is not None:
            return np.asarray(self.spend_model.expected_spend(data[FREQUENCY], data[MONETARY_VALUE]), dtype=float)
        if data.attrs.get("no_monetary_value"):  # nothing to say what they spend
            return np.full(len(data), np.nan)
        return data[MONETARY_VALUE].to_numpy(dtype=float)

    def _predicted(self, prepared, horizon: float, gross_margin: float, annual_discount_rate: float, alive=None,
                   spend=None):
        """Expected purchases, expected spend and CLV per customer of a :func:`_prepare` d summary
        (the arithmetic of :meth:`predict`, without its checks and table); ``alive``: P(alive) of
        the distinct rows when already known (Pareto/NBD's purchases are built on it); ``spend``:
        the expected spend per customer when already known (:meth:`_spend`)."""
        data, rows, inverse = prepared
        step = DAYS_PER_YEAR / 12 / self.unit_days
        if annual_discount_rate == 0:  # undiscounted: one step gives the same sum
            step = horizon
        ends = np.minimum(np.arange(1, int(np.ceil(horizon / step - 1e-9)) + 1) * step, horizon)
        years = ends * self.unit_days / DAYS_PER_YEAR
        discounted, purchases = discounted_purchases(self, rows, ends, (1 + annual_discount_rate) ** -years, alive)
        spend = self._spend(data) if spend is None else spend
        clv = np.clip(gross_margin * discounted[inverse] * spend, 0.0, None)  # rounding can leave -1e-16
        return purchases[inverse], spend, clv


#: Version tag of the model JSON files written by :meth:`LTVModel.save`.
MODEL_FORMAT = "ltv-model/1"


def _matrix(values) -> list | None:
    return None if values is None else np.asarray(values, dtype=float).tolist()


def model_from_dict(spec: dict) -> LTVModel:
    """The :class:`LTVModel` described by :meth:`LTVModel.to_dict`: lifetimes' fitter is rebuilt
    with the saved parameters (predictions need nothing else)."""
    if not isinstance(spec, dict) or spec.get("format") != MODEL_FORMAT:
        raise LTVError(f"This is not a saved LTV model ({MODEL_FORMAT}); write one with `ltv fit` or LTVModel.save.")
    if spec.get("model") not in _FITTERS:
        raise LTVError(f"Unknown model {spec.get('model')!r}; known: {', '.join(_FITTERS)}.")
    try:
        fitter = _FITTERS[spec["model"]](penalizer_coef=spec["penalizer"])
        fitter.params_ = pd.Series({k: float(v) for k, v in spec["params"].items()})
        if hasattr(fitter, "conditional_expected_number_of_purchases_up_to_time"):
            fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
        spend = None
        if spec.get("spend_model"):
            sm = spec["spend_model"]
            gg = GammaGammaFitter(penalizer_coef=spec["penalizer"])
            gg.params_ = pd.Series({"p": sm["params"]["p"], "q": sm["params"]["q"], "v": sm["params"]["gamma"]})
            spend = SpendModel(dict(sm["params"]), dict(sm["standard_errors"]), float(sm["log_likelihood"]),
                               int(sm["n_customers"]), float(sm["frequency_spend_correlation"]), gg,
                               None if sm.get("cov_log") is None else np.array(sm["cov_log"], dtype=float))
        cov = spec.get("cov_log")
        return LTVModel(spec["model"], {k: float(v) for k, v in spec["params"].items()},
                        dict(spec["standard_errors"]), float(spec["log_likelihood"]), int(spec["n_customers"]),
                        int(spec["n_distinct"]), float(spec["unit_days"]), float(spec["penalizer"]), spend, fitter,
                        None if cov is None else np.array(cov, dtype=float), float(spec["t_max"]),
                        int(spec["typical_max_frequency"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LTVError(f"The saved model is incomplete or damaged ({type(exc).__name__}: {exc}).") from None


def load_model(path) -> LTVModel:
    """A model written by :meth:`LTVModel.save` (``ltv fit``)."""
    path = Path(path)
    if not path.is_file():
        raise LTVError(f"File not found: {path}.")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LTVError(f"{path.name} is not JSON: {exc}.") from None
    return model_from_dict(spec)


@one_blas_thread
def lifetimes_clv(model: "LTVModel", summary: pd.DataFrame, *, time: int = 12, discount_rate: float = 0.01,
                  freq: str = "D") -> pd.Series:
    """CLV under lifetimes' ``GammaGammaFitter.customer_lifetime_value`` convention, for comparison:
    ``time`` monthly steps of 30 days (``freq="D"``; 4.345 weeks for ``"W"``, 720 hours for
    ``"H"``), each month's expected purchases times the Gamma-Gamma expected spend, discounted by
    ``(1 + discount_rate)^month`` with a *monthly* rate, no margin. Equal to lifetimes' result
    (tested), computed in one pass over distinct rows instead of lifetimes' 2 x ``time`` calls.
    :meth:`LTVModel.predict` is the toolkit's convention (calendar months of 365.25 / 12 days, an
    annual rate compounded per month, the gross margin)."""
    factor = {"W": 4.345, "M": 1.0, "D": 30, "H": 30 * 24}.get(freq)
    if factor is None:
        raise LTVError(f"freq must be one of D, W, M, H (lifetimes' convention), got {freq!r}.")
    if model.spend_model is None:
        raise LTVError("lifetimes' CLV needs the Gamma-Gamma spend model; fit with spend='gamma_gamma'.")
    summary = purchase_rows(summary)
    data = _summary_columns(summary)
    rows, _, inverse = compress(data, [FREQUENCY, RECENCY, T])
    steps = np.arange(1, time + 1) * factor
    discounted = discounted_purchases(model, rows, steps, (1 + discount_rate) ** -(steps / factor))[0]
    # Gamma-Gamma's conditional expected spend (lifetimes' conditional_expected_average_profit).
    spend = model.spend_model.expected_spend(data[FREQUENCY], data[MONETARY_VALUE])
    return pd.Series(discounted[inverse] * spend, index=summary.index, name="clv")


# ---------------------------------------------------------------------------------- fitting

@one_blas_thread
def fit(summary: pd.DataFrame, *, model: str = "bgnbd", spend: str | None = "gamma_gamma",
        penalizer: float = 0.0, unit_days: float | None = None) -> LTVModel:
    """Fit a purchase model (``"bgnbd"``, ``"mbgnbd"``, ``"pareto_nbd"``) and, unless
    ``spend=None``, the Gamma-Gamma spend model on an RFM summary.

    ``summary`` is :func:`ltv_helpers.data.rfm_summary`'s output or
    :func:`ltv_helpers.data.calibration_holdout`'s (its ``_cal`` columns are used).
    ``unit_days`` is the length of the summary's time unit in days (default: taken from the
    summary when rfm_summary made it, else 1); it is used to discount and to convert horizons.

    Raises :class:`LTVError` for data no model can fit (fewer than 20 customers or 5 repeat
    buyers). A fit that does not converge is retried once with a small penalizer, with a warning
    that names the model.

    >>> from ltv_helpers.datasets import load_cdnow
    >>> from ltv_helpers.data import calibration_holdout
    >>> cal = calibration_holdout(load_cdnow(sample=True), calibration_end="1997-09-30",
    ...                           observation_end="1998-06-30", freq="D", freq_multiplier=7)
    >>> m = fit(cal, model="bgnbd")
    >>> round(m.params["r"], 3), round(m.params["alpha"], 2)
    (0.243, 4.41)
    """
    if model not in _FITTERS:
        raise LTVError(f"model must be one of {', '.join(_FITTERS)}, got {model!r}.")
    if spend not in ("gamma_gamma", None):
        raise LTVError(f"spend must be 'gamma_gamma' or None, got {spend!r}.")
    unit = _time_unit(summary, unit_days)
    summary, spend_rows = _parts(summary)
    data = _summary_columns(summary)
    weights = _weights(data)
    n = int(round(weights.sum()))
    repeat = int(round(weights[data[FREQUENCY].to_numpy() > 0].sum()))
    if n < MIN_CUSTOMERS:
        raise LTVError(f"{n} customers are too few to fit a purchase model; at least "
                       f"{MIN_CUSTOMERS} are needed.")
    if repeat < MIN_REPEAT_BUYERS:
        raise LTVError(f"Only {repeat} customers bought more than once; the purchase models need at "
                       f"least {MIN_REPEAT_BUYERS} repeat buyers to learn a repeat rate.")
    rows, counts, _ = compress(data, [FREQUENCY, RECENCY, T])
    fitter, used_penalizer = _fit_purchase(model, rows, counts, penalizer)
    params = {k: float(v) for k, v in fitter.params_.items()}
    ses, cov_log = _standard_errors(fitter, counts)
    # The fits report the mean NLL per customer, in time divided by lifetimes' scale (max(T)/10):
    # each purchase's density carries that scale.
    ll = -float(fitter._negative_log_likelihood_) * counts.sum() \
        + np.log(fitter._scale) * float((rows[FREQUENCY].to_numpy() * counts).sum())
    spend_data = data if spend_rows is None else _spend_columns(spend_rows)
    spend_model = _fit_spend(spend_data, penalizer) if spend == "gamma_gamma" else None
    typical = (_weighted_quantile(data[FREQUENCY].to_numpy(), weights, 0.99) if CUSTOMERS in data
               else data[FREQUENCY].quantile(0.99))  # one row per customer: as before, no sort
    return LTVModel(model, params, ses, ll, n, len(rows), unit, used_penalizer, spend_model, fitter,
                    cov_log, float(data[T].max()), int(max(1, np.ceil(typical))))


@one_blas_thread
def p_alive_path(model: LTVModel, purchases, *, observation_end) -> pd.DataFrame:
    """P(alive) of one customer on every day from the first purchase to ``observation_end``.

    On day d the customer's history is what was known then: x = purchase days up to d minus 1,
    t_x = time of the last purchase day up to d, T = time since the first purchase, all in the
    model's time unit. Replaces lifetimes' ``calculate_alive_path`` (broken on pandas 3).
    """
    days = pd.DatetimeIndex(pd.to_datetime(pd.Series(purchases)).dt.normalize().unique()).sort_values()
    if len(days) == 0:
        raise LTVError("The customer has no purchases.")
    end = pd.Timestamp(observation_end).normalize()
    grid = pd.date_range(days[0], max(end, days[-1]), freq="D")
    seen = np.searchsorted(days.to_numpy(), grid.to_numpy(), side="right")  # purchase days so far
    unit = model.unit_days
    t = (grid - days[0]).days.to_numpy() / unit
    t_x = (days[seen - 1] - days[0]).days.to_numpy() / unit
    with np.errstate(all="ignore"):
        p = model.fitter.conditional_probability_alive(seen - 1.0, t_x, t)
    return pd.DataFrame({"p_alive": np.asarray(p, dtype=float), "frequency": seen - 1}, index=grid)


def alive_path_note(model: LTVModel, purchases, *, observation_end, language: str = "en",
                    below: float = 0.5) -> str:
    """A sentence explaining the lowest point of one customer's P(alive) path when it falls below
    ``below`` (a frequent buyer's long silence), and whether a purchase restored it; '' otherwise."""
    from ltv_helpers.labels import ALIVE_DIP, ALIVE_DIP_BACK, label

    path = p_alive_path(model, purchases, observation_end=observation_end)
    days = path.index[path["frequency"].diff().fillna(1).to_numpy() > 0]      # purchase days
    low = path["p_alive"].idxmin()
    if len(days) < 2 or not path["p_alive"].loc[low] < below:
        return ""
    before, after = days[days <= low][-1], days[days > low]
    mean_gap = (days[-1] - days[0]).days / (len(days) - 1)
    lowest = path["p_alive"].loc[low]
    text = label(ALIVE_DIP, language).format(p=f"{lowest:.0%}" if lowest >= 0.005 else label("less than 1%", language),
                                             date=f"{low:%Y-%m-%d}",
                                             gap=f"{(low - before).days:,}", mean_gap=f"{mean_gap:,.0f}")
    if len(after):
        text += label(ALIVE_DIP_BACK, language).format(next=f"{after[0]:%Y-%m-%d}")
    return text


class _BGNBDLikelihood:
    """lifetimes' BG/NBD objective (mean negative log-likelihood per customer, log parameters,
    time divided by lifetimes' scale, plus its penalizer) with an analytic gradient.

    Same value as ``BetaGeoFitter._negative_log_likelihood`` to rounding (tested). Per customer
    ``ll = B(x) - (r+x) ln(alpha+T) + [x > 0] ln(1 + e^u)`` with the terms of distinct
    frequencies ``B(x) = lnG(r+x) - lnG(r) + r ln(alpha) + lnG(a+b) + lnG(b+x) - lnG(b) - lnG(a+b+x)``
    and ``u = ln(a) - ln(b+x-1) + (r+x) (ln(alpha+T) - ln(alpha+t_x))`` (the log odds of "dropped
    out after the last purchase"). Every gamma, digamma, log and reciprocal is computed once per
    distinct frequency, T or recency; the sums of terms linear in x are sums over distinct T
    values; only the softplus term and its derivatives are computed per row (in blocks of
    :data:`OBJECTIVE_BLOCK` rows), with two exponentials, one logarithm and no division per row.
    lifetimes' own autograd objective evaluates every term on every row.
    """

    #: frequency offset in the dropout term: b + x - 1 (BG/NBD), b + x (MBG/NBD).
    offset = -1.0

    def __init__(self, frequency, recency, T, weights, penalizer: float, scale: float):
        w = np.asarray(weights, dtype=float)
        x = np.asarray(frequency, dtype=float)
        self.n = w.sum()
        self.ix, self.ux = _distinct_values(x)
        # Distinct times before scaling (whole days or weeks in a daily or weekly summary).
        self.iT, self.uT = _distinct_values(T)
        self.ir, self.ur = _distinct_values(recency)
        self.uT, self.ur = self.uT * scale, self.ur * scale
        self.wx = np.bincount(self.ix, weights=w, minlength=len(self.ux))  # total weight per distinct x
        self.wT = np.bincount(self.iT, weights=w, minlength=len(self.uT))  # ... per distinct T
        self.wxT = np.bincount(self.iT, weights=w * x, minlength=len(self.uT))  # sum of w x per distinct T
        # The rows with a dropout term: repeat buyers for BG/NBD, everyone for MBG/NBD.
        rows = x > 0 if self.offset < 0 else slice(None)  # a slice keeps views, not copies
        self.rows = [a[rows] for a in (x, w, self.ix, self.iT, self.ir)]
        self.penalizer = penalizer

    def _base(self, r, alpha, a, b):
        """B(x) per distinct frequency, and its derivatives in r, a and b (without ln alpha)."""
        from scipy.special import digamma, gammaln

        ux, o = self.ux, self.offset + 1
        base = (gammaln(r + ux) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + ux + o)
                - gammaln(b) - gammaln(a + b + ux + o))
        d_r = digamma(r + ux) - digamma(r)
        d_a = digamma(a + b) - digamma(a + b + ux + o)
        d_b = d_a + digamma(b + ux + o) - digamma(b)
        return base, d_r, d_a, d_b

    def __call__(self, log_params):
        r, alpha, a, b = params = np.exp(log_params)
        base, dr_x, da_x, db_x = self._base(r, alpha, a, b)
        inv_bx = 1 / (b + np.maximum(self.ux + self.offset, 0))
        a4x = np.log(a) + np.log(inv_bx)
        log_t, log_r = np.log(alpha + self.uT), np.log(alpha + self.ur)
        inv_t, inv_r = 1 / (alpha + self.uT), 1 / (alpha + self.ur)
        # Sums over rows of w B(x) - w (r + x) ln(alpha + T), and of its derivatives, per distinct value.
        wlt, wxlt = self.wT @ log_t, self.wxT @ log_t
        ll = self.wx @ base - r * wlt - wxlt
        d_r = self.wx @ (dr_x + np.log(alpha)) - wlt
        d_alpha = self.n * r / alpha - r * (self.wT @ inv_t) - self.wxT @ inv_t
        d_a, d_b = self.wx @ da_x, self.wx @ db_x
        # The softplus term, in blocks: ln(1 + e^u) = max(u, 0) + ln(1 + e^-|u|); its derivative
        # in u, the share s = e^u / (1 + e^u), as exp(u - softplus) (no division, no overflow).
        x_all, w_all, ix_all, iT_all, ir_all = self.rows
        for lo in range(0, len(x_all), OBJECTIVE_BLOCK):
            block = slice(lo, lo + OBJECTIVE_BLOCK)
            w, ix, iT, ir = w_all[block], ix_all[block], iT_all[block], ir_all[block]
            rx = x_all[block] + r
            gap = log_t.take(iT)
            gap -= log_r.take(ir)  # ln(alpha + T) - ln(alpha + t_x) >= 0
            u = rx * gap
            u += a4x.take(ix)
            soft = np.abs(u)
            np.negative(soft, out=soft)
            np.exp(soft, out=soft)
            np.log1p(soft, out=soft)
            soft += np.maximum(u, 0.0)
            ll += w @ soft
            np.subtract(u, soft, out=u)
            np.exp(u, out=u)
            u *= w  # w s
            d_r += u @ gap
            d_a += u.sum() / a
            d_b -= u @ inv_bx.take(ix)
            u *= rx  # w s (r + x)
            d_alpha += u @ inv_t.take(iT) - u @ inv_r.take(ir)
        nll = -ll / self.n + self.penalizer * (params @ params)
        grad = -np.array([d_r, d_alpha, d_a, d_b]) / self.n + 2 * self.penalizer * params
        return nll, grad * params


class _MBGNBDLikelihood(_BGNBDLikelihood):
    """lifetimes' MBG/NBD objective (Batislam et al. 2007: a customer may also drop out at the
    first purchase) with an analytic gradient, computed like BG/NBD's.

    Per customer ``ll = A1 + A2 + A3 + log(1 + exp(A4))`` with lifetimes' terms
    ``A1 = lnG(r+x) - lnG(r) + r ln(alpha)``, ``A2 = lnG(a+b) + lnG(b+x+1) - lnG(b) - lnG(a+b+x+1)``,
    ``A3 = -(r+x) ln(alpha+T)``, ``A4 = ln(a) - ln(b+x) + (r+x) (ln(alpha+T) - ln(alpha+t_x))``:
    BG/NBD's form with ``b + x`` for ``b + x - 1`` and the dropout term for every customer.
    """

    offset = 0.0


class _GammaGammaLikelihood:
    """lifetimes' Gamma-Gamma objective (Fader and Hardie 2013; mean negative log-likelihood per
    repeat buyer in log parameters, plus its penalizer) with an analytic gradient. Per buyer with
    x repeat purchases of average value m:
    ``ll = lnG(px+q) - lnG(px) - lnG(q) + q ln v + (px-1) ln m + px ln x - (px+q) ln(xm+v)``;
    the gamma and digamma terms are computed once per distinct x."""

    def __init__(self, frequency, monetary_value, weights, penalizer: float):
        self.w = np.asarray(weights, dtype=float)
        self.n = self.w.sum()
        self.x = np.asarray(frequency, dtype=float)
        self.m = np.asarray(monetary_value, dtype=float)
        self.ix, self.ux = _distinct_values(self.x)
        self.wx = np.bincount(self.ix, weights=self.w)
        self.xm = self.x * self.m
        # The terms that do not involve v are linear in p: their sums are computed once.
        self.w_times_x = self.w * self.x
        self.sum_x_log_xm = self.w @ (self.x * np.log(self.xm))  # sum of w x (ln m + ln x)
        self.sum_log_m = self.w @ np.log(self.m)
        self.penalizer = penalizer

    def __call__(self, log_params):
        from scipy.special import digamma, gammaln

        p, q, v = np.exp(log_params)
        ux, w, n = self.ux, self.w, self.n
        # Per buyer only ln(xm + v) and 1 / (xm + v); sum of w (px + q) ln(xm + v) by linearity.
        log_xmv = np.log(self.xm + v)
        inv_xmv = 1 / (self.xm + v)
        sum_log, sum_x_log = w @ log_xmv, self.w_times_x @ log_xmv
        by_x = gammaln(p * ux + q) - gammaln(p * ux)
        ll = (self.wx @ by_x - n * gammaln(q) + n * q * np.log(v) + p * self.sum_x_log_xm - self.sum_log_m
              - p * sum_x_log - q * sum_log)
        nll = -ll / n + self.penalizer * (p * p + q * q + v * v)
        dig_x = digamma(p * ux + q) - digamma(p * ux)
        d_p = (self.wx @ (ux * dig_x)) + self.sum_x_log_xm - sum_x_log
        d_q = (self.wx @ digamma(p * ux + q)) - n * digamma(q) + n * np.log(v) - sum_log
        d_v = n * q / v - p * (self.w_times_x @ inv_xmv) - q * (w @ inv_xmv)
        params = np.array([p, q, v])
        grad = -np.array([d_p, d_q, d_v]) / self.n + 2 * self.penalizer * params
        return nll, grad * params


#: Most series terms the Pareto/NBD likelihood sums for one (frequency, time) pair.
PARETO_MAX_TERMS = 20_000
#: Terms x histories :func:`_hyp_value` holds at once (about 16 MB an array): 1,024 terms of 374k
#: histories at a fit's edge took 3 GB.
HYP_BLOCK_CELLS = 2**21


def _hyp_value(e: np.ndarray, c1: np.ndarray, z: np.ndarray) -> np.ndarray:
    """The ``G`` of :func:`_hyp_series` alone (no derivatives), summed in blocks of terms as running
    products, the blocks doubling from 8 to 1,024 terms: the same positive terms, few steps both
    when a handful of terms suffice and when z is near 1 and thousands are needed (a fit at the
    edge of Pareto/NBD's parameters)."""
    G, last = np.ones(len(z)), np.ones(len(z))
    active = np.flatnonzero(z > 0)
    n, block = 0, 8
    while active.size and n < PARETO_MAX_TERMS:
        k = n + np.arange(block, dtype=float)
        rows = max(1, HYP_BLOCK_CELLS // block)  # rows x terms at once: memory stays bounded
        for lo in range(0, active.size, rows):
            at = active[lo:lo + rows]
            ratios = (e[at, None] + k) * z[at, None] / (c1[at, None] + k)
            terms = last[at, None] * np.cumprod(ratios, axis=1)
            G[at] += terms.sum(axis=1)
            last[at] = terms[:, -1]
        n, block = n + block, min(2 * block, 1024)
        active = active[last[active] > 1e-17 * G[active]]
    return G


def _hyp_series(e: np.ndarray, c1: np.ndarray, z: np.ndarray):
    """``G = sum_n prod_{k<n} (e+k) / (c1+k) z^n`` (that is 2F1(1, e; c1; z)) and the derivatives of
    ``ln G`` in e, c1 and z, for arrays with 0 <= z < 1 and e <= c1. Every term is positive and at
    most z times the one before, so the sum is stable; each entry stops when its next term no
    longer changes it (relative 1e-17)."""
    G = np.ones(len(z))
    d_e, d_c, d_z = np.zeros(len(z)), np.zeros(len(z)), np.zeros(len(z))
    term, sum_e, sum_c = np.ones(len(z)), np.zeros(len(z)), np.zeros(len(z))
    active = np.flatnonzero(z > 0)
    n = 0
    while active.size and n < PARETO_MAX_TERMS:
        ea, ca, za = e[active], c1[active], z[active]
        sum_e[active] += 1.0 / (ea + n)
        sum_c[active] += 1.0 / (ca + n)
        term[active] *= (ea + n) * za / (ca + n)
        n += 1
        t = term[active]
        G[active] += t
        d_e[active] += t * sum_e[active]
        d_c[active] -= t * sum_c[active]
        d_z[active] += n * t / za
        active = active[t > 1e-17 * G[active]]
    at_zero = z == 0  # alpha == beta: G = 1, and d ln G / dz is the first term's e / c1
    d_z[at_zero] = e[at_zero] / c1[at_zero]
    return G, d_e / G, d_c / G, d_z / G


class _ParetoNBDLikelihood:
    """lifetimes' Pareto/NBD objective, evaluated stably, with an analytic gradient (mean negative
    log-likelihood per customer in log parameters, time divided by lifetimes' scale).

    Per customer (Fader and Hardie 2005, eq. 18-20), with c = r + s + x:
    ``ll = lnG(r+x) - lnG(r) + r ln(alpha) + s ln(beta) + ln( (alpha+T)^-(r+x) (beta+T)^-s
    + s/c (J(t_x) - J(T)) )`` where ``J(t) = 2F1(c, b; c+1; z(t)) / (m+t)^c`` (``m``, ``b``, ``z``
    depend on whether alpha or beta is larger). J depends on (x, t) only, so it is computed once per
    distinct (frequency, recency) and (frequency, T) pair, through Euler's transformation
    ``2F1(c, b; c+1; z) = (1-z)^(1-b) 2F1(1, c+1-b; c+1; z)``, whose series has positive terms
    that shrink at least geometrically: no cancellation, no overflow, no NaN for any customer
    (lifetimes' form goes through scipy's hyp2f1 and returns NaN for some on scipy 1.16+). The sum
    of both terms is taken in log form, and ``J(t_x) - J(T)`` as ``J(t_x) (1 - J(T)/J(t_x))``.
    Same value as ``ParetoNBDFitter._negative_log_likelihood`` (tested).
    """

    def __init__(self, frequency, recency, T, weights, penalizer: float, scale: float):
        self.x = np.asarray(frequency, dtype=float)
        self.tx = np.asarray(recency, dtype=float) * scale
        self.T = np.asarray(T, dtype=float) * scale
        self.w = np.asarray(weights, dtype=float)
        self.n = self.w.sum()
        self.penalizer = penalizer
        k = len(self.x)
        both = pd.DataFrame({"x": np.r_[self.x, self.x], "t": np.r_[self.tx, self.T]})
        codes = _row_codes(both, ["x", "t"])
        first = _first_rows(codes)
        self.px, self.pt = both["x"].to_numpy()[first], both["t"].to_numpy()[first]
        self.i_tx, self.i_T = codes[:k], codes[k:]

    def _log_j(self, r, alpha, s, beta, grads: bool = True):
        """ln J per distinct pair and (unless ``grads=False``) its derivatives in r, alpha, s, beta."""
        px, pt = self.px, self.pt
        c0 = r + s + px
        if alpha < beta:
            m, b, e, z = beta, r + px, np.full(len(px), s + 1.0), (beta - alpha) / (beta + pt)
            dz_alpha, dz_beta = -1 / (beta + pt), (alpha + pt) / (beta + pt) ** 2
            db_r, db_s, de_r, de_s, dm_alpha, dm_beta = 1.0, 0.0, 0.0, 1.0, 0.0, 1.0
        else:
            m, b, e, z = alpha, np.full(len(px), s + 1.0), r + px, (alpha - beta) / (alpha + pt)
            dz_alpha, dz_beta = (beta + pt) / (alpha + pt) ** 2, -1 / (alpha + pt)
            db_r, db_s, de_r, de_s, dm_alpha, dm_beta = 0.0, 1.0, 1.0, 0.0, 1.0, 0.0
        if not grads:
            return (1 - b) * np.log1p(-z) + np.log(_hyp_value(e, c0 + 1, z)) - c0 * np.log(m + pt), None
        G, g_e, g_c, g_z = _hyp_series(e, c0 + 1, z)
        log1mz, log_mt = np.log1p(-z), np.log(m + pt)
        log_j = (1 - b) * log1mz + np.log(G) - c0 * log_mt
        d_b, d_c0 = -log1mz, g_c - log_mt
        d_z, d_m = -(1 - b) / (1 - z) + g_z, -c0 / (m + pt)
        grads = (d_b * db_r + g_e * de_r + d_c0, d_z * dz_alpha + d_m * dm_alpha,
                 d_b * db_s + g_e * de_s + d_c0, d_z * dz_beta + d_m * dm_beta)
        return log_j, grads

    def _parts(self, r, alpha, s, beta, log_j):
        """Per row: rho = J(T) / J(t_x), the log-likelihoods of "active at T" (a1) and of "dropped
        out between t_x and T" (a2, without the common factor), and both scaled by their maximum
        (top, e1, e2)."""
        x, T_ = self.x, self.T
        lj_tx, lj_T = log_j[self.i_tx], log_j[self.i_T]
        rho = np.exp(lj_T - lj_tx)  # J(T) / J(t_x) <= 1; = 1 when the last purchase is at T
        with np.errstate(divide="ignore", invalid="ignore"):
            a2 = np.log(s) - np.log(r + s + x) + lj_tx + np.log1p(-rho)
        a1 = -(r + x) * np.log(alpha + T_) - s * np.log(beta + T_)
        top = np.maximum(a1, a2)
        return rho, top, np.exp(a1 - top), np.exp(a2 - top)

    def alive(self, r, alpha, s, beta) -> np.ndarray:
        """P(alive) per row: the posterior weight of "active at T" (the share1 of __call__)."""
        _, _, e1, e2 = self._parts(r, alpha, s, beta, self._log_j(r, alpha, s, beta, grads=False)[0])
        return e1 / (e1 + e2)

    def __call__(self, log_params):
        from scipy.special import digamma, gammaln

        r, alpha, s, beta = params = np.exp(log_params)
        x, T_, w = self.x, self.T, self.w
        log_j, grads = self._log_j(r, alpha, s, beta)
        rho, top, e1, e2 = self._parts(r, alpha, s, beta, log_j)
        c0 = r + s + x
        ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta) + top + np.log(e1 + e2)
        share2 = e2 / (e1 + e2)  # posterior weight of "dropped out between t_x and T"
        share1 = 1 - share2

        def d_log_a0(g):
            with np.errstate(divide="ignore", invalid="ignore"):
                out = (g[self.i_tx] - rho * g[self.i_T]) / (1 - rho)
            return np.where(share2 > 0, out, 0.0)

        g_r, g_alpha, g_s, g_beta = grads
        d_r = (digamma(r + x) - digamma(r) + np.log(alpha) - share1 * np.log(alpha + T_)
               + share2 * (d_log_a0(g_r) - 1 / c0))
        d_alpha = r / alpha - share1 * (r + x) / (alpha + T_) + share2 * d_log_a0(g_alpha)
        d_s = np.log(beta) - share1 * np.log(beta + T_) + share2 * (1 / s - 1 / c0 + d_log_a0(g_s))
        d_beta = s / beta - share1 * s / (beta + T_) + share2 * d_log_a0(g_beta)
        nll = -(w @ ll) / self.n + self.penalizer * (params @ params)
        grad = -np.array([w @ d_r, w @ d_alpha, w @ d_s, w @ d_beta]) / self.n + 2 * self.penalizer * params
        return nll, grad * params


def _fitted(fitter, objective, x0: np.ndarray, tol: float, names: list[str], counts: np.ndarray, *,
            scale: float = 1.0, scaled: tuple[str, ...] = ()):
    """Minimize ``objective`` (value and analytic gradient in log parameters) with BFGS, as
    lifetimes runs it, and leave the result in lifetimes' ``fitter`` the way its own ``fit`` would:
    parameters (those in ``scaled`` back from lifetimes' time scale), the mean negative
    log-likelihood per customer, the Hessian in log parameters (central differences of the exact
    gradient), variance matrix and standard errors; ready for lifetimes' predictions."""
    from scipy.optimize import minimize

    k, h = len(x0), 1e-5
    hess = np.empty((k, k))
    with np.errstate(all="ignore"):  # overflow on the optimizer's trial steps is part of the search
        out = minimize(objective, x0=x0, jac=True, method="BFGS", tol=tol)
        if not out.success and not (np.isfinite(out.x).all() and np.linalg.norm(out.jac) < 1e-4):
            raise ConvergenceError(out.message)
        for i in range(k):
            step = np.eye(k)[i] * h
            hess[i] = (objective(out.x + step)[1] - objective(out.x - step)[1]) / (2 * h)
    fitter.params_ = pd.Series(np.exp(out.x), index=names)
    if scaled:
        fitter._scale = scale
        fitter.params_[list(scaled)] /= scale
    fitter._negative_log_likelihood_ = float(out.fun)
    fitter._hessian_ = (hess + hess.T) / 2
    fitter.data = pd.DataFrame({"weights": counts})
    with np.errstate(invalid="ignore"):  # at a boundary the curvature can be flat: NaN, not a warning
        fitter.variance_matrix_ = fitter._compute_variance_matrix()
        fitter.standard_errors_ = fitter._compute_standard_errors()
    if hasattr(fitter, "conditional_expected_number_of_purchases_up_to_time"):
        fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
    return fitter


def _fit_purchase_fast(model: str, rows: pd.DataFrame, counts: np.ndarray, penalizer: float):
    """A purchase model fitted on lifetimes' objective and time scale (``max(T) / 10``) with our
    fast likelihood: BG/NBD and MBG/NBD from lifetimes' start (0.1 in log parameters), Pareto/NBD
    with BFGS from lifetimes' mean start (all parameters 1; lifetimes runs Nelder-Mead from a
    random one; both find the same optimum, tested). Returns lifetimes' fitter holding the result."""
    from lifetimes.utils import _scale_time

    f, r, T_ = (rows[c].to_numpy() for c in (FREQUENCY, RECENCY, T))
    scale = _scale_time(T_)
    if model == "pareto_nbd":
        objective = _ParetoNBDLikelihood(f, r, T_, counts, penalizer, scale)
        return _fitted(ParetoNBDFitter(penalizer_coef=penalizer), objective, np.zeros(4), 1e-7,
                       ["r", "alpha", "s", "beta"], counts, scale=scale, scaled=("alpha", "beta"))
    likelihood = _BGNBDLikelihood if model == "bgnbd" else _MBGNBDLikelihood
    return _fitted(_FITTERS[model](penalizer_coef=penalizer), likelihood(f, r, T_, counts, penalizer, scale),
                   0.1 * np.ones(4), 1e-7, ["r", "alpha", "a", "b"], counts, scale=scale, scaled=("alpha",))


def _fit_gamma_gamma_fast(rows: pd.DataFrame, counts: np.ndarray, penalizer: float) -> GammaGammaFitter:
    """Gamma-Gamma fitted like lifetimes (objective, start 0.1, BFGS, tol 1e-6) with the fast
    likelihood; returns a ``GammaGammaFitter`` holding the result."""
    objective = _GammaGammaLikelihood(rows[FREQUENCY].to_numpy(), rows[MONETARY_VALUE].to_numpy(), counts,
                                      penalizer)
    return _fitted(GammaGammaFitter(penalizer_coef=penalizer), objective, 0.1 * np.ones(3), 1e-6,
                   ["p", "q", "v"], counts)


def expected_purchases_by_step(model: "LTVModel", rows: pd.DataFrame, times) -> np.ndarray:
    """E[repeat purchases in (T, T + t] | history] for every time t of ``times`` and every row:
    an array of shape (len(times), len(rows)), equal to lifetimes'
    ``conditional_expected_number_of_purchases_up_to_time`` at each t.

    For BG/NBD and MBG/NBD the expensive part (a Gauss hypergeometric function of r + x, b + x,
    a + b + x and t / (alpha + T + t)) depends on (x, T) and t only, so it is computed once per
    distinct (frequency, T) pair and time, then combined with the recency term per row; far fewer
    pairs than rows. For Pareto/NBD only a term of T and t depends on the time: the customer's
    likelihood is computed once (:func:`_pareto_purchase_terms`).
    """
    numerator, pairs, denominator = _purchase_terms(model, rows, times)
    return numerator[:, pairs] / denominator


def discounted_purchases(model: "LTVModel", rows: pd.DataFrame, times, factors,
                         alive=None) -> tuple[np.ndarray, np.ndarray]:
    """``sum_k factors[k] (E[N(times[k])] - E[N(times[k-1])])`` per row (E[N(0)] = 0), and the
    expected purchases up to the last time: the increments are taken and weighted per distinct
    (frequency, T) pair, so no (times x rows) array is made. ``alive``: as in :func:`_purchase_terms`."""
    numerator, pairs, denominator = _purchase_terms(model, rows, times, alive)
    per_pair = np.asarray(factors, dtype=float) @ np.diff(numerator, axis=0, prepend=0.0)
    return per_pair[pairs] / denominator, numerator[-1][pairs] / denominator


def _purchase_terms(model: "LTVModel", rows: pd.DataFrame, times,
                    alive=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected purchases as ``numerator[:, pairs] / denominator``: the numerator per time and
    distinct (frequency, T) pair, each row's pair, and each row's recency term. ``alive``:
    Pareto/NBD's P(alive) of the rows when the caller already has it (used only there)."""
    from scipy.special import hyp2f1

    times = np.atleast_1d(np.asarray(times, dtype=float))
    if model.model == "pareto_nbd":
        return _pareto_purchase_terms(model, rows, times, alive)
    p = model.fitter.params_
    r, alpha, a, b = (float(p[k]) for k in ("r", "alpha", "a", "b"))
    x, tx, T_ = (rows[c].to_numpy(dtype=float) for c in (FREQUENCY, RECENCY, T))
    inverse = _row_codes(pd.DataFrame({"x": x, "T": T_}), ["x", "T"])
    first = _first_rows(inverse)
    px, pT = x[first], T_[first]
    t = times[:, None]
    # The same operations, in the same order, as lifetimes' formulas (the difference 1 - ... loses
    # digits for heavy buyers, so even the order of additions shows at 1e-11).
    z = t / (alpha + pT + t)
    with np.errstate(all="ignore"):
        if model.model == "bgnbd":
            _a, _b, _c = r + px, b + px, a + b + px - 1
            ln_hyp = np.log(hyp2f1(_a, _b, _c, z))
            # lifetimes' fallback where 2F1 overflows: Euler's transformation.
            ln_hyp = np.where(np.isinf(ln_hyp), np.log(hyp2f1(_c - _a, _c - _b, _c, z)) + (_c - _a - _b) * np.log(1 - z),
                              ln_hyp)
            numerator = (a + b + px - 1) / (a - 1) * (1 - np.exp(ln_hyp + (r + px) * np.log((alpha + pT) / (alpha + t + pT))))
            recency_term = np.where(x > 0, (a / (b + x - 1)) * ((alpha + T_) / (alpha + tx)) ** (r + x), 0.0)
        else:
            hyp = hyp2f1(r + px, b + px + 1, a + b + px, z)
            numerator = (a + b + px) / (a - 1) * (1 - hyp * ((alpha + pT) / (alpha + t + pT)) ** (r + px))
            recency_term = (a / (b + x)) * ((alpha + T_) / (alpha + tx)) ** (r + x)
    return numerator, inverse, 1 + recency_term


def _pareto_alive(model: "LTVModel", rows: pd.DataFrame) -> np.ndarray:
    """Pareto/NBD's P(alive | x, t_x, T) per row, from the same stable terms as the fitted
    likelihood (:meth:`_ParetoNBDLikelihood.alive`: the hypergeometric parts once per distinct
    (frequency, recency) and (frequency, T) pair, by a series with positive terms summed in blocks):
    the posterior weight of "still active" against "dropped out between the last purchase and T".
    Equals lifetimes' ``conditional_probability_alive`` (tested), also where scipy 1.16's hyp2f1
    makes lifetimes' form NaN."""
    r, alpha, s, beta = (float(model.fitter.params_[k]) for k in ("r", "alpha", "s", "beta"))
    x, tx, T_ = (rows[c].to_numpy(dtype=float) for c in (FREQUENCY, RECENCY, T))
    return _ParetoNBDLikelihood(x, tx, T_, np.ones(len(x)), 0.0, 1.0).alive(r, alpha, s, beta)


def _pareto_purchase_terms(model: "LTVModel", rows: pd.DataFrame, times: np.ndarray, alive=None):
    """Pareto/NBD's expected purchases (Fader and Hardie 2005, eq. 41) as ``numerator[:, pairs] /
    denominator``: ``P(alive) (r + x) (beta + T) / (alpha + T)`` times
    ``(1 - ((beta + T) / (beta + T + t))^(s-1)) / (s - 1)``.
    Only the last factor depends on t, and on T alone, so it is computed per time and distinct T;
    P(alive) once per row (:func:`_pareto_alive`), not once per time as lifetimes'
    ``conditional_expected_number_of_purchases_up_to_time`` does."""
    r, alpha, s, beta = (float(model.fitter.params_[k]) for k in ("r", "alpha", "s", "beta"))
    x, T_ = rows[FREQUENCY].to_numpy(dtype=float), rows[T].to_numpy(dtype=float)
    alive = _pareto_alive(model, rows) if alive is None else alive
    pairs = _row_codes(pd.DataFrame({"T": T_}), ["T"])
    pT = T_[_first_rows(pairs)]
    t = np.asarray(times, dtype=float)[:, None]
    with np.errstate(all="ignore"):
        numerator = (1 - ((beta + pT) / (beta + pT + t)) ** (s - 1)) / (s - 1)
        denominator = 1 / (alive * (r + x) * (beta + T_) / (alpha + T_))
    return numerator, pairs, denominator


#: A fitted parameter outside this range (on lifetimes' time scale, ``max(T) / 10``) has run to
#: the edge of the parameter space, e.g. Pareto/NBD's s -> 0 and beta -> infinity, or BG/NBD's
#: a -> 0, when the data show no dropout. That limit is often a fine model (BG/NBD becomes the NBD),
#: but Pareto/NBD's formulas overflow there: such a fit is checked by predicting every history.
BOUNDARY = (1e-5, 1e5)


def _at_boundary(fitter) -> bool:
    return bool(edge_parameters(fitter))


def edge_parameters(fitter) -> list[str]:
    """The parameters of a fit that ran to the edge of the parameter space (:data:`BOUNDARY`, on
    lifetimes' time scale), e.g. ``["s", "beta"]`` for a Pareto/NBD that sees no dropout."""
    values = fitter.params_.copy()
    scale = getattr(fitter, "_scale", 1.0)
    for name in ("alpha", "beta"):
        if name in values:
            values[name] *= scale
    return [name for name, v in values.items() if not BOUNDARY[0] < float(v) < BOUNDARY[1]]


def _predicts_finite(fitter, rows: pd.DataFrame) -> bool:
    """Whether a fit predicts finite purchases and P(alive) for every history in ``rows`` over
    the longest customer age (lifetimes' own formulas, which the predictions use)."""
    f, r, T_ = (rows[c].to_numpy() for c in (FREQUENCY, RECENCY, T))
    with np.errstate(all="ignore"):
        purchases = fitter.conditional_expected_number_of_purchases_up_to_time(float(T_.max()), f, r, T_)
        alive = fitter.conditional_probability_alive(f, r, T_)
    return bool(np.isfinite(np.asarray(purchases, dtype=float)).all()
                and np.isfinite(np.asarray(alive, dtype=float)).all())


def _fit_purchase(model: str, rows: pd.DataFrame, counts: np.ndarray, penalizer: float):
    """Fit; a fit that does not converge, gives invalid parameters, or runs to the boundary
    (:data:`BOUNDARY`) and then predicts a non-finite value, is retried once with a small
    penalizer, with a warning; if that fails too, one sentence."""
    name = PURCHASE_MODELS[model]
    fallback = max(penalizer, FALLBACK_PENALIZER)
    for pen in (penalizer, fallback):
        try:
            fitter = _fit_purchase_fast(model, rows, counts, pen)
        except ConvergenceError:
            problem = "did not converge"
        else:
            values = fitter.params_.to_numpy()
            if not (np.isfinite(values).all() and (values > 0).all()):
                problem = "gave invalid parameters"
            elif _at_boundary(fitter) and not _predicts_finite(fitter, rows):
                problem = "ran to the edge of its parameters, where its predictions overflow"
            else:
                return fitter, pen
        if pen == fallback:
            break
        warnings.warn(f"{name} {problem}; refitted with penalizer {FALLBACK_PENALIZER:g}. "
                      "Check the summary, or try a coarser time unit or another model.", stacklevel=3)
    raise LTVError(f"{name} could not be fitted on this data ({problem}), even with a penalizer; try another "
                   "model, a coarser time unit, or more history.")


def _inverse(hessian: np.ndarray, n: float) -> np.ndarray:
    try:
        return np.linalg.inv(hessian) / n
    except np.linalg.LinAlgError:
        return np.full(hessian.shape, np.nan)


def _standard_errors(fitter, counts: np.ndarray) -> tuple[dict, np.ndarray]:
    """Standard errors by parameter name, and the covariance of the log parameters (the Hessian
    is of the mean negative log-likelihood per customer in log parameters)."""
    ses = {k: float(v) for k, v in fitter.standard_errors_.items()}
    return ses, _inverse(np.asarray(fitter._hessian_, dtype=float), counts.sum())


def _fit_spend(data: pd.DataFrame, penalizer: float) -> SpendModel:
    if MONETARY_VALUE not in data:
        raise LTVError("The summary has no monetary_value column; pass spend=None to fit purchases only.")
    # A numpy mask: a Series mask makes pandas build a hash table of a string index (50 MB at 1M).
    buyers = data[((data[FREQUENCY] > 0) & (data[MONETARY_VALUE] > 0)).to_numpy()]
    counts = _weights(buyers)
    n_buyers = int(round(counts.sum()))
    if n_buyers < MIN_REPEAT_BUYERS:
        raise LTVError(f"Only {n_buyers} repeat buyers with positive spend; Gamma-Gamma needs at least "
                       f"{MIN_REPEAT_BUYERS}. Pass spend=None to fit purchases only.")
    corr = 0.0
    if len(buyers) > 2:
        # numpy arrays, not Series: numpy's attribute probes on a Series with a large string index
        # build pandas' hash table of the index (0.25 s at 600k buyers).
        cov = np.cov(buyers[FREQUENCY].to_numpy(), buyers[MONETARY_VALUE].to_numpy(), aweights=counts)
        with np.errstate(all="ignore"):
            corr = float(cov[0, 1] / np.sqrt(cov[0, 0] * cov[1, 1]))
    if not np.isfinite(corr):
        corr = 0.0
    if abs(corr) > SPEND_CORRELATION_WARNING:
        warnings.warn(f"Gamma-Gamma assumes spend is independent of purchase frequency, but their "
                      f"correlation is {corr:.2f}; treat the CLV's spend part with care.", stacklevel=3)
    # Average spends are nearly all distinct, so compressing the rows saves nothing here (a
    # compressed summary comes with its counts).
    rows = buyers[[FREQUENCY, MONETARY_VALUE]]
    for pen in (penalizer, max(penalizer, FALLBACK_PENALIZER)):
        try:
            # lifetimes' default tol stops on "precision loss" at the optimum on large data
            # (measured at 100k and 1M customers); 1e-6 converges to the same point.
            fitter = _fit_gamma_gamma_fast(rows, counts, pen)
            break
        except ConvergenceError:
            if pen == max(penalizer, FALLBACK_PENALIZER):
                raise LTVError("Gamma-Gamma could not be fitted, even with a penalizer; "
                               "pass spend=None and use average order values instead.") from None
            warnings.warn(f"Gamma-Gamma did not converge; refitted with penalizer {FALLBACK_PENALIZER:g}.",
                          stacklevel=3)
    names = {"p": "p", "q": "q", "v": "gamma"}
    params = {names[k]: float(v) for k, v in fitter.params_.items()}
    if params["q"] <= 1:
        raise LTVError(f"Gamma-Gamma found q = {params['q']:.3f} <= 1, for which mean spend is not "
                       "defined; pass spend=None.")
    ses = {names[k]: float(v) for k, v in fitter.standard_errors_.items()}
    ll = -float(fitter._negative_log_likelihood_) * counts.sum()
    cov = _inverse(np.asarray(fitter._hessian_, dtype=float), counts.sum())
    return SpendModel(params, ses, ll, n_buyers, corr, fitter, cov)


# ---------------------------------------------------------------------------------- uncertainty

def _group_names(summary: pd.DataFrame, groups: pd.Series | None) -> tuple[list[str], pd.Series | None]:
    """``["all customers", group, ...]`` and ``groups`` aligned to the summary's rows."""
    names = ["all customers"]
    if groups is not None:
        groups = groups.reindex(summary.index)
        if groups.isna().any():
            raise LTVError("groups must give a group for every customer of the summary.")
        names += [str(g) for g in (groups.cat.categories if isinstance(groups.dtype, pd.CategoricalDtype)
                                   else sorted(groups.unique())) if (groups == g).any()]
    return names, groups


def _with_params(model: LTVModel, purchase: dict | None = None, spend: dict | None = None) -> LTVModel:
    """The model with other purchase and/or spend parameters (a drawn or shifted set)."""
    import copy
    from dataclasses import replace

    out = model
    if purchase is not None:
        fitter = copy.copy(model.fitter)
        fitter.params_ = pd.Series({k: purchase[k] for k in model.params})
        out = replace(out, params=dict(purchase), fitter=fitter)
    if spend is not None and model.spend_model is not None:
        out = replace(out, spend_model=replace(model.spend_model, params=dict(spend)))
    return out


def combined_interval(point, *, parameters, customers, model_error,
                      level: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    """``point x exp(-/+ z sd)``: ``sd`` is the square root of the sum of the three variances of
    the log total (parameters, customers, model error; NaN counts as 0) and ``z`` the normal
    quantile for ``level``. Measured, not assumed: the coverage benchmark
    (``benchmarks/bench_intervals.py``) and the CDNOW test check that it holds."""
    from scipy import stats

    point = np.asarray(point, dtype=float)
    parts = [np.nan_to_num(np.asarray(v, dtype=float), nan=0.0) for v in (parameters, customers, model_error)]
    sd = np.sqrt(parts[0] + parts[1] + parts[2])
    z = stats.norm.ppf((1 + level) / 2)
    return point * np.exp(-z * sd), point * np.exp(z * sd)


@one_blas_thread
def intervals(model: LTVModel, summary: pd.DataFrame, *, horizon: float, groups: pd.Series | None = None,
              gross_margin: float = 1.0, annual_discount_rate: float = 0.0, draws: int = 200,
              level: float = 0.9, seed: int = 0, workers: int | None = None, model_error=None) -> pd.DataFrame:
    """Intervals for total expected purchases, revenue and CLV over ``horizon``, overall and per group.

    Three sources of uncertainty, each a variance of the log total, added up
    (:func:`combined_interval`):

    - the fitted parameters: parametric bootstrap, ``draws`` parameter sets drawn from the
      asymptotic normal distribution of the log parameters (covariance from the likelihood's
      Hessian), for the purchase and the Gamma-Gamma model independently; each set predicts
      every customer;
    - the customers: :func:`customer_spread` (the luck of individual customers, simulated from the
      model); CLV takes revenue's relative spread;
    - the model itself: ``model_error``, the :class:`~ltv_helpers.evaluation.ModelError` of
      :func:`ltv_helpers.evaluation.model_error` (how far the model's totals missed at earlier
      cut-offs of the same history), the same relative error for every group. Without it the
      interval is only as wide as the model believes, which real data rarely justify.

    Deterministic for a given ``seed``, whatever ``workers`` (threads evaluating the draws;
    default: the number of cores).

    Returns one row per group (``"all customers"`` first) with ``expected_purchases``,
    ``purchases_low``, ``purchases_high``, ``expected_revenue``, ``revenue_low``, ``revenue_high``
    (revenue: undiscounted, before margin), ``clv``, ``clv_low``, ``clv_high``, and the three parts
    as relative standard deviations (of the log total): ``purchases_sd_parameters``,
    ``purchases_sd_customers``, ``purchases_sd_model`` and the same for ``revenue_``.
    """
    import os
    from concurrent.futures import ThreadPoolExecutor

    if not 0 < level < 1:
        raise LTVError(f"level must be between 0 and 1, got {level}.")
    if draws < 20:
        raise LTVError(f"draws must be at least 20 for percentiles to mean anything, got {draws}.")
    if model.cov_log is None or not np.isfinite(model.cov_log).all():
        raise LTVError(f"{PURCHASE_MODELS[model.model]} has no usable covariance; intervals are unavailable.")
    summary = purchase_rows(summary)
    names, groups = _group_names(summary, groups)

    check_prediction_options(horizon, gross_margin, annual_discount_rate)
    # The summary is compressed once; every draw predicts on its distinct histories.
    prepared = _prepare(summary)
    codes = (None if groups is None else
             pd.Index(names[1:]).get_indexer(groups.astype(str).to_numpy()))

    def totals(m: LTVModel) -> np.ndarray:
        purchases, spend, clv = m._predicted(prepared, horizon, gross_margin, annual_discount_rate)
        # Revenue: the same purchases and spend, before margin and undiscounted; a compressed
        # summary's rows stand for several customers.
        parts = np.column_stack([purchases, purchases * spend, clv]) * weights[:, None]
        out = [parts.sum(axis=0)]
        if codes is not None:
            out += [np.bincount(codes, weights=parts[:, j], minlength=len(names) - 1) for j in range(3)]
            out = np.vstack([out[0], np.column_stack(out[1:])])
        out = np.array(out)
        return np.where(np.isfinite(out), out, np.nan)  # a draw that overflows is left out

    weights = _weights(summary)
    rng = np.random.default_rng(seed)
    point = totals(model)
    keys_p = list(model.params)
    log_p = np.log([model.params[k] for k in keys_p])
    # All parameter sets are drawn first, in a fixed order, so the result does not depend on how
    # the draws are then spread over threads.
    models_drawn = []
    for _ in range(draws):
        drawn = dict(zip(keys_p, np.exp(rng.multivariate_normal(log_p, model.cov_log))))
        spend = None
        sm = model.spend_model
        if sm is not None and sm.cov_log is not None:
            s_keys = list(sm.params)
            s_drawn = np.exp(rng.multivariate_normal(np.log([sm.params[k] for k in s_keys]), sm.cov_log))
            if s_drawn[1] > 1:  # q <= 1 has no mean spend: keep the fitted spend for this draw
                spend = dict(zip(s_keys, s_drawn))
        models_drawn.append(_with_params(model, drawn, spend))
    # scipy's special functions and numpy release the GIL: threads share the cores.
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        sims = np.array(list(pool.map(totals, models_drawn)))
    with np.errstate(all="ignore"):
        param_var = np.nanvar(np.log(np.where(sims > 0, sims, np.nan)), axis=0)  # (groups, 3); a failed draw is left out
        spread = customer_spread(model, summary, horizon=horizon, groups=groups, seed=seed)
        customer_var = np.column_stack([spread["purchases_var"] / point[:, 0] ** 2,
                                        spread["revenue_var"] / point[:, 1] ** 2])
    customer_var = np.column_stack([customer_var, customer_var[:, 1]])  # CLV: revenue's relative spread
    me = model_error
    me_var = np.array([np.nan, np.nan]) if me is None else np.array([me.purchases_var, me.revenue_var], dtype=float)
    me_var = np.append(me_var, me_var[1])
    table = {}
    for j, (col, low, high) in enumerate([("expected_purchases", "purchases_low", "purchases_high"),
                                          ("expected_revenue", "revenue_low", "revenue_high"),
                                          ("clv", "clv_low", "clv_high")]):
        lo, hi = combined_interval(point[:, j], parameters=param_var[:, j], customers=customer_var[:, j],
                                   model_error=np.full(len(names), me_var[j]), level=level)
        table.update({col: point[:, j], low: lo, high: hi})
    for j, what in enumerate(("purchases", "revenue")):
        table[f"{what}_sd_parameters"] = np.sqrt(param_var[:, j])
        table[f"{what}_sd_customers"] = np.sqrt(customer_var[:, j])
        table[f"{what}_sd_model"] = np.full(len(names), np.sqrt(me_var[j]) if np.isfinite(me_var[j]) else np.nan)
    return pd.DataFrame(table, index=pd.Index(names, name="group"))


#: Simulated futures per distinct history in :func:`customer_spread`: at most SPREAD_DRAWS, and
#: of the order of SPREAD_BUDGET in all (rounding up to powers of two and the floor of
#: SPREAD_MIN_DRAWS per history add to it). When histories x SPREAD_DRAWS exceeds the budget, a
#: history gets draws in proportion to the customers who share it (at least SPREAD_MIN_DRAWS): the
#: variance of a total over many histories is precise from few draws of each, and the histories many
#: customers share (one-time buyers) weigh most in it. 1M CDNOW-like customers (374k histories): 0.3 s
#: instead of 1.3 s with 26 draws each.
SPREAD_DRAWS = 200
SPREAD_BUDGET = 2_000_000
SPREAD_MIN_DRAWS = 4
#: Draws simulated at once (histories x draws of a block; about 50 MB of arrays).
SPREAD_BLOCK = 2_000_000


def _spread_draws(weights: np.ndarray, draws: int) -> np.ndarray:
    """Draws per history for :func:`customer_spread`: ``draws`` each when that fits the budget,
    else in proportion to the customers of each history, rounded up to a power of two (so histories
    fall into few blocks of equal draws), between SPREAD_MIN_DRAWS and ``draws``."""
    if len(weights) * draws <= SPREAD_BUDGET:
        return np.full(len(weights), draws, dtype=np.int64)
    share = SPREAD_BUDGET / max(float(weights.sum()), 1.0)
    wanted = np.maximum(share * weights, SPREAD_MIN_DRAWS)
    return np.minimum(2 ** np.ceil(np.log2(wanted)), draws).astype(np.int64)


def _future_moments(model: LTVModel, rows: pd.DataFrame, horizon: float, draws,
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Simulated first and second moments of each row's repeat purchases in (T, T + horizon]
    (``draws``: per row, or one number for all).

    A customer is alive with the model's P(alive | history). Given alive, the posterior of the
    purchase rate is Gamma(r + x, alpha + T); BG/NBD's dropout probability is Beta(a, b + x)
    (MBG/NBD: Beta(a, b + x + 1)), and the customer makes min(Poisson(rate t), Geometric(p))
    purchases; Pareto/NBD's dropout rate is Gamma(s, beta + T), the remaining lifetime
    Exponential, and the purchases Poisson(rate x min(t, lifetime)). Rows with the same number
    of draws are simulated together, fewest draws first, in row order.
    """
    p = model.params
    x, T_ = rows[FREQUENCY].to_numpy(dtype=float), rows[T].to_numpy(dtype=float)
    alive = model._alive(rows)
    draws = np.broadcast_to(np.asarray(draws, dtype=np.int64), (len(rows),))
    m1, m2 = np.empty(len(rows)), np.empty(len(rows))
    for d in np.unique(draws):
        members = np.flatnonzero(draws == d)
        block = max(SPREAD_BLOCK // int(d), 1)
        for lo in range(0, len(members), block):
            sl = members[lo:lo + block]
            shape = (int(d), len(sl))
            rate = rng.gamma(p["r"] + x[sl], 1.0 / (p["alpha"] + T_[sl]), shape)
            if model.model == "pareto_nbd":
                life = rng.exponential(1.0, shape) / rng.gamma(p["s"], 1.0 / (p["beta"] + T_[sl]), shape)
                n = rng.poisson(rate * np.minimum(horizon, life)).astype(float)
            else:
                b = p["b"] + x[sl] + (1.0 if model.model == "mbgnbd" else 0.0)
                drop = rng.beta(p["a"], b, shape)
                n = np.minimum(rng.poisson(rate * horizon), rng.geometric(np.clip(drop, 1e-12, 1.0))).astype(float)
            n *= rng.random(shape) < alive[sl]
            m1[sl], m2[sl] = n.mean(axis=0), (n * n).mean(axis=0)
    return m1, m2


@one_blas_thread
def customer_spread(model: LTVModel, summary: pd.DataFrame, *, horizon: float, groups: pd.Series | None = None,
                    draws: int = SPREAD_DRAWS, seed: int = 0) -> pd.DataFrame:
    """How much the totals over ``horizon`` vary from the luck of individual customers alone,
    with the model's parameters held at their fitted values.

    Each distinct (frequency, recency, T) history's future purchases are simulated ``draws``
    times from the model given that history (see :func:`_future_moments`; fewer, down to
    :data:`SPREAD_MIN_DRAWS`, by :func:`_spread_draws` when ``draws`` x histories exceeds
    :data:`SPREAD_BUDGET`); the variances are the unbiased ones of those draws. Revenue adds the
    Gamma-Gamma spread of order values: given the customer's posterior spend rate
    nu ~ Gamma(q + p x, gamma + x m), each order is Gamma(p, nu), so revenue R = sum of N orders
    has Var(R) = E[N] p K + E[N^2] p^2 K - E[N]^2 E[p / nu]^2 with K = E[nu^-2]
    (without a spend model, each order is the customer's own average). Customers are independent,
    so the variances add up.

    Returns one row per group (``"all customers"`` first) with the simulated mean and the variance
    of total ``purchases`` and ``revenue``: ``purchases``, ``purchases_var``, ``revenue``,
    ``revenue_var``. Deterministic for a given ``seed``.
    """
    if draws < 2:
        raise LTVError(f"draws must be at least 2 for a variance, got {draws}.")
    summary = purchase_rows(summary)
    names, groups = _group_names(summary, groups)
    data, rows, inverse = _prepare(summary)
    per_row = _spread_draws(np.bincount(inverse, weights=_weights(data)), int(draws))  # customers per history
    # Simulated in sorted order, so a history gets the same draws however the summary is laid out
    # (one row per customer or compressed).
    order = np.lexsort((rows[T].to_numpy(), rows[RECENCY].to_numpy(), rows[FREQUENCY].to_numpy()))
    with np.errstate(all="ignore"):
        moments = _future_moments(model, rows.iloc[order].reset_index(drop=True), horizon, per_row[order],
                                  np.random.default_rng(seed))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    m1, m2 = (m[rank][inverse] for m in moments)
    d = per_row[inverse].astype(float)
    var_n = (m2 - m1**2) * d / (d - 1)  # unbiased (m1^2 overstates E[N]^2 by Var(N) / d)
    mean_sq = m1**2 - var_n / d
    x, m = data[FREQUENCY].to_numpy(dtype=float), data[MONETARY_VALUE].to_numpy(dtype=float)
    if model.spend_model is not None:
        sp = model.spend_model.params
        q1, g1 = sp["q"] + sp["p"] * x, sp["gamma"] + x * m
        mean_order = sp["p"] * g1 / (q1 - 1)
        # E[nu^-2] is finite for q + p x > 2; below that the spend rate's spread is left out.
        k = np.where(q1 > 2, g1**2 / ((q1 - 1) * np.maximum(q1 - 2, 1e-12)), (g1 / (q1 - 1)) ** 2)
        revenue_var = m1 * sp["p"] * k + m2 * sp["p"] ** 2 * k - mean_sq * mean_order**2
    else:
        mean_order = m
        revenue_var = var_n * m**2
    w = _weights(data)
    parts = pd.DataFrame({"purchases": m1 * w, "purchases_var": var_n * w,
                          "revenue": m1 * mean_order * w, "revenue_var": revenue_var * w})
    out = [parts.sum()]
    if groups is not None:
        by = parts.groupby(groups.astype(str).to_numpy()).sum()
        out += [by.loc[g] for g in names[1:]]
    return pd.DataFrame(out, index=pd.Index(names, name="group"))


@one_blas_thread
def parameter_variance(model: LTVModel, summary: pd.DataFrame, *, horizon: float) -> dict:
    """Variance of log total purchases and log total revenue over ``horizon`` from the fitted
    parameters' uncertainty, by the delta method: central differences of the log totals in each log
    parameter (purchase and Gamma-Gamma), with the fits' covariances. ``{"purchases": v,
    "revenue": v}``; NaN without a usable covariance."""
    summary = purchase_rows(summary)
    weights = _weights(summary)
    prepared = _prepare(summary)  # once: every shifted model predicts on its distinct histories
    base_spend = model._spend(prepared[0])
    base_purchases = model._predicted(prepared, horizon, 1.0, 0.0, spend=base_spend)[0]

    def log_totals(m: LTVModel, kind: str) -> np.ndarray:
        # A shifted purchase parameter leaves the spend as it is, and a spend parameter the purchases.
        if kind == "purchase":
            purchases, spend = m._predicted(prepared, horizon, 1.0, 0.0, spend=base_spend)[0], base_spend
        else:
            purchases, spend = base_purchases, m._spend(prepared[0])
        with np.errstate(all="ignore"):
            return np.log([(purchases * weights).sum(), (purchases * spend * weights).sum()])

    if model.cov_log is None or not np.isfinite(model.cov_log).all():
        return {"purchases": np.nan, "revenue": np.nan}
    eps = 1e-4
    var = np.zeros(2)
    blocks = [("purchase", model.params, model.cov_log)]
    if model.spend_model is not None and model.spend_model.cov_log is not None:
        blocks.append(("spend", model.spend_model.params, model.spend_model.cov_log))
    for kind, params, cov in blocks:
        keys = list(params)
        base = np.log([params[k] for k in keys])
        grad = np.zeros((2, len(keys)))
        for j in range(len(keys)):
            step = np.zeros(len(keys))
            step[j] = eps
            up, down = (_with_params(model, **{kind: dict(zip(keys, np.exp(base + s)))}) for s in (step, -step))
            grad[:, j] = (log_totals(up, kind) - log_totals(down, kind)) / (2 * eps)
        var += np.einsum("ij,jk,ik->i", grad, cov, grad)
    return {"purchases": float(var[0]), "revenue": float(var[1])}


# ---------------------------------------------------------------------------------- ML baseline

#: Features of the ML baseline. Rates per day of tenure rather than raw tenure: the model is
#: trained on younger customers than it predicts for, and trees cannot extrapolate tenure.
ML_FEATURES = ("frequency", "monetary_value", "aov", "days_since_last", "orders_per_day",
               "revenue_per_day", "silence_share")


#: Customers the ML baseline learns from at most (a fixed random sample beyond): 27 s for the
#: training and prediction at 1M customers with all of them.
ML_MAX_TRAIN = 200_000


def _ml_features(history: pd.DataFrame) -> pd.DataFrame:
    """Features of :data:`ML_FEATURES`, rounded to 9 decimals: sums computed by parallel
    threads can differ in the last bits between runs, and a tree split must not depend on that."""
    tenure = history[T] + 1.0
    return pd.DataFrame({
        "frequency": history[FREQUENCY], "monetary_value": history[MONETARY_VALUE],
        "aov": history["aov"], "days_since_last": history["days_since_last"],
        "orders_per_day": history["orders"] / tenure, "revenue_per_day": history["revenue"] / tenure,
        "silence_share": history["days_since_last"] / tenure,
    }, index=history.index).round(9)


@dataclass
class MLBaseline:
    """Gradient boosting on RFM and tenure features, trained on one window to predict the next.

    ``fit_ml_baseline`` builds the features of every customer at ``train_end`` (their history up
    to then) and learns their purchases (distinct purchase days) and spend in the following
    ``horizon_days``. ``predict`` applies the same to the history up to a later date. It is the
    "regression on history" of the domain guides, to be compared with the probabilistic models.
    """

    purchases_model: object = field(repr=False)
    spend_model: object = field(repr=False)
    horizon_days: float
    train_end: pd.Timestamp
    n_train: int

    def __repr__(self) -> str:
        return (f"MLBaseline(gradient boosting, trained on {self.n_train:,} customers' history to "
                f"{self.train_end.date()} -> the next {self.horizon_days:g} days)")

    def predict(self, transactions: pd.DataFrame, *, observation_end) -> pd.DataFrame:
        """``expected_purchases`` and ``expected_revenue`` in the ``horizon_days`` after
        ``observation_end``, per customer seen by then."""
        from ltv_helpers.data import customer_history

        feats = _ml_features(customer_history(transactions, observation_end=observation_end))
        X = feats[list(ML_FEATURES)].to_numpy()
        # Each customer's prediction is its own sum over the trees, in their order, whatever the
        # threads (only the training needs one thread to stay the same): OpenMP on every core.
        purchases, revenue = self.purchases_model.predict(X), self.spend_model.predict(X)
        return pd.DataFrame({"expected_purchases": np.clip(purchases, 0, None),
                             "expected_revenue": np.clip(revenue, 0, None)}, index=feats.index)


def _window_purchases(transactions: pd.DataFrame, start, end) -> tuple[pd.Series, pd.Series]:
    """Per customer with orders after ``start`` up to ``end`` (whole days): purchases, counted as
    the models count them (distinct purchase days), and spend."""
    from ltv_helpers.data.parse import _end_cut

    tx = transactions
    window = tx[(tx["order_date"] >= _end_cut(pd.Timestamp(start))) & (tx["order_date"] < _end_cut(pd.Timestamp(end)))]
    days = window["order_date"].dt.normalize()
    return (days.groupby(window["customer_id"]).nunique(), window.groupby("customer_id")["amount"].sum())


def compare_ml_baseline(predictions: pd.DataFrame, ml: "MLBaseline", ml_predictions: pd.DataFrame,
                        transactions: pd.DataFrame, *, observation_end, model_name: str,
                        language: str = "en") -> tuple[pd.DataFrame, str]:
    """The purchase model's and the ML baseline's totals side by side (expected purchases and
    revenue), and a sentence setting the baseline against the model and the last window of the
    same length, with why they differ."""
    from ltv_helpers.labels import ML_COMPARISON, ML_YOUNGER, label

    end = pd.Timestamp(observation_end)
    ours, theirs = float(predictions["expected_purchases"].sum()), float(ml_predictions["expected_purchases"].sum())
    revenue = float((predictions["expected_purchases"] * predictions["expected_spend"]).sum())
    table = pd.DataFrame({"expected purchases": [ours, theirs],
                          "expected revenue": [revenue, float(ml_predictions["expected_revenue"].sum())]},
                         index=[label("{model} + Gamma-Gamma", language).format(model=model_name),
                                label("gradient boosting", language)])
    past = float(_window_purchases(transactions, end - pd.Timedelta(days=ml.horizon_days), end)[0].sum())

    def versus(a, b):
        if b <= 0:
            return "–"
        return label("{pct} more than" if a >= b else "{pct} fewer than", language).format(pct=f"{abs(a / b - 1):.0%}")

    months = round(ml.horizon_days / 30.4375)
    first = transactions.groupby("customer_id")["order_date"].min()
    recent = (first >= ml.train_end - pd.Timedelta(days=ml.horizon_days)) & (first < ml.train_end)
    young = recent.sum() >= 0.5 * (first < ml.train_end).sum()  # most had just arrived then
    younger = label(ML_YOUNGER, language).format(months=months) if young else ""
    text = label(ML_COMPARISON, language).format(ml=f"{theirs:,.0f}", vs_model=versus(theirs, ours),
                                                 model_name=model_name, vs_past=versus(theirs, past),
                                                 past=f"{past:,.0f}", months=months, younger=younger)
    return table, text


def fit_ml_baseline(transactions: pd.DataFrame, *, observation_end, horizon_days: float,
                    seed: int = 0) -> MLBaseline:
    """Train :class:`MLBaseline` on the window that ends at ``observation_end``: features at
    ``observation_end - horizon_days``, targets in the ``horizon_days`` after that.

    scikit-learn's ``HistGradientBoostingRegressor`` with a Poisson loss (counts and spend are
    non-negative and skewed), fixed ``random_state``; trained on at most :data:`ML_MAX_TRAIN`
    customers (a random sample fixed by ``seed``), as the cost grows with them and the fit does not
    gain from more.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    from ltv_helpers.data import customer_history
    from ltv_helpers.data.parse import _end_cut

    end = pd.Timestamp(observation_end)
    train_end = end - pd.Timedelta(days=horizon_days)
    if horizon_days <= 0:
        raise LTVError(f"horizon_days must be positive, got {horizon_days}.")
    tx = transactions
    if tx["order_date"].min() >= _end_cut(train_end):
        raise LTVError(f"No history before {train_end.date()} to train on; use a shorter horizon_days.")
    feats = _ml_features(customer_history(tx, observation_end=train_end))
    purchases, spend = (v.reindex(feats.index, fill_value=0) for v in _window_purchases(tx, train_end, end))
    if len(feats) < MIN_CUSTOMERS:
        raise LTVError(f"{len(feats)} customers are too few to train the ML baseline.")
    X, targets = feats[list(ML_FEATURES)].to_numpy(), [purchases.to_numpy(dtype=float), spend.to_numpy(dtype=float)]
    if len(X) > ML_MAX_TRAIN:  # a fixed random sample of customers: the trees learn as well from it
        keep = np.sort(np.random.default_rng(seed).choice(len(X), ML_MAX_TRAIN, replace=False))
        X, targets = X[keep], [t[keep] for t in targets]
    make = lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=200, learning_rate=0.05,  # noqa: E731
                                                 random_state=seed)
    # OpenMP threads sum gradients in varying order, which can flip a split between runs; one
    # thread keeps a report's numbers identical when it is rendered again.
    with threadpool_limits(1, user_api="openmp"):
        purchases_model = make().fit(X, targets[0])
        spend_model = make().fit(X, targets[1])
    return MLBaseline(purchases_model, spend_model, float(horizon_days), train_end, len(X))


# ---------------------------------------------------------------------------------- reading

def describe(model: LTVModel, language: str = "en") -> str:
    """Plain-language reading of the fitted parameters (Markdown bullet points)."""
    zh = language == "zh"
    p = model.params
    days = model.unit_days

    def span(units: float) -> str:  # a duration in the model's time unit, said in days
        return f"{units * days:,.0f} 天" if zh else f"{units * days:,.0f} days"

    mean_rate = p["r"] / p["alpha"]  # purchases per unit while active, averaged over customers
    lines = []
    if zh:
        lines.append(f"- 活跃客户平均每 {span(1 / mean_rate)}购买一次；r = {p['r']:.2f}（r 越小，客户之间的购买频率差异越大）。")
    else:
        lines.append(f"- While active, customers buy on average once every {span(1 / mean_rate)}; r = {p['r']:.2f} "
                     "measures how alike they are (the smaller, the more customers differ).")
    if model.model in ("bgnbd", "mbgnbd"):
        drop = p["a"] / (p["a"] + p["b"])
        lines.append(f"- 每次购买后平均有 {drop:.0%} 的客户流失。" if zh else
                     f"- After each purchase, {drop:.0%} of customers drop out on average.")
    else:
        # Lifetimes are exponential with a gamma(s, beta) rate: P(still active at t) = (beta / (beta + t))^s.
        median = p["beta"] * (2 ** (1 / p["s"]) - 1)
        year = (p["beta"] / (p["beta"] + 365.25 / days)) ** p["s"]
        lines.append(f"- 一半客户的活跃期超过 {span(median)}（中位数）；首次购买一年后仍有 {year:.0%} 的客户活跃。" if zh else
                     f"- Half of the customers stay active for more than {span(median)} (the median lifetime); "
                     f"{year:.0%} are still active a year after their first purchase.")
    if model.spend_model is not None:
        sp = model.spend_model.params
        mean_spend = sp["p"] * sp["gamma"] / (sp["q"] - 1)
        corr = model.spend_model.frequency_spend_correlation
        lines.append(f"- 平均每单消费约 {mean_spend:,.2f}；消费额与购买频次的相关系数为 {corr:.2f}"
                     f"（Gamma-Gamma 假设二者独立）。" if zh else
                     f"- An order is worth {mean_spend:,.2f} on average across customers; spend and "
                     f"frequency correlate at {corr:.2f} (Gamma-Gamma assumes independence).")
    return "\n".join(lines)


def save_predictions(output_dir, predictions: pd.DataFrame, model: LTVModel, **facts) -> pd.DataFrame:
    """Write ``predictions.parquet`` (one row per customer) and ``prediction.json`` (model,
    parameters, totals and any ``facts`` given) to ``output_dir``; returns the file list."""
    from pathlib import Path

    from ltv_helpers.files import write_json, write_parquet

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(predictions, out / "predictions.parquet")
    meta = {"model": model.model, "params": model.params, "standard_errors": model.standard_errors,
            "log_likelihood": model.log_likelihood, "unit_days": model.unit_days,
            "spend_params": model.spend_model.params if model.spend_model else None,
            "customers": len(predictions),
            "total_expected_purchases": float(predictions["expected_purchases"].sum()),
            "total_clv": float(predictions["clv"].sum()), **facts}
    write_json(out / "prediction.json", meta)
    return pd.DataFrame({"rows": [len(predictions), None]},
                        index=pd.Index(["predictions.parquet", "prediction.json"], name="file")).astype("Int64")


# Contractual retention lives in its own module; fit_sbg is a model like the others.
from ltv_helpers.subscription import SBGModel, fit_sbg  # noqa: E402, F401
