"""The model family's registry: a new model is one class, and everything reads it from there."""

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import models
from ltv_helpers.data import calibration_holdout
from ltv_helpers.schema import LTVError


class NBD(models.PurchaseModel):
    """A toy model: the NBD, customers who never leave (Pareto/NBD without dropout). Its whole
    definition is this class."""

    name, label = "nbd_toy", "NBD (toy)"
    parameters, fitter_class, auto = ("r", "alpha"), models.OwnFitter, False

    def likelihood(self, frequency, recency, T, weights, penalizer, scale):
        from scipy.special import digamma, gammaln

        x, T_, w = (np.asarray(v, dtype=float) for v in (frequency, T, weights))

        def objective(log_params):
            r, alpha = np.exp(log_params)
            ll = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - (r + x) * np.log(alpha + T_)
            d_r = digamma(r + x) - digamma(r) + np.log(alpha) - np.log(alpha + T_)
            d_alpha = r / alpha - (r + x) / (alpha + T_)
            grad = -np.array([w @ d_r, w @ d_alpha]) / w.sum()
            return -(w @ ll) / w.sum(), grad * np.array([r, alpha])

        return objective

    def alive(self, model, rows):
        return np.ones(len(rows))

    def purchase_terms(self, model, rows, times, alive=None):
        r, alpha = model.params["r"], model.params["alpha"]
        x, T_ = rows["frequency"].to_numpy(float), rows["T"].to_numpy(float)
        return np.asarray(times, dtype=float)[:, None], np.zeros(len(rows), dtype=int), (alpha + T_) / (r + x)

    def simulate(self, params, x, T, horizon, shape, rng):
        return rng.poisson(rng.gamma(params["r"] + x, 1.0 / (params["alpha"] + T), shape) * horizon).astype(float)

    def dropout_line(self, params, span, unit_days, zh):
        return "- 客户从不流失。" if zh else "- Customers never leave."


@pytest.fixture
def toy():
    models.register(NBD)
    yield models.MODELS["nbd_toy"]
    del models.MODELS["nbd_toy"]


def test_a_toy_model_is_one_class_and_works_everywhere(toy, cdnow_sample, tmp_path):
    cal = calibration_holdout(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                              freq="D", freq_multiplier=7)
    m = models.fit(cal, model="nbd_toy")
    assert m.spec is toy and m.params["r"] > 0 and all(np.isfinite(list(m.standard_errors.values())))
    # The NBD's closed forms: purchases in the next t are (r + x) / (alpha + T) t.
    pred = m.predict(cal, horizon=39)
    rows = models._summary_columns(cal)
    np.testing.assert_allclose(pred["expected_purchases"],
                               (m.params["r"] + rows["frequency"]) / (m.params["alpha"] + rows["T"]) * 39)
    assert (pred["p_alive"] == 1).all() and (pred["clv"] > 0).all()
    assert "Customers never leave." in models.describe(m)
    totals = models.intervals(m, cal, horizon=39, draws=20)
    assert totals.loc["all customers", "purchases_low"] < pred["expected_purchases"].sum()
    again = models.load_model(m.save(tmp_path / "toy.json"))
    pd.testing.assert_frame_equal(again.predict(cal, horizon=39), pred)
    assert "nbd_toy" not in models.PURCHASE_MODELS  # auto = False: the report's backtest leaves it out


def test_the_registry_lists_every_model_and_refuses_unknown_ones():
    assert list(models.PURCHASE_MODELS) == ["bgnbd", "mbgnbd", "pareto_nbd"]
    assert {"bgnbd", "mbgnbd", "pareto_nbd", "bgbb", "ggomnbd"} <= set(models.MODELS)
    for name, spec in models.MODELS.items():
        assert spec.name == name and spec.label and spec.parameters
    with pytest.raises(LTVError, match="model must be one of bgnbd, mbgnbd, pareto_nbd, bgbb, ggomnbd"):
        models.purchase_model("gompertz")
    with pytest.raises(LTVError, match="needs a name and parameters"):
        models.register(type("Nameless", (models.PurchaseModel,), {}))
