"""What every model shares: the registry of purchase models, the limits of what a fit is attempted on, and BLAS on one thread."""

from __future__ import annotations

import functools
import threading
import warnings

from threadpoolctl import threadpool_limits

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import (  # noqa: F401  (the fitters the models' parameters are held in)
        BetaGeoFitter,
        GammaGammaFitter,
        ModifiedBetaGeoFitter,
        ParetoNBDFitter,
    )
    from lifetimes.utils import ConvergenceError  # noqa: F401



PURCHASE_MODELS = {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}


_FITTERS = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter, "pareto_nbd": ParetoNBDFitter}


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
