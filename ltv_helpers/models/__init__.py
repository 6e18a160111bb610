"""Fitted purchase and spend models (BG/NBD, MBG/NBD, Pareto/NBD, Gamma-Gompertz/NBD, BG/BB, and
Gamma-Gamma for spend; the first three lifetimes' mathematics), CLV.

``fit(summary, model=...)`` returns an :class:`LTVModel`; ``LTVModel.predict(summary, horizon=...)``
gives one row per customer with ``expected_purchases``, ``p_alive``, ``expected_spend`` and
``clv``. For BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma the mathematics is lifetimes'; what this
package adds:

- a family: one model a module (``models/<name>.py``), a :class:`PurchaseModel` subclass
  registered in :data:`MODELS`, which fitting, predictions, intervals, JSON and figures ask;

- speed: customers with identical ``(frequency, recency, T)`` share one likelihood term, so
  fits run on the distinct rows with their counts as weights, on our own implementations of
  lifetimes' objectives with analytic gradients (tested equal in value and gradient, reaching
  lifetimes' optimum), and predictions are computed once per distinct row (CLV steps once per
  distinct (frequency, T) pair) and broadcast;
- stability: Pareto/NBD's likelihood in a series form that gives no NaN for any customer;
- determinism: every fit starts from a fixed point (lifetimes' Pareto/NBD starts at random);
- standard errors from the Hessian of the exact gradient for every model;
- clear errors for data no model can fit, warnings naming the model when a fit needs help.

The time unit is the summary's: a summary in days (``freq="D"``) gives parameters per day and a
horizon in days; ``freq="D", freq_multiplier=7`` gives weeks. Coarser units fit faster (more
customers share a row) at the price of resolution: two purchases in the same unit count once.
"""

from __future__ import annotations

from ltv_helpers.models.base import (  # noqa: F401
    _BLAS,
    _BLAS_LOCK,
    DAYS_PER_YEAR,
    FALLBACK_PENALIZER,
    HistoryLikelihood,
    MIN_CUSTOMERS,
    MIN_REPEAT_BUYERS,
    MODELS,
    PURCHASE_MODELS,
    SPEND_CORRELATION_WARNING,
    OwnFitter,
    PurchaseModel,
    model_label,
    one_blas_thread,
    order_models,
    purchase_model,
    register,
)
from ltv_helpers.models.bgnbd import (  # noqa: F401
    BGNBD,
    OBJECTIVE_BLOCK,
    _BGNBDLikelihood,
)
from ltv_helpers.models.clv import (  # noqa: F401
    _purchase_terms,
    alive_path_note,
    discounted_purchases,
    expected_purchases_by_step,
    lifetimes_clv,
    p_alive_path,
)
from ltv_helpers.models.descriptions import (  # noqa: F401
    describe,
)
from ltv_helpers.models.fitted import (  # noqa: F401
    MODEL_FORMAT,
    LTVModel,
    SpendModel,
    _matrix,
)
from ltv_helpers.models.fitting import (  # noqa: F401
    _fit_purchase,
    _fit_purchase_fast,
    _predicts_finite,
    fit,
)
from ltv_helpers.models.gamma_gamma import (  # noqa: F401
    _fit_gamma_gamma_fast,
    _fit_spend,
    _GammaGammaLikelihood,
)
from ltv_helpers.models.mbgnbd import (  # noqa: F401
    MBGNBD,
    _MBGNBDLikelihood,
)
from ltv_helpers.models.ml import (  # noqa: F401
    ML_FEATURES,
    ML_MAX_TRAIN,
    MLBaseline,
    _ml_features,
    _window_purchases,
    compare_ml_baseline,
    fit_ml_baseline,
)
from ltv_helpers.models.optimize import (  # noqa: F401
    BOUNDARY,
    _at_boundary,
    _fitted,
    _inverse,
    _standard_errors,
    edge_parameters,
)
from ltv_helpers.models.pareto_nbd import (  # noqa: F401
    ParetoNBD,
    HYP_BLOCK_CELLS,
    PARETO_MAX_TERMS,
    _hyp_series,
    _hyp_value,
    _pareto_alive,
    _pareto_purchase_terms,
    _ParetoNBDLikelihood,
)
# The models of other data or cost, after the three the report compares (the registry keeps this order).
from ltv_helpers.models.bgbb import BGBB, _BGBBLikelihood  # noqa: F401
from ltv_helpers.models.ggomnbd import GGomNBD, _GGomNBDLikelihood  # noqa: F401
from ltv_helpers.models.rows import (  # noqa: F401
    _distinct_values,
    _first_rows,
    _parts,
    _prepare,
    _row_codes,
    _spend_columns,
    _summary_columns,
    _time_unit,
    _weighted_quantile,
    _weights,
    check_prediction_options,
    compress,
    purchase_rows,
)

# Contractual retention: fit_sbg is a model like the others.
from ltv_helpers.models.sbg import SBGModel, fit_sbg  # noqa: F401
from ltv_helpers.models.serialize import (  # noqa: F401
    FORECAST_FILES,
    Forecast,
    load_forecast,
    load_model,
    model_from_dict,
    save_predictions,
)
from ltv_helpers.models.uncertainty import (  # noqa: F401
    SPREAD_BLOCK,
    SPREAD_BUDGET,
    SPREAD_DRAWS,
    SPREAD_MIN_DRAWS,
    _future_moments,
    _group_names,
    _spread_draws,
    _with_params,
    combined_interval,
    customer_spread,
    intervals,
    parameter_variance,
)

from ltv_helpers.models.covariates import CovariateModel, design  # noqa: E402, F401

# Names this module held before it became a package (lifetimes' fitters and errors, the schema's columns).
from ltv_helpers.models.base import (  # noqa: E402, F401
    BetaGeoFitter,
    ConvergenceError,
    GammaGammaFitter,
    ModifiedBetaGeoFitter,
    ParetoNBDFitter,
)
from ltv_helpers.schema import CUSTOMERS, FREQUENCY, MONETARY_VALUE, PART, RECENCY, LTVError, T  # noqa: E402, F401

#: lifetimes' fitter of each model lifetimes has.
_FITTERS = {name: m.fitter_class for name, m in MODELS.items() if m.fitter_class is not OwnFitter}

