"""Models and predictions as files: the model JSON (``ltv fit``) and ``predictions.parquet``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers.models.base import MODELS, GammaGammaFitter
from ltv_helpers.models.fitted import MODEL_FORMAT, LTVModel, SpendModel
from ltv_helpers.schema import LTVError


def model_from_dict(spec: dict) -> LTVModel:
    """The :class:`LTVModel` described by :meth:`LTVModel.to_dict`: lifetimes' fitter is rebuilt
    with the saved parameters (predictions need nothing else)."""
    if not isinstance(spec, dict) or spec.get("format") != MODEL_FORMAT:
        raise LTVError(f"This is not a saved LTV model ({MODEL_FORMAT}); write one with `ltv fit` or LTVModel.save.")
    if spec.get("model") not in MODELS:
        raise LTVError(f"Unknown model {spec.get('model')!r}; known: {', '.join(MODELS)}.")
    try:
        fitter = MODELS[spec["model"]].fitter_class(penalizer_coef=spec["penalizer"])
        fitter.params_ = pd.Series({k: float(v) for k, v in spec["params"].items()})
        if hasattr(fitter, "conditional_expected_number_of_purchases_up_to_time"):
            fitter.predict = fitter.conditional_expected_number_of_purchases_up_to_time
        spend = None
        if spec.get("spend_model"):
            sm = spec["spend_model"]
            gg = GammaGammaFitter(penalizer_coef=spec["penalizer"])
            gg.params_ = pd.Series({"p": sm["params"]["p"], "q": sm["params"]["q"], "v": sm["params"]["gamma"]})
            spend = SpendModel(dict(sm["params"]), dict(sm["standard_errors"]), float(sm["log_likelihood"]),
                               int(sm["n_customers"]), float(sm["frequency_spend_correlation"]), gg,
                               None if sm.get("cov_log") is None else np.array(sm["cov_log"], dtype=float))
        cov = spec.get("cov_log")
        return LTVModel(spec["model"], {k: float(v) for k, v in spec["params"].items()},
                        dict(spec["standard_errors"]), float(spec["log_likelihood"]), int(spec["n_customers"]),
                        int(spec["n_distinct"]), float(spec["unit_days"]), float(spec["penalizer"]), spend, fitter,
                        None if cov is None else np.array(cov, dtype=float), float(spec["t_max"]),
                        int(spec["typical_max_frequency"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise LTVError(f"The saved model is incomplete or damaged ({type(exc).__name__}: {exc}).") from None


def load_model(path) -> LTVModel:
    """A model written by :meth:`LTVModel.save` (``ltv fit``)."""
    path = Path(path)
    if not path.is_file():
        raise LTVError(f"File not found: {path}.")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LTVError(f"{path.name} is not JSON: {exc}.") from None
    return model_from_dict(spec)


def save_predictions(output_dir, predictions: pd.DataFrame, model: LTVModel, **facts) -> pd.DataFrame:
    """Write ``predictions.parquet`` (one row per customer) and ``prediction.json`` (model,
    parameters, totals and any ``facts`` given) to ``output_dir``; returns the file list."""
    from pathlib import Path

    from ltv_helpers.files import write_json, write_parquet

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(predictions, out / "predictions.parquet")
    meta = {"model": model.model, "params": model.params, "standard_errors": model.standard_errors,
            "log_likelihood": model.log_likelihood, "unit_days": model.unit_days,
            "spend_params": model.spend_model.params if model.spend_model else None,
            "customers": len(predictions),
            "total_expected_purchases": float(predictions["expected_purchases"].sum()),
            "total_clv": float(predictions["clv"].sum()), **facts}
    write_json(out / "prediction.json", meta)
    return pd.DataFrame({"rows": [len(predictions), None]},
                        index=pd.Index(["predictions.parquet", "prediction.json"], name="file")).astype("Int64")
