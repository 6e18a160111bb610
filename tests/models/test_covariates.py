"""Time-invariant covariates (an acquisition channel) on the models of orders: a world with known
effects is recovered, no covariates is the plain fit exactly, and every group gets its own forecast
and new-customer value."""

import warnings

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import models
from ltv_helpers.data import calibration_holdout, rfm_summary
from ltv_helpers.datasets import synthetic_transactions
from ltv_helpers.schema import LTVError

#: Three channels: B's customers buy twice as often as A's (alpha / 2); C's dropout probabilities have
#: A's mean but a narrower spread (a and b x 2, as the covariate scales both): fewer of C's
#: customers stay for good. True coefficients: purchase B = ln 2, dropout C = ln 2, the rest 0.
WORLDS = {"A": {"alpha": 10.0, "a": 0.6, "b": 6.0}, "B": {"alpha": 5.0, "a": 0.6, "b": 6.0},
          "C": {"alpha": 10.0, "a": 1.2, "b": 12.0}}
TRUTH = {"purchase": {"channel=B": np.log(2), "channel=C": 0.0}, "dropout": {"channel=B": 0.0, "channel=C": np.log(2)}}


@pytest.fixture(scope="module")
def channels():
    parts = []
    for i, (channel, params) in enumerate(WORLDS.items()):
        tx = synthetic_transactions(8_000, seed=20 + i, **params)
        tx["customer_id"] = channel + tx["customer_id"].astype(str)
        # Hours: a daily summary merges same-day purchases and biases alpha (README), more for B.
        summary = rfm_summary(tx, observation_end="2024-12-31", freq="h", freq_multiplier=24)
        parts.append(summary.assign(channel=channel))
    return pd.concat(parts)


@pytest.fixture(scope="module")
def fitted(channels):
    return models.fit(channels, model="bgnbd", covariates=["channel"])


def test_known_channel_effects_are_recovered_within_two_standard_errors(fitted):
    for kind, values in TRUTH.items():
        for name, truth in values.items():
            g, se = fitted.coefficients[kind][name], fitted.standard_errors[f"{kind}:{name}"]
            assert 0 < se < 0.1 and abs(g - truth) < 2 * se, (kind, name, g, se, truth)
    for name, truth in {"r": 0.75, "alpha": 10.0, "a": 0.6, "b": 6.0}.items():  # channel A, the reference
        assert abs(fitted.params[name] - truth) < 2 * fitted.standard_errors[name], name
    assert list(fitted.groups.index) == ["channel=A", "channel=B", "channel=C"]
    assert list(fitted.groups["customers"]) == [8_000, 8_000, 8_000]
    assert fitted.log_likelihood > fitted.base.log_likelihood  # three groups fit better than one


def test_mbgnbd_finds_the_purchase_effect_too(channels):
    """MBG/NBD shares BG/NBD's purchase process: channel B's coefficient is ln 2 within 2 standard errors."""
    m = models.fit(channels, model="mbgnbd", covariates=["channel"])
    g, se = m.coefficients["purchase"]["channel=B"], m.standard_errors["purchase:channel=B"]
    assert abs(g - np.log(2)) < 2 * se and m.bic < m.base.bic


def test_no_covariates_is_the_plain_fit_exactly(channels):
    plain = models.fit(channels, model="bgnbd")
    none = models.fit(channels, model="bgnbd", covariates=[])
    assert type(none) is type(plain) and none.params == plain.params
    pd.testing.assert_frame_equal(none.predict(channels, horizon=365), plain.predict(channels, horizon=365))


def test_each_group_is_forecast_with_its_own_parameters(fitted, channels):
    pred = fitted.predict(channels, horizon=365)
    assert pred.index.equals(channels.index) and np.isfinite(pred.to_numpy()).all()
    for name, z in (("A", [0.0, 0.0]), ("B", [1.0, 0.0]), ("C", [0.0, 1.0])):
        rows = channels[channels["channel"] == name]
        pd.testing.assert_frame_equal(pred.loc[rows.index], fitted.group_model(np.array(z)).predict(rows, horizon=365))
    group = fitted.group_params(np.array([1.0, 0.0]))
    shift = fitted.coefficients["purchase"]["channel=B"]
    assert group["alpha"] == pytest.approx(fitted.params["alpha"] * np.exp(-shift))
    value = fitted.new_customer_value(horizon=365, annual_discount_rate=0.1)
    assert list(value.index) == ["channel=A", "channel=B", "channel=C"]
    assert value.loc["channel=B", "clv"] > value.loc["channel=A", "clv"] > value.loc["channel=C", "clv"] > 0


def test_intervals_draw_parameters_and_coefficients_together(fitted, channels):
    """The totals' intervals of a covariate model: the point is the sum of its forecasts, per
    channel too; the parameters' part comes from draws of (parameters, coefficients)."""
    groups = channels["channel"].astype(pd.CategoricalDtype(["A", "B", "C"]))
    table = models.intervals(fitted, channels, horizon=365, groups=groups, draws=40)
    pred = fitted.predict(channels, horizon=365)
    assert list(table.index) == ["all customers", "A", "B", "C"]
    assert table.loc["all customers", "expected_purchases"] == pytest.approx(pred["expected_purchases"].sum())
    by_channel = pred["expected_purchases"].groupby(channels["channel"]).sum()
    np.testing.assert_allclose(table.loc[["A", "B", "C"], "expected_purchases"], by_channel.to_numpy(), rtol=1e-9)
    assert (table["purchases_low"] < table["expected_purchases"]).all()
    assert (table["expected_purchases"] < table["purchases_high"]).all()
    assert (table["purchases_sd_parameters"] > 0).all() and (table["purchases_sd_customers"] > 0).all()
    again = models.intervals(fitted, channels, horizon=365, groups=groups, draws=40, workers=1)
    pd.testing.assert_frame_equal(table, again)  # the same whatever the threads


def test_a_forecast_keeps_the_fits_reference_and_refuses_unknown_levels(fitted, channels):
    only_c = channels[channels["channel"] == "C"]
    pd.testing.assert_frame_equal(fitted.predict(only_c, horizon=365),
                                  fitted.predict(channels, horizon=365).loc[only_c.index])
    with pytest.raises(LTVError, match="values the fit never saw \\(D\\); it knows: A, B, C"):
        fitted.predict(only_c.assign(channel="D"), horizon=365)


def test_a_channel_without_effect_gets_coefficients_near_zero(cdnow_sample):
    """On CDNOW, a channel drawn at random: Pareto/NBD's coefficients stay within 3 standard errors of 0."""
    cal = calibration_holdout(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                              freq="D", freq_multiplier=7)
    cal["channel"] = np.random.default_rng(5).choice(["app", "tmall"], len(cal))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = models.fit(cal, model="pareto_nbd", covariates=["channel"])
    for kind in ("purchase", "dropout"):
        g, se = m.coefficients[kind]["channel=tmall"], m.standard_errors[f"{kind}:channel=tmall"]
        assert np.isfinite(se) and abs(g) < 3 * se, (kind, g, se)
    assert "Pareto/NBD with channel" in repr(m)


def test_bad_covariates_are_refused_in_one_sentence(channels):
    with pytest.raises(LTVError, match="no region column for the covariates"):
        models.fit(channels, model="bgnbd", covariates=["region"])
    with pytest.raises(LTVError, match="groups of customers; at most 1,000"):
        models.fit(channels.assign(value=np.arange(len(channels), dtype=float)), model="bgnbd", covariates=["value"])
    with pytest.raises(LTVError, match="missing for 1 customers"):
        models.fit(channels.assign(channel=channels["channel"].where(channels.index != channels.index[0])),
                   model="bgnbd", covariates=["channel"])
    with pytest.raises(LTVError, match="Covariates are defined for"):
        models.fit(channels, model="bgbb", covariates=["channel"])


def _pareto_world(n: int, *, alpha: float, beta: float, seed: int, r: float = 0.6, s: float = 0.8) -> pd.DataFrame:
    """Pareto/NBD customers observed 52 to 104 weeks: lambda ~ Gamma(r, alpha), dropout rate
    mu ~ Gamma(s, beta), an exponential lifetime; x ~ Poisson(lambda min(lifetime, T)) repeat
    purchases, the last at the largest of x uniform times in that span."""
    rng = np.random.default_rng(seed)
    T_ = rng.uniform(52, 104, n)
    rate, mu = rng.gamma(r, 1 / alpha, n), rng.gamma(s, 1 / beta, n)
    span = np.minimum(rng.exponential(1 / mu), T_)
    x = rng.poisson(rate * span)
    recency = np.where(x > 0, span * rng.random(n) ** (1 / np.maximum(x, 1)), 0.0)
    return pd.DataFrame({"frequency": x.astype(float), "recency": recency, "T": T_})


def test_pareto_nbd_recovers_a_purchase_and_a_dropout_effect():
    """Channel B buys twice as often (alpha / 2) and drops out twice as fast (beta / 2): both
    coefficients are ln 2 within two standard errors (a wrong sign would be -ln 2)."""
    a = _pareto_world(15_000, alpha=10.0, beta=20.0, seed=1).assign(channel="A")
    b = _pareto_world(15_000, alpha=5.0, beta=10.0, seed=2).assign(channel="B")
    world = pd.concat([a, b], ignore_index=True)
    m = models.fit(world, model="pareto_nbd", spend=None, covariates="channel")  # one name is a list of one
    for kind in ("purchase", "dropout"):
        g, se = m.coefficients[kind]["channel=B"], m.standard_errors[f"{kind}:channel=B"]
        assert abs(g - np.log(2)) < 2 * se and se < 0.2, (kind, g, se)


def test_degenerate_groups_and_unused_categories(channels):
    """A group too small to estimate is refused by name; a category no customer has is not the reference."""
    few = channels.iloc[:3].assign(channel="D")
    with pytest.raises(LTVError, match="The group channel=D has 3 customers .* merge it with another level"):
        models.fit(pd.concat([channels, few]), model="bgnbd", covariates=["channel"])
    unused = channels.assign(channel=channels["channel"].astype(pd.CategoricalDtype(["Z", "A", "B", "C"])))
    m = models.fit(unused, model="bgnbd", covariates=["channel"])
    assert m.levels == {"channel": ["A", "B", "C"]} and np.isfinite(list(m.standard_errors.values())).all()


def test_a_compressed_summary_is_fitted_and_forecast_like_the_per_customer_one(channels, fitted):
    """Per channel, the compressed summaries stacked: the same coefficients, and forecasts of the
    purchase rows in the summary's order."""
    parts = []
    for channel, rows in channels.groupby("channel"):
        counted = rows.groupby(["frequency", "recency", "T"]).size().rename("customers").reset_index()
        parts.append(counted.assign(channel=channel, monetary_value=0.0, part="purchases"))
    compressed = pd.concat(parts, ignore_index=True)
    m = models.fit(compressed, model="bgnbd", spend=None, covariates=["channel"])
    for kind in ("purchase", "dropout"):
        for name, g in fitted.coefficients[kind].items():
            assert m.coefficients[kind][name] == pytest.approx(g, abs=1e-6)
    pred = m.predict(compressed, horizon=365)
    assert len(pred) == len(compressed) and np.isfinite(pred[["expected_purchases", "p_alive"]].to_numpy()).all()
    total = (pred["expected_purchases"] * compressed["customers"]).sum()
    assert total == pytest.approx(fitted.predict(channels, horizon=365)["expected_purchases"].sum(), rel=1e-6)
