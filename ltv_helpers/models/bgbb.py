"""BG/BB (Fader, Hardie and Shang 2010): purchases at discrete opportunities (yearly donations,
weekly renew-or-not choices), with a likelihood and gradient, P(alive) and expected purchases.

The summary has one row per customer (or per history, with ``customers``): ``frequency`` x,
the opportunities with a purchase after the first; ``recency`` t_x, the opportunity of the last
one (0 without repeat purchases); ``n``, the opportunities the customer had. While alive, a
customer buys at each opportunity with probability p (Beta(alpha, beta) across customers) and,
before each opportunity, dies with probability theta (Beta(gamma, delta) across customers).
"""

from __future__ import annotations

import numpy as np

from ltv_helpers.models.base import HistoryLikelihood, OwnFitter, PurchaseModel, history_columns, register
from ltv_helpers.models.rows import _distinct_values
from ltv_helpers.schema import LTVError


def _log_beta(a, b):
    from scipy.special import betaln

    return betaln(a, b)


class _BGBBLikelihood(HistoryLikelihood):
    """The BG/BB log-likelihood (Fader, Hardie and Shang 2010, eq. 5) per customer,
    ``ln( B(a+x, b+n-x)/B(a,b) B(g, d+n)/B(g,d) + sum_{i=0}^{n-t_x-1} B(a+x, b+t_x-x+i)/B(a,b)
    B(g+1, d+t_x+i)/B(g,d) )``, summed in log form (no underflow for long histories), with its
    analytic gradient (digammas), as the mean negative log-likelihood per customer in log
    parameters plus the penalizer. Each term is computed once per distinct (x, t_x, n) row."""

    def __init__(self, frequency, recency, T, weights, penalizer: float, scale: float = 1.0):
        super().__init__(frequency, recency, T, weights, penalizer)  # T: the opportunities n
        gaps = (self.T - self.tx).astype(int)  # the sum's terms: i = 0 .. n - t_x - 1
        self.i = np.arange(max(int(gaps.max()) if len(gaps) else 0, 1), dtype=float)[None, :]
        self.mask = self.i < gaps[:, None]

    def _terms(self, a, b, g, d):
        """The log terms per row (column 0: alive through n; then the sum's), and the derivatives of
        each in (a, b, g, d)."""
        from scipy.special import digamma

        x, tx, n = self.x[:, None], self.tx[:, None], self.T[:, None]
        base_ab, base_gd = _log_beta(a, b), _log_beta(g, d)
        d_ab = (digamma(a) - digamma(a + b), digamma(b) - digamma(a + b))
        d_gd = (digamma(g) - digamma(g + d), digamma(d) - digamma(g + d))
        k = tx + self.i  # t_x + i
        alive = _log_beta(a + x, b + n - x) - base_ab + _log_beta(g, d + n) - base_gd
        died = np.where(self.mask, _log_beta(a + x, b + k - x) - base_ab + _log_beta(g + 1, d + k) - base_gd, -np.inf)
        terms = np.concatenate([alive, died], axis=1)
        grads = [
            np.concatenate([digamma(a + x) - digamma(a + b + n), np.broadcast_to(digamma(a + x) - digamma(a + b + k),
                                                                                 died.shape)], axis=1) - d_ab[0],
            np.concatenate([digamma(b + n - x) - digamma(a + b + n), digamma(b + k - x) - digamma(a + b + k)],
                           axis=1) - d_ab[1],
            np.concatenate([digamma(g) - digamma(g + d + n), np.broadcast_to(digamma(g + 1) - digamma(g + d + 1 + k),
                                                                             died.shape)], axis=1) - d_gd[0],
            np.concatenate([digamma(d + n) - digamma(g + d + n), digamma(d + k) - digamma(g + d + 1 + k)],
                           axis=1) - d_gd[1],
        ]
        return terms, grads

    def log_likelihood(self, a, b, g, d) -> np.ndarray:
        """Per row."""
        from scipy.special import logsumexp

        with np.errstate(divide="ignore", invalid="ignore"):
            return logsumexp(self._terms(a, b, g, d)[0], axis=1)

    def __call__(self, log_params):
        from scipy.special import logsumexp

        params = np.exp(log_params)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms, grads = self._terms(*params)
            ll = logsumexp(terms, axis=1)
            share = np.exp(terms - ll[:, None])  # each term's part of the likelihood
        d_ll = np.array([(share * np.where(np.isfinite(terms), g, 0.0)).sum(axis=1) for g in grads])
        nll = -(self.w @ ll) / self.total + self.penalizer * (params @ params)
        grad = -(d_ll @ self.w) / self.total + 2 * self.penalizer * params
        return nll, grad * params


@register
class BGBB(PurchaseModel):
    """BG/BB: Beta-Bernoulli purchases at each opportunity, Beta-geometric dropout between them."""

    name, label = "bgbb", "BG/BB"
    parameters = ("alpha", "beta", "gamma", "delta")
    start = 0.0  # every parameter 1, as BTYD starts
    fitter_class = OwnFitter
    auto = False  # customers' order data are continuous in time: the report compares the others
    time_column, discrete = "n", True

    def likelihood(self, frequency, recency, T, weights, penalizer: float, scale: float):
        return _BGBBLikelihood(frequency, recency, T, weights, penalizer)

    def check(self, data) -> None:
        x, tx, n = history_columns(data)
        whole = all((v == np.round(v)).all() for v in (x, tx, n))
        if not whole or (x > tx).any() or (tx > n).any() or ((x == 0) != (tx == 0)).any():
            raise LTVError("BG/BB needs whole opportunities: 0 <= frequency <= recency <= n, and recency 0 exactly "
                           "when frequency is 0 (recency is the opportunity of the last purchase).")

    @staticmethod
    def _log_l(params, rows) -> np.ndarray:
        x, tx, n = history_columns(rows)
        return _BGBBLikelihood(x, tx, n, np.ones(len(x)), 0.0).log_likelihood(*(params[k] for k in BGBB.parameters))

    def alive(self, model, rows) -> np.ndarray:
        """P(alive at opportunity n + 1 | x, t_x, n) (eq. 11), as BTYD's ``bgbb.PAlive``."""
        a, b, g, d = (model.params[k] for k in self.parameters)
        x, _, n = history_columns(rows)
        return np.exp(_log_beta(a + x, b + n - x) - _log_beta(a, b) + _log_beta(g, d + n + 1) - _log_beta(g, d)
                      - self._log_l(model.params, rows))

    def purchase_terms(self, model, rows, times, alive=None):
        """E[purchases in opportunities n + 1 .. n + m | x, t_x, n] (eq. 13): a term of n and m,
        once per distinct n and horizon, times each row's B(a+x+1, b+n-x)/B(a,b) / L, which is
        P(alive) (eq. 11) times B(a+x+1, b+n-x)/B(a+x, b+n-x) / (B(g, d+n+1)/B(g, d)): the
        likelihood L is computed once, for P(alive), also when the caller has it already."""
        from scipy.special import gammaln

        a, b, g, d = (model.params[k] for k in self.parameters)
        x, _, n = history_columns(rows)
        pairs, un = _distinct_values(n)
        m = np.atleast_1d(np.asarray(times, dtype=float))[:, None]
        with np.errstate(all="ignore"):
            front = d / (g - 1) * np.exp(gammaln(g + d) - gammaln(1 + d))
            numerator = front * (np.exp(gammaln(1 + d + un) - gammaln(g + d + un))
                                 - np.exp(gammaln(1 + d + un + m) - gammaln(g + d + un + m)))
            alive = self.alive(model, rows) if alive is None else alive
            row = alive * np.exp(_log_beta(a + x + 1, b + n - x) - _log_beta(a + x, b + n - x)
                                 - _log_beta(g, d + n + 1) + _log_beta(g, d))
        return numerator, pairs, 1 / row

    def simulate(self, params, x, T, horizon, shape, rng):
        """Given alive at n + 1: p ~ Beta(alpha + x, beta + n - x), theta ~ Beta(gamma, delta + n + 1);
        alive for min(m, Geometric(theta)) of the next m opportunities, buying at each with p."""
        p = rng.beta(params["alpha"] + x, params["beta"] + T - x, shape)
        theta = rng.beta(params["gamma"], params["delta"] + T + 1, shape)
        m = int(np.ceil(horizon))
        alive_for = np.minimum(rng.geometric(np.clip(theta, 1e-12, 1.0)), m)
        return rng.binomial(alive_for, p).astype(float)

    def rate_line(self, params, span, zh: bool) -> str:
        p = params["alpha"] / (params["alpha"] + params["beta"])
        return (f"- 仍活跃的客户平均在 {p:.0%} 的机会中购买（每次机会的购买概率因人而异：Beta 分布）。" if zh else
                f"- While alive, a customer buys at {p:.0%} of the opportunities on average (the chance differs "
                "from customer to customer: a Beta distribution).")

    def dropout_line(self, params, span, unit_days: float, zh: bool) -> str:
        theta = params["gamma"] / (params["gamma"] + params["delta"])
        return (f"- 每次机会之前平均有 {theta:.0%} 的活跃客户流失。" if zh else
                f"- Before each opportunity, {theta:.0%} of the customers still alive drop out on average.")

