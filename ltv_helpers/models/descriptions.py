"""The fitted parameters in plain language (English and Chinese)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ltv_helpers.models.fitted import LTVModel


def describe(model: LTVModel, language: str = "en") -> str:
    """Plain-language reading of the fitted parameters (Markdown bullet points)."""
    zh = language == "zh"
    p = model.params
    days = model.unit_days

    def span(units: float) -> str:  # a duration in the model's time unit, said in days
        return f"{units * days:,.0f} 天" if zh else f"{units * days:,.0f} days"

    lines = [model.spec.rate_line(p, span, zh)]
    lines.append(model.spec.dropout_line(p, span, days, zh))
    if model.spend_model is not None:
        sp = model.spend_model.params
        mean_spend = sp["p"] * sp["gamma"] / (sp["q"] - 1)
        corr = model.spend_model.frequency_spend_correlation
        lines.append(f"- 平均每单消费约 {mean_spend:,.2f}；消费额与购买频次的相关系数为 {corr:.2f}"
                     f"（Gamma-Gamma 假设二者独立）。" if zh else
                     f"- An order is worth {mean_spend:,.2f} on average across customers; spend and "
                     f"frequency correlate at {corr:.2f} (Gamma-Gamma assumes independence).")
    return "\n".join(lines)
