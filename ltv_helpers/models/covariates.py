"""Time-invariant covariates (an acquisition channel, a binned first-order value) on the models of
orders, as CLVTools and pymc-marketing define them: the purchase process's scale alpha becomes
alpha exp(-gamma_purchase'z), and the dropout process's scales become a exp(gamma_dropout'z) and
b exp(gamma_dropout'z) (BG/NBD, MBG/NBD: the mean dropout probability a / (a + b) stays, its
spread changes) or beta exp(-gamma_dropout'z) (Pareto/NBD: a positive coefficient, earlier
dropout). A positive purchase coefficient means more purchases.

Customers with the same covariates form a group with its own parameters, so the likelihood is the
sum of each group's (the models' own fast likelihoods, each on its distinct histories), and its
gradient in the coefficients follows from each group's gradient in its log parameters. A
categorical covariate enters as one indicator per level but the first (the reference); a numeric
one as it is, with at most :data:`MAX_GROUPS` distinct combinations in all (bin a continuous one).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ltv_helpers.models.base import MIN_CUSTOMERS, MIN_REPEAT_BUYERS, purchase_model
from ltv_helpers.models.rows import _first_rows, _row_codes, _summary_columns, _weights, compress, purchase_rows
from ltv_helpers.schema import FREQUENCY, RECENCY, LTVError, T

#: Most distinct covariate combinations (groups) a fit takes: each is a likelihood of its own.
MAX_GROUPS = 1_000
#: The parameters each process's coefficients scale, with the sign of their exponent, per model.
SCALES = {
    "bgnbd": {"purchase": {"alpha": -1.0}, "dropout": {"a": 1.0, "b": 1.0}},
    "mbgnbd": {"purchase": {"alpha": -1.0}, "dropout": {"a": 1.0, "b": 1.0}},
    "pareto_nbd": {"purchase": {"alpha": -1.0}, "dropout": {"beta": -1.0}},
}


def design(summary: pd.DataFrame, covariates: list[str], levels: dict | None = None) -> pd.DataFrame:
    """The covariates as numbers, one column per coefficient: a numeric column as it is, a
    categorical one (text, category) as an indicator per level after the first (``channel=tmall``).
    ``levels``: each categorical covariate's levels as the fit saw them (a forecast uses the fit's
    reference and columns; a level the fit never saw is refused). The levels used are in
    ``attrs["levels"]``."""
    missing = [c for c in covariates if c not in summary]
    if missing:
        raise LTVError(f"The summary has no {', '.join(missing)} column for the covariates; it has: "
                       f"{', '.join(map(str, summary.columns))}.")
    parts, seen = [], {}
    for name in covariates:
        column = summary[name]
        if column.isna().any():
            raise LTVError(f"The covariate {name} is missing for {int(column.isna().sum()):,} customers; "
                           "fill or drop them first.")
        known = (levels or {}).get(name)
        if known is None and (pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column)):
            parts.append(column.astype("float64").rename(name))
            continue
        values = column.astype(str)
        if known is None:  # the levels customers have (a category no one has would be a reference of no one)
            present = set(values.unique())
            known = ([str(v) for v in column.cat.categories if str(v) in present]
                     if isinstance(column.dtype, pd.CategoricalDtype) else sorted(present))
        else:
            unseen = sorted(set(values.unique()) - set(known))
            if unseen:
                raise LTVError(f"The covariate {name} has values the fit never saw ({', '.join(unseen[:5])}); "
                               f"it knows: {', '.join(known)}.")
        seen[name] = list(known)
        parts += [(values == level).astype("float64").rename(f"{name}={level}") for level in known[1:]]
    if not parts:
        raise LTVError("Each categorical covariate needs two levels or more to have an effect.")
    out = pd.concat(parts, axis=1)
    out.attrs["levels"] = seen
    return out


@dataclass
class CovariateModel:
    """A purchase model fitted with covariates (:func:`fit_with_covariates`).

    ``params``: the reference group's parameters (all covariates 0: the first level of each
    categorical one), in the summary's time unit; ``coefficients``: ``{"purchase": {column: g},
    "dropout": {column: g}}``; ``standard_errors``: of both, by name (``purchase:channel=jd``);
    ``groups``: each distinct covariate combination with its customers; ``base``: the fitted
    :class:`~ltv_helpers.models.fitted.LTVModel` without covariates, whose spend model is shared.
    """

    model: str
    covariates: list
    params: dict
    coefficients: dict
    standard_errors: dict
    log_likelihood: float
    n_customers: int
    groups: pd.DataFrame = field(repr=False)
    base: object = field(repr=False)
    #: Covariance of (log parameters, purchase coefficients, dropout coefficients), for intervals.
    cov: np.ndarray = field(repr=False, default=None)
    #: Each categorical covariate's levels, the first the reference.
    levels: dict = field(repr=False, default_factory=dict)

    def __repr__(self) -> str:
        coefs = "; ".join(f"{kind} {name} {g:+.3f} (se {self.standard_errors[f'{kind}:{name}']:.2g})"
                          for kind, values in self.coefficients.items() for name, g in values.items())
        return (f"CovariateModel({purchase_model(self.model).label} with {', '.join(self.covariates)}: {coefs}; "
                f"log-likelihood {self.log_likelihood:,.1f}; {self.n_customers:,} customers in "
                f"{len(self.groups)} groups)")

    @property
    def bic(self) -> float:
        k = len(self.params) + sum(len(v) for v in self.coefficients.values())
        return k * np.log(self.n_customers) - 2 * self.log_likelihood

    @property
    def theta(self) -> np.ndarray:
        """(log parameters, purchase coefficients, dropout coefficients): what :attr:`cov` is of."""
        return np.r_[np.log(list(self.params.values())), list(self.coefficients["purchase"].values()),
                     list(self.coefficients["dropout"].values())]

    def group_params(self, z: np.ndarray, theta: np.ndarray | None = None) -> dict:
        """The parameters of customers with covariates ``z`` (one value per design column), at the
        fit or at another ``theta`` (a draw)."""
        theta = self.theta if theta is None else np.asarray(theta, dtype=float)
        names, k = list(self.params), len(self.coefficients["purchase"])
        out = dict(zip(names, np.exp(theta[:len(names)])))
        shifts = {"purchase": theta[len(names):len(names) + k] @ z, "dropout": theta[len(names) + k:] @ z}
        for kind, scales in SCALES[self.model].items():
            for param, sign in scales.items():
                out[param] = out[param] * np.exp(sign * shifts[kind])
        return {name: float(v) for name, v in out.items()}

    def design(self, summary: pd.DataFrame) -> pd.DataFrame:
        """The summary's covariates as the fit's design columns (:func:`design` with its levels)."""
        return design(summary, self.covariates, self.levels)[list(self.coefficients["purchase"])]

    def group_model(self, z: np.ndarray):
        """The :class:`~ltv_helpers.models.fitted.LTVModel` of customers with covariates ``z``."""
        from ltv_helpers.models.uncertainty import _with_params

        return _with_params(self.base, self.group_params(z))

    def predict(self, summary: pd.DataFrame, *, horizon: float, gross_margin: float = 1.0,
                annual_discount_rate: float = 0.0) -> pd.DataFrame:
        """:meth:`LTVModel.predict` per customer, each with their group's parameters (in the
        summary's order; a compressed summary's purchase rows, as :meth:`LTVModel.predict`)."""
        summary = purchase_rows(summary)
        codes, combos = _groups(self.design(summary))
        parts, positions = [], []
        for g, combo in enumerate(combos):
            where = np.flatnonzero(codes == g)
            parts.append(self.group_model(combo).predict(summary.iloc[where], horizon=horizon,
                                                         gross_margin=gross_margin,
                                                         annual_discount_rate=annual_discount_rate))
            positions.append(where)
        return pd.concat(parts).iloc[np.argsort(np.concatenate(positions), kind="stable")]

    def new_customer_value(self, *, horizon: float, gross_margin: float = 1.0,
                           annual_discount_rate: float = 0.0) -> pd.DataFrame:
        """:meth:`LTVModel.new_customer_value` of each group (one row per covariate combination)."""
        rows = [self.group_model(z).new_customer_value(horizon=horizon, gross_margin=gross_margin,
                                                       annual_discount_rate=annual_discount_rate)
                for z in self.groups[list(self.coefficients["purchase"])].to_numpy()]
        return pd.DataFrame(rows, index=self.groups.index)


def _groups(z: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Each row's group (distinct covariate values, in order of appearance) and the groups' values."""
    codes = _row_codes(z, list(z.columns))
    return codes, z.to_numpy(dtype=float)[_first_rows(codes)]


def fit_with_covariates(summary: pd.DataFrame, *, model: str, covariates: list[str], spend: str | None,
                        penalizer: float, unit_days: float | None):
    """:func:`~ltv_helpers.models.fitting.fit` with ``covariates`` (see the module): starts from the
    plain fit (coefficients 0), BFGS on the log parameters and the coefficients, standard errors
    from the Hessian (central differences of the exact gradient)."""
    from scipy.optimize import minimize

    from lifetimes.utils import _scale_time

    from ltv_helpers.models.fitting import fit

    if model not in SCALES:
        raise LTVError(f"Covariates are defined for {', '.join(SCALES)}, not {model!r}.")
    spec = purchase_model(model)
    base = fit(summary, model=model, spend=spend, penalizer=penalizer, unit_days=unit_days)
    summary = purchase_rows(summary)  # a compressed summary's purchase rows (its spend rows went to base)
    z = design(summary, covariates)
    codes, combos = _groups(z)
    if len(combos) > MAX_GROUPS:
        raise LTVError(f"The covariates make {len(combos):,} groups of customers; at most {MAX_GROUPS:,} are "
                       "fitted: bin a continuous covariate (e.g. first-order value in quartiles).")
    data = _summary_columns(summary)
    scale = _scale_time(data[T].to_numpy())
    first = summary[covariates].iloc[_first_rows(codes)]  # each group's covariates, as the data say them
    labels = [", ".join(f"{c}={v}" for c, v in zip(covariates, row)) for row in first.to_numpy()]
    likes, sizes = [], []
    for g in range(len(combos)):
        group = data[codes == g]
        weights = _weights(group)
        buyers = float(weights[group[FREQUENCY].to_numpy() > 0].sum())
        if weights.sum() < MIN_CUSTOMERS or buyers < MIN_REPEAT_BUYERS:
            raise LTVError(f"The group {labels[g]} has {weights.sum():,.0f} customers and {buyers:,.0f} repeat buyers; "
                           f"each group needs {MIN_CUSTOMERS} and {MIN_REPEAT_BUYERS} for its effects to be "
                           "estimated: merge it with another level.")
        rows, counts, _ = compress(group, [FREQUENCY, RECENCY, T])
        f, r, t = (rows[c].to_numpy() for c in (FREQUENCY, RECENCY, T))
        likes.append(spec.likelihood(f, r, t, counts, 0.0, scale))
        sizes.append(counts.sum())
    sizes = np.array(sizes)
    n, k, names = sizes.sum(), z.shape[1], list(spec.parameters)
    index = {kind: [names.index(p) for p in SCALES[model][kind]] for kind in ("purchase", "dropout")}
    signs = {kind: np.array(list(SCALES[model][kind].values())) for kind in ("purchase", "dropout")}
    scaled = np.array([scale if p in spec.scaled else 1.0 for p in names])

    def objective(theta):
        base_log, g_p, g_d = theta[:len(names)], theta[len(names):len(names) + k], theta[len(names) + k:]
        value, grad = 0.0, np.zeros(len(theta))
        for like, w, combo in zip(likes, sizes, combos):
            shift = base_log.copy()
            shift[index["purchase"]] += signs["purchase"] * (g_p @ combo)
            shift[index["dropout"]] += signs["dropout"] * (g_d @ combo)
            v, d = like(shift)
            value += w * v
            grad[:len(names)] += w * d
            grad[len(names):len(names) + k] += w * (d[index["purchase"]] @ signs["purchase"]) * combo
            grad[len(names) + k:] += w * (d[index["dropout"]] @ signs["dropout"]) * combo
        params = np.exp(base_log)
        return value / n + penalizer * (params @ params), grad / n + np.r_[2 * penalizer * params * params,
                                                                           np.zeros(2 * k)]

    start = np.r_[np.log([base.params[p] for p in names]) + np.log(scaled), np.zeros(2 * k)]
    penalizer = base.penalizer  # the plain fit's, where it needed the fallback
    with np.errstate(all="ignore"):
        out = minimize(objective, start, jac=True, method="BFGS", tol=1e-8)
        h = 1e-5
        hess = np.array([(objective(out.x + h * e)[1] - objective(out.x - h * e)[1]) / (2 * h)
                         for e in np.eye(len(out.x))])
    if not np.isfinite(out.x).all() or not (out.success or np.linalg.norm(out.jac) < 1e-4):
        raise LTVError(f"{spec.label} with covariates could not be fitted on this data ({out.message}); "
                       "try fewer covariates or coarser levels.")
    try:
        cov = np.linalg.inv((hess + hess.T) / 2) / n
    except np.linalg.LinAlgError:
        cov = np.full(hess.shape, np.nan)
    with np.errstate(invalid="ignore"):
        se = np.sqrt(np.where(np.diag(cov) >= 0, np.diag(cov), np.nan))  # a negative variance: not estimated
    values = np.exp(out.x[:len(names)]) / scaled
    params = dict(zip(names, values.astype(float)))
    columns = list(z.columns)
    coefficients = {"purchase": dict(zip(columns, out.x[len(names):len(names) + k].astype(float))),
                    "dropout": dict(zip(columns, out.x[len(names) + k:].astype(float)))}
    ses = {p: float(v * s) for p, v, s in zip(names, values, se[:len(names)])}
    ses.update({f"purchase:{c}": float(s) for c, s in zip(columns, se[len(names):len(names) + k])})
    ses.update({f"dropout:{c}": float(s) for c, s in zip(columns, se[len(names) + k:])})
    x_total = float((data[FREQUENCY].to_numpy() * _weights(data)).sum())
    ll = -float(out.fun) * n + (np.log(scale) * x_total if spec.scaled else 0.0)
    groups = pd.DataFrame(combos, columns=columns)
    groups["customers"] = sizes.astype(int)
    groups.index = pd.Index(labels, name="group")
    return CovariateModel(model, list(covariates), params, coefficients, ses, ll, int(n), groups, base, cov,
                          z.attrs["levels"])
