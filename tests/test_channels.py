"""Acquisition channels: the channel of each customer's first order, realised N-day value per
channel and cohort, the acquisition-cost table, and LTV/CAC on a world of three channels of
known quality."""

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import channels as ch
from ltv_helpers import models
from ltv_helpers.data import rfm_summary
from ltv_helpers.datasets import CHANNEL_QUALITY, synthetic_channels
from ltv_helpers.schema import LTVError

END = "2024-12-31"


@pytest.fixture(scope="module")
def world_and_costs():
    # Three channels of known quality (datasets.CHANNEL_QUALITY), all costing 40 per new customer.
    return synthetic_channels(3_000, seed=40)


@pytest.fixture(scope="module")
def world(world_and_costs):
    return world_and_costs[0]


@pytest.fixture(scope="module")
def costs(world_and_costs):
    return world_and_costs[1]


def test_the_channel_of_the_first_order_is_the_acquisition_channel(world):
    got = ch.acquisition_channels(world)
    assert set(got.unique()) == set(CHANNEL_QUALITY) and len(got) == 9_000
    assert (got.index.str.split("-").str[0] == got.to_numpy()).all()
    with pytest.raises(LTVError, match="no channel column"):
        ch.acquisition_channels(world.drop(columns="channel"))


def test_value_curves_equal_an_independent_count(world):
    curves = ch.value_curves(world, observation_end=END)
    first = world.groupby("customer_id")["order_date"].transform("min")
    within = world[(world["order_date"].dt.normalize() - first.dt.normalize()).dt.days <= 90]
    store = within[within["customer_id"].str.startswith("store-")]
    cohort = first[store.index].dt.to_period("M").astype(str)
    jan = store[cohort == "2023-01"]
    customers = world[world["customer_id"].str.startswith("store-")].groupby("customer_id")["order_date"].min()
    n = (customers.dt.to_period("M").astype(str) == "2023-01").sum()
    assert curves.loc[("store", "2023-01"), "customers"] == n
    assert curves.loc[("store", "2023-01"), "value_90d"] == pytest.approx(jan["amount"].sum() / n)
    row = curves.loc[("store", "2023-01")]
    assert row["value_30d"] <= row["value_90d"] <= row["value_180d"] <= row["value_365d"]
    assert curves["value_365d"].isna().sum() == 0  # every cohort of 2023 has had a year by the end of 2024
    quarterly = ch.value_curves(world, observation_end="2023-12-31", cohort="Q")
    assert quarterly.loc[("store", "2023Q4"), ["value_30d", "value_365d"]].isna().tolist() == [True, True]


def test_ltv_cac_puts_the_channels_in_the_order_of_their_quality(world, costs):
    summary = rfm_summary(world, observation_end=END)
    fitted = models.fit(summary, model="bgnbd")
    pred = fitted.predict(summary, horizon=365, annual_discount_rate=0.1)
    groups = ch.acquisition_channels(world).reindex(summary.index)
    totals = models.intervals(fitted, summary, horizon=365, groups=groups, annual_discount_rate=0.1, draws=30)
    table = ch.channel_economics(world, pred, observation_end=END, costs=costs, intervals=totals)
    assert table.loc[:, "cac"].round(6).tolist() == [40.0, 40.0, 40.0]
    order = table["ltv_cac"].sort_values(ascending=False).index.tolist()
    assert order == ["store", "tmall", "ads"]
    assert (table["ltv_cac_low"] < table["ltv_cac"]).all() and (table["ltv_cac"] < table["ltv_cac_high"]).all()
    assert table.loc["ads", "ltv_cac_high"] < table.loc["store", "ltv_cac_low"]  # clearly apart
    # At 40 the first order pays it back everywhere; at 150 the better channel's customers pay it
    # back sooner, and the worst channel's may not within the first year.
    dear = costs.assign(spend=150.0 * costs["new_customers"])
    payback = ch.channel_economics(world, pred, observation_end=END, costs=dear)["payback_months"]
    assert (table["payback_months"] < 1).all()
    assert payback["store"] < payback["tmall"] and (payback["tmall"] < payback["ads"] or np.isnan(payback["ads"]))


def test_the_cost_table_is_read_from_csv_or_yaml_and_checked(tmp_path):
    csv = tmp_path / "cac.csv"
    csv.write_text("channel,month,spend,new_customers\ntmall,2024-01,1000,20\n天猫,2024-02,500,\n", encoding="utf-8")
    table = ch.read_costs(csv)
    assert table["channel"].tolist() == ["tmall", "天猫"] and np.isnan(table.loc[1, "new_customers"])
    yml = tmp_path / "cac.yaml"
    yml.write_text("- {channel: ads, month: '2024-01', spend: 300}\n", encoding="utf-8")
    assert ch.read_costs(yml).loc[0, "spend"] == 300
    for text, message in [("channel,spend\nads,1\n", "needs channel, month"),
                          ("channel,month,spend\nads,Jan 2024,1\n", "month must be YYYY-MM"),
                          ("channel,month,spend\nads,2024-01,-5\n", "spend must be a number, 0 or more"),
                          ("channel,month,spend\nads,2024-01,many\n", "spend must be a number"),
                          ("channel,month,spend,new_customers\nads,2024-01,,\n", "neither spend nor new_customers"),
                          ("channel,month,spend\nads,2024-01,1\nads,2024-01,2\n", "ads 2024-01 twice")]:
        csv.write_text(text, encoding="utf-8")
        with pytest.raises(LTVError, match=message):
            ch.read_costs(csv)


@pytest.mark.parametrize("header", ["channel", "utm_source", "Acquisition Channel", "渠道", "获客渠道", "来源", "平台"])
def test_a_channel_column_is_found_by_its_usual_headers(header):
    from ltv_helpers.data.read import detect_columns

    assert detect_columns(["user_id", "order_time", "amount", header])["channel"] == header


def test_payback_reads_the_first_year_by_hand():
    """One customer: 100 on day 0, 100 on day 45, 100 on day 400. CAC 150 is reached halfway
    through the second month (1.5); 250 is not reached in the first year (the order of day 400
    is not in it)."""
    tx = pd.DataFrame({"customer_id": ["a", "a", "a"], "order_date": pd.to_datetime(["2023-01-01", "2023-02-15",
                                                                                      "2024-02-05"]),
                       "amount": [100.0, 100.0, 100.0], "channel": ["tmall", "app", "app"]})
    pred = pd.DataFrame({"clv": [10.0]}, index=["a"])
    for cac, months in ((150.0, 1.5), (250.0, np.nan)):
        costs = pd.DataFrame({"channel": ["tmall"], "month": ["2023-01"], "spend": [cac], "new_customers": [1]})
        got = ch.channel_economics(tx, pred, observation_end="2024-12-31", costs=costs).loc["tmall", "payback_months"]
        assert got == pytest.approx(months, nan_ok=True)


def test_hostile_channel_names_stay_text_in_the_report(world):
    from ltv_helpers.report import styled

    evil = '<img src=x onerror=alert(1)>'
    tx = world.assign(channel=world["channel"].replace({"ads": evil, "tmall": "=HYPERLINK(\"http://x\")"}))
    summary = rfm_summary(tx, observation_end=END)
    fitted = models.fit(summary, model="bgnbd")
    pred = fitted.predict(summary, horizon=365)
    costs = pd.DataFrame({"channel": ["store"], "month": ["2023-01"], "spend": [100.0]})
    table = ch.channel_economics(tx, pred, observation_end=END, costs=costs)
    table["new_customer_value"] = 1.0
    page = styled(ch.channel_table(table)).to_html()
    text = ch.channel_markdown(table, "a <b>reason</b>", observation_end=END, months=12)
    assert "<img" not in page and "&lt;img" in page
    assert "<img" not in text and "<b>" not in text


def test_economics_per_channel_and_cohort_equal_a_count_by_hand(world, costs):
    summary = rfm_summary(world, observation_end=END)
    fitted = models.fit(summary, model="bgnbd")
    pred = fitted.predict(summary, horizon=365)
    groups = ch.acquisition_groups(world, "Q").reindex(summary.index)
    totals = models.intervals(fitted, summary, horizon=365, groups=groups, draws=20)
    table = ch.channel_economics(world, pred, observation_end=END, costs=costs, intervals=totals, cohort="Q")
    assert table.index.names == ["channel", "cohort"] and len(table) == 12  # 3 channels x 4 quarters of 2023
    first = world.sort_values("order_date", kind="stable").drop_duplicates("customer_id")
    mine = first[(first["channel"] == "ads") & (first["order_date"].dt.to_period("Q").astype(str) == "2023Q2")]
    row = table.loc[("ads", "2023Q2")]
    assert row["customers"] == len(mine)
    assert row["predicted_value"] == pytest.approx(pred.loc[mine["customer_id"], "clv"].mean())
    spent = costs[(costs["channel"] == "ads") & costs["month"].isin(["2023-04", "2023-05", "2023-06"])]["spend"].sum()
    assert row["spend"] == spent and row["cac"] == pytest.approx(40.0)
    year = world[world["customer_id"].isin(mine["customer_id"])].merge(
        mine[["customer_id", "order_date"]].rename(columns={"order_date": "first"}), on="customer_id")
    year = year[(year["order_date"].dt.normalize() - year["first"].dt.normalize()).dt.days <= 365]
    assert row["value_365d"] == pytest.approx(year["amount"].sum() / len(mine))
    assert row["ltv_cac_low"] < row["ltv_cac"] < row["ltv_cac_high"]
    assert table["customers"].sum() == 9_000


def test_ltv_cac_and_payback_count_the_realised_value_on_margin(world, costs):
    summary = rfm_summary(world, observation_end=END)
    fitted = models.fit(summary, model="bgnbd")
    full = fitted.predict(summary, horizon=365)
    half = fitted.predict(summary, horizon=365, gross_margin=0.5)
    a = ch.channel_economics(world, full, observation_end=END, costs=costs)
    b = ch.channel_economics(world, half, observation_end=END, costs=costs, gross_margin=0.5)
    assert np.allclose(b["ltv_cac"], a["ltv_cac"] / 2)  # every part of the value on the same margin
    dear = costs.assign(spend=80.0 * costs["new_customers"])  # 80 on half the revenue: 160 on all of it
    twice = costs.assign(spend=160.0 * costs["new_customers"])
    at_160 = ch.channel_economics(world, full, observation_end=END, costs=twice)
    assert np.allclose(ch.channel_economics(world, half, observation_end=END, costs=dear, gross_margin=0.5)
                       ["payback_months"], at_160["payback_months"], equal_nan=True)


def test_a_cohort_without_its_first_year_seen_has_no_ltv_cac_or_payback():
    """Data to 2024-08-15: the 2023 Q3 and Q4 cohorts have not had their first year. Counting their
    realised value as 0 made them look several times worse than Q1 and Q2, and Q3's payback was read
    from its July and early-August customers alone; both are now left out ("–"), per channel too."""
    end = "2024-08-15"
    world, costs = synthetic_channels(600, seed=40)
    world = world[world["order_date"] <= end]
    summary = rfm_summary(world, observation_end=end)
    fitted = models.fit(summary, model="bgnbd")
    pred = fitted.predict(summary, horizon=365)
    groups = ch.acquisition_groups(world, "Q").reindex(summary.index)
    totals = models.intervals(fitted, summary, horizon=365, groups=groups, draws=20)
    table = ch.channel_economics(world, pred, observation_end=end, costs=costs, cohort="Q", intervals=totals)
    young = table.index.get_level_values("cohort").isin(["2023Q3", "2023Q4"])
    economics = ["ltv_cac", "ltv_cac_low", "ltv_cac_high", "payback_months"]
    assert table.loc[young, ["value_365d", *economics]].isna().all().all()
    assert table.loc[~young, economics].notna().all().all()
    by_channel = ch.channel_economics(world, pred, observation_end=end, costs=costs)
    assert by_channel["ltv_cac"].notna().all()  # mature months exist in every channel
    # Intervals grouped another way are refused, not misread.
    monthly = models.intervals(fitted, summary, horizon=365, groups=ch.acquisition_groups(world, "M")
                               .reindex(summary.index), draws=20)
    by_name = models.intervals(fitted, summary, horizon=365, groups=ch.acquisition_groups(world)
                               .reindex(summary.index), draws=20)
    for wrong in (monthly, by_name):
        with pytest.raises(LTVError, match="not grouped by acquisition_groups"):
            ch.channel_economics(world, pred, observation_end=end, costs=costs, cohort="Q", intervals=wrong)
    with pytest.raises(LTVError, match="gross_margin must be a share"):
        ch.channel_economics(world, pred, observation_end=end, costs=costs, gross_margin=0)
    with pytest.raises(LTVError, match="not grouped by channel"):
        ch.channel_economics(world, pred, observation_end=end, costs=costs, intervals=totals)
