import numpy as np
import pandas as pd
import pytest

from ltv_helpers import data
from ltv_helpers import segments as sg
from ltv_helpers.datasets import synthetic_transactions
from ltv_helpers.schema import LTVError


@pytest.fixture(scope="module")
def cdnow_history(cdnow):
    tx = data.clean_transactions(cdnow).transactions
    return tx, data.customer_history(tx, observation_end="1998-06-30")


@pytest.fixture(scope="module")
def synthetic():
    tx = synthetic_transactions(4000, seed=21)
    end = "2024-12-31"
    return tx, data.customer_history(tx, observation_end=end), end


def _one_time(n):
    return pd.DataFrame({"customer_id": [f"c{i}" for i in range(n)],
                         "order_date": pd.to_datetime("2024-01-01") + pd.to_timedelta(np.arange(n) % 30, "D"),
                         "amount": np.full(n, 10.0)})


# ------------------------------------------------------------------ scores

def test_quantile_score_matches_qcut_without_ties():
    x = pd.Series(np.random.default_rng(1).normal(size=1000))
    assert (sg.quantile_score(x, 5) == pd.qcut(x, 5, labels=False) + 1).all()


def test_quantile_score_equal_inputs_equal_scores_and_heavy_ties():
    x = pd.Series([0] * 70 + list(range(1, 31)))
    s = sg.quantile_score(x, 5)
    assert s[:70].nunique() == 1 and s.iloc[0] == 1
    assert s.iloc[-1] == 5 and s.between(1, 5).all()
    assert sg.quantile_score(pd.Series([3.0]), 5).tolist() == [1]


def test_rfm_scores_recency_inverted_and_code(cdnow_history):
    _, hist = cdnow_history
    scores = sg.rfm_scores(hist)
    since = hist["days_since_last"]
    assert scores.loc[since.idxmin(), "R"] == 5 and scores.loc[since.idxmax(), "R"] == 1
    assert scores.loc[hist["revenue"].idxmax(), "M"] == 5
    assert (scores["RFM"] == scores["R"].astype(str) + scores["F"].astype(str) + scores["M"].astype(str)).all()
    # Equal inputs -> equal scores.
    key = pd.concat([since, hist["frequency"], hist["revenue"]], axis=1)
    assert (scores.groupby([key.iloc[:, 0], key.iloc[:, 1], key.iloc[:, 2]])["RFM"].nunique() == 1).all()
    pd.testing.assert_frame_equal(scores, sg.rfm_scores(hist))  # deterministic
    with pytest.raises(LTVError, match="bins"):
        sg.rfm_scores(hist, bins=1)


def test_rfm_segments_cover_every_customer_once(cdnow_history):
    _, hist = cdnow_history
    seg = sg.rfm_segments(sg.rfm_scores(hist))
    assert seg.notna().all() and len(seg) == len(hist) and seg.index.equals(hist.index)
    assert set(seg.cat.categories) == set(sg.RFM_SEGMENTS)
    # Every cell of the grid has a segment, so any score combination gets one.
    grid = pd.DataFrame([(r, f, m) for r in range(1, 6) for f in range(1, 6) for m in range(1, 6)],
                        columns=["R", "F", "M"])
    assert sg.rfm_segments(grid).notna().all()
    champs = seg[seg == "Champions"].index
    assert (hist.loc[champs, "revenue"].mean() > hist["revenue"].mean() * 2)


def test_rfm_segments_other_bins(cdnow_history):
    _, hist = cdnow_history
    seg = sg.rfm_segments(sg.rfm_scores(hist, bins=3))
    assert seg.notna().all()


# ------------------------------------------------------------------ tiers

def test_value_tiers_history_rule(cdnow_history):
    _, hist = cdnow_history
    tiers = sg.value_tiers(hist)
    rule = tiers.attrs["rule"]
    assert tiers.notna().all() and set(tiers.unique()) == set(sg.TIERS)
    churn = tiers == "churn risk"
    assert (hist.loc[churn, "revenue"] >= rule.past_value_cut).all()
    assert (hist.loc[churn, "days_since_last"] > rule.inactive_days).all()
    high = tiers == "high value"
    assert (hist.loc[high, "revenue"] >= rule.high_cut).all()
    assert (hist.loc[tiers == "low value", "revenue"] < rule.low_cut).all()
    assert f"more than {rule.inactive_days:.0f} days" in rule.describe()
    assert f"high value at {rule.high_cut:,.2f} or more" in rule.describe()
    assert "流失风险" in rule.describe("zh")
    # Thresholds carry their currency, as literal text.
    assert f"high value at USD {rule.high_cut:,.2f} or more" in rule.describe("en", "USD")
    assert f"高价值 ≥ &lt;b&gt;HK\\$ {rule.high_cut:,.2f}" in rule.describe("zh", "<b>HK$")


def test_value_tiers_with_predictions(synthetic):
    _, hist, _ = synthetic
    pred = pd.DataFrame({"clv": hist["revenue"] * 0.5,
                         "p_alive": np.where(hist["days_since_last"] > 200, 0.1, 0.9)}, index=hist.index)
    tiers = sg.value_tiers(hist, predictions=pred)
    assert tiers.attrs["rule"].basis == "predicted CLV"
    churn = tiers == "churn risk"
    assert churn.any() and (pred.loc[churn, "p_alive"] < 0.3).all()
    with pytest.raises(LTVError, match="every customer"):
        sg.value_tiers(hist, predictions=pred.iloc[:10])


def test_default_inactive_days_hand_checked():
    summary = pd.DataFrame({"frequency": [0, 2, 4, 1], "recency": [0, 100, 100, 60], "T": [10] * 4})
    # Gaps of repeat buyers: 50, 25, 60 -> 80th percentile 56 -> ceil 56.
    assert sg.default_inactive_days(summary) == 56
    assert sg.default_inactive_days(summary.assign(frequency=0)) == 90


# ------------------------------------------------------------------ lifecycle

def test_lifecycle_stages_hand_checked():
    day = pd.Timestamp("2024-01-01")
    tx = pd.DataFrame({
        "customer_id": ["new"] + ["grow"] * 3 + ["mature"] * 8 + ["fading"] * 6 + ["gone"] * 2,
        "order_date": [day + pd.Timedelta(days=d) for d in
                       [700] + [450, 600, 720] + [0, 100, 200, 300, 400, 500, 600, 700]
                       + [0, 30, 60, 90, 120, 400] + [0, 100]],
        "amount": 10.0,
    })
    stages = sg.lifecycle_stages(tx, observation_end=day + pd.Timedelta(days=730), inactive_days=365)
    assert stages.to_dict() == {"fading": "decline", "gone": "decline", "grow": "growth",
                                "mature": "maturity", "new": "introduction"}


def test_lifecycle_on_synthetic_has_every_stage(synthetic):
    tx, _, _ = synthetic
    # Customers arrive through 2023; on 2024-03-01 tenures run from 60 to 425 days.
    stages = sg.lifecycle_stages(tx, observation_end="2024-03-01")
    assert stages.notna().all() and len(stages) == tx[tx["order_date"] < "2024-03-02"]["customer_id"].nunique()
    assert set(stages.unique()) == set(sg.STAGES)


# ------------------------------------------------------------------ tables

@pytest.mark.parametrize("language", ["en", "zh"])
def test_segment_table_shares_and_language(cdnow_history, language):
    _, hist = cdnow_history
    tiers = sg.value_tiers(hist)
    table = sg.segment_table(tiers, hist, language=language)
    assert table.iloc[:, 1].sum() == pytest.approx(1) and table.iloc[:, 3].sum() == pytest.approx(1)
    assert table.iloc[:, 0].sum() == len(hist)
    assert table.iloc[:, 2].sum() == pytest.approx(hist["revenue"].sum())
    if language == "zh":
        assert "高价值客户" in table.index and "建议动作" in table.columns
        assert "VIP" in table.loc["高价值客户", "建议动作"]
    else:
        assert list(table.index) == list(sg.TIERS)
        assert table.loc["high value", "average order value"] == pytest.approx(
            hist.loc[tiers == "high value", "revenue"].sum() / hist.loc[tiers == "high value", "orders"].sum())


def test_segment_table_with_predictions(synthetic):
    _, hist, _ = synthetic
    pred = pd.DataFrame({"clv": np.arange(len(hist), dtype=float), "p_alive": 0.5}, index=hist.index)
    table = sg.segment_table(sg.rfm_segments(sg.rfm_scores(hist)), hist, predictions=pred)
    assert "average predicted CLV" in table.columns


@pytest.mark.parametrize("n", [1, 2, 7])
def test_tiny_and_all_one_time_buyers_give_tables(n):
    tx = _one_time(n)
    hist = data.customer_history(tx, observation_end="2024-03-01")
    scores = sg.rfm_scores(hist)
    for labels in (sg.rfm_segments(scores), sg.value_tiers(hist),
                   sg.lifecycle_stages(tx, observation_end="2024-03-01")):
        assert labels.notna().all() and len(labels) == n
        table = sg.segment_table(labels, hist)
        assert table["share of customers"].sum() == pytest.approx(1)


# ------------------------------------------------------------------ concentration

def test_concentration_hand_computed():
    c = sg.concentration([1, 1, 1, 1, 6])
    assert c.gini == pytest.approx(0.4)
    assert c.top_shares.loc[0.2] == pytest.approx(0.6)
    assert c.lorenz["share of value"].tolist() == pytest.approx([0, 0.1, 0.2, 0.3, 0.4, 1.0])
    assert sg.concentration([5, 5, 5]).gini == pytest.approx(0)
    assert sg.concentration([0, 0, 0, 9]).gini == pytest.approx(0.75)  # (n - 1) / n
    with pytest.raises(LTVError):
        sg.concentration([1, -1])


def test_gini_equals_the_textbook_formula_on_cdnow(cdnow_history):
    _, hist = cdnow_history
    x = np.sort(hist["revenue"].to_numpy())
    n = len(x)
    textbook = np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum())
    assert sg.concentration(hist["revenue"]).gini == pytest.approx(textbook, abs=1e-12)


def test_export_segments_csv_opens_with_chinese(tmp_path, cdnow_history):
    _, hist = cdnow_history
    tiers = sg.value_tiers(hist)
    paths = sg.export_segments(pd.concat([tiers, sg.rfm_segments(sg.rfm_scores(hist))], axis=1),
                               tmp_path / "out" / "segments.csv")
    csv = pd.read_csv(paths[0], encoding="utf-8-sig", dtype={"customer_id": str})
    assert list(csv.columns) == ["customer_id", "tier", "segment"] and len(csv) == len(hist)
    assert csv["customer_id"].iloc[0] == hist.index[0]  # leading zeros kept
    back = pd.read_parquet(paths[1])
    assert back["tier"].tolist() == tiers.astype(str).tolist()


def test_value_tiers_refuse_a_lifetimes_summary_and_warn_on_collapsed_cuts(cdnow_history):
    tx, hist = cdnow_history
    plain = data.rfm_summary(tx, observation_end="1998-06-30")
    # lifetimes' monetary_value is 0 for one-time buyers (most of CDNOW): the value cuts collapse.
    assert (plain["monetary_value"] == 0).mean() > 0.5
    with pytest.raises(LTVError, match="needs each customer's total spend.*customer_history"):
        sg.value_tiers(plain)
    flat = hist.assign(revenue=np.where(hist["revenue"] > hist["revenue"].quantile(0.9), 500.0, 10.0))
    with pytest.warns(UserWarning, match="tier cuts coincide.*no customer in: medium value"):
        tiers = sg.value_tiers(flat)
    assert tiers.value_counts()["medium value"] == 0


def test_empty_groups_are_explained_only_when_the_reason_holds():
    from ltv_helpers import segments as sg

    stages = lambda *values: pd.Series(pd.Categorical(values, categories=sg.STAGES))  # noqa: E731
    assert "started buying recently" in sg.empty_groups_note(stages("maturity", "decline"))
    # Customers in introduction: an empty growth stage is not for want of recent starters.
    note = sg.empty_groups_note(stages("maturity", "introduction", "decline"))
    assert note.startswith("No customer is in growth") and "recently" not in note
    assert sg.empty_groups_note(stages(*sg.STAGES)) == ""


def test_tier_segment_and_stage_names_never_share_a_word():
    """A reader must not confuse a tier with a segment ("churn risk" against "At risk" once)."""
    families = [sg.TIERS, sg.RFM_SEGMENTS, sg.STAGES]
    # The tiers are all "... value"; 客户 is "customers"; 流失 (churn) is the subject of both
    # 流失风险客户 (churn risk: may leave) and 已流失 (Lost: has left), which say different things.
    generic = {"value", "客户", "价值", "流失"}

    def words(name, language):
        if language == "en":
            return {w.strip("'").lower() for w in name.replace("/", " ").split()} - {"to", "them"} - generic
        zh = sg.group_name(name, "zh").replace(" ", "")
        return {zh[i:i + 2] for i in range(len(zh) - 1)} - generic

    for language in ("en", "zh"):
        for a, first in enumerate(families):
            for second in families[a + 1:]:
                for x in first:
                    for y in second:
                        shared = words(x, language) & words(y, language)
                        assert not shared, (language, x, y, shared)


def test_score_gaps_are_explained_by_the_tie_that_skipped_them(cdnow_history):
    _, hist = cdnow_history
    scores = sg.rfm_scores(hist)
    one_time = int((hist["frequency"] == 0).sum())
    assert sorted(scores["F"].unique()) == [1, 3, 4, 5]
    assert sg.score_gaps_note(scores, hist) == (
        f"No customer has F score 2: the {one_time:,} customers ({one_time / len(hist):.0%}) with the same value "
        "(repeat purchases 0) all get score 1, since equal values get equal scores, and they fill more than one level.")
    assert "没有客户的 F 得分为 2" in sg.score_gaps_note(scores, hist, "zh")
    # A tie at the top of a score that also holds smaller values (frequency 3 six times of ten).
    small = pd.DataFrame({"frequency": [0, 1, 2, 3, 3, 3, 3, 3, 3, 9], "recency": 100.0, "T": 200.0,
                          "revenue": np.arange(10.0) + 1})
    scores = sg.rfm_scores(small)
    missing = sorted(set(range(1, 6)) - set(scores["F"]))
    note = sg.score_gaps_note(scores, small)
    assert missing and f"No customer has F score {', '.join(map(str, missing))}: the 6 customers (60%)" in note
    assert "(repeat purchases 3)" in note
    # No gap, no note.
    even = pd.DataFrame({"frequency": np.arange(10.0), "recency": 50.0 + np.arange(10), "T": 200.0,
                         "revenue": np.arange(10.0) + 1})
    assert sg.score_gaps_note(sg.rfm_scores(even), even) == ""


def test_recent_days_of_a_fractional_trend_start_the_day_after_it():
    """The last trend_days count from the day after the start's day, also when trend_days leaves
    a time of day (an order late on that day is not a recent one)."""
    tx = pd.DataFrame({"customer_id": ["a"] * 3, "amount": 1.0,
                       "order_date": pd.to_datetime(["2023-11-01 00:00", "2023-12-01 00:00", "2024-01-30 20:00"])})
    assert sg.lifecycle_stages(tx, observation_end="2024-03-01", trend_days=30.25, inactive_days=1000).tolist() == [
        "decline"]
    assert sg.lifecycle_stages(tx, observation_end="2024-03-01", trend_days=32, inactive_days=1000).tolist() == [
        "growth"]


def test_rfm_segments_refuses_scores_outside_the_grid():
    """A hand-made score outside 1..bins (0, 9, NaN) is refused in one sentence, not named by the grid's last cell."""
    for bad in (0, 9, np.nan):
        scores = pd.DataFrame({"R": [5, bad], "F": [3, 3], "M": [3, 3]}, index=["a", "b"])
        scores.attrs["bins"] = 5
        with pytest.raises(LTVError, match="scores must be whole numbers from 1 to 5; 1 customers"):
            sg.rfm_segments(scores)
