"""What every model shares: the registry of purchase models (:class:`PurchaseModel`), the limits of
what a fit is attempted on, and BLAS on one thread."""

from __future__ import annotations

import functools
import threading
import warnings

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import (  # noqa: F401  (the fitters the models' parameters are held in)
        BetaGeoFitter,
        GammaGammaFitter,
        ModifiedBetaGeoFitter,
        ParetoNBDFitter,
    )
    from lifetimes.fitters import BaseFitter
    from lifetimes.utils import ConvergenceError  # noqa: F401

from ltv_helpers.schema import FREQUENCY, RECENCY, LTVError, T


class PurchaseModel:
    """One purchase model of the family: what fitting, predictions, intervals, figures and the
    descriptions need of it. A model is a subclass in its own module, registered with
    :func:`register`; nothing outside its module compares its name.

    - ``name`` (the ``fit(model=...)`` key), ``label`` (shown to people), ``parameters`` (their
      names, in the order the likelihood takes them in log form), ``scaled`` (the parameters in
      units of time, fitted on lifetimes' time scale ``max(T) / 10`` and scaled back), ``start``
      (every log parameter's start) and ``tol`` (BFGS's tolerance);
    - ``fitter_class``: lifetimes' fitter that holds the result where lifetimes has the model (its
      own formulas are then the reference the tests hold ours to), else :class:`OwnFitter`;
    - ``auto``: compared by ``model="auto"`` (the report's backtest) on customers' order data;
    - :meth:`likelihood`, :meth:`alive`, :meth:`purchase_terms`, :meth:`simulate` and
      :meth:`dropout_line` (see each).
    """

    name: str = ""
    label: str = ""
    parameters: tuple[str, ...] = ()
    scaled: tuple[str, ...] = ()
    start: float = 0.1
    tol: float = 1e-7
    fitter_class: type = None
    auto: bool = True
    #: The summary's column of each customer's time of observation (T; ``n`` opportunities for a
    #: discrete model), and whether time comes in whole opportunities (predictions step by one).
    time_column: str = T
    discrete: bool = False

    def check(self, data) -> None:
        """Refuse, in one sentence, histories this model cannot be fitted on or predict (after the
        common checks of frequency, recency and T)."""

    def check_horizon(self, horizon: float) -> None:
        """Refuse, in one sentence, a horizon this model cannot forecast (a discrete model's are
        whole opportunities)."""
        if self.discrete and float(horizon) != round(float(horizon)):
            raise LTVError(f"{self.label} forecasts whole opportunities: horizon must be a whole number, "
                           f"got {horizon}.")

    def continuous_only(self, what: str) -> None:
        """Refuse a step made for continuous time (``what`` names it) on a discrete model."""
        if self.discrete:
            raise LTVError(f"{what} works in continuous time; {self.label}'s histories are whole opportunities.")

    def likelihood(self, frequency, recency, T, weights, penalizer: float, scale: float):
        """The objective BFGS minimizes: ``objective(log_params) -> (value, gradient)``, the mean
        negative log-likelihood per customer (plus the penalizer) in log parameters, with time
        divided by ``scale``."""
        raise NotImplementedError

    def x0(self, rows, counts) -> np.ndarray:
        """Where BFGS starts, in log parameters: ``start`` for every parameter."""
        return np.full(len(self.parameters), float(self.start))

    def alive(self, model, rows) -> np.ndarray:
        """P(alive | x, t_x, T) of each row of ``rows`` (frequency, recency, T)."""
        raise NotImplementedError

    def purchase_terms(self, model, rows, times, alive=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """E[purchases in (T, T + t] | history] for every ``t`` of ``times`` and row of ``rows``, as
        ``numerator[:, pairs] / denominator``: the numerator per time and distinct pair of
        columns that carry the time dependence (e.g. frequency and T), each row's pair, and each
        row's own factor. ``alive``: the rows' P(alive) when the caller has it."""
        raise NotImplementedError

    def simulate(self, params: dict, x: np.ndarray, T: np.ndarray, horizon: float, shape: tuple,
                 rng: np.random.Generator) -> np.ndarray:
        """Simulated purchases in (T, T + horizon] of customers alive at T with ``x`` repeat
        purchases in ``T`` (``shape``: draws x customers), from the posterior given the history."""
        raise NotImplementedError

    def rate_line(self, params: dict, span, zh: bool) -> str:
        """One bullet point reading the purchase process (``span(units)`` says a duration in days):
        the NBD's Gamma(r, alpha) purchase rates, unless the model says otherwise."""
        mean_rate = params["r"] / params["alpha"]  # purchases per unit while active, averaged over customers
        if zh:
            return f"- 活跃客户平均每 {span(1 / mean_rate)}购买一次；r = {params['r']:.2f}（r 越小，客户之间的购买频率差异越大）。"  # noqa: E501
        return (f"- While active, customers buy on average once every {span(1 / mean_rate)}; r = {params['r']:.2f} "
                "measures how alike they are (the smaller, the more customers differ).")

    def dropout_line(self, params: dict, span, unit_days: float, zh: bool) -> str:
        """One bullet point reading the dropout process (``span(units)`` says a duration in days)."""
        raise NotImplementedError

    def predicts_finite(self, fitter, rows) -> bool:
        """Whether a fit predicts finite purchases and P(alive) for every history of ``rows`` over
        the longest customer age. Where lifetimes has the model, its own formulas are the check
        (the edge of Pareto/NBD's parameters is where they overflow)."""
        f, r, T_ = history_columns(rows)
        with np.errstate(all="ignore"):
            if isinstance(fitter, OwnFitter):
                holder = _Params({k: float(v) for k, v in fitter.params_.items()}, fitter)
                numerator, pairs, denominator = self.purchase_terms(holder, rows, np.array([T_.max()]))
                purchases, alive = numerator[0, pairs] / denominator, self.alive(holder, rows)
            else:
                purchases = fitter.conditional_expected_number_of_purchases_up_to_time(float(T_.max()), f, r, T_)
                alive = fitter.conditional_probability_alive(f, r, T_)
        return bool(np.isfinite(np.asarray(purchases, dtype=float)).all()
                    and np.isfinite(np.asarray(alive, dtype=float)).all())

    def new_customer_purchases(self, model, times) -> np.ndarray:
        """E[repeat purchases in (0, t]] after a first purchase at 0, for each of ``times``: the
        expectation given the history x = t_x = T = 0 (lifetimes' unconditional formula where
        lifetimes has the model)."""
        times = np.atleast_1d(np.asarray(times, dtype=float))
        if not isinstance(model.fitter, OwnFitter):
            return np.asarray(model.fitter.expected_number_of_purchases_up_to_time(times), dtype=float)
        rows = pd.DataFrame({FREQUENCY: [0.0], RECENCY: [0.0], T: [0.0]})
        numerator, pairs, denominator = self.purchase_terms(model, rows, times)
        return numerator[:, pairs[0]] / denominator[0]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}: {self.label}, parameters {', '.join(self.parameters)})"


class HistoryLikelihood:
    """The start of a likelihood over histories: frequency ``x``, recency ``tx``, ``T`` (or the
    opportunities ``n``), each row's weight ``w`` (customers), their ``total`` and the penalizer."""

    def __init__(self, frequency, recency, T, weights, penalizer: float, scale: float = 1.0):
        self.x, self.tx, self.T, self.w = (np.asarray(v, dtype=float) for v in (frequency, recency, T, weights))
        self.total = self.w.sum()
        self.penalizer = penalizer


class _Params:
    """Parameters and their fitter, read as a fitted model's are (``.params``, ``.fitter``)."""

    def __init__(self, params: dict, fitter):
        self.params, self.fitter = params, fitter


class OwnFitter(BaseFitter):
    """The holder of a fit for a model lifetimes does not have: parameters, Hessian and standard
    errors in lifetimes' attributes, so that every model's fit reads the same way."""

    def __init__(self, penalizer_coef: float = 0.0):
        self.penalizer_coef = penalizer_coef


#: Every purchase model, by name, in the order they were registered.
MODELS: dict[str, PurchaseModel] = {}
#: name -> label of the models ``model="auto"`` compares on order data (the report's backtest).
PURCHASE_MODELS: dict[str, str] = {}


def register(cls: type) -> type:
    """Class decorator: add a :class:`PurchaseModel` subclass to :data:`MODELS` (and to
    :data:`PURCHASE_MODELS` when it is one ``model="auto"`` compares)."""
    model = cls()
    if not model.name or not model.parameters:
        raise LTVError(f"{cls.__name__} needs a name and parameters to be registered.")
    MODELS[model.name] = model
    if model.auto:
        PURCHASE_MODELS[model.name] = model.label
    return cls


def purchase_model(name: str) -> PurchaseModel:
    """The registered model called ``name``, or one sentence listing the models there are."""
    if name not in MODELS:
        raise LTVError(f"model must be one of {', '.join(MODELS)}, got {name!r}.")
    return MODELS[name]


def model_label(name: str) -> str:
    """The label people read for the model called ``name`` ("BG/NBD")."""
    return purchase_model(name).label


def order_models() -> dict[str, str]:
    """name -> label of every registered model of orders in continuous time (what a backtest on
    transactions can fit; ``model="auto"`` compares :data:`PURCHASE_MODELS` among them)."""
    return {name: m.label for name, m in MODELS.items() if not m.discrete}


def history_columns(rows) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """frequency, recency and T of ``rows`` as float arrays."""
    return tuple(rows[c].to_numpy(dtype=float) for c in (FREQUENCY, RECENCY, T))


#: Smallest number of customers, and of repeat buyers, a fit is attempted on.
MIN_CUSTOMERS = 20
MIN_REPEAT_BUYERS = 5
#: Penalizer tried once when a fit does not converge.
FALLBACK_PENALIZER = 1e-3
#: |correlation| between frequency and average spend above which Gamma-Gamma is questionable.
SPEND_CORRELATION_WARNING = 0.3
DAYS_PER_YEAR = 365.25
_BLAS_LOCK = threading.Lock()
_BLAS = {"depth": 0, "limits": None}  # the process's: threadpoolctl's limits are not per thread


def one_blas_thread(func):
    """Run ``func`` with BLAS (NumPy's dot products) on one thread. The likelihoods' reductions are
    small: on shared cores (a batch with ``--workers 2`` on 2 cores, or any other work) BLAS threads
    wait on each other. Measured here, BG/NBD + Gamma-Gamma at 100k customers beside two
    NumPy-busy processes: 0.4-0.8 s with the default threads, 0.15-0.26 s with one; quiet, the
    same 0.05-0.07 s. Nested calls, and calls in several threads at once, share one limit: the
    first to start sets it and the last to end lifts it. In the toolkit the outermost call is the
    one that hands work to threads, so one thread sets and lifts it (OpenBLAS was seen to ignore
    the lift, now and then, when another thread made it)."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with _BLAS_LOCK:
            if _BLAS["depth"] == 0:
                _BLAS["limits"] = threadpool_limits(1, user_api="blas")
            _BLAS["depth"] += 1
        try:
            return func(*args, **kwargs)
        finally:
            with _BLAS_LOCK:
                _BLAS["depth"] -= 1
                if _BLAS["depth"] == 0:
                    _BLAS["limits"].restore_original_limits()
                    _BLAS["limits"] = None
    return wrapper
