import os
import warnings

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import models
from ltv_helpers.models import pareto_nbd
from ltv_helpers.data import calibration_holdout, customer_history, rfm_summary
from ltv_helpers.datasets import load_cdnow, synthetic_transactions
from ltv_helpers.schema import LTVError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes import BetaGeoFitter, GammaGammaFitter, ModifiedBetaGeoFitter, ParetoNBDFitter


@pytest.fixture(scope="module")
def cal():
    return calibration_holdout(load_cdnow(sample=True), calibration_end="1997-09-30",
                               observation_end="1998-06-30", freq="D", freq_multiplier=7)


@pytest.fixture(scope="module")
def bgnbd(cal):
    return models.fit(cal, model="bgnbd", unit_days=7)


def _close(got: dict, published: dict, rel=0.01):
    for k, v in published.items():
        assert got[k] == pytest.approx(v, rel=rel), k


# ------------------------------------------------------------------ the literature

def test_bgnbd_reproduces_the_published_cdnow_fit(bgnbd):
    _close(bgnbd.params, {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    assert bgnbd.n_customers == 2357
    assert bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.1)  # Fader, Hardie and Lee (2005)


@pytest.mark.parametrize("ours_class, lifetimes_class", [
    ("_BGNBDLikelihood", BetaGeoFitter), ("_MBGNBDLikelihood", ModifiedBetaGeoFitter)])
def test_fast_purchase_objectives_equal_lifetimes(cal, ours_class, lifetimes_class):
    from autograd import grad
    from lifetimes.utils import _scale_time

    f, r, t = (cal[c].to_numpy() for c in ("frequency_cal", "recency_cal", "T_cal"))
    w = np.random.default_rng(0).integers(1, 5, len(f)).astype(float)
    scale = _scale_time(t)
    ours = getattr(models, ours_class)(f, r, t, w, 0.01, scale)
    args = (f, r * scale, t * scale, w, 0.01)
    for theta in (np.array([0.1, 0.2, -0.3, 0.5]), np.array([-1.4, 0.1, -0.2, 0.9])):
        value, gradient = ours(theta)
        assert value == pytest.approx(lifetimes_class._negative_log_likelihood(theta, *args), rel=1e-12)
        assert np.allclose(gradient, grad(lifetimes_class._negative_log_likelihood)(theta, *args),
                           rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("ours_class", ["_BGNBDLikelihood", "_MBGNBDLikelihood"])
def test_purchase_objectives_do_not_depend_on_the_block_size(cal, monkeypatch, ours_class):
    f, r, t = (cal[c].to_numpy() for c in ("frequency_cal", "recency_cal", "T_cal"))
    w = np.random.default_rng(1).integers(1, 5, len(f)).astype(float)
    theta = np.array([-0.3, 0.4, -0.5, 0.2])
    whole = getattr(models, ours_class)(f, r, t, w, 0.0, 0.1)(theta)
    monkeypatch.setattr(models.bgnbd, "OBJECTIVE_BLOCK", 97)  # 2,357 customers: 25 blocks, the last one short
    blocks = getattr(models, ours_class)(f, r, t, w, 0.0, 0.1)(theta)
    assert blocks[0] == pytest.approx(whole[0], rel=1e-13)
    assert np.allclose(blocks[1], whole[1], rtol=1e-12, atol=1e-15)


def test_distinct_values_by_table_and_by_hashing_agree():
    rng = np.random.default_rng(3)
    whole = rng.integers(0, 400, 5000).astype(float)
    for values in (whole, whole / 7, whole + 1e9, np.array([])):
        codes, uniques = models._distinct_values(values)
        assert np.array_equal(uniques[codes], values)
        assert len(uniques) == len(np.unique(values))
    codes, uniques = models._distinct_values(whole)  # the table path: ascending values
    assert np.array_equal(uniques, np.unique(whole))


def test_fast_gamma_gamma_objective_equals_lifetimes(cal):
    from autograd import grad

    repeat = cal[(cal["frequency_cal"] > 0) & (cal["monetary_value_cal"] > 0)]
    x, m = repeat["frequency_cal"].to_numpy(), repeat["monetary_value_cal"].to_numpy()
    w = np.random.default_rng(2).integers(1, 5, len(x)).astype(float)
    ours = models._GammaGammaLikelihood(x, m, w, 0.01)
    for theta in (np.array([0.1, 0.2, -0.3]), np.array([1.8, 1.3, 2.7])):
        value, gradient = ours(theta)
        assert value == pytest.approx(GammaGammaFitter._negative_log_likelihood(theta, x, m, w, 0.01), rel=1e-12)
        assert np.allclose(gradient, grad(GammaGammaFitter._negative_log_likelihood)(theta, x, m, w, 0.01),
                           rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def days():
    return calibration_holdout(load_cdnow(sample=True), calibration_end="1997-09-30", observation_end="1998-06-30")


def test_fast_mbgnbd_and_gamma_gamma_fits_equal_lifetimes(days):
    f, r, t, m = (days[c] for c in ("frequency_cal", "recency_cal", "T_cal", "monetary_value_cal"))
    ours = models.fit(days, model="mbgnbd")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = ModifiedBetaGeoFitter().fit(f, r, t)
        repeat = (f > 0) & (m > 0)
        gg = GammaGammaFitter().fit(f[repeat], m[repeat], tol=1e-6)
    for k, v in plain.params_.items():
        assert ours.params[k] == pytest.approx(v, rel=1e-8)
        assert ours.standard_errors[k] == pytest.approx(plain.standard_errors_[k], rel=1e-6)
    for k, v in gg.params_.items():
        name = {"v": "gamma"}.get(k, k)
        assert ours.spend_model.params[name] == pytest.approx(v, rel=1e-8)
        assert ours.spend_model.standard_errors[name] == pytest.approx(gg.standard_errors_[k], rel=1e-6)
    assert ours.spend_model.log_likelihood == pytest.approx(-gg._negative_log_likelihood_ * repeat.sum(), rel=1e-10)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_expected_purchases_for_every_step_at_once_equal_lifetimes(days, name):
    m = models.fit(days, model=name, spend=None)
    sim = synthetic_transactions(3000, seed=5)
    summary = rfm_summary(sim, observation_end=sim.attrs["true_params"]["observation_end"])
    for frame in (days.rename(columns=lambda c: c.removesuffix("_cal")), summary):
        rows = frame[["frequency", "recency", "T"]]
        ours = models.expected_purchases_by_step(m, rows, [1, 30.5, 365.25])
        for k, t in enumerate([1, 30.5, 365.25]):
            ref = m.fitter.conditional_expected_number_of_purchases_up_to_time(t, rows["frequency"], rows["recency"],
                                                                              rows["T"])
            assert np.allclose(ours[k], ref, rtol=1e-11, atol=0)


def test_the_blocked_series_equals_the_term_by_term_one_also_near_one():
    rng = np.random.default_rng(0)
    e = rng.uniform(0.5, 800, 3000)
    c1 = e + rng.uniform(0.1, 50, 3000)
    z = np.r_[rng.uniform(0, 0.9, 1000), rng.uniform(0.99, 0.998, 2000)]  # both converge within PARETO_MAX_TERMS
    assert np.allclose(models._hyp_value(e, c1, z), models._hyp_series(e, c1, z)[0], rtol=1e-13, atol=0)


def test_pareto_p_alive_equals_lifetimes(days):
    """Our stable P(alive) for Pareto/NBD against lifetimes' closed form, on CDNOW and a synthetic
    client (every customer where lifetimes' value is finite)."""
    m = models.fit(days, model="pareto_nbd", spend=None)
    sim = synthetic_transactions(3000, seed=5)
    summary = rfm_summary(sim, observation_end=sim.attrs["true_params"]["observation_end"])
    for frame in (days.rename(columns=lambda c: c.removesuffix("_cal")), summary):
        rows = frame[["frequency", "recency", "T"]]
        with np.errstate(all="ignore"):
            ref = np.asarray(m.fitter.conditional_probability_alive(rows["frequency"], rows["recency"], rows["T"]))
        ours = models._pareto_alive(m, rows)
        finite = np.isfinite(ref)
        assert finite.mean() > 0.99 and np.isfinite(ours).all()
        assert np.allclose(ours[finite], ref[finite], rtol=1e-10, atol=1e-13)
        assert ((ours >= 0) & (ours <= 1)).all()


def test_pareto_predictions_reuse_the_rows_pairs_only_for_the_same_unchanged_rows(days):
    """The distinct pairs of the rows predicted last are kept (intervals predict the same rows under
    100 parameter draws); other rows, or the same frame changed in place, are prepared again."""
    m = models.fit(days, model="pareto_nbd", spend=None)
    rows = days.rename(columns=lambda c: c.removesuffix("_cal"))[["frequency", "recency", "T"]].copy()
    first = models._pareto_alive(m, rows)
    kept = pareto_nbd._LAST_ROWS
    assert kept[0]() is rows and np.array_equal(models._pareto_alive(m, rows), first)
    assert pareto_nbd._LAST_ROWS is kept  # reused, not prepared again
    rows.loc[rows.index[:50], "T"] += 7.0  # changed in place: prepared again, as a new frame would be
    again = models._pareto_alive(m, rows)
    assert pareto_nbd._LAST_ROWS is not kept
    fresh = models._ParetoNBDLikelihood(rows["frequency"], rows["recency"], rows["T"], np.ones(len(rows)), 0.0,
                                        1.0).alive(*(m.params[k] for k in ("r", "alpha", "s", "beta")))
    assert np.array_equal(again, fresh) and not np.array_equal(again, first)


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd", "pareto_nbd"])
def test_discounted_purchases_weight_the_increments_of_every_step(days, name):
    m = models.fit(days, model=name, spend=None)
    rows = days.rename(columns=lambda c: c.removesuffix("_cal"))[["frequency", "recency", "T"]]
    times, factors = np.array([30.4, 60.9, 91.3, 120.0]), np.array([0.99, 0.98, 0.97, 0.96])
    steps = models.expected_purchases_by_step(m, rows, times)
    discounted, last = models.discounted_purchases(m, rows, times, factors)
    assert np.allclose(discounted, factors @ np.diff(steps, axis=0, prepend=0.0), rtol=1e-12, atol=1e-15)
    assert np.allclose(last, steps[-1], rtol=1e-14, atol=0)
    assert (discounted <= last).all()  # factors below 1 on increments of a growing count


@pytest.mark.parametrize("name", ["bgnbd", "mbgnbd"])
def test_clv_under_lifetimes_convention_equals_lifetimes(days, name):
    m = models.fit(days, model=name)
    f, r, t, mv = (days[c] for c in ("frequency_cal", "recency_cal", "T_cal", "monetary_value_cal"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = m.spend_model.fitter.customer_lifetime_value(m.fitter, f, r, t, mv, time=12, discount_rate=0.01, freq="D")
    ours = models.lifetimes_clv(m, days, time=12, discount_rate=0.01, freq="D")
    assert np.allclose(ours, ref, rtol=1e-10, atol=1e-12)
    assert (ours.index == days.index).all()
    with pytest.raises(LTVError, match="freq must be one of"):
        models.lifetimes_clv(m, days, freq="Y")


@pytest.mark.parametrize("theta", [np.array([0.55, 1.4, 0.6, 1.5]),   # alpha < beta
                                   np.array([0.3, 2.0, 1.5, 0.4]),    # alpha > beta
                                   np.array([2.0, 0.5, 0.3, 3.0]), np.array([0.8, 1.0, 0.9, 1.0])])
def test_fast_pareto_nbd_objective_equals_lifetimes(cal, theta):
    from lifetimes.utils import _scale_time

    f, r, t = (cal[c].to_numpy() for c in ("frequency_cal", "recency_cal", "T_cal"))
    w = np.random.default_rng(3).integers(1, 5, len(f)).astype(float)
    scale = _scale_time(t)
    ours = models._ParetoNBDLikelihood(f, r, t, w, 0.01, scale)
    args = (f, r * scale, t * scale, w, 0.0)

    def theirs(log_theta):  # lifetimes: sum(w ll) / mean(w); ours: per customer, penalizer on top
        params = np.exp(log_theta)
        return ParetoNBDFitter._negative_log_likelihood(params, *args) / len(w) + 0.01 * params @ params

    value, gradient = ours(np.log(theta))
    assert value == pytest.approx(theirs(np.log(theta)), rel=1e-12)
    h = 1e-6
    numeric = [(theirs(np.log(theta) + h * e) - theirs(np.log(theta) - h * e)) / (2 * h) for e in np.eye(4)]
    assert np.allclose(gradient, numeric, rtol=1e-5, atol=1e-8)


def test_fast_pareto_nbd_fit_reaches_lifetimes_optimum(cal):
    f, r, t = (cal[c] for c in ("frequency_cal", "recency_cal", "T_cal"))
    ours = models.fit(cal, model="pareto_nbd", spend=None, unit_days=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = ParetoNBDFitter().fit(f, r, t, initial_params=np.ones(4))
    for k, v in plain.params_.items():  # lifetimes' Nelder-Mead stops within about 1e-4
        assert ours.params[k] == pytest.approx(v, rel=2e-4)
    # Our optimum is at least as good as lifetimes' on lifetimes' own objective.
    scale = plain._scale
    args = (f.to_numpy(), r.to_numpy() * scale, t.to_numpy() * scale, np.ones(len(f)), 0.0)
    at = lambda p: ParetoNBDFitter._negative_log_likelihood(  # noqa: E731
        np.array([p["r"], p["alpha"] * scale, p["s"], p["beta"] * scale]), *args)
    assert at(ours.params) <= at(plain.params_) + 1e-9


def test_fast_pareto_nbd_is_finite_for_every_customer():
    """Heavy buyers whose last purchase is at the end of the window: lifetimes' form returns NaN for
    some of them on scipy 1.16+; the series form never does."""
    sim = synthetic_transactions(20_000, seed=11, r=2.0, alpha=5.0)
    summary = rfm_summary(sim, observation_end=sim.attrs["true_params"]["observation_end"])
    rows, counts, _ = models.compress(summary, ["frequency", "recency", "T"])
    objective = models._ParetoNBDLikelihood(rows["frequency"], rows["recency"], rows["T"], counts, 0.0, 0.01)
    for theta in ([0.5, 10.0, 0.6, 11.0], [2.0, 5.0, 0.1, 300.0], [0.2, 300.0, 3.0, 2.0]):
        value, gradient = objective(np.log(theta))
        assert np.isfinite(value) and np.isfinite(gradient).all()
    m = models.fit(summary, model="pareto_nbd", spend=None)
    assert np.isfinite(m.predict(summary, horizon=365).to_numpy()).all()


def test_pareto_nbd_reproduces_the_published_cdnow_fit(cal):
    m = models.fit(cal, model="pareto_nbd", spend=None, unit_days=7)
    _close(m.params, {"r": 0.553, "alpha": 10.578, "s": 0.606, "beta": 11.669})
    assert all(np.isfinite(v) and v > 0 for v in m.standard_errors.values())


def test_gamma_gamma_reproduces_the_published_cdnow_fit(bgnbd):
    assert bgnbd.spend_model.n_customers == 946
    _close(bgnbd.spend_model.params, {"p": 6.25, "q": 3.74, "gamma": 15.44})


def test_pareto_nbd_is_deterministic(cal):
    a = models.fit(cal, model="pareto_nbd", spend=None, unit_days=7)
    np.random.seed(12345)
    b = models.fit(cal, model="pareto_nbd", spend=None, unit_days=7)
    assert a.params == b.params


# ------------------------------------------------------------------ against lifetimes

def test_weighted_fit_equals_plain_lifetimes_fit(cal):
    plain = BetaGeoFitter().fit(cal["frequency_cal"], cal["recency_cal"], cal["T_cal"])
    ours = models.fit(cal, model="bgnbd", spend=None)
    for k, v in plain.params_.items():
        assert ours.params[k] == pytest.approx(v, rel=1e-4)
    for k, v in plain.standard_errors_.items():
        assert ours.standard_errors[k] == pytest.approx(v, rel=1e-3)


def test_predictions_equal_lifetimes(cal, bgnbd):
    pred = bgnbd.predict(cal, horizon=39)
    f, r, t = cal["frequency_cal"], cal["recency_cal"], cal["T_cal"]
    ref = bgnbd.fitter.conditional_expected_number_of_purchases_up_to_time(39, f, r, t)
    assert np.allclose(pred["expected_purchases"], ref, rtol=1e-10)
    assert np.allclose(pred["p_alive"], bgnbd.fitter.conditional_probability_alive(f, r, t), rtol=1e-10)
    gg = bgnbd.spend_model.fitter
    repeat = cal["frequency_cal"] > 0
    ref_spend = gg.conditional_expected_average_profit(cal["frequency_cal"], cal["monetary_value_cal"])
    assert np.allclose(pred.loc[repeat, "expected_spend"], ref_spend[repeat], rtol=1e-10)
    assert (pred.index == cal.index).all()


def test_clv_without_discount_equals_lifetimes(cal, bgnbd):
    # lifetimes: 12 steps of 30 days; freq "D" needs the summary in days.
    days = calibration_holdout(load_cdnow(sample=True), calibration_end="1997-09-30",
                               observation_end="1998-06-30")
    m = models.fit(days, model="bgnbd")
    ours = m.predict(days, horizon=360)
    repeat = days["frequency_cal"] > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = m.spend_model.fitter.customer_lifetime_value(
            m.fitter, days["frequency_cal"], days["recency_cal"], days["T_cal"],
            days["monetary_value_cal"], time=12, discount_rate=0.0, freq="D")
    assert np.allclose(ours.loc[repeat, "clv"], ref[repeat], rtol=1e-8)


def test_clv_discounting_by_hand(bgnbd, cal):
    one = cal.iloc[[5]]
    p = bgnbd.predict(one, horizon=52, annual_discount_rate=0.12, gross_margin=0.3)
    step = 365.25 / 12 / 7
    ends = np.minimum(np.arange(1, 13) * step, 52)
    cum = [0.0] + [float(bgnbd.fitter.conditional_expected_number_of_purchases_up_to_time(
        t, one["frequency_cal"].iloc[0], one["recency_cal"].iloc[0], one["T_cal"].iloc[0])) for t in ends]
    expected = sum((cum[k + 1] - cum[k]) / 1.12 ** (ends[k] * 7 / 365.25) for k in range(12))
    assert p["clv"].iloc[0] == pytest.approx(0.3 * expected * p["expected_spend"].iloc[0], rel=1e-10)
    undiscounted = bgnbd.predict(one, horizon=52)
    assert p["clv"].iloc[0] < 0.3 * undiscounted["clv"].iloc[0]


def test_repr_shows_what_was_fitted(bgnbd):
    text = repr(bgnbd)
    assert "BG/NBD" in text and "r=0.2426" in text and "2,357 customers" in text and "GammaGamma" in text
    assert np.isfinite(bgnbd.bic) and bgnbd.log_likelihood < 0


# ------------------------------------------------------------------ synthetic truth

def test_bgnbd_recovers_the_synthetic_truth():
    """Hourly resolution, in days: within 6% of the generating parameters (20k customers).

    Whole days bias alpha up by ~17% here (recency and T lose up to a day against a mean gap
    of about two weeks): the time unit trades resolution for speed.
    """
    tx = synthetic_transactions(20_000, seed=8)
    truth = tx.attrs["true_params"]
    summary = rfm_summary(tx, observation_end="2024-12-31", freq="h", freq_multiplier=24)
    m = models.fit(summary, model="bgnbd", spend=None, unit_days=1)
    for k in ("r", "alpha", "a", "b"):
        assert m.params[k] == pytest.approx(truth[k], rel=0.06), k


# ------------------------------------------------------------------ robustness

def test_no_repeat_buyers_is_a_clear_error():
    summary = pd.DataFrame({"frequency": 0.0, "recency": 0.0, "T": np.arange(30, 60.0),
                            "monetary_value": 0.0})
    with pytest.raises(LTVError, match="repeat buyers"):
        models.fit(summary)


def test_a_handful_of_customers_is_a_clear_error(cal):
    with pytest.raises(LTVError, match="too few"):
        models.fit(cal.iloc[:5])


def test_recency_above_t_by_rounding_is_clipped_with_a_warning(cal):
    bumped = cal.copy()
    bumped = bumped.astype(float)
    i = bumped["frequency_cal"].idxmax()
    bumped.loc[i, "recency_cal"] = bumped.loc[i, "T_cal"] + 0.004
    with pytest.warns(UserWarning, match="rounding"):
        m = models.fit(bumped, unit_days=7)
    assert np.isfinite(m.predict(bumped, horizon=10).to_numpy()).all()
    bumped.loc[i, "recency_cal"] = bumped.loc[i, "T_cal"] + 5
    with pytest.raises(LTVError, match="recency"):
        models.fit(bumped)


def test_spend_correlation_warning():
    rng = np.random.default_rng(0)
    f = rng.integers(1, 20, 400).astype(float)
    summary = pd.DataFrame({"frequency": f, "recency": f * 3, "T": 100.0,
                            "monetary_value": 10 + 2 * f + rng.uniform(0, 30, 400)})
    corr = np.corrcoef(summary["frequency"], summary["monetary_value"])[0, 1]
    with pytest.warns(UserWarning, match=f"correlation is {corr:.2f}"):
        m = models.fit(summary)
    assert m.spend_model.frequency_spend_correlation == pytest.approx(corr)
    assert corr > 0.3


def test_predictions_never_nan_or_negative(cal):
    for model in ("bgnbd", "mbgnbd", "pareto_nbd"):
        m = models.fit(cal, model=model, unit_days=7)
        p = m.predict(cal, horizon=52, annual_discount_rate=0.1)
        assert np.isfinite(p.to_numpy()).all() and (p.to_numpy() >= 0).all()
        assert p["p_alive"].between(0, 1).all()


def test_pareto_nbd_on_the_master_customer_that_breaks_scipy_116(cdnow):
    """Under scipy 1.16+ lifetimes' Pareto/NBD returns NaN for one CDNOW master customer whose
    last purchase is at the end of the window after many purchases; scipy is pinned below."""
    summary = rfm_summary(cdnow, observation_end="1998-06-30", freq="D", freq_multiplier=7)
    m = models.fit(summary, model="pareto_nbd", spend=None, unit_days=7)
    p = m.predict(summary, horizon=52)
    assert np.isfinite(p.to_numpy()).all()
    heavy = summary[(summary["recency"] == summary["T"]) & (summary["frequency"] >= 10)]
    assert len(heavy) > 0 and (p.loc[heavy.index, "p_alive"] > 0.9).all()


def test_invalid_arguments(cal, bgnbd):
    with pytest.raises(LTVError, match="model must be one of"):
        models.fit(cal, model="weibull")  # "bgbb" was the unknown name here until BG/BB joined the registry
    with pytest.raises(LTVError, match="horizon"):
        bgnbd.predict(cal, horizon=0)
    with pytest.raises(LTVError, match="gross_margin"):
        bgnbd.predict(cal, horizon=5, gross_margin=2)


# ------------------------------------------------------------------ uncertainty, choice, baseline

def test_intervals_cover_the_point_and_are_deterministic(cal, bgnbd):
    groups = pd.Series(np.where(cal["frequency_cal"] > 0, "repeat", "one-time"), index=cal.index)
    a = models.intervals(bgnbd, cal, horizon=39, groups=groups, draws=40, seed=1)
    b = models.intervals(bgnbd, cal, horizon=39, groups=groups, draws=40, seed=1, workers=1)
    pd.testing.assert_frame_equal(a, b, check_exact=True)  # threads change nothing
    assert list(a.index) == ["all customers", "one-time", "repeat"]
    assert (a["purchases_low"] <= a["expected_purchases"]).all()
    assert (a["expected_purchases"] <= a["purchases_high"]).all()
    assert (a["clv_low"] < a["clv_high"]).all()
    point = bgnbd.predict(cal, horizon=39)
    assert a.loc["all customers", "expected_purchases"] == pytest.approx(point["expected_purchases"].sum())
    assert a.loc[["one-time", "repeat"], "clv"].sum() == pytest.approx(point["clv"].sum())
    assert a["expected_revenue"].to_numpy() == pytest.approx(a["clv"].to_numpy())  # margin 1, undiscounted
    # The 39-week holdout has 1,882 purchase days; BG/NBD's forecast is 12% short of it.
    assert a.loc["all customers", "expected_purchases"] == pytest.approx(1882, rel=0.15)


def test_pareto_covariance_matches_its_standard_errors(cal):
    m = models.fit(cal, model="pareto_nbd", spend=None, unit_days=7)
    rel_se = np.sqrt(np.diag(m.cov_log))
    for i, k in enumerate(["r", "alpha", "s", "beta"]):
        assert rel_se[i] == pytest.approx(m.standard_errors[k] / m.params[k], rel=1e-6)


def test_ml_baseline_learns_and_predicts(cdnow_sample):
    ml = models.fit_ml_baseline(cdnow_sample, observation_end="1998-06-30", horizon_days=180)
    assert ml.train_end == pd.Timestamp("1998-01-01")
    pred = ml.predict(cdnow_sample, observation_end="1998-06-30")
    assert len(pred) == 2357 and (pred >= 0).all().all()
    # Customers who bought a lot recently are predicted to spend more than silent one-timers.
    hist_orders = cdnow_sample.groupby("customer_id").size()
    assert pred.loc[hist_orders[hist_orders >= 10].index, "expected_revenue"].mean() > \
        5 * pred.loc[hist_orders[hist_orders == 1].index, "expected_revenue"].mean()
    again = models.fit_ml_baseline(cdnow_sample, observation_end="1998-06-30", horizon_days=180)
    pd.testing.assert_frame_equal(pred, again.predict(cdnow_sample, observation_end="1998-06-30"))
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="openmp"):  # predictions use every core, and do not depend on it
        pd.testing.assert_frame_equal(pred, ml.predict(cdnow_sample, observation_end="1998-06-30"), check_exact=True)
    history = customer_history(cdnow_sample, observation_end="1998-06-30")  # the prediction notebook's
    pd.testing.assert_frame_equal(pred, ml.predict(cdnow_sample, observation_end="1998-06-30", history=history),
                                  check_exact=True)
    with pytest.raises(LTVError, match="No history"):
        models.fit_ml_baseline(cdnow_sample, observation_end="1998-06-30", horizon_days=800)


def test_ml_predictions_made_once_per_distinct_row_of_bins_are_scikit_learns(cdnow_sample):
    """MLBaseline.predict predicts each distinct row of bins once: the very numbers of scikit-learn's
    predict, for values at the bins' edges, beyond the training range and repeated; a NaN or a model
    with other bins goes through predict as it is."""
    from ltv_helpers.models.ml import ML_FEATURES, _ml_features, _predict_distinct

    ml = models.fit_ml_baseline(cdnow_sample, observation_end="1998-06-30", horizon_days=180)
    fitted = (ml.purchases_model, ml.spend_model)
    X = _ml_features(customer_history(cdnow_sample, observation_end="1998-06-30"))[list(ML_FEATURES)].to_numpy()
    edges = np.array([t[len(t) // 2] for t in ml.purchases_model._bin_mapper.bin_thresholds_])
    X = np.vstack([X, X[:50], edges, np.nextafter(edges, np.inf), X.max(axis=0) * 10, X.min(axis=0) - 1])
    for got, model in zip(_predict_distinct(fitted, X), fitted):
        np.testing.assert_array_equal(got, model.predict(X))
    X[3, 1] = np.nan
    for got, model in zip(_predict_distinct(fitted, X), fitted):
        np.testing.assert_array_equal(got, model.predict(X))
    other = models.fit_ml_baseline(cdnow_sample, observation_end="1998-06-30", horizon_days=90).purchases_model
    for got, model in zip(_predict_distinct((ml.purchases_model, other), X), (ml.purchases_model, other)):
        np.testing.assert_array_equal(got, model.predict(X))


def test_ml_models_fitted_at_once_are_those_fitted_one_after_the_other(monkeypatch):
    """The two gradient-boosting models are fitted in two threads, each with one OpenMP thread:
    the same trees as one after the other (15,000 customers: early stopping on its validation share)."""
    import concurrent.futures

    sim = synthetic_transactions(15_000, seed=3)
    end = sim.attrs["true_params"]["observation_end"]
    at_once = models.fit_ml_baseline(sim, observation_end=end, horizon_days=120)

    class OneByOne:
        def __init__(self, workers):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def map(self, func, items):
            return [func(item) for item in items]

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", OneByOne)
    serial = models.fit_ml_baseline(sim, observation_end=end, horizon_days=120)
    assert at_once.purchases_model.n_iter_ == serial.purchases_model.n_iter_ < 200  # stopped early
    pd.testing.assert_frame_equal(at_once.predict(sim, observation_end=end), serial.predict(sim, observation_end=end),
                                  check_exact=True)


def test_p_alive_path_matches_the_model_at_the_end(bgnbd, cdnow_sample):
    one = cdnow_sample[cdnow_sample["customer_id"] == cdnow_sample["customer_id"].iloc[0]]
    days = calibration_holdout(load_cdnow(sample=True), calibration_end="1998-06-29",
                               observation_end="1998-06-30")
    m = models.fit(days, model="bgnbd", spend=None)
    path = models.p_alive_path(m, one["order_date"], observation_end="1998-06-30")
    summary = rfm_summary(one, observation_end="1998-06-30")
    expected = m.fitter.conditional_probability_alive(summary["frequency"], summary["recency"], summary["T"])
    assert path["p_alive"].iloc[-1] == pytest.approx(float(np.asarray(expected)[0]))
    assert path["p_alive"].iloc[0] == 1.0 and path.index[0] == one["order_date"].min()
    assert path["frequency"].iloc[-1] == summary["frequency"].iloc[0]


def test_ml_comparison_counts_the_last_window_as_the_models_do(cdnow_sample):
    ml = models.fit_ml_baseline(cdnow_sample, observation_end="1998-06-30", horizon_days=180)
    ml_pred = ml.predict(cdnow_sample, observation_end="1998-06-30")
    ours = pd.DataFrame({"expected_purchases": ml_pred["expected_purchases"] / 2, "expected_spend": 30.0})
    table, text = models.compare_ml_baseline(ours, ml, ml_pred, cdnow_sample, observation_end="1998-06-30",
                                             model_name="BG/NBD")
    assert table.iloc[1, 0] == pytest.approx(ml_pred["expected_purchases"].sum())
    assert table.iloc[0, 1] == pytest.approx(ours["expected_purchases"].sum() * 30)
    # Distinct purchase days per customer from 1998-01-02 to 1998-06-30, counted independently.
    window = cdnow_sample[(cdnow_sample["order_date"] > "1998-01-01") & (cdnow_sample["order_date"] < "1998-07-01")]
    past = window.assign(d=window["order_date"].dt.date).drop_duplicates(["customer_id", "d"])
    assert f"the {len(past):,} purchases of the last 6 months" in text
    assert "100% more than the BG/NBD forecast" in text
    assert "比 BG/NBD 的预测多 100%" in models.compare_ml_baseline(ours, ml, ml_pred, cdnow_sample,
                                                                   observation_end="1998-06-30",
                                                                   model_name="BG/NBD", language="zh")[1]


def test_alive_path_note_explains_a_frequent_buyers_silence(bgnbd):
    frequent = pd.Series(pd.Timestamp("1997-01-01") + pd.to_timedelta(list(range(0, 140, 7)) + [300], "D"))
    text = models.alive_path_note(bgnbd, frequent, observation_end="1997-12-31")
    path = models.p_alive_path(bgnbd, frequent, observation_end="1997-12-31")
    low = path["p_alive"].idxmin()
    assert low == pd.Timestamp("1997-01-01") + pd.Timedelta(days=299)        # the day before the return
    assert path["p_alive"].min() < 0.005 and f"fell to less than 1% on {low:%Y-%m-%d}, after 166 days" in text
    assert "every 15 days on average" in text and "The next purchase, on 1997-10-28, restored it." in text
    # A customer whose probability never falls below one half needs no note.
    steady = pd.Series(pd.to_datetime(["1997-12-01", "1997-12-20"]))
    assert models.alive_path_note(bgnbd, steady, observation_end="1997-12-31") == ""


def test_describe_reads_the_parameters(bgnbd):
    text = models.describe(bgnbd)
    assert "once every 127 days" in text  # alpha / r = 4.414 / 0.243 weeks, x 7 days
    assert f"{0.793 / (0.793 + 2.426):.0%}" in text
    assert "每次购买后" in models.describe(bgnbd, "zh")


def test_describe_gives_pareto_lifetimes_a_reader_can_check(cal):
    """Pareto/NBD: lifetimes are exponential with gamma(s, beta) rates, so the share still active
    at t is (beta / (beta + t))^s; the median and the one-year share are checked by simulation."""
    import re

    pareto = models.fit(cal, model="pareto_nbd", unit_days=7)
    s_, beta = pareto.params["s"], pareto.params["beta"]
    text = models.describe(pareto)
    median_days = float(re.search(r"more than ([\d,]+) days", text)[1].replace(",", ""))
    year = float(re.search(r"(\d+)% are still active a year", text)[1]) / 100
    rng = np.random.default_rng(0)
    life_weeks = rng.exponential(1 / rng.gamma(s_, 1 / beta, 400_000))
    assert np.median(life_weeks) * 7 == pytest.approx(median_days, rel=0.02)
    assert (life_weeks > 365.25 / 7).mean() == pytest.approx(year, abs=0.01)
    assert "time units" not in text and "beta / s" not in text


def test_a_failing_fit_prints_nothing_and_warns_once(cal, monkeypatch, capsys):
    """A fit whose optimizer fails is retried with a penalizer, said in one warning sentence, and
    nothing is printed (lifetimes prints its whole OptimizeResult; the fast fits never do)."""
    import scipy.optimize
    from scipy.optimize import OptimizeResult

    real = scipy.optimize.minimize
    calls = []

    def fail_first(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            return OptimizeResult(x=np.ones(4), fun=1.0, success=False,
                                  message="Desired error not necessarily achieved", status=2, nit=3, jac=np.ones(4))
        return real(*args, **kwargs)

    monkeypatch.setattr(scipy.optimize, "minimize", fail_first)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        m = models.fit(cal, model="mbgnbd", spend=None, unit_days=7)
    out = capsys.readouterr()
    assert out.out == "" and "Desired error" not in out.err
    messages = [str(w.message) for w in seen if issubclass(w.category, UserWarning)]
    assert messages == ["MBG/NBD did not converge; refitted with penalizer 0.001. Check the summary, "
                        "or try a coarser time unit or another model."]
    assert m.penalizer == models.FALLBACK_PENALIZER and len(calls) == 2
    monkeypatch.setattr(scipy.optimize, "minimize", lambda *a, **k: OptimizeResult(
        x=np.ones(4), fun=1.0, success=False, message="nope", status=2, jac=np.ones(4)))
    with pytest.raises(LTVError, match="MBG/NBD could not be fitted"):
        models.fit(cal, model="mbgnbd", spend=None, unit_days=7)
    assert capsys.readouterr().out == ""

def _no_dropout_world(n=400, seed=3):
    """Customers who buy at their own steady rate and never stop: the data show no dropout."""
    rng = np.random.default_rng(seed)
    rows, start = [], pd.Timestamp("2023-01-01")
    for c in range(n):
        rate, day = rng.gamma(2, 0.01), int(rng.integers(0, 200))
        while day < 730:
            rows.append((f"Customer Name {c}", start + pd.Timedelta(days=day), 10.0 + rng.gamma(2, 5)))
            day += max(1, int(rng.exponential(1 / rate)))
    return pd.DataFrame(rows, columns=["customer_id", "order_date", "amount"])


def test_a_boundary_fit_that_overflows_is_refitted_penalised_and_the_nbd_limit_is_kept():
    import warnings

    from lifetimes import ParetoNBDFitter

    from ltv_helpers.data import rfm_summary

    summary = rfm_summary(_no_dropout_world(), observation_end="2024-12-31")
    rows, counts, _ = models.compress(models._summary_columns(summary), ["frequency", "recency", "T"])
    plain = models._fit_purchase_fast("pareto_nbd", rows, counts, 0.0)
    assert plain.params_["s"] < 1e-5 and isinstance(plain, ParetoNBDFitter)  # s -> 0, beta -> infinity
    assert not models._predicts_finite(plain, rows)  # lifetimes' formulas overflow there
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pareto = models.fit(summary, model="pareto_nbd", spend=None)
        bgnbd = models.fit(summary, model="bgnbd", spend=None)
    said = [str(w.message) for w in caught]
    assert said == ["Pareto/NBD ran to the edge of its parameters, where its predictions overflow; refitted with "
                    "penalizer 0.001. Check the summary, or try a coarser time unit or another model."]
    assert pareto.penalizer == models.FALLBACK_PENALIZER and bgnbd.penalizer == 0.0
    assert bgnbd.params["a"] < 1e-5  # BG/NBD's no-dropout limit is the NBD: a fine model, kept
    for fitted in (pareto, bgnbd):
        pred = fitted.predict(summary, horizon=365)
        assert np.isfinite(pred.to_numpy()).all() and pred["expected_purchases"].sum() > 0


def test_a_stability_row_at_the_edge_is_explained():
    """BG/NBD on a world without dropout runs to a -> 0: the stability table's note says what that
    means, in both languages, and names the parameter with its value."""
    import warnings

    from ltv_helpers import evaluation as ev
    from ltv_helpers.data import clean_transactions

    tx = clean_transactions(_no_dropout_world()).transactions
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ev.rolling_backtest(tx, cutoffs=["2024-09-30"], holdout_days=92, models=("bgnbd",), intervals=False)
    a = table["a"].iloc[0]
    assert a < 1e-5 and table.attrs["edge"] == {(pd.Timestamp("2024-09-30").date(), "bgnbd"): ["a"]}
    note = ev.stability_note(table)
    assert note.startswith("At the cut-off of 2024-09-30, the BG/NBD fit ran to the edge of its parameters "
                           f"(a = {a:,.4g}): ") and "almost never leaving" in note
    assert "参数空间的边界" in ev.stability_note(table, "zh")
    plain = table.copy()
    plain.attrs["edge"] = {}
    assert ev.stability_note(plain) == ""


def test_a_prediction_that_fails_names_a_count_never_a_customer(cal, bgnbd, monkeypatch):
    def overflow(model, rows, times, factors, alive=None):
        values = np.full((len(rows),), np.nan)
        return values, values

    monkeypatch.setattr(models.fitted, "discounted_purchases", overflow)
    with pytest.raises(LTVError) as err:
        bgnbd.predict(cal, horizon=52)
    assert str(err.value) == (f"BG/NBD gave no finite prediction for {len(cal):,} of {len(cal):,} customers; "
                              "try another model.")
    assert not any(str(i) in str(err.value) for i in cal.index[:50] if len(str(i)) > 2)


def test_a_purchase_model_alone_leaves_spend_and_clv_missing_without_amounts(days):
    """spend=None on a summary without monetary values: the purchases are forecast, the spend and
    CLV are missing (NaN), never 0; with monetary values the customer's own average is used."""
    purchases_only = days[["frequency_cal", "recency_cal", "T_cal"]]
    m = models.fit(purchases_only, model="bgnbd", spend=None)
    pred = m.predict(purchases_only, horizon=52, annual_discount_rate=0.1)
    assert np.isfinite(pred[["expected_purchases", "p_alive"]].to_numpy()).all()
    assert pred["expected_spend"].isna().all() and pred["clv"].isna().all()
    with_amounts = m.predict(days, horizon=52)
    assert (with_amounts["expected_spend"] == days["monetary_value_cal"]).all()
    assert with_amounts["clv"].notna().all()


def test_one_blas_thread_holds_in_worker_threads_and_is_lifted_after():
    """The BLAS limit is the process's: a decorated call that hands work to threads (the
    backtest's fits, the intervals' draws) keeps BLAS on one thread in them, nested calls in the
    workers neither lift nor reset it, and it is lifted when the outer call ends, also when a
    worker fails."""
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_info

    def blas_threads() -> list[int]:
        return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]

    before = blas_threads()
    assert before and max(before) > 1 or os.cpu_count() == 1  # something to limit, or the check says nothing

    @models.one_blas_thread
    def inner(k: int) -> list[int]:
        if k == 3:
            raise ValueError("a worker fails")
        return blas_threads()

    @models.one_blas_thread
    def work(k: int) -> list[int]:
        try:
            inner(k)
        except ValueError:
            pass
        return blas_threads()

    @models.one_blas_thread
    def outer() -> list[list[int]]:
        with ThreadPoolExecutor(2) as pool:
            return list(pool.map(work, range(6)))

    for _ in range(3):
        seen = outer()
        assert len(seen) == 6 and all(set(s) <= {1} for s in seen), seen
        assert blas_threads() == before and models._BLAS["depth"] == 0


def test_ml_targets_leave_out_customers_new_in_the_window():
    """The window's purchases go to the customers the features know; one who first bought in the
    window has no features and is left out (not written over another customer's target)."""
    from ltv_helpers.models.ml import _on_index

    purchases = pd.Series([2, 5], index=["a", "new"])
    spend = pd.Series([20.0, 50.0], index=["a", "new"])
    got = _on_index((purchases, spend), pd.Index(["a", "b", "c"]))
    assert got[0].tolist() == [2, 0, 0] and got[1].tolist() == [20.0, 0.0, 0.0]
