"""BG/NBD (Fader, Hardie and Lee 2005): its likelihood with an analytic gradient."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_helpers.models.base import (
    BetaGeoFitter,
    PurchaseModel,
    history_columns,
    register,
)
from ltv_helpers.models.rows import _distinct_values, _first_rows, _row_codes

#: Rows per block of the purchase likelihoods' per-row work: the temporaries stay small (a few
#: hundred kB) whatever the number of customers, at the speed of whole-array operations.
OBJECTIVE_BLOCK = 32_768


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


@register
class BGNBD(PurchaseModel):
    """BG/NBD: purchases at a Poisson rate with a Gamma(r, alpha) spread over customers; after each
    repeat purchase a customer drops out with a probability that has a Beta(a, b) spread."""

    name, label = "bgnbd", "BG/NBD"
    parameters, scaled = ("r", "alpha", "a", "b"), ("alpha",)
    fitter_class = BetaGeoFitter
    likelihood_class = _BGNBDLikelihood

    def likelihood(self, frequency, recency, T, weights, penalizer: float, scale: float):
        return self.likelihood_class(frequency, recency, T, weights, penalizer, scale)

    def alive(self, model, rows) -> np.ndarray:
        """lifetimes' closed form (``conditional_probability_alive``)."""
        with np.errstate(all="ignore"):
            return np.asarray(model.fitter.conditional_probability_alive(*history_columns(rows)), dtype=float)

    def purchase_terms(self, model, rows, times, alive=None):
        """The expensive part (a Gauss hypergeometric function of r + x, b + x, a + b + x and
        t / (alpha + T + t)) depends on (x, T) and t only: once per distinct (frequency, T) pair and
        time, combined with the recency term per row."""
        from scipy.special import hyp2f1

        r, alpha, a, b = (float(model.params[k]) for k in self.parameters)
        x, tx, T_ = history_columns(rows)
        inverse = _row_codes(pd.DataFrame({"x": x, "T": T_}), ["x", "T"])
        first = _first_rows(inverse)
        px, pT = x[first], T_[first]
        t = np.atleast_1d(np.asarray(times, dtype=float))[:, None]
        # The same operations, in the same order, as lifetimes' formulas (the difference 1 - ... loses
        # digits for heavy buyers, so even the order of additions shows at 1e-11).
        z = t / (alpha + pT + t)
        with np.errstate(all="ignore"):
            numerator, recency_term = self._terms(r, alpha, a, b, x, tx, T_, px, pT, t, z, hyp2f1)
        return numerator, inverse, 1 + recency_term

    @staticmethod
    def _terms(r, alpha, a, b, x, tx, T_, px, pT, t, z, hyp2f1):
        _a, _b, _c = r + px, b + px, a + b + px - 1
        ln_hyp = np.log(hyp2f1(_a, _b, _c, z))
        # lifetimes' fallback where 2F1 overflows: Euler's transformation.
        ln_hyp = np.where(np.isinf(ln_hyp), np.log(hyp2f1(_c - _a, _c - _b, _c, z)) + (_c - _a - _b) * np.log(1 - z),
                          ln_hyp)
        numerator = (a + b + px - 1) / (a - 1) * (
            1 - np.exp(ln_hyp + (r + px) * np.log((alpha + pT) / (alpha + t + pT))))
        recency_term = np.where(x > 0, (a / (b + x - 1)) * ((alpha + T_) / (alpha + tx)) ** (r + x), 0.0)
        return numerator, recency_term

    #: Added to b + x in the posterior of the dropout probability: Beta(a, b + x) here.
    posterior_offset = 0.0

    def simulate(self, params, x, T, horizon, shape, rng):
        """Given alive, the rate is Gamma(r + x, alpha + T) and the dropout probability
        Beta(a, b + x); the customer makes min(Poisson(rate t), Geometric(p)) purchases."""
        rate = rng.gamma(params["r"] + x, 1.0 / (params["alpha"] + T), shape)
        drop = rng.beta(params["a"], params["b"] + x + self.posterior_offset, shape)
        return np.minimum(rng.poisson(rate * horizon), rng.geometric(np.clip(drop, 1e-12, 1.0))).astype(float)

    def dropout_line(self, params, span, unit_days: float, zh: bool) -> str:
        drop = params["a"] / (params["a"] + params["b"])
        return (f"- 每次购买后平均有 {drop:.0%} 的客户流失。" if zh else
                f"- After each purchase, {drop:.0%} of customers drop out on average.")
