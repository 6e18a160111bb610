"""The fitted objects: :class:`LTVModel` (a purchase model and its spend model) and :class:`SpendModel`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers.models.base import (
    DAYS_PER_YEAR,
    GammaGammaFitter,
    PurchaseModel,
    one_blas_thread,
    purchase_model,
)
from ltv_helpers.models.clv import discounted_purchases
from ltv_helpers.models.rows import _prepare, check_prediction_options, purchase_rows
from ltv_helpers.schema import FREQUENCY, MONETARY_VALUE, RECENCY, LTVError
from ltv_helpers.schema import T as T_COLUMN


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
    rescaled time; models fitted on the same summary compare directly). ``n_customers``,
    ``n_distinct``: customers and distinct (frequency, recency, T) rows the fit ran on.
    ``unit_days``: days per time unit.
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
        if self.spec.discrete:
            unit = "opportunities" + ("" if self.unit_days == 1 else f" of {self.unit_days:g} days")
        out = (f"LTVModel({self.spec.label}: {p}; log-likelihood "
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

    @property
    def spec(self) -> PurchaseModel:
        """The registered purchase model this fit is of (its formulas)."""
        return purchase_model(self.model)

    def _alive(self, rows: pd.DataFrame) -> np.ndarray:
        """P(alive) of each row of a frame with frequency, recency and T."""
        return self.spec.alive(self, rows)

    def p_alive(self, frequency, recency, T) -> np.ndarray:
        """P(alive | x, t_x, T) for arrays of histories (x repeat purchases, the last at t_x, over
        T time units since the first), of any shape."""
        rows, shape = _histories(frequency, recency, T)
        self.spec.check(rows)
        return self._alive(rows).reshape(shape)

    def expected_purchases(self, t: float, frequency, recency, T) -> np.ndarray:
        """E[repeat purchases in (T, T + t] | x, t_x, T] for arrays of histories, of any shape."""
        rows, shape = _histories(frequency, recency, T)
        self.spec.check(rows)
        self.spec.check_horizon(t)
        numerator, pairs, denominator = self.spec.purchase_terms(self, rows, [float(t)])
        return (numerator[0, pairs] / denominator).reshape(shape)

    def new_customer_purchases(self, times) -> np.ndarray:
        """E[repeat purchases in (0, t]] of a customer who made a first purchase at time 0, for each
        time of ``times`` (the papers' unconditional expectation; lifetimes'
        ``expected_number_of_purchases_up_to_time`` where lifetimes has the model)."""
        return self.spec.new_customer_purchases(self, times)

    def new_customer_value(self, *, horizon: float, gross_margin: float = 1.0,
                           annual_discount_rate: float = 0.0) -> pd.Series:
        """What a customer who has just made a first purchase is worth over the next ``horizon``
        time units: ``expected_purchases`` (repeat purchases), ``expected_spend`` (the spend
        model's population mean per order; missing without a spend model) and ``clv`` (their value,
        discounted and on margin as in :meth:`predict`; the first purchase is not in it). The value
        of an acquired customer the channel economics weigh against what acquiring one costs."""
        history = pd.DataFrame({FREQUENCY: [0.0], RECENCY: [0.0], self.spec.time_column: [0.0]})
        if self.spend_model is not None:
            history[MONETARY_VALUE] = 0.0  # no repeat purchase: the population's mean order
        row = self.predict(history, horizon=horizon, gross_margin=gross_margin,
                           annual_discount_rate=annual_discount_rate).iloc[0]
        return row[["expected_purchases", "expected_spend", "clv"]].rename(None)

    def edge_parameters(self) -> list[str]:
        """The parameters of the fit that ran to the edge of the parameter space
        (:func:`~ltv_helpers.models.optimize.edge_parameters`)."""
        from ltv_helpers.models.optimize import edge_parameters

        return edge_parameters(self.fitter, self.spec.scaled)

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
        self.spec.check_horizon(horizon)
        summary = purchase_rows(summary)
        prepared = _prepare(summary, self.spec.time_column)
        self.spec.check(prepared[0])
        alive = self._alive(prepared[1])
        purchases, spend, clv = self._predicted(prepared, horizon, gross_margin, annual_discount_rate, alive)
        out = pd.DataFrame({"expected_purchases": purchases, "p_alive": alive[prepared[2]],
                            "expected_spend": spend, "clv": clv}, index=summary.index)
        unknown_spend = self.spend_model is None and prepared[0].attrs.get("no_monetary_value")
        checked = out.iloc[:, :2] if unknown_spend else out  # spend and CLV are NaN by design then
        bad = ~np.isfinite(checked.to_numpy()).all(axis=1)
        if bad.any():  # a count, never a customer's id: messages reach logs and batch tables
            raise LTVError(f"{self.spec.label} gave no finite prediction for "
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

    def _predicted_rows(self, prepared, horizon: float, annual_discount_rate: float, alive=None):
        """Discounted and plain expected purchases over ``horizon`` of each distinct row of a
        :func:`_prepare` d summary (what :meth:`_predicted` gives every customer of the row)."""
        step = DAYS_PER_YEAR / 12 / self.unit_days
        if self.spec.discrete:  # whole opportunities: discounted at each
            step = 1.0
        if annual_discount_rate == 0:  # undiscounted: one step gives the same sum
            step = horizon
        ends = np.minimum(np.arange(1, int(np.ceil(horizon / step - 1e-9)) + 1) * step, horizon)
        years = ends * self.unit_days / DAYS_PER_YEAR
        return discounted_purchases(self, prepared[1], ends, (1 + annual_discount_rate) ** -years, alive)

    def _predicted(self, prepared, horizon: float, gross_margin: float, annual_discount_rate: float, alive=None,
                   spend=None):
        """Expected purchases, expected spend and CLV per customer of a :func:`_prepare` d summary
        (the arithmetic of :meth:`predict`, without its checks and table); ``alive``: P(alive) of
        the distinct rows when already known (Pareto/NBD's purchases are built on it); ``spend``:
        the expected spend per customer when already known (:meth:`_spend`)."""
        data, rows, inverse = prepared
        discounted, purchases = self._predicted_rows(prepared, horizon, annual_discount_rate, alive)
        spend = self._spend(data) if spend is None else spend
        clv = np.clip(gross_margin * discounted[inverse] * spend, 0.0, None)  # rounding can leave -1e-16
        return purchases[inverse], spend, clv


#: Version tag of the model JSON files written by :meth:`LTVModel.save`.
MODEL_FORMAT = "ltv-model/1"


def _matrix(values) -> list | None:
    return None if values is None else np.asarray(values, dtype=float).tolist()


def _histories(frequency, recency, T) -> tuple[pd.DataFrame, tuple]:
    """Arrays of histories as the rows the models' formulas take, and their common shape."""
    f, r, t = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (frequency, recency, T)))
    return pd.DataFrame({FREQUENCY: f.ravel(), RECENCY: r.ravel(), T_COLUMN: t.ravel()}), f.shape
