"""Segmentation: RFM scores, named RFM segments, value tiers, lifecycle stages, segment tables.

Inputs are per-customer tables indexed by ``customer_id``: the output of
:func:`ltv_helpers.data.customer_history` (``frequency``, ``recency``, ``T``, ``monetary_value``,
``orders``, ``revenue``, ``days_since_last``, ...) or, where noted, a plain
:func:`ltv_helpers.data.rfm_summary`. Every function puts each customer in exactly one group.
"""

from __future__ import annotations

import warnings

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers.labels import EMPTY_OTHER, EMPTY_RECENT, SCORE_GAP, label, md_escape, money
from ltv_helpers.schema import AMOUNT, CUSTOMER_ID, FREQUENCY, MONETARY_VALUE, ORDER_DATE, RECENCY, T, LTVError

# ---------------------------------------------------------------------------------- playbook

#: Named groups in display order, with the recommended actions of the LTV operations playbook.
PLAYBOOK: dict[str, str] = {
    # value tiers
    "high value": "VIP service and member privileges, tailored recommendations, new or premium "
                  "products, cross-category bundles, private community",
    "medium value": "Interest-based recommendations, personal coupons or points, reminders to the "
                    "dormant",
    "low value": "Retargeting ads, a time-limited offer for the second purchase, content "
                 "marketing; keep spend lean",
    "churn risk": "Win-back offers and care, points rewards, long-term loyalty incentives",
    # lifecycle stages
    "introduction": "Free trial, first-purchase discount, a welcome journey towards the second order",
    "growth": "Personalised recommendations, value-added services",
    "maturity": "Loyalty programme, member privileges",
    "decline": "Care campaigns and exclusive offers to win them back",
    # RFM segments
    "Champions": "Reward them: early access, premium products, ask for reviews and referrals",
    "Loyal": "Up-sell higher-value products, membership upgrades, ask for reviews",
    "Potential loyalists": "Membership or loyalty programme, personalised recommendations",
    "New": "Onboarding and a reason for the second purchase soon",
    "Promising": "Build the habit: brand content, small incentives for the next order",
    "Need attention": "Limited-time offers based on past purchases, reactivation reminders",
    "About to sleep": "Recommend popular products, renewal discounts, reconnect before they lapse",
    "Slipping away": "Personal win-back messages, renewals, helpful content",
    "Can't lose them": "Win them back with new products and personal outreach; do not lose them "
                       "to a competitor",
    "Hibernating": "Offer relevant products and special discounts; keep the cost low",
    "Lost": "Revive interest with a reach-out campaign, otherwise leave them out",
}

PLAYBOOK_ZH: dict[str, tuple[str, str]] = {
    "high value": ("高价值客户", "VIP服务与会员特权、个性化推荐、新品或高端产品、跨品类组合、私域社群"),
    "medium value": ("中价值 / 潜力客户", "基于兴趣的推荐、个性化优惠券或积分、唤醒沉睡客户的提醒"),
    "low value": ("低价值客户", "再营销广告、限时二次购买优惠、内容营销；控制投入"),
    "churn risk": ("流失风险客户", "挽回优惠与关怀、积分奖励、长期忠诚激励"),
    "introduction": ("引入期", "免费试用、首单优惠、引导第二次购买的欢迎旅程"),
    "growth": ("成长期", "个性化推荐、增值服务"),
    "maturity": ("成熟期", "忠诚度计划、会员特权"),
    "decline": ("衰退期", "关怀活动与专属优惠，赢回客户"),
    "Champions": ("冠军客户", "给予回馈：抢先体验、高端产品，邀请评价与推荐"),
    "Loyal": ("忠诚客户", "向上销售更高价值产品、会员升级、邀请评价"),
    "Potential loyalists": ("潜在忠诚客户", "会员或忠诚度计划、个性化推荐"),
    "New": ("新客户", "新客引导，尽快促成第二次购买"),
    "Promising": ("值得培养", "培养习惯：品牌内容、下一单的小额激励"),
    "Need attention": ("需要关注", "基于历史购买的限时优惠、唤醒提醒"),
    "About to sleep": ("即将沉睡", "推荐热门产品、续购折扣，在流失前重新联系"),
    "Slipping away": ("渐行渐远", "个性化挽回信息、续购提醒、有用的内容"),
    "Can't lose them": ("不能失去", "用新品和一对一沟通赢回，避免流向竞争对手"),
    "Hibernating": ("沉睡客户", "推荐相关产品与专属折扣；控制成本"),
    "Lost": ("已流失", "发起召回活动，否则不再投入"),
}

TIERS = ("high value", "medium value", "low value", "churn risk")
STAGES = ("introduction", "growth", "maturity", "decline")
RFM_SEGMENTS = ("Champions", "Loyal", "Potential loyalists", "New", "Promising", "Need attention",
                "About to sleep", "Slipping away", "Can't lose them", "Hibernating", "Lost")

#: The standard RFM map: segment by R score (rows, 5 = most recent) and FM score (columns, the
#: rounded mean of F and M), both on a 1..5 scale. Every cell has exactly one segment.
RFM_GRID = pd.DataFrame(
    [["New", "Potential loyalists", "Potential loyalists", "Champions", "Champions"],
     ["Promising", "Potential loyalists", "Potential loyalists", "Loyal", "Champions"],
     ["About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"],
     ["Lost", "Hibernating", "Slipping away", "Slipping away", "Can't lose them"],
     ["Lost", "Lost", "Hibernating", "Slipping away", "Can't lose them"]],
    index=pd.Index([5, 4, 3, 2, 1], name="R"), columns=pd.Index([1, 2, 3, 4, 5], name="FM"),
)


def group_name(name: str, language: str = "en") -> str:
    """Display name of a segment, tier or stage in ``language``."""
    label(name, language)  # validates the language
    if language == "zh":
        return PLAYBOOK_ZH.get(name, (name, ""))[0]
    return name


def action(name: str, language: str = "en") -> str:
    """Recommended actions for a segment, tier or stage."""
    if language == "zh":
        return PLAYBOOK_ZH.get(name, ("", ""))[1]
    return PLAYBOOK.get(name, "")


# ---------------------------------------------------------------------------------- helpers

def _require(frame: pd.DataFrame, columns, what: str):
    missing = [c for c in columns if c not in frame]
    if missing:
        raise LTVError(f"{what} needs the column(s) {', '.join(missing)}; it got: "
                       f"{', '.join(map(str, frame.columns)) or '(none)'}.")


def _revenue(summary: pd.DataFrame) -> pd.Series:
    """Total historical spend; from a plain RFM summary, the repeat purchases' spend."""
    if "revenue" in summary:
        return summary["revenue"].astype("float64")
    return (summary[MONETARY_VALUE] * summary[FREQUENCY]).astype("float64")


def _days_since_last(summary: pd.DataFrame) -> pd.Series:
    if "days_since_last" in summary:
        return summary["days_since_last"].astype("float64")
    return (summary[T] - summary[RECENCY]).astype("float64")


def quantile_score(values: pd.Series, bins: int = 5) -> pd.Series:
    """Scores 1..bins by quantile of ``values``; equal values always get equal scores.

    score = floor(bins x (rank - 1) / n) + 1 with the lowest rank among ties: a value beaten by
    fewer than 1/bins of the customers scores 1. Heavy ties (most customers with one order) all
    get the score of the tie's lowest position, so some scores may go unused; nothing crashes.

    >>> quantile_score(pd.Series([1, 1, 1, 2, 3]), bins=5).tolist()
    [1, 1, 1, 4, 5]
    """
    if len(values) == 0:
        return pd.Series([], index=values.index, dtype="int64")
    rank = values.rank(method="min").to_numpy()
    score = np.floor(bins * (rank - 1) / len(values)).astype("int64") + 1
    return pd.Series(np.clip(score, 1, bins), index=values.index)


# ---------------------------------------------------------------------------------- RFM

def rfm_scores(summary: pd.DataFrame, *, bins: int = 5) -> pd.DataFrame:
    """R, F and M scores 1..``bins`` and the combined code ``RFM`` (e.g. ``"545"``).

    - R: days since the last purchase (``T - recency``), inverted, so recent buyers score high;
    - F: repeat purchases (``frequency``);
    - M: total historical spend (``revenue``; a plain RFM summary falls back to repeat spend).

    Scores are quantiles by :func:`quantile_score`; equal inputs get equal scores.
    """
    if not isinstance(bins, int) or not 2 <= bins <= 9:
        raise LTVError(f"bins must be a whole number from 2 to 9, got {bins!r}.")
    _require(summary, [FREQUENCY, RECENCY, T], "rfm_scores")
    scores = pd.DataFrame({
        "R": quantile_score(-_days_since_last(summary), bins),
        "F": quantile_score(summary[FREQUENCY].astype("float64"), bins),
        "M": quantile_score(_revenue(summary), bins),
    }, index=summary.index)
    scores["RFM"] = (scores["R"].astype(str) + scores["F"].astype(str) + scores["M"].astype(str))
    scores.attrs["bins"] = bins
    return scores


def rfm_segments(scores: pd.DataFrame, *, scheme: str = "standard") -> pd.Series:
    """Named segments from R, F, M scores through :data:`RFM_GRID`.

    Scores are first put on a 1..5 scale (``ceil(score x 5 / bins)``); FM is the mean of F and M
    rounded half up. The grid gives each (R, FM) pair exactly one of the eleven segments.
    """
    if scheme != "standard":
        raise LTVError(f"scheme must be 'standard', got {scheme!r}.")
    _require(scores, ["R", "F", "M"], "rfm_segments")
    bins = scores.attrs.get("bins", int(max(scores[["R", "F", "M"]].max().max(), 5)))
    five = np.ceil(scores[["R", "F", "M"]].to_numpy() * 5 / bins).astype(int)
    r = five[:, 0]
    fm = np.floor((five[:, 1] + five[:, 2]) / 2 + 0.5).astype(int)
    grid = np.vectorize(RFM_SEGMENTS.index, otypes=[np.int8])(RFM_GRID.to_numpy())  # each cell's segment code
    rows = pd.Index(RFM_GRID.index).get_indexer(r)
    cols = pd.Index(RFM_GRID.columns).get_indexer(fm)
    if (rows < 0).any() or (cols < 0).any():
        raise LTVError(f"R, F and M scores must be whole numbers from 1 to {bins}; "
                       f"{int(((rows < 0) | (cols < 0)).sum()):,} customers have others.")
    codes = grid[rows, cols] if len(r) else np.array([], dtype=np.int8)
    return pd.Series(_categorical(codes, RFM_SEGMENTS), index=scores.index, name="segment")


def _categorical(codes: np.ndarray, categories: tuple[str, ...]) -> pd.Categorical:
    """The categorical of ``codes`` (positions in ``categories``): the same as one of the
    categories' names, made without a million strings (0.5 s at 1M customers)."""
    return pd.Categorical.from_codes(np.asarray(codes, dtype=np.int8), categories=list(categories))


# ---------------------------------------------------------------------------------- tiers

def default_inactive_days(summary: pd.DataFrame, quantile: float = 0.8, floor_days: float = 30.0) -> float:
    """Silence long enough to call a customer inactive: the ``quantile`` of repeat buyers' mean
    gap between purchases (``recency / frequency``, days), at least ``floor_days``.
    Without repeat buyers it is ``floor_days`` x 3.
    """
    repeat = summary[summary[FREQUENCY] > 0]
    if repeat.empty:
        return floor_days * 3
    gaps = repeat[RECENCY] / repeat[FREQUENCY]
    return float(max(np.ceil(gaps.quantile(quantile)), floor_days))


@dataclass(frozen=True)
class TierRule:
    """The thresholds :func:`value_tiers` applied, with a sentence a client can read."""

    basis: str
    high_cut: float
    low_cut: float
    past_value_cut: float
    inactive_days: float | None
    p_alive_below: float | None

    def describe(self, language: str = "en", currency: str = "") -> str:
        """The rule in one Markdown sentence; thresholds in ``currency`` (``USD 43.39``) when given."""
        cuts = (self.past_value_cut, self.high_cut, self.low_cut)
        past, high, low = (money(v, md_escape(currency), decimals=2) for v in cuts)
        if language == "zh":
            churn = (f"存活概率低于 {self.p_alive_below:.0%}" if self.p_alive_below is not None
                     else f"超过 {self.inactive_days:.0f} 天未购买")
            basis = "预测CLV" if self.basis == "predicted CLV" else "历史消费额"
            return (f"流失风险客户：历史消费额不低于 {past} 且{churn}；"
                    f"其余客户按{basis}分层：高价值 ≥ {high}，中价值 ≥ {low}，低价值为其余。")
        churn = (f"a probability still active below {self.p_alive_below:.0%}" if self.p_alive_below is not None
                 else f"no purchase for more than {self.inactive_days:.0f} days")
        return (f"Churn risk: historical spend of at least {past} and {churn}. "
                f"Everyone else by {self.basis}: high value at {high} or more, "
                f"medium value at {low} or more, low value below.")


def value_tiers(summary: pd.DataFrame, *, predictions: pd.DataFrame | None = None,
                high_quantile: float = 0.8, low_quantile: float = 0.5,
                past_value_quantile: float = 0.5, inactive_days: float | None = None,
                p_alive_below: float = 0.3) -> pd.Series:
    """The four value tiers: high value, medium value, low value, churn risk.

    1. churn risk: historical spend (``revenue``) at or above its ``past_value_quantile`` and,
       from history alone, no purchase for more than ``inactive_days`` (default
       :func:`default_inactive_days`), or, with ``predictions`` (columns ``clv`` and
       ``p_alive``), P(alive) below ``p_alive_below``;
    2. the others by value (historical spend, or predicted ``clv`` when given): high value at or
       above the ``high_quantile`` of all customers' value, medium value at or above the
       ``low_quantile``, low value below.

    The rule in force is in ``tiers.attrs["rule"]`` (a :class:`TierRule`); print
    ``rule.describe(language)`` beside the table.
    """
    for name, q in (("high_quantile", high_quantile), ("low_quantile", low_quantile),
                    ("past_value_quantile", past_value_quantile)):
        if not 0 < q < 1:
            raise LTVError(f"{name} must be between 0 and 1, got {q}.")
    if low_quantile >= high_quantile:
        raise LTVError("low_quantile must be below high_quantile.")
    _require(summary, [FREQUENCY, RECENCY, T], "value_tiers")
    if "revenue" not in summary:
        raise LTVError(
            "value_tiers needs each customer's total spend (a revenue column, as "
            "data.customer_history gives); a plain rfm_summary has lifetimes' monetary_value, which "
            "is 0 for every one-time buyer, so the value quantiles would collapse into fewer tiers.")
    past = _revenue(summary)
    past_cut = float(past.quantile(past_value_quantile)) if len(past) else 0.0
    if predictions is not None:
        _require(predictions, ["clv", "p_alive"], "value_tiers(predictions=...)")
        pred = predictions.reindex(summary.index)
        if pred[["clv", "p_alive"]].isna().any().any():
            raise LTVError("predictions must have clv and p_alive for every customer of the summary.")
        value, basis = pred["clv"].astype("float64"), "predicted CLV"
        churn = (past >= past_cut) & (pred["p_alive"] < p_alive_below)
        rule_inactive, rule_p = None, p_alive_below
    else:
        value, basis = past, "historical spend"
        days = inactive_days if inactive_days is not None else default_inactive_days(summary)
        churn = (past >= past_cut) & (_days_since_last(summary) > days)
        rule_inactive, rule_p = float(days), None
    high_cut = float(value.quantile(high_quantile)) if len(value) else 0.0
    low_cut = float(value.quantile(low_quantile)) if len(value) else 0.0
    tier = np.where(churn, TIERS.index("churn risk"), np.where(value >= high_cut, TIERS.index("high value"),
                    np.where(value >= low_cut, TIERS.index("medium value"), TIERS.index("low value"))))
    out = pd.Series(_categorical(tier, TIERS), index=summary.index, name="tier")
    counts = out.value_counts()
    empty = [t for t in ("high value", "medium value", "low value") if counts.get(t, 0) == 0]
    if empty and (~churn).sum() >= 3:
        warnings.warn(
            f"The {basis} of the customers has so many equal values that the tier cuts coincide "
            f"(high from {high_cut:,.2f}, medium from {low_cut:,.2f}), leaving no customer in: "
            f"{', '.join(empty)}; change high_quantile/low_quantile or use another value basis.",
            stacklevel=2)
    out.attrs["rule"] = TierRule(basis, high_cut, low_cut, past_cut, rule_inactive, rule_p)
    return out


# ---------------------------------------------------------------------------------- lifecycle

def lifecycle_stages(transactions: pd.DataFrame, *, observation_end, intro_days: float = 90,
                     inactive_days: float | None = None, trend_days: float = 180,
                     maturity_days: float = 365, decline_ratio: float = 0.5) -> pd.Series:
    """Lifecycle stage per customer: introduction, growth, maturity, decline.

    With tenure = days from the first purchase to ``observation_end`` and the purchase rate
    (purchase days per day) in the last ``trend_days`` compared with the rate before, in order:

    1. introduction: tenure of at most ``intro_days``;
    2. decline: no purchase for more than ``inactive_days`` (default
       :func:`default_inactive_days` of the data), or, with tenure over ``trend_days``, a recent
       rate below ``decline_ratio`` x the earlier rate;
    3. introduction: still a single purchase (and not yet inactive);
    4. growth: tenure under ``maturity_days``;
    5. maturity: the rest (long-standing, still buying at a steady rate).
    """
    from ltv_helpers.data import customer_history
    from ltv_helpers.data.parse import _end_cut, id_positions
    from ltv_helpers.data.summary import order_days

    _require(transactions, [CUSTOMER_ID, ORDER_DATE, AMOUNT], "lifecycle_stages")
    cut = _end_cut(observation_end)
    if not (transactions[ORDER_DATE] < cut).any():
        raise LTVError("There are no transactions before observation_end to stage.")
    end_day = (cut - pd.Timedelta(days=1)).normalize()
    recent_start = end_day - pd.Timedelta(days=trend_days)
    # Purchase days in all (the summary's repeat days + the first) and in the last trend_days (the
    # days after recent_start, to the end): the daily summary of customer_history and the recent
    # days, both of the transactions' prepared orders (the segmentation's: no copy of the orders,
    # no group-by of their ids).
    summary = customer_history(transactions, observation_end=observation_end)
    recent = order_days(transactions).window(recent_start.normalize(), observation_end)[0]  # from the next day
    days = inactive_days if inactive_days is not None else default_inactive_days(summary)
    total = summary[FREQUENCY] + 1
    at = id_positions(summary.index, recent.index)  # Arrow's hash, not pandas' reindex of 1M strings
    recent = pd.Series(np.append(recent.to_numpy(), 0)[at], index=summary.index)  # -1 (none): the 0 appended
    tenure = summary[T]
    since = summary[T] - summary[RECENCY]
    earlier_days = (tenure - trend_days).clip(lower=1)
    recent_rate = recent / trend_days
    earlier_rate = (total - recent) / earlier_days
    falling = (tenure > trend_days) & (recent_rate < decline_ratio * earlier_rate)
    stage = np.select(
        [tenure <= intro_days, (since > days) | falling, summary[FREQUENCY] == 0, tenure < maturity_days],
        [STAGES.index(s) for s in ("introduction", "decline", "introduction", "growth")],
        default=STAGES.index("maturity"))
    return pd.Series(_categorical(stage, STAGES), index=summary.index, name="stage")


# ---------------------------------------------------------------------------------- tables

def empty_groups_note(labels: pd.Series, language: str = "en") -> str:
    """A sentence naming the groups of a categorical labelling that have no customer, and why when
    they are the groups of recent starters ('' if every group has customers)."""
    if not isinstance(labels.dtype, pd.CategoricalDtype):
        return ""
    counts = labels.value_counts()
    empty = [group_name(str(g), language) for g in labels.cat.categories if counts.get(g, 0) == 0]
    if not empty:
        return ""
    # The reason holds only when every group of recent starters in this labelling is empty.
    starters = set(labels.cat.categories) & _RECENT_GROUPS
    recent = bool(starters) and all(counts.get(g, 0) == 0 for g in starters) and set(
        g for g in labels.cat.categories if counts.get(g, 0) == 0) <= _RECENT_GROUPS
    return label(EMPTY_RECENT if recent else EMPTY_OTHER, language).format(
        groups=("、" if language == "zh" else ", ").join(empty))


def score_gaps_note(scores: pd.DataFrame, summary: pd.DataFrame, language: str = "en") -> str:
    """Sentences explaining score levels no customer has (an F score 2 missing when half the
    customers bought once: their equal frequency fills levels 1 and 2); '' when none is missing."""
    bins = scores.attrs.get("bins", int(scores[["R", "F", "M"]].max().max()))
    values = {"R": ("days since the last purchase", _days_since_last(summary)),
              "F": ("repeat purchases", summary[FREQUENCY]), "M": ("total spend", _revenue(summary))}
    notes = []
    for score, (what, value) in values.items():
        present = set(scores[score].unique())
        missing = [k for k in range(1, bins + 1) if k not in present and any(j < k for j in present)]
        for below in sorted({max(j for j in present if j < k) for k in missing}):
            levels = [k for k in missing if max(j for j in present if j < k) == below]
            # The levels were skipped by the customers who share the top value of the score below.
            group = value[scores[score] == below]
            tie = group[group == group.max()]
            notes.append(label(SCORE_GAP, language).format(
                score=score, levels=("、" if language == "zh" else ", ").join(map(str, levels)), below=below,
                count=f"{len(tie):,}", share=f"{len(tie) / len(scores):.0%}", what=label(what, language),
                value=f"{tie.iloc[0]:,.0f}" if score != "M" else f"{tie.iloc[0]:,.2f}"))
    return " ".join(notes)


#: Groups that only customers who started buying recently can be in.
_RECENT_GROUPS = {"New", "Promising", "introduction", "growth"}

SEGMENT_TABLE_COLUMNS = ("customers", "share of customers", "revenue", "share of revenue",
                         "average order value", "average orders", "average days since last purchase",
                         "average predicted CLV", "recommended actions")


def segment_table(labels: pd.Series, summary: pd.DataFrame, *, predictions: pd.DataFrame | None = None,
                  language: str = "en") -> pd.DataFrame:
    """One row per group of ``labels`` (RFM segments, tiers or stages) with size, value and actions.

    Columns: customers, share of customers, revenue, share of revenue, average order value
    (revenue / orders), average orders, average days since last purchase, average predicted CLV
    (with ``predictions``), recommended actions. Shares sum to 1. ``language="zh"`` gives
    Chinese group names, headers and actions. Empty groups are left out.
    """
    _require(summary, [FREQUENCY, RECENCY, T], "segment_table")
    labels = labels.reindex(summary.index)
    if labels.isna().any():
        raise LTVError(f"{int(labels.isna().sum())} customers of the summary have no {labels.name or 'label'}.")
    names = [str(c) for c in labels.cat.categories] if isinstance(labels.dtype, pd.CategoricalDtype) else []
    frame = pd.DataFrame({  # categories by their codes, as text (not a million strings: 0.4 s at 1M)
        "group": (labels.cat.rename_categories(names) if len(set(names)) == len(names) > 0
                  else labels.astype("str")),
        "revenue": _revenue(summary),
        "orders": summary["orders"] if "orders" in summary else summary[FREQUENCY] + 1,
        "since": _days_since_last(summary),
    })
    if predictions is not None:
        _require(predictions, ["clv"], "segment_table(predictions=...)")
        frame["clv"] = predictions["clv"].reindex(summary.index)
    grouped = frame.groupby("group", sort=False, observed=True)
    table = pd.DataFrame({
        "customers": grouped.size(),
        "revenue": grouped["revenue"].sum(),
        "average order value": grouped["revenue"].sum() / grouped["orders"].sum(),
        "average orders": grouped["orders"].mean(),
        "average days since last purchase": grouped["since"].mean(),
    })
    table.insert(1, "share of customers", table["customers"] / table["customers"].sum())
    total_revenue = table["revenue"].sum()
    table.insert(3, "share of revenue", table["revenue"] / total_revenue if total_revenue else 0.0)
    if predictions is not None:
        table["average predicted CLV"] = grouped["clv"].mean()
    order = list(labels.cat.categories) if isinstance(labels.dtype, pd.CategoricalDtype) else sorted(table.index)
    table.index = table.index.astype(object)
    table = table.reindex([g for g in order if g in table.index])
    table["recommended actions"] = [action(g, language) for g in table.index]
    table.index = [group_name(g, language) for g in table.index]
    table.index.name = label(str(labels.name or "segment"), language)
    if language != "en":
        table.columns = [label(c, language) for c in table.columns]
    return table


@dataclass
class Concentration:
    """How concentrated value is: Lorenz curve, Gini and top shares."""

    lorenz: pd.DataFrame
    gini: float
    top_shares: pd.Series

    def sentence(self, language: str = "en") -> str:
        top20 = self.top_shares.loc[0.2]
        if language == "zh":
            return f"消费最高的 20% 客户贡献了 {top20:.0%} 的价值（基尼系数 {self.gini:.2f}）。"
        return f"The top 20% of customers bring {top20:.0%} of the value (Gini {self.gini:.2f})."


def concentration(values, tops=(0.01, 0.05, 0.1, 0.2)) -> Concentration:
    """Lorenz curve points, Gini coefficient and the share of value held by the top customers.

    Lorenz: customers sorted by value ascending; x = cumulative share of customers (from 0),
    y = cumulative share of value. Gini = 1 - 2 x area under the Lorenz curve (trapezoids),
    0 when everyone is equal, (n - 1) / n when one customer has everything. The top share of a
    fraction f is the value of the ceil(f x n) largest customers over the total.

    >>> c = concentration([1, 1, 1, 1, 6])
    >>> round(c.gini, 2), c.top_shares.loc[0.2]
    (0.4, 0.6)
    """
    v = np.sort(np.asarray(values, dtype="float64"))
    if v.size == 0:
        raise LTVError("concentration needs at least one value.")
    if (v < 0).any() or np.isnan(v).any():
        raise LTVError("concentration needs non-negative values without gaps.")
    total = v.sum()
    n = v.size
    x = np.arange(n + 1) / n
    y = np.concatenate(([0.0], np.cumsum(v) / total)) if total > 0 else x.copy()
    gini = float(1 - 2 * np.trapezoid(y, x))
    desc = v[::-1]
    top = pd.Series({f: float(desc[: int(np.ceil(f * n))].sum() / total) if total > 0 else f
                     for f in tops}, name="share of value")
    top.index.name = "top share of customers"
    return Concentration(pd.DataFrame({"share of customers": x, "share of value": y}), gini, top)


def export_segments(assignments: pd.DataFrame, path) -> list[Path]:
    """Write the customer-to-segment list for a CRM or marketing automation tool.

    ``assignments`` is indexed by ``customer_id`` with one column per labelling (e.g.
    ``segment``, ``tier``, ``stage``). Writes ``<path>.csv`` (UTF-8 with BOM, so Excel shows
    Chinese text; cells a spreadsheet would run as formulas, such as an id ``=HYPERLINK(...)``,
    start with an apostrophe: :func:`ltv_helpers.files.write_csv`) and ``<path>.parquet`` (the
    values as they are); returns both paths.
    """
    from ltv_helpers.files import write_csv, write_parquet

    base = Path(path)
    if base.suffix in (".csv", ".parquet"):
        base = base.with_suffix("")
    base.parent.mkdir(parents=True, exist_ok=True)
    out = assignments.copy()
    out.index = out.index.astype("str")
    out.index.name = CUSTOMER_ID
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = out[col].astype("str")
    csv_path, pq_path = base.with_suffix(".csv"), base.with_suffix(".parquet")
    write_csv(out, csv_path)
    write_parquet(out, pq_path)
    return [csv_path, pq_path]


def save_segmentation(output_dir, assignments: pd.DataFrame, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Write the segmentation outputs to ``output_dir``: ``segments.csv`` / ``segments.parquet``
    (customer to segment, tier, stage; see :func:`export_segments`) and one
    ``segment_table_<name>.parquet`` per table. Returns one row per file with its row count.
    """
    from ltv_helpers.files import write_parquet

    out = Path(output_dir)
    written = {p.name: len(assignments) for p in export_segments(assignments, out / "segments")}
    for name, table in tables.items():
        path = out / f"segment_table_{name}.parquet"
        flat = table.copy()
        flat.index = flat.index.astype("str")
        flat.columns = [str(c) for c in flat.columns]
        write_parquet(flat, path)
        written[path.name] = len(table)
    files = pd.Series(written, name="rows")
    files.index.name = "file"
    return files.to_frame()
