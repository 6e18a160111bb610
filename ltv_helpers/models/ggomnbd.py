"""Gamma-Gompertz/NBD (Bemmaor and Glady 2012): NBD purchases, and lifetimes whose hazard grows
(or shrinks) with the customer's age, with a likelihood and gradient, P(alive) and expected
purchases.

While alive a customer buys at a Poisson rate (Gamma(r, alpha) across customers, as in Pareto/NBD);
the lifetime is Gompertz, P(alive at t | eta) = exp(-eta (e^{bt} - 1)), with eta ~ Gamma(s, beta):
P(alive at t) = (beta / (beta + e^{bt} - 1))^s. As b -> 0 with beta / b fixed it becomes
Pareto/NBD with that beta (the model nests it). The likelihood's integral over the time of
dropout, and the expected lifetime in the forecast, are Gauss-Legendre sums.
"""

from __future__ import annotations

import numpy as np

from ltv_helpers.models.base import HistoryLikelihood, OwnFitter, PurchaseModel, history_columns, register
from ltv_helpers.models.rows import _distinct_values

#: Gauss-Legendre nodes of the integrals (the integrands are smooth on each interval).
QUADRATURE_NODES = 48
#: Distinct histories per block of the likelihood's (histories x nodes) arrays.
GGOM_BLOCK = 8_192


def _nodes(lo: np.ndarray, hi: np.ndarray, h: float) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre points and weights on each interval [lo, hi] (rows x nodes), spaced
    geometrically from lo: tau = lo + h (e^v - 1) with v uniform in Gauss-Legendre's sense. The
    integrands fall fastest just after lo (a power of alpha + tau, and a Gompertz hazard that can
    end a lifetime early), so the nodes crowd there; ``h`` (the finest spacing) does not depend on
    the parameters, so neither do the nodes."""
    u, w = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
    top = np.log1p(np.maximum(hi - lo, 0.0) / h)[:, None]
    v = top * (u[None, :] + 1) / 2
    return lo[:, None] + h * np.expm1(v), (top / 2) * w[None, :] * h * np.exp(v)


#: The finest node spacing, as a share of the longest time in the data.
NODE_SPACING = 1e-5


class _GGomNBDLikelihood(HistoryLikelihood):
    """Per customer (Bemmaor and Glady 2012, eq. 4), with E(t) = e^{bt} - 1:
    ``ll = lnG(r+x) - lnG(r) + r ln(alpha) + ln( (beta / (beta + E(T)))^s / (alpha+T)^(r+x)
    + int_{t_x}^{T} s b e^{b tau} beta^s (beta + E(tau))^-(s+1) / (alpha+tau)^(r+x) dtau )``:
    active to T, or dropped out at tau between the last purchase and T. The sum is taken in log
    form over the first term and the integral's nodes; the gradient (r, alpha, b, s, beta) is each
    term's, weighted by its share. Mean negative log-likelihood per customer in log parameters,
    plus the penalizer; time is the summary's (no rescaling: b's unit is the inverse of it)."""

    def __init__(self, frequency, recency, T, weights, penalizer: float, scale: float = 1.0):
        super().__init__(frequency, recency, T, weights, penalizer)
        self.h = NODE_SPACING * max(float(self.T.max()) if len(self.T) else 1.0, 1e-9)

    def _block(self, params, sl, grads: bool):
        from scipy.special import digamma, gammaln, logsumexp

        r, alpha, b, s, beta = params
        x, tx, T_ = self.x[sl], self.tx[sl], self.T[sl]
        tau, wq = _nodes(tx, T_, self.h)
        e_T, e_tau = np.expm1(b * T_), np.expm1(b * tau)
        rx = (r + x)[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            active = (s * np.log(beta) - s * np.log(beta + e_T) - (r + x) * np.log(alpha + T_))[:, None]
            died = (np.log(wq) + np.log(s) + np.log(b) + b * tau + s * np.log(beta)
                    - (s + 1) * np.log(beta + e_tau) - rx * np.log(alpha + tau))
        terms = np.concatenate([active, died], axis=1)
        const = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
        with np.errstate(divide="ignore", invalid="ignore"):
            mix = logsumexp(terms, axis=1)
        ll = const + mix
        if not grads:  # with P(alive): the posterior weight of "active at T" (1 up to rounding at t_x = T)
            return ll, np.minimum(np.exp(active[:, 0] - mix), 1.0)
        share = np.exp(terms - mix[:, None])
        parts = {
            "r": (-np.log(alpha + T_), -np.log(alpha + tau)),
            "alpha": (-(r + x) / (alpha + T_), -rx / (alpha + tau)),
            "b": (-s * T_ * (e_T + 1) / (beta + e_T), 1 / b + tau - (s + 1) * tau * (e_tau + 1) / (beta + e_tau)),
            "s": (np.log(beta) - np.log(beta + e_T), 1 / s + np.log(beta) - np.log(beta + e_tau)),
            "beta": (s / beta - s / (beta + e_T), s / beta - (s + 1) / (beta + e_tau)),
        }
        d = {k: share[:, 0] * first + (share[:, 1:] * np.where(np.isfinite(died), rest, 0.0)).sum(axis=1)
             for k, (first, rest) in parts.items()}
        d["r"] += digamma(r + x) - digamma(r) + np.log(alpha)
        d["alpha"] += r / alpha
        return ll, np.array([d[k] for k in GGomNBD.parameters])

    def log_likelihood(self, params) -> np.ndarray:
        """Per row."""
        return self._per_row(params, 0)

    def alive(self, params) -> np.ndarray:
        """P(alive at T) per row: the share of "active at T" in the likelihood."""
        return self._per_row(params, 1)

    def _per_row(self, params, which: int) -> np.ndarray:
        return np.concatenate([self._block(params, slice(lo, lo + GGOM_BLOCK), False)[which]
                               for lo in range(0, len(self.x), GGOM_BLOCK)])

    def __call__(self, log_params):
        params = np.exp(log_params)
        total, grad = 0.0, np.zeros(len(params))
        for lo in range(0, len(self.x), GGOM_BLOCK):
            sl = slice(lo, lo + GGOM_BLOCK)
            ll, d = self._block(params, sl, True)
            total += self.w[sl] @ ll
            grad += d @ self.w[sl]
        nll = -total / self.total + self.penalizer * (params @ params)
        return nll, (-grad / self.total + 2 * self.penalizer * params) * params


@register
class GGomNBD(PurchaseModel):
    """Gamma-Gompertz/NBD: Pareto/NBD's purchases with Gompertz lifetimes (a hazard that changes
    with age: b > 0 rises, b -> 0 is Pareto/NBD's constant hazard)."""

    name, label = "ggomnbd", "GGompertz/NBD"
    parameters = ("r", "alpha", "b", "s", "beta")
    fitter_class = OwnFitter
    auto = False  # its integrals cost several times the others' fits: chosen by name

    def likelihood(self, frequency, recency, T, weights, penalizer: float, scale: float):
        return _GGomNBDLikelihood(frequency, recency, T, weights, penalizer)

    def x0(self, rows, counts) -> np.ndarray:
        """From Pareto/NBD's fit on the same rows, which it nests: r, alpha and s as there, a small
        b (a tenth of the inverse of the longest T) and beta = Pareto's beta x b, the same
        dropout as Pareto/NBD to first order. BFGS then leaves the Pareto limit where the data say so."""
        from ltv_helpers.models.fitting import _fit_purchase_fast

        pareto = _fit_purchase_fast("pareto_nbd", rows, counts, 0.0).params_
        b = 0.1 / max(float(rows["T"].max()), 1.0)
        return np.log([pareto["r"], pareto["alpha"], b, pareto["s"], pareto["beta"] * b])

    def alive(self, model, rows) -> np.ndarray:
        """The posterior weight of "active at T" in the likelihood."""
        x, tx, T_ = history_columns(rows)
        return _GGomNBDLikelihood(x, tx, T_, np.ones(len(x)), 0.0).alive(
            tuple(float(model.params[k]) for k in self.parameters))

    def purchase_terms(self, model, rows, times, alive=None):
        """P(alive) (r + x) / (alpha + T) x the expected time alive in (T, T + t]: given alive at
        T, eta ~ Gamma(s, beta + E(T)) and P(alive at T + u) = (b* / (b* + e^{bT} (e^{bu} - 1)))^s
        with b* = beta + E(T); its integral over u in [0, t] once per distinct T and time."""
        r, alpha, b, s, beta = (float(model.params[k]) for k in self.parameters)
        x, _, T_ = history_columns(rows)
        alive = self.alive(model, rows) if alive is None else alive
        pairs, uT = _distinct_values(T_)
        times = np.atleast_1d(np.asarray(times, dtype=float))
        star = beta + np.expm1(b * uT)
        numerator = np.empty((len(times), len(uT)))
        for i, t in enumerate(times):
            u, wq = _nodes(np.zeros(len(uT)), np.full(len(uT), t), NODE_SPACING * max(float(t), 1e-9))
            with np.errstate(all="ignore"):
                survive = (star[:, None] / (star[:, None] + np.exp(b * uT)[:, None] * np.expm1(b * u))) ** s
            numerator[i] = (wq * survive).sum(axis=1)
        with np.errstate(divide="ignore"):
            denominator = 1 / (alive * (r + x) / (alpha + T_))
        return numerator, pairs, denominator

    def simulate(self, params, x, T, horizon, shape, rng):
        """Given alive at T: rate ~ Gamma(r + x, alpha + T), eta ~ Gamma(s, beta + E(T)); the
        remaining lifetime L solves eta e^{bT} (e^{bL} - 1) = Exponential(1); purchases
        Poisson(rate x min(t, L))."""
        b = params["b"]
        rate = rng.gamma(params["r"] + x, 1.0 / (params["alpha"] + T), shape)
        eta = rng.gamma(params["s"], 1.0 / (params["beta"] + np.expm1(b * T)), shape)
        life = np.log1p(rng.exponential(1.0, shape) / (eta * np.exp(b * T))) / b
        return rng.poisson(rate * np.minimum(horizon, life)).astype(float)

    def dropout_line(self, params, span, unit_days: float, zh: bool) -> str:
        b, s, beta = params["b"], params["s"], params["beta"]
        median = np.log1p(beta * (2 ** (1 / s) - 1)) / b
        year = (beta / (beta + np.expm1(b * 365.25 / unit_days))) ** s
        return (f"- 一半客户的活跃期超过 {span(median)}（中位数）；首次购买一年后仍有 {year:.0%} 的客户活跃"
                f"（b = {b:.2g}：b 越大，流失风险随客户年龄上升越快）。" if zh else
                f"- Half of the customers stay active for more than {span(median)} (the median lifetime); "
                f"{year:.0%} are still active a year after their first purchase (b = {b:.2g}: the larger, the faster "
                "the risk of leaving grows with the customer's age).")
