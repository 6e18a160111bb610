"""Contractual retention: the shifted-beta-geometric (sBG) model of Fader and Hardie (2007), "How to
project customer retention", and the subscription CLV built on it (Fader and Hardie 2010).

A subscriber churns at the end of each period with a probability ``theta`` of their own, and
``theta`` varies across subscribers as ``Beta(alpha, beta)``. Then, with ``B`` the beta function,

- survival: ``S(t) = B(alpha, beta + t) / B(alpha, beta)`` (share of a cohort still active after
  ``t`` renewal opportunities, ``S(0) = 1``);
- churn in period t: ``P(T = t) = S(t - 1) - S(t)``;
- retention rate: ``r(t) = S(t) / S(t - 1) = (beta + t - 1) / (alpha + beta + t - 1)``, which rises
  with ``t`` because the customers most likely to leave leave first;
- discounted expected residual lifetime of a customer who has made ``n - 1`` renewals, with
  discount rate ``d`` per period (the renewal now counts undiscounted):
  ``DERL = B(alpha, beta + n) / B(alpha, beta + n - 1) * 2F1(1, beta + n; alpha + beta + n; 1 / (1 + d))``.

``fit_sbg`` takes a cohort's counts of active customers per period (the first entry is the cohort
size) or a table of several cohorts (one row each, NaN where a cohort has not been observed yet)
and fits one ``(alpha, beta)`` by maximum likelihood: every customer who left in period t
contributes ``log P(T = t)``, every customer still active after the last observed period
``log S(n)``. Vectorized; nothing here loops over customers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special

from ltv_helpers.schema import LTVError


def _log_survival(alpha: float, beta: float, t) -> np.ndarray:
    t = np.asarray(t, dtype=float)
    return special.betaln(alpha, beta + t) - special.betaln(alpha, beta)


def _cohorts(survivors) -> np.ndarray:
    """Survivor counts as a 2-D float array (one row per cohort, NaN after the last observed period),
    checked: a positive cohort size, no gaps, never rising."""
    frame = survivors if isinstance(survivors, pd.DataFrame) else None
    if frame is not None:
        data = frame.to_numpy(dtype=float)
    else:
        data = np.asarray(survivors, dtype=float)
        if data.ndim == 1:
            data = data[None, :]
    if data.ndim != 2 or data.shape[1] < 2:
        raise LTVError("survivors needs a cohort size and at least one later count, e.g. [1000, 631, 468].")
    for i, row in enumerate(data):
        seen = row[~np.isnan(row)]
        if np.isnan(row[0]) or row[0] <= 0:
            raise LTVError(f"Cohort {i}: the first entry must be the cohort size (a positive count), got {row[0]}.")
        if np.isnan(row[:len(seen)]).any():
            raise LTVError(f"Cohort {i}: counts must be consecutive periods; NaN may only end a row.")
        if (np.diff(seen) > 0).any() or (seen < 0).any():
            raise LTVError(f"Cohort {i}: active customers cannot rise from one period to the next "
                           f"({', '.join(f'{v:g}' for v in seen)}); count a customer as active until they leave.")
    return data


def _neg_log_likelihood(log_params: np.ndarray, data: np.ndarray) -> float:
    alpha, beta = np.exp(log_params)
    periods = np.arange(data.shape[1])
    log_s = _log_survival(alpha, beta, periods)
    # P(T = t) = S(t-1) - S(t) = S(t-1) * (1 - r(t)), with 1 - r(t) = alpha / (alpha + beta + t - 1)
    log_churn = log_s[:-1] + np.log(alpha) - np.log(alpha + beta + periods[1:] - 1)
    total = 0.0
    for row in data:  # one term per cohort (a handful), vectorized over periods
        seen = row[~np.isnan(row)]
        n = len(seen) - 1
        lost = seen[:-1] - seen[1:]
        total += float(lost @ log_churn[:n]) + float(seen[-1] * log_s[n])
    return -total


@dataclass
class SBGModel:
    """A fitted shifted-beta-geometric retention model.

    ``params``: ``alpha`` and ``beta`` of the Beta distribution of churn probabilities;
    ``standard_errors`` from the inverse Hessian of the log-likelihood; ``log_likelihood``;
    ``cohorts``: the survivor counts it was fitted to.
    """

    params: dict
    standard_errors: dict
    log_likelihood: float
    cohorts: np.ndarray = field(repr=False)

    def __repr__(self) -> str:
        p = self.params
        return (f"SBGModel(alpha={p['alpha']:.4g}, beta={p['beta']:.4g}, cohorts={len(self.cohorts)}, "
                f"log_likelihood={self.log_likelihood:.2f})")

    def describe(self, language: str = "en", periods: int = 7) -> str:
        """The fit in a sentence: the parameters with their standard errors, the average churn
        probability of a new customer, and how retention rises over the first ``periods``."""
        a, b = self.params["alpha"], self.params["beta"]
        sa, sb = self.standard_errors["alpha"], self.standard_errors["beta"]
        first, last = self.retention([1, periods])
        if language == "zh":
            return (f"alpha = {a:.3f}（标准误 {sa:.3f}），beta = {b:.3f}（标准误 {sb:.3f}）："
                    f"新客户每期的流失概率平均为 alpha / (alpha + beta) = {a / (a + b):.0%}；"
                    f"由于最可能离开的客户先离开，留存率从第 1 期的 {first:.0%} 升到第 {periods} 期的 {last:.0%}。")
        return (f"alpha = {a:.3f} (standard error {sa:.3f}) and beta = {b:.3f} ({sb:.3f}): a new customer's churn "
                f"probability per period averages alpha / (alpha + beta) = {a / (a + b):.0%}; as the customers most "
                f"likely to leave go first, retention rises from {first:.0%} in period 1 to {last:.0%} in period "
                f"{periods}.")

    def survival(self, periods) -> np.ndarray:
        """Share of a new cohort still active after each of ``periods`` renewal opportunities."""
        return np.exp(_log_survival(self.params["alpha"], self.params["beta"], periods))

    def retention(self, periods) -> np.ndarray:
        """Retention rate in period t: share of those active after t - 1 periods still active after t."""
        t = np.asarray(periods, dtype=float)
        if (t < 1).any():
            raise LTVError("Retention rates start at period 1.")
        a, b = self.params["alpha"], self.params["beta"]
        return (b + t - 1) / (a + b + t - 1)

    def project(self, periods: int, cohort_size: float = 1.0) -> pd.DataFrame:
        """Expected active customers and retention rates for periods 0 .. ``periods`` of a cohort."""
        t = np.arange(periods + 1)
        table = pd.DataFrame({"active": cohort_size * self.survival(t),
                              "retention": np.r_[np.nan, self.retention(t[1:])]},
                             index=pd.Index(t, name="period"))
        return table

    @property
    def expected_lifetime(self) -> float:
        """Expected number of periods a new customer pays for, ``E[1 / theta] = (alpha + beta - 1) /
        (alpha - 1)``; infinite when ``alpha <= 1`` (a heavy tail of customers who hardly ever leave:
        use :meth:`derl` with a discount rate, which is always finite)."""
        a, b = self.params["alpha"], self.params["beta"]
        return (a + b - 1) / (a - 1) if a > 1 else float("inf")

    def derl(self, discount_rate: float, renewals=0) -> np.ndarray:
        """Discounted expected residual lifetime, in periods, of a customer who has renewed
        ``renewals`` times (0: a new customer at its first renewal decision), discount rate per period
        ``discount_rate``: ``B(a, b+n) / B(a, b+n-1) * 2F1(1, b+n; a+b+n; 1/(1+d))`` with ``n = renewals + 1``."""
        if discount_rate <= 0:
            raise LTVError(f"discount_rate must be above 0 for a finite value, got {discount_rate}.")
        a, b = self.params["alpha"], self.params["beta"]
        n = np.asarray(renewals, dtype=float) + 1
        ratio = np.exp(special.betaln(a, b + n) - special.betaln(a, b + n - 1))
        return ratio * special.hyp2f1(1.0, b + n, a + b + n, 1.0 / (1.0 + discount_rate))

    def clv(self, margin_per_period, discount_rate: float, renewals=0) -> np.ndarray:
        """Subscription CLV: margin per period x :meth:`derl` (the value of the payments still to come
        from a customer who has renewed ``renewals`` times). A new customer's whole value, first
        payment included, is ``margin_per_period * (1 + derl(d, 0) / (1 + d))``."""
        return np.asarray(margin_per_period, dtype=float) * self.derl(discount_rate, renewals)


def fit_sbg(survivors) -> SBGModel:
    """Fit the sBG model to survivor counts: a list ``[cohort size, active after period 1, ...]``,
    several such lists (a 2-D array, rows padded with NaN), or a cohort x period table such as
    :func:`ltv_helpers.data.retention_table` returns. One ``(alpha, beta)`` for all cohorts.

    >>> m = fit_sbg([1000, 631, 468, 382, 326, 289, 262, 241])
    >>> round(m.params["alpha"], 3), round(m.params["beta"], 3)
    (0.704, 1.182)
    """
    data = _cohorts(survivors)
    result = optimize.minimize(_neg_log_likelihood, x0=np.zeros(2), args=(data,), method="Nelder-Mead",
                               options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20_000})
    result = optimize.minimize(_neg_log_likelihood, x0=result.x, args=(data,), method="BFGS",
                               options={"gtol": 1e-9})
    if not np.isfinite(result.fun):
        raise LTVError("The sBG model could not be fitted to these counts.")
    alpha, beta = np.exp(result.x)
    # Standard errors of alpha and beta from the numerical Hessian in (alpha, beta).
    hess = _numerical_hessian(lambda p: _neg_log_likelihood(np.log(p), data), np.array([alpha, beta]))
    try:
        cov = np.linalg.inv(hess)
        se = np.sqrt(np.clip(np.diag(cov), 0, None))
    except np.linalg.LinAlgError:
        se = np.array([np.nan, np.nan])
    return SBGModel({"alpha": float(alpha), "beta": float(beta)},
                    {"alpha": float(se[0]), "beta": float(se[1])}, -float(result.fun), data)


def _numerical_hessian(f, x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """Central-difference Hessian of ``f`` at ``x`` (steps relative to each coordinate)."""
    k = len(x)
    h = rel * np.maximum(np.abs(x), 1e-8)
    out = np.empty((k, k))
    for i in range(k):
        for j in range(i, k):
            e_i, e_j = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            out[i, j] = out[j, i] = (f(x + e_i + e_j) - f(x + e_i - e_j) - f(x - e_i + e_j)
                                     + f(x - e_i - e_j)) / (4 * h[i] * h[j])
    return out
