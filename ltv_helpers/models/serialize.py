"""Models and predictions as files: the model JSON (``ltv fit``) and ``predictions.parquet``."""

from __future__ import annotations

import json
from dataclasses import dataclass
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


#: The forecast of a report run (notebook 03): one row per customer, the fit's summary and the model.
FORECAST_FILES = ("predictions.parquet", "prediction.json", "model.json")


def save_predictions(output_dir, predictions: pd.DataFrame, model: LTVModel, **facts) -> pd.DataFrame:
    """Write ``predictions.parquet`` (one row per customer), ``prediction.json`` (model,
    parameters, totals and any ``facts`` given) and ``model.json`` (the model itself, as
    :meth:`LTVModel.save`) to ``output_dir``; returns the file list. :func:`load_forecast` reads
    them back (the channels and the next report's check of this one)."""
    from ltv_helpers.files import write_json, write_parquet

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    write_parquet(predictions, out / FORECAST_FILES[0])
    meta = {"model": model.model, "params": model.params, "standard_errors": model.standard_errors,
            "log_likelihood": model.log_likelihood, "unit_days": model.unit_days,
            "spend_params": model.spend_model.params if model.spend_model else None,
            "customers": len(predictions),
            "total_expected_purchases": float(predictions["expected_purchases"].sum()),
            "total_clv": float(predictions["clv"].sum()), **facts}
    write_json(out / FORECAST_FILES[1], meta)
    model.save(out / FORECAST_FILES[2])
    return pd.DataFrame({"rows": [len(predictions), None, None]},
                        index=pd.Index(list(FORECAST_FILES), name="file")).astype("Int64")


@dataclass(frozen=True)
class Forecast:
    """A run's forecast read back (:func:`load_forecast`): the model, the per-customer
    predictions (ids as text) and ``prediction.json``'s facts."""

    model: LTVModel
    predictions: pd.DataFrame
    facts: dict

    @property
    def model_error(self):
        """The forecast's :class:`~ltv_helpers.evaluation.ModelError` (None when the run did not
        save it whole)."""
        from ltv_helpers.evaluation import ModelError

        spec = self.facts.get("model_error") or {}
        return ModelError.from_dict(spec) if "origins" in spec else None


def load_forecast(run_dir) -> Forecast:
    """The forecast :func:`save_predictions` wrote to ``run_dir``; a missing or damaged file is
    one sentence."""
    run_dir = Path(run_dir)
    missing = [name for name in FORECAST_FILES if not (run_dir / name).is_file()]
    if missing:
        raise LTVError(f"{run_dir.name} has no forecast to read ({', '.join(missing)} missing).")
    try:
        facts = json.loads((run_dir / FORECAST_FILES[1]).read_text(encoding="utf-8"))
        predictions = pd.read_parquet(run_dir / FORECAST_FILES[0])
    except (OSError, ValueError) as exc:
        raise LTVError(f"The forecast in {run_dir.name} cannot be read ({type(exc).__name__}: {exc}).") from None
    predictions.index = predictions.index.astype("str")
    return Forecast(load_model(run_dir / FORECAST_FILES[2]), predictions, facts)
