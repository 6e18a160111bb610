"""What-if values of the LTV levers per group."""

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import levers
from ltv_helpers.data import customer_history
from ltv_helpers.schema import LTVError
from ltv_helpers.segments import value_tiers


def test_ltv_is_this_years_margin_plus_the_discounted_years_after():
    assert float(levers.ltv(500, 4, 0.6, 0.3, 0.1)) == pytest.approx(600 + 600 * 0.6 / 0.5)
    assert float(levers.ltv(500, 4, 0.0, 0.3, 0.1)) == pytest.approx(600)


@pytest.fixture(scope="module")
def baseline(cdnow_sample):
    history = customer_history(cdnow_sample)
    return history, levers.lever_baseline(history, value_tiers(history), gross_margin=0.3)


def test_baseline_measures_each_tier(baseline):
    history, table = baseline
    assert table.index.tolist() == ["high value", "medium value", "low value", "churn risk"]
    assert table["customers"].sum() == len(history)
    tiers = value_tiers(history).astype(str)
    high = history[tiers == "high value"]
    assert table.loc["high value", "aov"] == pytest.approx(high["revenue"].sum() / high["orders"].sum())
    old = history["tenure_days"] >= 365
    assert table["retention"].unique() == pytest.approx([(old & (history["days_since_last"] < 365)).sum() / old.sum()])
    per_group = levers.lever_baseline(history, tiers, gross_margin=0.3,
                                      retention={"high value": 0.8, "medium value": 0.5, "low value": 0.2,
                                                 "churn risk": 0.1})
    assert per_group.loc["high value", "retention"] == 0.8
    with pytest.raises(LTVError, match="every group"):
        levers.lever_baseline(history, tiers, gross_margin=0.3, retention={"high value": 0.8})


def test_what_if_values_each_lever_against_its_cost(baseline):
    _, table = baseline
    out = levers.what_if(table, {"order value": 0.1, "frequency": 0.1, "retention": 0.1, "margin": 0.05},
                         cost_per_customer={"order value": 2, "frequency": 1.5, "retention": 3, "margin": 0.5})
    # Order value and frequency scale the yearly margin, hence LTV, by exactly 10%.
    for lever in ("order value", "frequency"):
        rows = out.xs(lever, level="lever")
        assert rows["ltv_after"].to_numpy() == pytest.approx(1.1 * table["ltv"].to_numpy())
    margin = out.xs("margin", level="lever")
    assert margin["gain"].to_numpy() == pytest.approx(0.05 * table["ltv"].to_numpy())
    kept = out.xs("retention", level="lever")
    assert (kept["gain"] > 0).all() and (kept["gain"] < out.xs("order value", level="lever")["gain"]).all()
    assert out["net_value"].to_numpy() == pytest.approx(((out["gain"] - out["cost"]) * out["customers"]).to_numpy())
    assert out["return"].to_numpy() == pytest.approx((out["gain"] / out["cost"]).to_numpy())


def test_retention_is_capped_and_unknown_levers_are_named():
    table = pd.DataFrame({"customers": [10], "aov": [50.0], "orders_per_year": [2.0], "retention": [0.95],
                          "margin": [0.5], "ltv": [float(levers.ltv(50, 2, 0.95, 0.5, 0.1))]}, index=["a"])
    out = levers.what_if(table, {"retention": 0.5}, cost_per_customer=1)
    assert np.isfinite(out["ltv_after"]).all()
    assert out["ltv_after"].iloc[0] == pytest.approx(float(levers.ltv(50, 2, levers.MAX_RETENTION, 0.5, 0.1)))
    with pytest.raises(LTVError, match="Unknown lever 'price'"):
        levers.what_if(table, {"price": 0.1}, cost_per_customer=1)
