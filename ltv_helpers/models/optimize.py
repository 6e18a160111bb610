"""Optimizer glue: BFGS on an objective with its gradient, the Hessian, standard errors, the edge of the parameters."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_helpers.models.base import ConvergenceError


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


#: A fitted parameter outside this range (on lifetimes' time scale, ``max(T) / 10``) has run to
#: the edge of the parameter space, e.g. Pareto/NBD's s -> 0 and beta -> infinity, or BG/NBD's
#: a -> 0, when the data show no dropout. That limit is often a fine model (BG/NBD becomes the NBD),
#: but Pareto/NBD's formulas overflow there: such a fit is checked by predicting every history.
BOUNDARY = (1e-5, 1e5)


def _at_boundary(fitter, scaled: tuple[str, ...] = ("alpha", "beta")) -> bool:
    return bool(edge_parameters(fitter, scaled))


def edge_parameters(fitter, scaled: tuple[str, ...] = ("alpha", "beta")) -> list[str]:
    """The parameters of a fit that ran to the edge of the parameter space (:data:`BOUNDARY`, on
    lifetimes' time scale: ``scaled`` are the model's parameters in units of time), e.g.
    ``["s", "beta"]`` for a Pareto/NBD that sees no dropout."""
    values = fitter.params_.copy()
    scale = getattr(fitter, "_scale", 1.0)
    for name in scaled:
        if name in values:
            values[name] *= scale
    return [name for name, v in values.items() if not BOUNDARY[0] < float(v) < BOUNDARY[1]]


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
