"""The value of a newly acquired customer: repeat purchases, spend and CLV over a horizon for someone
who has just made a first purchase, for every model of orders."""

import warnings

import numpy as np
import pytest

from ltv_helpers import models
from ltv_helpers.data import calibration_holdout


@pytest.fixture(scope="module")
def cal(cdnow_sample):
    return calibration_holdout(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                               freq="D", freq_multiplier=7)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd", "ggomnbd"])
def test_a_new_customer_is_worth_the_papers_unconditional_expectation(cal, name):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = models.fit(cal, model=name)
    plain = m.new_customer_value(horizon=52)
    # The conditional expectation at x = t_x = T = 0 is the unconditional E[X(t)]: lifetimes' own
    # formula where lifetimes has the model, Pareto/NBD's at the Gamma-Gompertz optimum (its limit).
    reference = (models.fit(cal, model="pareto_nbd", spend=None) if name == "ggomnbd" else m).fitter
    assert plain["expected_purchases"] == pytest.approx(
        float(reference.expected_number_of_purchases_up_to_time(52)), rel=1e-6)
    sp = m.spend_model.params
    assert plain["expected_spend"] == pytest.approx(sp["p"] * sp["gamma"] / (sp["q"] - 1), rel=1e-12)
    assert plain["clv"] == pytest.approx(plain["expected_purchases"] * plain["expected_spend"], rel=1e-9)
    worth = m.new_customer_value(horizon=52, gross_margin=0.4, annual_discount_rate=0.1)
    assert 0 < worth["clv"] < 0.4 * plain["clv"]  # on margin and discounted
    assert m.new_customer_value(horizon=104)["expected_purchases"] > plain["expected_purchases"]


def test_without_a_spend_model_the_value_is_unknown_not_zero(cal):
    m = models.fit(cal, model="bgnbd", spend=None)
    value = m.new_customer_value(horizon=52)
    assert value["expected_purchases"] > 0 and np.isnan(value["expected_spend"]) and np.isnan(value["clv"])
