"""Intervals: the parameters' uncertainty, the luck of customers, and the model error, combined."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ltv_helpers.memory import release_memory
from ltv_helpers.models.base import one_blas_thread
from ltv_helpers.models.covariates import CovariateModel
from ltv_helpers.models.rows import (
    _prepare,
    _weights,
    check_prediction_options,
    purchase_rows,
)
from ltv_helpers.schema import FREQUENCY, MONETARY_VALUE, RECENCY, LTVError, T

if TYPE_CHECKING:
    from ltv_helpers.models.fitted import LTVModel


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

    ``model`` may be a :class:`~ltv_helpers.models.covariates.CovariateModel`: each draw then takes
    the log parameters and the coefficients together, and every covariate group is predicted with
    its own parameters.

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
    if isinstance(model, CovariateModel):
        return _covariate_intervals(model, summary, horizon=horizon, groups=groups, gross_margin=gross_margin,
                                    annual_discount_rate=annual_discount_rate, draws=draws, level=level, seed=seed,
                                    workers=workers, model_error=model_error)
    if model.cov_log is None or not np.isfinite(model.cov_log).all():
        raise LTVError(f"{model.spec.label} has no usable covariance; intervals are unavailable.")
    summary = purchase_rows(summary)
    names, groups = _group_names(summary, groups)

    check_prediction_options(horizon, gross_margin, annual_discount_rate)
    model.spec.check_horizon(horizon)
    # The summary is compressed once; every draw predicts on its distinct histories.
    prepared = _prepare(summary, model.spec.time_column)
    row_totals = _RowTotals(prepared, _weights(summary), names, groups)

    def totals(m: LTVModel) -> np.ndarray:
        out = row_totals.of(m, horizon, gross_margin, annual_discount_rate)
        return np.where(np.isfinite(out), out, np.nan)  # a draw that overflows is left out

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
        spread = customer_spread(model, summary, horizon=horizon, groups=groups, seed=seed)
    release_memory()  # the draws' freed arrays, which the threads' heaps would keep
    return _interval_table(names, point, sims, spread, model_error, level)


def _group_codes(names: list[str], groups: pd.Series) -> np.ndarray:
    """Each customer's position in ``names`` by the text of its group (-1: none of them), as
    ``Index(names).get_indexer(groups.astype(str))`` gives it, looked up once per category: a
    million Python strings of the text took 146 MB at 1M customers."""
    cat = groups if isinstance(groups.dtype, pd.CategoricalDtype) else groups.astype("category")
    found = pd.Index(names).get_indexer(cat.cat.categories.astype(str))
    codes = cat.cat.codes.to_numpy()
    return np.where(codes >= 0, found[np.maximum(codes, 0)] if len(found) else -1, -1).astype(np.intp)


class _RowTotals:
    """Totals over the customers of a :func:`_prepare` d summary, all of them and then each group
    of ``names[1:]`` (``groups``: each customer's, as :func:`_group_names` gives them; a customer
    whose group is not among the names is in the whole only), made from the predictions of its
    distinct rows: the customers' weights are summed per row and group once, their spend-weighted
    sums once per spend, and a model's totals are then dot products over the distinct rows, not
    sums over every customer (54 ms of a draw's 94 ms at 1M customers)."""

    def __init__(self, prepared, weights: np.ndarray, names: list[str] | None = None,
                 groups: pd.Series | None = None):
        inverse = prepared[2]
        self.prepared, self.n_rows = prepared, len(prepared[1])
        self.n_names = 1 if groups is None else len(names)
        self.weights = np.asarray(weights, dtype=float)
        self.inverse = inverse
        self.grouped = None
        if self.n_names > 1:
            codes = _group_codes(names[1:], groups)
            inside = codes >= 0
            self.grouped = (inside, codes[inside] * self.n_rows + inverse[inside])
        self.customers = self.per_row(self.weights)

    def per_row(self, values: np.ndarray) -> np.ndarray:
        """(n_names, distinct rows): the sum of ``values`` (one per customer) per row, over all
        customers and then within each group."""
        rows = self.n_rows
        out = np.empty((self.n_names, rows))
        out[0] = np.bincount(self.inverse, weights=values, minlength=rows)
        if self.grouped is not None:
            inside, keys = self.grouped
            out[1:] = np.bincount(keys, weights=values[inside], minlength=(self.n_names - 1) * rows).reshape(-1, rows)
        return out

    def of(self, m: LTVModel, horizon: float, gross_margin: float, annual_discount_rate: float) -> np.ndarray:
        """(n_names, 3): total purchases, revenue (the same purchases and spend, before margin and
        undiscounted) and CLV under model ``m``."""
        discounted, purchases = m._predicted_rows(self.prepared, horizon, annual_discount_rate)
        spent = self.per_row(self.weights * m._spend(self.prepared[0]))
        return np.column_stack([self.customers @ purchases, spent @ purchases, gross_margin * (spent @ discounted)])


def _interval_table(names: list[str], point: np.ndarray, sims: np.ndarray, spread: pd.DataFrame, model_error,
                    level: float) -> pd.DataFrame:
    """:func:`intervals`' table from the point totals, the draws' totals (draws x groups x 3) and
    the customers' spread of each group (:func:`customer_spread`'s columns)."""
    with np.errstate(all="ignore"):
        # (groups, 3); a failed draw is left out
        param_var = np.nanvar(np.log(np.where(sims > 0, sims, np.nan)), axis=0)
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

    A customer is alive with the model's P(alive | history); given alive, the model simulates
    the purchases from its posterior (:meth:`PurchaseModel.simulate`: e.g. BG/NBD's
    min(Poisson(rate t), Geometric(p))). Rows with the same number of draws are simulated
    together, fewest draws first, in row order.
    """
    p, spec = model.params, model.spec
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
            n = spec.simulate(p, x[sl], T_[sl], horizon, shape, rng)
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
    model.spec.check_horizon(horizon)
    summary = purchase_rows(summary)
    names, groups = _group_names(summary, groups)
    data, rows, inverse = _prepare(summary, model.spec.time_column)
    per_row = _spread_draws(np.bincount(inverse, weights=_weights(data)), int(draws))  # customers per history
    # Simulated in sorted order, so a history gets the same draws however the summary is laid out
    # (one row per customer or compressed).
    order = np.lexsort((rows[T].to_numpy(), rows[RECENCY].to_numpy(), rows[FREQUENCY].to_numpy()))
    with np.errstate(all="ignore"):
        moments = _future_moments(model, rows.iloc[order].reset_index(drop=True), horizon, per_row[order],
                                  np.random.default_rng(seed))
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    # Per distinct history: the draws' moments; per customer: what the spend makes of them. The
    # totals are dot products of the two, the customers' parts summed per history and group once
    # (_RowTotals), not a table of every customer grouped by name (0.35 s at 1M customers).
    m1, m2 = (m[rank] for m in moments)
    d = per_row.astype(float)
    var_n = (m2 - m1**2) * d / (d - 1)  # unbiased (m1^2 overstates E[N]^2 by Var(N) / d)
    mean_sq = m1**2 - var_n / d
    by = _RowTotals((data, rows, inverse), _weights(data), names, groups)
    w = by.weights
    x, m = data[FREQUENCY].to_numpy(dtype=float), data[MONETARY_VALUE].to_numpy(dtype=float)
    if model.spend_model is not None:
        sp = model.spend_model.params
        q1, g1 = sp["q"] + sp["p"] * x, sp["gamma"] + x * m
        mean_order = sp["p"] * g1 / (q1 - 1)
        # E[nu^-2] is finite for q + p x > 2; below that the spend rate's spread is left out.
        k = np.where(q1 > 2, g1**2 / ((q1 - 1) * np.maximum(q1 - 2, 1e-12)), (g1 / (q1 - 1)) ** 2)
        # Var(R) = E[N] p K + E[N^2] p^2 K - E[N]^2 E[p / nu]^2, per customer
        revenue_var = (by.per_row(w * sp["p"] * k) @ m1 + by.per_row(w * sp["p"] ** 2 * k) @ m2
                       - by.per_row(w * mean_order**2) @ mean_sq)
    else:
        mean_order = m
        revenue_var = by.per_row(w * m**2) @ var_n
    out = pd.DataFrame({"purchases": by.customers @ m1, "purchases_var": by.customers @ var_n,
                        "revenue": by.per_row(w * mean_order) @ m1, "revenue_var": revenue_var},
                       index=pd.Index(names, name="group"))
    return out


@one_blas_thread
def parameter_variance(model: LTVModel, summary: pd.DataFrame, *, horizon: float) -> dict:
    """Variance of log total purchases and log total revenue over ``horizon`` from the fitted
    parameters' uncertainty, by the delta method: central differences of the log totals in each log
    parameter (purchase and Gamma-Gamma), with the fits' covariances. ``{"purchases": v,
    "revenue": v}``; NaN without a usable covariance."""
    model.spec.check_horizon(horizon)
    summary = purchase_rows(summary)
    prepared = _prepare(summary, model.spec.time_column)  # once: every shifted model predicts on its distinct histories
    # Totals as dot products over the distinct rows (_RowTotals): the customers' weights and
    # spend-weighted weights per row.
    row_totals = _RowTotals(prepared, _weights(summary))

    def spent(m: LTVModel) -> np.ndarray:
        return row_totals.per_row(row_totals.weights * m._spend(prepared[0]))[0]

    customers, base_spent = row_totals.customers[0], spent(model)
    base_purchases = model._predicted_rows(prepared, horizon, 0.0)[1]

    def log_totals(m: LTVModel, kind: str) -> np.ndarray:
        # A shifted purchase parameter leaves the spend as it is, and a spend parameter the purchases.
        if kind == "purchase":
            purchases, spent_now = m._predicted_rows(prepared, horizon, 0.0)[1], base_spent
        else:
            purchases, spent_now = base_purchases, spent(m)
        with np.errstate(all="ignore"):
            return np.log([customers @ purchases, spent_now @ purchases])

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


def _covariate_intervals(model: CovariateModel, summary: pd.DataFrame, *, horizon: float, groups, gross_margin: float,
                         annual_discount_rate: float, draws: int, level: float, seed: int, workers, model_error):
    """:func:`intervals` of a :class:`~ltv_helpers.models.covariates.CovariateModel`: each draw
    takes the log parameters and the coefficients together (their covariance from the fit) and
    the spend parameters, and predicts every covariate group with its parameters; the customers'
    spread adds up over the groups (customers are independent)."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from ltv_helpers.models.covariates import _groups

    if model.cov is None or not np.isfinite(model.cov).all():
        raise LTVError(f"{model.base.spec.label} with covariates has no usable covariance; intervals are unavailable.")
    check_prediction_options(horizon, gross_margin, annual_discount_rate)
    summary = purchase_rows(summary)
    names, groups = _group_names(summary, groups)
    codes, combos = _groups(model.design(summary))
    parts = []
    for g, combo in enumerate(combos):
        rows = summary[codes == g]
        parts.append((combo, rows, _RowTotals(_prepare(rows, model.base.spec.time_column), _weights(rows), names,
                                              None if groups is None else groups[codes == g])))

    def totals(draw) -> np.ndarray:
        theta, spend = draw
        total = sum(row_totals.of(_with_params(model.base, model.group_params(combo, theta), spend), horizon,
                                  gross_margin, annual_discount_rate)
                    for combo, _, row_totals in parts)
        return np.where(np.isfinite(total), total, np.nan)

    rng = np.random.default_rng(seed)
    point = totals((model.theta, None))
    sm = model.base.spend_model
    drawn = []
    for _ in range(draws):  # drawn first, in a fixed order: the result does not depend on the threads
        theta = rng.multivariate_normal(model.theta, model.cov)
        spend = None
        if sm is not None and sm.cov_log is not None:
            s_drawn = np.exp(rng.multivariate_normal(np.log(list(sm.params.values())), sm.cov_log))
            spend = dict(zip(sm.params, s_drawn)) if s_drawn[1] > 1 else None
        drawn.append((theta, spend))
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 1) as pool:
        sims = np.array(list(pool.map(totals, drawn)))
    spread = pd.DataFrame(0.0, index=pd.Index(names, name="group"),
                          columns=["purchases", "purchases_var", "revenue", "revenue_var"])
    with np.errstate(all="ignore"):
        for g, (combo, rows, _) in enumerate(parts):
            part = customer_spread(model.group_model(combo), rows, horizon=horizon,
                                   groups=None if groups is None else groups[codes == g], seed=seed)
            spread = spread.add(part, fill_value=0.0)
    return _interval_table(names, point, sims, spread.reindex(names), model_error, level)

