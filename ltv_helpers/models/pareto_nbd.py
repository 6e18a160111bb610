"""Pareto/NBD (Schmittlein, Morrison and Colombo 1987): a stable likelihood, P(alive) and expected purchases."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ltv_helpers.models.base import ParetoNBDFitter, PurchaseModel, register
from ltv_helpers.models.bgnbd import OBJECTIVE_BLOCK
from ltv_helpers.models.rows import _first_rows, _row_codes
from ltv_helpers.schema import FREQUENCY, RECENCY, T

if TYPE_CHECKING:
    from ltv_helpers.models.fitted import LTVModel


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

    def add(at, k):
        terms = last[at, None] * np.cumprod((e[at, None] + k) * z[at, None] / (c1[at, None] + k), axis=1)
        G[at] += terms.sum(axis=1)
        last[at] = terms[:, -1]

    _in_blocks(add, np.flatnonzero(z > 0), 0, 8, G, last)
    return G


def _in_blocks(add, active: np.ndarray, n: int, block: int, G: np.ndarray, last: np.ndarray) -> None:
    """Run a series on from term ``n`` in blocks of terms (``add(rows, k)`` adds the terms ``k`` of
    those rows to ``G`` and keeps the block's last term in ``last``), the blocks doubling up to
    1,024 terms and never past :data:`PARETO_MAX_TERMS`, rows at a time so that memory stays
    bounded, until each row's next term no longer changes its sum (relative 1e-17)."""
    while active.size and n < PARETO_MAX_TERMS:
        block = min(block, PARETO_MAX_TERMS - n)
        k = n + np.arange(block, dtype=float)
        rows = max(1, HYP_BLOCK_CELLS // block)  # rows x terms at once
        for lo in range(0, active.size, rows):
            add(active[lo:lo + rows], k)
        n, block = n + block, min(2 * block, 1024)
        active = active[last[active] > 1e-17 * G[active]]


def _hyp_series(e: np.ndarray, c1: np.ndarray, z: np.ndarray):
    """``G = sum_n prod_{k<n} (e+k) / (c1+k) z^n`` (that is 2F1(1, e; c1; z)) and the derivatives of
    ``ln G`` in e, c1 and z, for arrays with 0 <= z < 1 and e <= c1. Every term is positive and at
    most z times the one before, so the sum is stable; each entry stops when its next term no
    longer changes it (relative 1e-17). The terms are made in blocks, as :func:`_hyp_value`'s (the
    n-th term's derivative factors, sums of 1 / (e+k) and 1 / (c1+k), as running sums), doubling
    from 8 terms, so a z near 1 costs a few steps, not thousands. Blocks rather than one term a step
    also when a few dozen terms suffice: a step's dozen small array operations each let go of the
    interpreter and take it back, which two fits in threads (a backtest's) fight over; in blocks, two
    fits at once went from 8.2 ms to 3.9 ms a call for 7,000 distinct histories (one alone: 6.1 and
    6.6 ms)."""
    G = np.ones(len(z))
    d_e, d_c, d_z = np.zeros(len(z)), np.zeros(len(z)), np.zeros(len(z))
    last, sum_e, sum_c = np.ones(len(z)), np.zeros(len(z)), np.zeros(len(z))

    def add(at, k):
        ea, ca, za = e[at, None], c1[at, None], z[at, None]
        inv_e, inv_c = 1.0 / (ea + k), 1.0 / (ca + k)
        ratio = (ea + k) * inv_c
        ratio *= za
        terms = np.cumprod(ratio, axis=1)  # terms n+1 .. n+block
        terms *= last[at, None]
        se = np.cumsum(inv_e, axis=1)
        se += sum_e[at, None]
        sc = np.cumsum(inv_c, axis=1)
        sc += sum_c[at, None]
        G[at] += terms.sum(axis=1)
        d_e[at] += np.einsum("ij,ij->i", terms, se)
        d_c[at] -= np.einsum("ij,ij->i", terms, sc)
        d_z[at] += (terms @ (k + 1)) / z[at]
        last[at], sum_e[at], sum_c[at] = terms[:, -1], se[:, -1], sc[:, -1]

    _in_blocks(add, np.flatnonzero(z > 0), 0, 8, G, last)
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
        self.wT = np.bincount(self.i_T, weights=self.w, minlength=len(self.px))  # the rows' weight per (x, T) pair

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

    def _pair_terms(self, r, alpha, s, beta):
        """Per distinct (x, t) pair (the rows' (x, T) pairs are among them): ln(alpha + t),
        ln(beta + t), 1 / (r + s + x), and the parts of the two log-likelihoods below that depend on
        the pair alone (a1: "active at T"; a2: "dropped out", without J(t_x) and 1 - rho). A fit's
        rows are ten to twenty times as many as its pairs: every log and reciprocal is made once here
        and gathered by the rows."""
        log_ta, log_tb = np.log(alpha + self.pt), np.log(beta + self.pt)
        inv_c0 = 1 / (r + s + self.px)
        with np.errstate(divide="ignore"):
            a2 = np.log(s) - np.log(r + s + self.px)
        return log_ta, log_tb, inv_c0, -(r + self.px) * log_ta - s * log_tb, a2

    def _parts(self, log_j, a1_p, a2_p, rows=slice(None)):
        """Per row of ``rows``: rho = J(T) / J(t_x), the log-likelihoods of "active at T" (a1) and
        of "dropped out between t_x and T" (a2, without the common factor), and both scaled by their
        maximum (top, e1, e2); ``a1_p``, ``a2_p``: their pair terms (:meth:`_pair_terms`)."""
        i_tx, i_T = self.i_tx[rows], self.i_T[rows]
        lj_tx = log_j.take(i_tx)
        rho = np.exp(log_j.take(i_T) - lj_tx)  # J(T) / J(t_x) <= 1; = 1 when the last purchase is at T
        with np.errstate(divide="ignore", invalid="ignore"):
            a2 = a2_p.take(i_T) + lj_tx + np.log1p(-rho)
        a1 = a1_p.take(i_T)
        top = np.maximum(a1, a2)
        return rho, top, np.exp(a1 - top), np.exp(a2 - top)

    def alive(self, r, alpha, s, beta) -> np.ndarray:
        """P(alive) per row: the posterior weight of "active at T" (the share1 of __call__)."""
        log_j = self._log_j(r, alpha, s, beta, grads=False)[0]
        _, _, e1, e2 = self._parts(log_j, *self._pair_terms(r, alpha, s, beta)[3:])
        return e1 / (e1 + e2)

    def __call__(self, log_params):
        from scipy.special import digamma, gammaln

        r, alpha, s, beta = params = np.exp(log_params)
        px, pt = self.px, self.pt
        log_j, (g_r, g_alpha, g_s, g_beta) = self._log_j(r, alpha, s, beta)
        log_ta, log_tb, inv_c0, a1_p, a2_p = self._pair_terms(r, alpha, s, beta)
        ra_p, sb_p, ds_p = (r + px) / (alpha + pt), s / (beta + pt), 1 / s - inv_c0
        # The terms of the rows' own weights alone are sums over pairs (wT: the rows' weight per pair).
        wT = self.wT
        ll = wT @ (gammaln(r + px) - gammaln(r) + r * np.log(alpha) + s * np.log(beta))
        d_r = wT @ (digamma(r + px) - digamma(r) + np.log(alpha))
        d_alpha, d_s, d_beta = self.n * r / alpha, self.n * np.log(beta), self.n * s / beta
        # Per row, in blocks of OBJECTIVE_BLOCK rows (the temporaries stay in the cache): the
        # posterior shares of "active at T" (share1) and "dropped out between t_x and T" (share2).
        for lo in range(0, len(self.w), OBJECTIVE_BLOCK):
            block = slice(lo, lo + OBJECTIVE_BLOCK)
            w, i_tx, i_T = self.w[block], self.i_tx[block], self.i_T[block]
            rho, top, e1, e2 = self._parts(log_j, a1_p, a2_p, block)
            with np.errstate(divide="ignore", invalid="ignore"):
                total = e1 + e2
                ll += w @ (top + np.log(total))
                ws2 = w * (e2 / total)
                ws1 = w - ws2
                rest = 1 / (1 - rho)
                live = ws2 > 0  # the dropout share's derivatives (0/0 where it has no weight)

                def d_log_a0(g):
                    return np.where(live, (g.take(i_tx) - rho * g.take(i_T)) * rest, 0.0)

                d_r += ws2 @ (d_log_a0(g_r) - inv_c0.take(i_T)) - ws1 @ log_ta.take(i_T)
                d_alpha += ws2 @ d_log_a0(g_alpha) - ws1 @ ra_p.take(i_T)
                d_s += ws2 @ (ds_p.take(i_T) + d_log_a0(g_s)) - ws1 @ log_tb.take(i_T)
                d_beta += ws2 @ d_log_a0(g_beta) - ws1 @ sb_p.take(i_T)
        nll = -ll / self.n + self.penalizer * (params @ params)
        grad = -np.array([d_r, d_alpha, d_s, d_beta]) / self.n + 2 * self.penalizer * params
        return nll, grad * params


def _pareto_alive(model: "LTVModel", rows: pd.DataFrame) -> np.ndarray:
    """Pareto/NBD's P(alive | x, t_x, T) per row, from the same stable terms as the fitted
    likelihood (:meth:`_ParetoNBDLikelihood.alive`: the hypergeometric parts once per distinct
    (frequency, recency) and (frequency, T) pair, by a series with positive terms summed in blocks):
    the posterior weight of "still active" against "dropped out between the last purchase and T".
    Equals lifetimes' ``conditional_probability_alive`` (tested), also where scipy 1.16's hyp2f1
    makes lifetimes' form NaN."""
    r, alpha, s, beta = (float(model.fitter.params_[k]) for k in ("r", "alpha", "s", "beta"))
    return _rows_terms(rows)[0].alive(r, alpha, s, beta)


#: The rows :func:`_rows_terms` prepared last: (a weak reference to them, their columns, the
#: likelihood's distinct pairs, the distinct T's codes). Intervals predict the same rows under
#: 100 parameter draws; finding the pairs again took 0.14 s of each draw's 0.17 s at 1M customers.
_LAST_ROWS: tuple | None = None


def _rows_terms(rows: pd.DataFrame) -> tuple[_ParetoNBDLikelihood, np.ndarray]:
    """The parameter-free parts of Pareto/NBD's predictions for ``rows``: the likelihood's distinct
    (frequency, time) pairs (:class:`_ParetoNBDLikelihood`) and the codes of the distinct T. Kept
    for the rows seen last, and reused only for the same frame with the same values (a frame
    changed in place is prepared again)."""
    import weakref

    global _LAST_ROWS
    x, tx, T_ = (rows[c].to_numpy(dtype=float) for c in (FREQUENCY, RECENCY, T))
    last = _LAST_ROWS  # one read of the global: another thread may replace it, never change it
    if last is not None and last[0]() is rows and all(np.array_equal(a, b) for a, b in zip(last[1], (x, tx, T_))):
        return last[2], last[3]
    terms = (_ParetoNBDLikelihood(x, tx, T_, np.ones(len(x)), 0.0, 1.0), _row_codes(pd.DataFrame({"T": T_}), ["T"]))
    def forget(ref):  # the rows are gone: so is what was kept for them
        global _LAST_ROWS
        if _LAST_ROWS is not None and _LAST_ROWS[0] is ref:
            _LAST_ROWS = None

    try:
        _LAST_ROWS = (weakref.ref(rows, forget), (x.copy(), tx.copy(), T_.copy()), *terms)
    except TypeError:  # not a frame that can be referred to weakly: nothing kept
        pass
    return terms


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
    pairs = _rows_terms(rows)[1]
    pT = T_[_first_rows(pairs)]
    t = np.asarray(times, dtype=float)[:, None]
    with np.errstate(all="ignore"):
        numerator = (1 - ((beta + pT) / (beta + pT + t)) ** (s - 1)) / (s - 1)
        denominator = 1 / (alive * (r + x) * (beta + T_) / (alpha + T_))
    return numerator, pairs, denominator


@register
class ParetoNBD(PurchaseModel):
    """Pareto/NBD: purchases at a Poisson rate with a Gamma(r, alpha) spread; each customer's
    lifetime is Exponential, with a Gamma(s, beta) spread of its rate."""

    name, label = "pareto_nbd", "Pareto/NBD"
    parameters, scaled = ("r", "alpha", "s", "beta"), ("alpha", "beta")
    start = 0.0  # lifetimes' mean start (all parameters 1); lifetimes runs Nelder-Mead from a random one
    fitter_class = ParetoNBDFitter

    def likelihood(self, frequency, recency, T, weights, penalizer: float, scale: float):
        return _ParetoNBDLikelihood(frequency, recency, T, weights, penalizer, scale)

    def alive(self, model, rows) -> np.ndarray:
        return _pareto_alive(model, rows)

    def purchase_terms(self, model, rows, times, alive=None):
        return _pareto_purchase_terms(model, rows, np.atleast_1d(np.asarray(times, dtype=float)), alive)

    def simulate(self, params, x, T, horizon, shape, rng):
        """Given alive, the rate is Gamma(r + x, alpha + T) and the dropout rate Gamma(s, beta + T);
        the remaining lifetime is Exponential, the purchases Poisson(rate x min(t, lifetime))."""
        rate = rng.gamma(params["r"] + x, 1.0 / (params["alpha"] + T), shape)
        life = rng.exponential(1.0, shape) / rng.gamma(params["s"], 1.0 / (params["beta"] + T), shape)
        return rng.poisson(rate * np.minimum(horizon, life)).astype(float)

    def dropout_line(self, params, span, unit_days: float, zh: bool) -> str:
        # Lifetimes are exponential with a gamma(s, beta) rate: P(still active at t) = (beta / (beta + t))^s.
        median = params["beta"] * (2 ** (1 / params["s"]) - 1)
        year = (params["beta"] / (params["beta"] + 365.25 / unit_days)) ** params["s"]
        return (f"- 一半客户的活跃期超过 {span(median)}（中位数）；首次购买一年后仍有 {year:.0%} 的客户活跃。" if zh else  # noqa: E501
                f"- Half of the customers stay active for more than {span(median)} (the median lifetime); "
                f"{year:.0%} are still active a year after their first purchase.")
