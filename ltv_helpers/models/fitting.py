""":func:`fit`: a purchase model and the spend model on a summary, with checks and one retry."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ltv_helpers.models.base import (
    FALLBACK_PENALIZER,
    MIN_CUSTOMERS,
    MIN_REPEAT_BUYERS,
    ConvergenceError,
    PurchaseModel,
    one_blas_thread,
    purchase_model,
)
from ltv_helpers.models.fitted import LTVModel
from ltv_helpers.models.gamma_gamma import _fit_spend
from ltv_helpers.models.optimize import _at_boundary, _fitted, _standard_errors
from ltv_helpers.models.rows import (
    _parts,
    _spend_columns,
    _summary_columns,
    _time_unit,
    _weighted_quantile,
    _weights,
    compress,
)
from ltv_helpers.schema import CUSTOMERS, FREQUENCY, RECENCY, LTVError, T


@one_blas_thread
def fit(summary: pd.DataFrame, *, model: str = "bgnbd", spend: str | None = "gamma_gamma",
        penalizer: float = 0.0, unit_days: float | None = None, covariates: list[str] | None = None):
    """Fit a purchase model (any of :data:`MODELS`: ``"bgnbd"``, ``"mbgnbd"``, ``"pareto_nbd"``,
    ``"ggomnbd"`` on orders; ``"bgbb"`` on opportunities) and, unless ``spend=None``, the
    Gamma-Gamma spend model on an RFM summary.

    ``summary`` is :func:`ltv_helpers.data.rfm_summary`'s output or
    :func:`ltv_helpers.data.calibration_holdout`'s (its ``_cal`` columns are used).
    ``unit_days`` is the length of the summary's time unit in days (default: taken from the
    summary when rfm_summary made it, else 1); it is used to discount and to convert horizons.

    Raises :class:`LTVError` for data no model can fit (fewer than 20 customers or 5 repeat
    buyers). A fit that does not converge is retried once with a small penalizer, with a warning
    that names the model.

    ``covariates``: columns of the summary (e.g. the acquisition channel) whose effects on the
    purchase and dropout processes are fitted too (:mod:`ltv_helpers.models.covariates`); the
    result is then a :class:`~ltv_helpers.models.covariates.CovariateModel`. None or ``[]``: the
    plain fit, exactly.

    >>> from ltv_helpers.datasets import load_cdnow
    >>> from ltv_helpers.data import calibration_holdout
    >>> cal = calibration_holdout(load_cdnow(sample=True), calibration_end="1997-09-30",
    ...                           observation_end="1998-06-30", freq="D", freq_multiplier=7)
    >>> m = fit(cal, model="bgnbd")
    >>> round(m.params["r"], 3), round(m.params["alpha"], 2)
    (0.243, 4.41)
    """
    spec = purchase_model(model)  # one sentence naming the models there are
    if covariates:
        from ltv_helpers.models.covariates import fit_with_covariates

        return fit_with_covariates(summary, model=model, spend=spend,
                                   covariates=[covariates] if isinstance(covariates, str) else list(covariates),
                                   penalizer=penalizer, unit_days=unit_days)
    if spend not in ("gamma_gamma", None):
        raise LTVError(f"spend must be 'gamma_gamma' or None, got {spend!r}.")
    if spec.discrete and unit_days is None and "unit_days" not in summary.attrs:
        raise LTVError(f"{spec.label} needs unit_days: how many days one opportunity lasts (365.25 for yearly "
                       "donations, 7 for weekly renewals), to discount at an annual rate.")
    unit = _time_unit(summary, unit_days)
    summary, spend_rows = _parts(summary)
    data = _summary_columns(summary, spec.time_column)
    spec.check(data)
    weights = _weights(data)
    n = int(round(weights.sum()))
    repeat = int(round(weights[data[FREQUENCY].to_numpy() > 0].sum()))
    if n < MIN_CUSTOMERS:
        raise LTVError(f"{n} customers are too few to fit a purchase model; at least "
                       f"{MIN_CUSTOMERS} are needed.")
    if repeat < MIN_REPEAT_BUYERS:
        raise LTVError(f"Only {repeat} customers bought more than once; the purchase models need at "
                       f"least {MIN_REPEAT_BUYERS} repeat buyers to learn a repeat rate.")
    rows, counts, _ = compress(data, [FREQUENCY, RECENCY, T])
    fitter, used_penalizer = _fit_purchase(model, rows, counts, penalizer)
    params = {k: float(v) for k, v in fitter.params_.items()}
    ses, cov_log = _standard_errors(fitter, counts)
    # The fits report the mean NLL per customer, in time divided by lifetimes' scale (max(T)/10):
    # each purchase's density carries that scale.
    ll = -float(fitter._negative_log_likelihood_) * counts.sum() \
        + np.log(getattr(fitter, "_scale", 1.0)) * float((rows[FREQUENCY].to_numpy() * counts).sum())
    spend_data = data if spend_rows is None else _spend_columns(spend_rows)
    spend_model = _fit_spend(spend_data, penalizer) if spend == "gamma_gamma" else None
    typical = (_weighted_quantile(data[FREQUENCY].to_numpy(), weights, 0.99) if CUSTOMERS in data
               else data[FREQUENCY].quantile(0.99))  # one row per customer: as before, no sort
    return LTVModel(model, params, ses, ll, n, len(rows), unit, used_penalizer, spend_model, fitter,
                    cov_log, float(data[T].max()), int(max(1, np.ceil(typical))))


def _fit_purchase_fast(model: str, rows: pd.DataFrame, counts: np.ndarray, penalizer: float):
    """A purchase model fitted on its objective with BFGS, on lifetimes' time scale (``max(T) / 10``),
    from the model's start (BG/NBD and MBG/NBD: lifetimes' 0.1 in log parameters; Pareto/NBD:
    lifetimes' mean start, all parameters 1, where lifetimes runs Nelder-Mead from a random one;
    both find the same optimum, tested). Returns the fitter holding the result (lifetimes' where
    lifetimes has the model)."""
    from lifetimes.utils import _scale_time

    spec = purchase_model(model)
    f, r, T_ = (rows[c].to_numpy() for c in (FREQUENCY, RECENCY, T))
    scale = _scale_time(T_)
    objective = spec.likelihood(f, r, T_, counts, penalizer, scale)
    return _fitted(spec.fitter_class(penalizer_coef=penalizer), objective, spec.x0(rows, counts),
                   spec.tol, list(spec.parameters), counts, scale=scale, scaled=spec.scaled)


def _predicts_finite(fitter, rows: pd.DataFrame, spec: PurchaseModel | None = None) -> bool:
    """Whether a fit predicts finite purchases and P(alive) for every history in ``rows`` over
    the longest customer age (:meth:`PurchaseModel.predicts_finite`: lifetimes' own formulas where
    lifetimes has the model; ``spec`` is needed only where it has not)."""
    return (spec or PurchaseModel()).predicts_finite(fitter, rows)


def _fit_purchase(model: str, rows: pd.DataFrame, counts: np.ndarray, penalizer: float):
    """Fit; a fit that does not converge, gives invalid parameters, or runs to the boundary
    (:data:`BOUNDARY`) and then predicts a non-finite value, is retried once with a small
    penalizer, with a warning; if that fails too, one sentence."""
    spec = purchase_model(model)
    name = spec.label
    fallback = max(penalizer, FALLBACK_PENALIZER)
    for pen in (penalizer, fallback):
        try:
            fitter = _fit_purchase_fast(model, rows, counts, pen)
        except ConvergenceError:
            problem = "did not converge"
        else:
            values = fitter.params_.to_numpy()
            if not (np.isfinite(values).all() and (values > 0).all()):
                problem = "gave invalid parameters"
            elif _at_boundary(fitter, spec.scaled) and not _predicts_finite(fitter, rows, spec):
                problem = "ran to the edge of its parameters, where its predictions overflow"
            else:
                return fitter, pen
        if pen == fallback:
            break
        warnings.warn(f"{name} {problem}; refitted with penalizer {FALLBACK_PENALIZER:g}. "
                      "Check the summary, or try a coarser time unit or another model.", stacklevel=3)
    raise LTVError(f"{name} could not be fitted on this data ({problem}), even with a penalizer; try another "
                   "model, a coarser time unit, or more history.")
