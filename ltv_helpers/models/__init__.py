"""Fitted purchase and spend models (lifetimes' BG/NBD, MBG/NBD, Pareto/NBD and Gamma-Gamma), CLV.

``fit(summary, model=...)`` returns an :class:`LTVModel`; ``LTVModel.predict(summary, horizon=...)``
gives one row per customer with ``expected_purchases``, ``p_alive``, ``expected_spend`` and
``clv``. The mathematics is lifetimes'; what this module adds:

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
    _BLAS_LOCK,
    _BLAS,
    one_blas_thread,
    PURCHASE_MODELS,
    _FITTERS,
    MIN_CUSTOMERS,
    MIN_REPEAT_BUYERS,
    FALLBACK_PENALIZER,
    SPEND_CORRELATION_WARNING,
    DAYS_PER_YEAR,
)
from ltv_helpers.models.rows import (  # noqa: F401
    _summary_columns,
    check_prediction_options,
    _parts,
    _prepare,
    purchase_rows,
    _spend_columns,
    _time_unit,
    _distinct_values,
    _row_codes,
    compress,
    _weights,
    _weighted_quantile,
    _first_rows,
)
from ltv_helpers.models.bgnbd import (  # noqa: F401
    OBJECTIVE_BLOCK,
    _BGNBDLikelihood,
)
from ltv_helpers.models.mbgnbd import (  # noqa: F401
    _MBGNBDLikelihood,
)
from ltv_helpers.models.pareto_nbd import (  # noqa: F401
    PARETO_MAX_TERMS,
    HYP_BLOCK_CELLS,
    _hyp_value,
    _hyp_series,
    _ParetoNBDLikelihood,
    _pareto_alive,
    _pareto_purchase_terms,
)
from ltv_helpers.models.optimize import (  # noqa: F401
    _fitted,
    BOUNDARY,
    _at_boundary,
    edge_parameters,
    _inverse,
    _standard_errors,
)
from ltv_helpers.models.fitted import (  # noqa: F401
    SpendModel,
    LTVModel,
    MODEL_FORMAT,
    _matrix,
)
from ltv_helpers.models.clv import (  # noqa: F401
    lifetimes_clv,
    expected_purchases_by_step,
    discounted_purchases,
    _purchase_terms,
    p_alive_path,
    alive_path_note,
)
from ltv_helpers.models.gamma_gamma import (  # noqa: F401
    _GammaGammaLikelihood,
    _fit_gamma_gamma_fast,
    _fit_spend,
)
from ltv_helpers.models.fitting import (  # noqa: F401
    fit,
    _fit_purchase_fast,
    _predicts_finite,
    _fit_purchase,
)
from ltv_helpers.models.serialize import (  # noqa: F401
    model_from_dict,
    load_model,
    save_predictions,
)
from ltv_helpers.models.uncertainty import (  # noqa: F401
    _group_names,
    _with_params,
    combined_interval,
    intervals,
    SPREAD_DRAWS,
    SPREAD_BUDGET,
    SPREAD_MIN_DRAWS,
    SPREAD_BLOCK,
    _spread_draws,
    _future_moments,
    customer_spread,
    parameter_variance,
)
from ltv_helpers.models.ml import (  # noqa: F401
    ML_FEATURES,
    ML_MAX_TRAIN,
    _ml_features,
    MLBaseline,
    _window_purchases,
    compare_ml_baseline,
    fit_ml_baseline,
)
from ltv_helpers.models.descriptions import (  # noqa: F401
    describe,
)
# Contractual retention: fit_sbg is a model like the others.
from ltv_helpers.models.sbg import SBGModel, fit_sbg  # noqa: F401
