import numpy as np
import pandas as pd
import pytest

from ltv_helpers import formulas as f
from ltv_helpers.schema import LTVError


def test_simple_ltv_worked_example():
    assert f.simple_ltv(500, 4, 3) == 6000.0


def test_vectorized_over_arrays_and_series():
    aov = pd.Series([500.0, 100.0], index=["x", "y"])
    out = f.simple_ltv(aov, 4, np.array([3, 2]))
    assert isinstance(out, pd.Series) and list(out.index) == ["x", "y"]
    assert out.tolist() == [6000.0, 800.0]
    arr = f.simple_ltv(np.array([1.0, 2.0]), 1, 1)
    assert isinstance(arr, np.ndarray) and arr.tolist() == [1.0, 2.0]


def test_net_and_margin():
    assert f.net_ltv(500, 4, 3, acquisition_cost=800, retention_cost=100) == 4900.0
    assert f.margin_ltv(500, 4, 3, 0.4) == pytest.approx(2400.0)


def test_discounted_matches_explicit_sum_and_tends_to_infinite_horizon():
    m, r, d = 100.0, 0.8, 0.1
    explicit = sum(m * r**t / (1 + d) ** t for t in range(1, 6))
    assert f.discounted_ltv(m, r, d, 5) == pytest.approx(explicit)
    assert f.discounted_ltv(m, r, d, 0) == 0.0
    assert f.infinite_horizon_ltv(m, r, d) == pytest.approx(m * r / (1 + d - r))
    assert f.discounted_ltv(m, r, d, 500) == pytest.approx(f.infinite_horizon_ltv(m, r, d))


def test_ratios():
    assert f.ltv_cac_ratio(6000, 2000) == 3.0
    assert f.cac_payback_months(1200, 100) == 12.0


def test_the_payback_that_counts_churn_and_discounting_against_month_by_month_sums():
    assert f.retained_payback_months(1200, 100, 1.0) == 12.0  # nobody leaves: the simple payback
    for cac, margin, r, d in [(300, 50, 0.96, 0.008), (500, 40, 0.99, 0.0), (50, 30, 0.5, 0.01)]:
        n = f.retained_payback_months(cac, margin, r, d)
        months = np.arange(1, 2000)
        cumulative = np.cumsum(margin * (r / (1 + d)) ** (months - 1))
        whole = months[np.argmax(cumulative >= cac)]  # the month in which it is paid back
        assert whole - 1 < n <= whole
        assert n > f.cac_payback_months(cac, margin) or r == 1
    assert f.retained_payback_months(300, 10, 0.9) == np.inf  # 10 a month, 90% stay: at most 100 in all
    assert f.retained_payback_months(30, 50, 0.0) == 0.6 and f.retained_payback_months(50, 50, 0.0) == 1.0
    assert f.retained_payback_months(60, 50, 0.0) == np.inf  # nobody stays past the first month
    assert list(f.retained_payback_months(300, 50, np.array([1.0, 0.96]))) == pytest.approx([6.0, 6.7228], rel=1e-4)


@pytest.mark.parametrize("call, name", [
    (lambda: f.infinite_horizon_ltv(100, 1.0, 0.1), "retention"),
    (lambda: f.infinite_horizon_ltv(100, -0.1, 0.1), "retention"),
    (lambda: f.discounted_ltv(100, 0.5, -0.01, 3), "discount"),
    (lambda: f.ltv_cac_ratio(100, 0), "cac"),
    (lambda: f.cac_payback_months(0, 10), "cac"),
    (lambda: f.retained_payback_months(300, 10, 1.2), "monthly_retention"),
    (lambda: f.margin_ltv(1, 1, 1, 1.5), "gross_margin"),
    (lambda: f.discounted_ltv(100, 0.5, 0.1, 2.5), "periods"),
    (lambda: f.simple_ltv(-1, 1, 1), "aov"),
])
def test_invalid_arguments_name_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()
    with pytest.raises(LTVError):
        call()
