"""The Gamma-Gamma spend model (Fader and Hardie 2013): its likelihood and fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ltv_helpers.models.base import (
    FALLBACK_PENALIZER,
    MIN_REPEAT_BUYERS,
    SPEND_CORRELATION_WARNING,
    ConvergenceError,
    GammaGammaFitter,
)
from ltv_helpers.models.fitted import SpendModel
from ltv_helpers.models.optimize import _fitted, _inverse
from ltv_helpers.models.rows import _distinct_values, _weights
from ltv_helpers.schema import FREQUENCY, MONETARY_VALUE, LTVError


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


def _fit_gamma_gamma_fast(rows: pd.DataFrame, counts: np.ndarray, penalizer: float) -> GammaGammaFitter:
    """Gamma-Gamma fitted like lifetimes (objective, start 0.1, BFGS, tol 1e-6) with the fast
    likelihood; returns a ``GammaGammaFitter`` holding the result."""
    objective = _GammaGammaLikelihood(rows[FREQUENCY].to_numpy(), rows[MONETARY_VALUE].to_numpy(), counts,
                                      penalizer)
    return _fitted(GammaGammaFitter(penalizer_coef=penalizer), objective, 0.1 * np.ones(3), 1e-6,
                   ["p", "q", "v"], counts)


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
