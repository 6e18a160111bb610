"""Helpers of the lessons in ``notebooks/lessons/``: checked exercises and the scenario explorer.

An exercise cell leaves ``answer = None`` for the learner; :func:`check` compares an answer with
the value the exercise expects (computed from the lesson's data, never typed in) and shows a
short verdict, with a hint when the answer is wrong; it never raises for a learner's mistake.
The hidden solution cells call it with ``strict=True`` (the test suite runs every lesson with
the solutions filled in, where a wrong solution must fail).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from ltv_helpers.schema import LTVError


@dataclass(frozen=True)
class Exercise:
    """What an exercise expects (a function of the lesson's data), the hint for a wrong answer, and
    the precision its question asks for: ``decimals`` (an answer within half a unit of the last
    decimal is right: 1.60 for 1.604 at two decimals), or ``rtol`` relative to the expected value
    (0: a name, compared as text)."""

    expected: Callable[..., object]
    hint_en: str
    hint_zh: str
    rtol: float = 1e-3
    decimals: int | None = None


def _average_order_value(tx):
    from ltv_helpers.data import simple_ltv_estimate

    return float(simple_ltv_estimate(tx).loc["average order value", "value"])


def _tier_with_most_revenue(history, tiers):
    return str(history["revenue"].groupby(tiers.astype(str)).sum().idxmax())


def _order_value_gain(baseline, change: float, group: str) -> float:
    from ltv_helpers.levers import what_if

    return float(what_if(baseline, {"order value": change}, cost_per_customer=0).loc[(group, "order value"), "gain"])


def _best_lever(table, group):
    return str(table.xs(group, level="group")["net_value"].idxmax())


EXERCISES: dict[str, Exercise] = {
    "1.1": Exercise(lambda: 80 * 6 * 5,
                    "Multiply the average order value by the orders per year and by the years.",
                    "把平均订单金额乘以每年订单数，再乘以年数。", decimals=0),
    "1.2": Exercise(_average_order_value,
                    "Average order value = total revenue / number of orders (rows of tx).",
                    "平均订单金额 = 总销售额 / 订单数（tx 的行数）。", decimals=2),
    "1.3": Exercise(lambda history: float((history["orders"] == 1).mean()),
                    "The share of customers whose number of orders is exactly 1 (a number between 0 and 1).",
                    "订单数恰好为 1 的客户占比（0 到 1 之间的数）。", decimals=2),
    "2.1": Exercise(lambda: 100 * 0.8 / (1 + 0.1 - 0.8),
                    "Infinite horizon: m x r / (1 + d - r) with m = 100, r = 0.8, d = 0.1.",
                    "无限期公式：m × r / (1 + d − r)，其中 m = 100，r = 0.8，d = 0.1。", decimals=2),
    "2.2": Exercise(lambda: 600 / 200,
                    "LTV / CAC: divide the lifetime value by the cost of acquiring the customer.",
                    "LTV / CAC：用终身价值除以获客成本。", decimals=2),
    "2.3": Exercise(lambda: 200 / 25,
                    "Payback: months of margin needed to earn back the acquisition cost (CAC / monthly margin).",
                    "回收期：赚回获客成本所需的月数（CAC / 每月毛利）。", decimals=1),
    "3.1": Exercise(lambda segments: int((segments == "Champions").sum()),
                    "Count the customers whose segment is 'Champions'.",
                    "统计细分为 'Champions' 的客户人数。", decimals=0),
    "3.2": Exercise(_tier_with_most_revenue,
                    "Sum revenue by tier and take the tier with the largest sum (its name).",
                    "按分层汇总销售额，取总和最大的分层（分层名称）。", rtol=0),
    "4.1": Exercise(lambda model: model.params["r"] / model.params["alpha"],
                    "Divide model.params['r'] by model.params['alpha'] (both in days).",
                    "用 model.params['r'] 除以 model.params['alpha']（都以天为单位）。", decimals=4),
    "4.2": Exercise(lambda model: float(model.predict(
                        pd.DataFrame({"frequency": [2.0], "recency": [30.0], "T": [52.0]}),
                        horizon=52)["expected_purchases"].iloc[0]),
                    "Use model.predict on a one-row summary (frequency 2, recency 30, T 52) with horizon=52.",
                    "对一行汇总（frequency 2、recency 30、T 52）调用 model.predict，horizon=52。", decimals=2),
    "5.1": Exercise(lambda result: int((result.predictions["actual_purchases"] == 0).sum()),
                    "Count the rows of result.predictions whose actual_purchases is 0.",
                    "统计 result.predictions 中 actual_purchases 为 0 的行数。", decimals=0),
    "5.2": Exercise(lambda result: result.best("mae"),
                    "The model with the smallest mean absolute error (mae) per customer: bgnbd, mbgnbd or pareto_nbd.",
                    "单客户平均绝对误差（mae）最小的模型：bgnbd、mbgnbd 或 pareto_nbd。", rtol=0),
    "6.1": Exercise(lambda regular: regular.params["alpha"] / (regular.params["alpha"] + regular.params["beta"]),
                    "Fit fit_sbg to the 'regular' counts, then alpha / (alpha + beta) of its params.",
                    "对“regular”计数调用 fit_sbg，再用其参数计算 alpha / (alpha + beta)。", decimals=3),
    "6.2": Exercise(lambda high_end: float(high_end.project(15, 1000)["active"].iloc[15]),
                    "high_end.project(15, 1000) gives the expected active customers; take period 15.",
                    "high_end.project(15, 1000) 给出预计活跃人数；取第 15 期。", decimals=0),
    "7.1": Exercise(lambda table: _best_lever(table, "high value"),
                    "In the what-if table, keep the 'high value' rows and take the lever with the largest net_value.",
                    "在假设分析表中只看“high value”行，取 net_value 最大的杠杆。", rtol=0),
    "7.2": Exercise(lambda baseline: _order_value_gain(baseline, 0.2, "medium value"),
                    "levers.what_if(baseline, {'order value': 0.2}, cost_per_customer=0), then the 'gain' of "
                    "('medium value', 'order value').",
                    "levers.what_if(baseline, {'order value': 0.2}, cost_per_customer=0)，再取 "
                    "('medium value', 'order value') 的 'gain'。", decimals=2),
}

_TEXT = {
    "none": {"en": "Exercise {id}: not answered yet. Replace None with your answer and run the cell again.",
             "zh": "练习 {id}：尚未作答。把 None 换成你的答案，再运行本单元格。"},
    "right": {"en": "Exercise {id}: correct.", "zh": "练习 {id}：正确。"},
    "wrong": {"en": "Exercise {id}: not quite ({answer}). Hint: {hint}",
              "zh": "练习 {id}：还不对（{answer}）。提示：{hint}"},
    "many": {"en": "a table of {n:,} values: the answer is one value",
             "zh": "一张含 {n:,} 个值的表：答案是一个值"},
}


def _shown(answer, language: str) -> str:
    """An answer as a learner would write it: 1.6, not ``np.float64(1.6)``; a table or array is
    named, not printed."""
    if isinstance(answer, (pd.Series, pd.DataFrame, np.ndarray, list, tuple, dict)) and np.size(answer) != 1:
        return _TEXT["many"]["zh" if language == "zh" else "en"].format(n=int(np.size(answer)))
    if isinstance(answer, (pd.Series, pd.DataFrame, np.ndarray)):
        answer = np.asarray(answer).ravel()[0]
    if isinstance(answer, (bool, np.bool_)):
        return str(bool(answer))
    if isinstance(answer, (int, float, np.integer, np.floating)):
        return f"{float(answer):,.10g}"
    return repr(str(answer)) if isinstance(answer, np.str_) else repr(answer)


#: Other words the lessons' Chinese narrative uses for a name an exercise expects.
_ALIASES = {"frequency": ("频次", "购买频次"), "retention": ("留存", "留存率"), "order value": ("客单价", "订单金额")}


def _matches(answer, expected, rtol: float, decimals: int | None = None) -> bool:
    if isinstance(answer, (pd.Series, pd.DataFrame, np.ndarray)):
        if np.size(answer) != 1:
            return False
        answer = np.asarray(answer).ravel()[0]
    if isinstance(expected, str) or rtol == 0:
        from ltv_helpers.labels import label
        from ltv_helpers.segments import group_name

        # A name is right in either language: "high value" or "高价值客户", "margin" or "毛利".
        names = {str(expected), label(str(expected), "zh"), group_name(str(expected), "zh"),
                 *_ALIASES.get(str(expected), ())}
        return str(answer).strip().lower() in {n.strip().lower() for n in names}
    try:
        answer, expected = float(answer), float(expected)
    except (TypeError, ValueError):
        return False
    if decimals is not None:  # right at the precision the question asks for, and only then
        return bool(abs(answer - expected) <= 0.5 * 10.0 ** -decimals * (1 + 1e-9) + 1e-12)
    return bool(np.isclose(answer, expected, rtol=rtol, atol=1e-9))


def check(exercise: str, answer, language: str = "en", *, strict: bool = False, **data) -> bool:
    """Say whether ``answer`` solves ``exercise`` (with a hint when it does not); returns True/False.

    ``data`` are the lesson's objects the expected value is computed from (for example ``tx=`` or
    ``model=``). With ``strict=True`` (the solution cells) a wrong answer raises.
    """
    from IPython.display import Markdown, display

    if exercise not in EXERCISES:
        raise LTVError(f"No exercise {exercise!r}; the exercises are: {', '.join(EXERCISES)}.")
    ex = EXERCISES[exercise]
    zh = language == "zh"
    if answer is None:
        ok, text = False, _TEXT["none"]["zh" if zh else "en"].format(id=exercise)
    else:
        from ltv_helpers.labels import md_escape

        ok = _matches(answer, ex.expected(**data), ex.rtol, ex.decimals)
        text = (_TEXT["right" if ok else "wrong"]["zh" if zh else "en"]
                .format(id=exercise, answer=md_escape(_shown(answer, language)), hint=ex.hint_zh if zh else ex.hint_en))
    display(Markdown(f"**{text}**" if ok else text))
    if strict and not ok:
        raise AssertionError(f"The solution of exercise {exercise} does not pass its own check.")
    return ok


def spend_check(spend, language: str = "en") -> str:
    """A sentence on Gamma-Gamma's assumption for a fitted spend model (:class:`~ltv_helpers.models.SpendModel`):
    the correlation between repeat buyers' number of purchases and their average order value, and
    whether it is small enough (:data:`~ltv_helpers.models.SPEND_CORRELATION_WARNING`)."""
    from ltv_helpers.models import SPEND_CORRELATION_WARNING

    corr = spend.frequency_spend_correlation
    ok = abs(corr) <= SPEND_CORRELATION_WARNING
    if language == "zh":
        verdict = ("接近 0，符合模型的假设。" if ok else
                   f"绝对值超过 {SPEND_CORRELATION_WARNING}：买得多的客户每单花费不同，CLV 中的消费部分要谨慎看待。")
        return f"{spend.n_customers:,} 位重复购买客户的购买次数与平均订单金额的相关系数为 {corr:.2f}：{verdict}"
    verdict = ("close to 0, as the model assumes." if ok else
               f"beyond {SPEND_CORRELATION_WARNING} either way: customers who buy more often spend differently per "
               "order, so treat the spend part of CLV with care.")
    return (f"Among the {spend.n_customers:,} repeat buyers, the correlation between the number of purchases and the "
            f"average order value is {corr:.2f}: {verdict}")


def scenario_table(*, margin: float, retention, discount_rate: float = 0.1, cac: float | None = None,
                   horizon_years: int = 5, language: str = "en") -> pd.DataFrame:
    """LTV for a grid of yearly retention rates: over ``horizon_years`` (discounted) and forever,
    with LTV/CAC when ``cac`` is given. The static twin of :func:`explorer`.

    ``margin`` is the margin a customer brings per year while active.
    """
    from ltv_helpers.formulas import discounted_ltv, infinite_horizon_ltv, ltv_cac_ratio
    from ltv_helpers.labels import label

    r = np.atleast_1d(np.asarray(retention, dtype=float))
    forever = margin + infinite_horizon_ltv(margin, r, discount_rate)
    table = pd.DataFrame({
        label("LTV, {years} years", language).format(years=horizon_years):
            margin + discounted_ltv(margin, r, discount_rate, horizon_years - 1),
        label("LTV, forever", language): forever,
    }, index=r)
    if cac:
        table["LTV / CAC"] = ltv_cac_ratio(forever, cac)
    table.index.name = label("yearly retention", language)
    return table


def explorer(*, margin: float = 600.0, retention: float = 0.6, discount_rate: float = 0.1, cac: float = 300.0,
             language: str = "en"):
    """Sliders for margin, retention, discount rate and CAC, with the resulting LTV (ipywidgets; the
    sliders work where a kernel is live, e.g. JupyterLab).

    The table is an HTML widget that the sliders rewrite, not ``ipywidgets.interactive``: its
    Output widget makes papermill/nbclient (which emulate Output widgets when no browser is
    attached) send comm messages on the shell channel while they wait for the cell's reply there,
    and under load that wait never ended (2 runs in 8 of 40 explorers, beside two busy processes).
    Without an Output widget nothing is sent back, so a notebook run cannot hang here."""
    import ipywidgets as widgets

    from ltv_helpers.labels import label

    sliders = {
        "margin": widgets.FloatSlider(value=margin, min=50, max=2000, step=50, description=label("margin", language)),
        "retention": widgets.FloatSlider(value=retention, min=0.0, max=0.95, step=0.05,
                                         description=label("retention", language)),
        "discount_rate": widgets.FloatSlider(value=discount_rate, min=0.0, max=0.3, step=0.01,
                                             description=label("discount", language)),
        "cac": widgets.FloatSlider(value=cac, min=0, max=2000, step=50, description="CAC"),
    }
    result = widgets.HTML()

    def show(_change=None):
        values = {name: slider.value for name, slider in sliders.items()}
        values["retention"] = [values["retention"]]
        result.value = scenario_table(**values, language=language).round(2).to_html()  # labels and numbers, escaped

    for slider in sliders.values():
        slider.observe(show, names="value")
    show()
    return widgets.VBox([*sliders.values(), result])
