"""BG/BB (discrete opportunities): the published donations fit, BTYD's walkthrough, lifetimes'
formulas, a synthetic world, and the report's machinery (CLV, intervals, JSON) on it."""

import warnings

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import models
from ltv_helpers.datasets import load_donations, synthetic_opportunities
from ltv_helpers.schema import LTVError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoBetaBinomFitter


@pytest.fixture(scope="module")
def donations():
    return load_donations()


@pytest.fixture(scope="module")
def bgbb(donations):
    return models.fit(donations, model="bgbb", spend=None)


@pytest.fixture(scope="module")
def theirs(bgbb, donations):
    """lifetimes' BG/BB fitter holding our parameters: its formulas are the reference."""
    fitter = BetaGeoBetaBinomFitter()
    fitter.params_ = pd.Series(bgbb.params)
    return fitter


def test_donations_are_the_published_data(donations):
    assert len(donations) == 22 and donations["customers"].sum() == 11_104 and (donations["n"] == 6).all()


def test_bgbb_reproduces_fader_hardie_shang_2010(bgbb):
    """Fader, Hardie and Shang (2010): alpha 1.2035, beta 0.7497, gamma 0.6567, delta 2.7834,
    log-likelihood -33,225.58."""
    published = {"alpha": 1.2035, "beta": 0.7497, "gamma": 0.6567, "delta": 2.7834}
    for name, value in published.items():
        assert bgbb.params[name] == pytest.approx(value, abs=5e-4), name
    assert bgbb.log_likelihood == pytest.approx(-33_225.58, abs=0.01)
    assert bgbb.n_customers == 11_104 and bgbb.n_distinct == 22
    assert all(np.isfinite(v) and v > 0 for v in bgbb.standard_errors.values())
    assert "opportunities" in repr(bgbb)


def test_lifetimes_finds_the_same_optimum(bgbb, donations):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fitter = BetaGeoBetaBinomFitter().fit(donations["frequency"], donations["recency"], donations["n"],
                                              weights=donations["customers"])
    for name, value in fitter.params_.items():
        assert bgbb.params[name] == pytest.approx(value, rel=1e-3), name


def test_btyd_walkthrough_customers(bgbb):
    """BTYD's walkthrough: expected transactions in the next 10 opportunities of a donor with no
    repeat donation in 6 (0.1302) and of one with 4, the last in year 5 (3.628)."""
    two = pd.DataFrame({"frequency": [0, 4], "recency": [0, 5], "n": [6, 6]})
    expected = bgbb.predict(two, horizon=10)["expected_purchases"].to_numpy()
    assert expected == pytest.approx([0.1302, 3.628], abs=6e-4)


def test_predictions_equal_lifetimes_formulas(bgbb, theirs, donations):
    rows = donations
    pred = bgbb.predict(rows, horizon=5)
    x, tx, n = rows["frequency"], rows["recency"], rows["n"]
    np.testing.assert_allclose(pred["expected_purchases"], theirs.conditional_expected_number_of_purchases_up_to_time(
        5, x, tx, n), rtol=1e-9)
    # P(alive) at the next opportunity (BTYD's bgbb.PAlive); lifetimes adds 1e-15 to a sum.
    np.testing.assert_allclose(pred["p_alive"], theirs.conditional_probability_alive(1, x, tx, n), rtol=1e-9)
    # A newly acquired donor's expected donations in the first n opportunities (the model's E[X(n)]).
    new = bgbb.new_customer_purchases([1, 6, 10])
    p = bgbb.params
    expect = [p["alpha"] / (p["alpha"] + p["beta"]) * p["delta"] / (p["gamma"] - 1)
              * (1 - np.exp(_lgamma(p["gamma"] + p["delta"]) + _lgamma(1 + p["delta"] + k)
                            - _lgamma(1 + p["delta"]) - _lgamma(p["gamma"] + p["delta"] + k))) for k in (1, 6, 10)]
    np.testing.assert_allclose(new, expect, rtol=1e-10)


def _lgamma(v):
    from scipy.special import gammaln

    return gammaln(v)


def test_holdout_expectations_by_frequency(bgbb, theirs, donations):
    """The walkthrough's "conditional expectation" table: the expected donations in the 5 holdout
    years of each calibration frequency's donors, against lifetimes' formula, bin by bin."""
    table = donations.assign(expected=bgbb.predict(donations, horizon=5)["expected_purchases"])
    ours = (table["expected"] * table["customers"]).groupby(table["frequency"]).sum() / \
        table.groupby("frequency")["customers"].sum()
    ref = theirs.conditional_expected_number_of_purchases_up_to_time(5, donations["frequency"], donations["recency"],
                                                                     donations["n"])
    ref = (ref * donations["customers"]).groupby(donations["frequency"]).sum() / \
        donations.groupby("frequency")["customers"].sum()
    np.testing.assert_allclose(ours.to_numpy(), ref.to_numpy(), rtol=1e-9)
    assert list(table.groupby("frequency")["customers"].sum()) == [3464, 1823, 1430, 1085, 1036, 1063, 1203]
    assert ours.is_monotonic_increasing and ours.iloc[0] < 0.2 and ours.iloc[-1] > 3


def test_gradient_equals_finite_differences(donations):
    like = models._BGBBLikelihood(donations["frequency"], donations["recency"], donations["n"],
                                  donations["customers"], 0.0)
    x0 = np.log([1.5, 0.6, 0.8, 2.0])
    _, grad = like(x0)
    eps = 1e-6
    numeric = [(like(x0 + eps * e)[0] - like(x0 - eps * e)[0]) / (2 * eps) for e in np.eye(4)]
    np.testing.assert_allclose(grad, numeric, atol=1e-7)


@pytest.mark.parametrize("opportunities", [8, 52])
def test_a_synthetic_world_is_recovered_within_two_standard_errors(opportunities):
    """Also a year of weekly opportunities, where lifetimes' fit does not converge (its sum of
    Beta functions underflows to NaN; benchmarks/bench_fit.py)."""
    world = synthetic_opportunities(30_000, opportunities=opportunities, seed=7)
    m = models.fit(world, model="bgbb", spend=None)
    for name, truth in world.attrs["true_params"].items():
        assert abs(m.params[name] - truth) < 2 * m.standard_errors[name], (name, m.params[name], truth)


def test_simulated_futures_agree_with_the_closed_form(bgbb, donations):
    """The customers' spread (intervals) simulates each history's future: its mean is the model's
    expectation."""
    spread = models.customer_spread(bgbb, donations, horizon=5).loc["all customers"]
    pred = bgbb.predict(donations, horizon=5)
    total = float((pred["expected_purchases"] * donations["customers"]).sum())
    assert spread["purchases"] == pytest.approx(total, rel=0.01)
    assert spread["purchases_var"] > 0


def test_clv_intervals_and_json_work_on_bgbb(tmp_path):
    world = synthetic_opportunities(5_000, opportunities=6, seed=3)
    world["monetary_value"] = np.where(world["frequency"] > 0, 20.0 + world["frequency"].to_numpy() % 5, 0.0)
    m = models.fit(world, model="bgbb", unit_days=365.25)
    pred = m.predict(world, horizon=3, annual_discount_rate=0.1)
    assert np.isfinite(pred.to_numpy()).all() and (pred["clv"] >= 0).all()
    undiscounted = m.predict(world, horizon=3)
    assert pred["clv"].sum() < undiscounted["clv"].sum()  # discounted at each yearly opportunity
    totals = models.intervals(m, world, horizon=3, draws=30)
    row = totals.loc["all customers"]
    assert row["purchases_low"] < row["expected_purchases"] < row["purchases_high"]
    again = models.load_model(m.save(tmp_path / "bgbb.json"))
    pd.testing.assert_frame_equal(again.predict(world, horizon=3), undiscounted)
    assert "opportunities" in models.describe(m) and "机会" in models.describe(m, "zh")


def test_bad_discrete_summaries_are_refused_in_one_sentence(donations):
    with pytest.raises(LTVError, match="no n column"):
        models.fit(donations.drop(columns="n"), model="bgbb", spend=None)
    late = donations.copy()
    late.loc[1, "recency"] = 7  # after the last opportunity
    with pytest.raises(LTVError, match=r"has recency 7.0 > n 6.0"):
        models.fit(late, model="bgbb", spend=None)
    early = donations.copy()
    early.loc[early.index[early["frequency"] == 3][0], "recency"] = 2  # 3 donations by year 2: impossible
    with pytest.raises(LTVError, match="frequency <= recency <= n"):
        models.fit(early, model="bgbb", spend=None)
    with pytest.raises(LTVError, match="model must be one of .*bgbb"):
        models.fit(donations, model="bg/bb")


def test_continuous_time_steps_are_refused_on_opportunities(bgbb, donations, cdnow_sample, capsys):
    """Whole opportunities only: a fractional horizon, lifetimes' 30-day CLV, a daily P(alive) path,
    the frequency x recency map, a backtest or model error on orders, and `ltv fit` on ltv summary's
    files each say so in one sentence."""
    from ltv_helpers import evaluation as ev
    from ltv_helpers import plots

    with pytest.raises(LTVError, match="whole opportunities: horizon must be a whole number, got 2.5"):
        bgbb.predict(donations, horizon=2.5)
    with pytest.raises(LTVError, match="whole number"):
        models.intervals(bgbb, donations, horizon=2.5, draws=20)
    with pytest.raises(LTVError, match="whole number"):
        models.customer_spread(bgbb, donations, horizon=2.5)
    for call in (lambda: models.lifetimes_clv(bgbb, donations),
                 lambda: models.p_alive_path(bgbb, ["2024-01-01"], observation_end="2024-06-30"),
                 lambda: plots.model_matrix(bgbb)):
        with pytest.raises(LTVError, match="works in continuous time; BG/BB's histories are whole opportunities"):
            call()
    with pytest.raises(LTVError, match="models must be among"):
        ev.model_error(cdnow_sample, as_of="1997-09-30", horizon_days=90, model="bgbb")
    with pytest.raises(LTVError, match="whole opportunities"):
        bgbb.p_alive(2, 1, 6)  # 2 purchases by opportunity 1: impossible
    from ltv_helpers.cli import main

    assert main(["fit", "summary.parquet", "-o", "m.json", "--model", "bgbb"]) == 2
    assert "ltv fit (on ltv summary's files) works in continuous time" in capsys.readouterr().err


def test_an_opportunity_lasts_what_unit_days_says(donations):
    """The donations are yearly (load_donations says so); a frame without that is refused rather than
    discounted as if each opportunity were a day. 10 yearly opportunities at 10% a year keep about
    two thirds of their value; the same as days keep nearly all."""
    bare = pd.DataFrame(donations.to_dict("list"))  # the same data, without attrs
    with pytest.raises(LTVError, match="needs unit_days"):
        models.fit(bare, model="bgbb", spend=None)
    spend = 30.0 + 7.0 * (donations["recency"] % 3) + donations["frequency"]
    with_spend = donations.assign(monetary_value=np.where(donations["frequency"] > 0, spend, 0.0))
    with_spend.attrs = dict(donations.attrs)
    yearly = models.fit(with_spend, model="bgbb")
    assert yearly.unit_days == 365.25
    ratio = (yearly.predict(with_spend, horizon=10, annual_discount_rate=0.1)["clv"].sum()
             / yearly.predict(with_spend, horizon=10)["clv"].sum())
    daily = models.fit(with_spend, model="bgbb", unit_days=1)
    daily_ratio = (daily.predict(with_spend, horizon=10, annual_discount_rate=0.1)["clv"].sum()
                   / daily.predict(with_spend, horizon=10)["clv"].sum())
    assert 0.6 < ratio < 0.75 and daily_ratio > 0.99


def test_a_new_donor_is_worth_the_unconditional_expectation(bgbb):
    value = bgbb.new_customer_value(horizon=10)
    assert value["expected_purchases"] == pytest.approx(float(bgbb.new_customer_purchases([10])[0]), rel=1e-12)
    assert np.isnan(value["clv"])  # no spend model: unknown, not zero
