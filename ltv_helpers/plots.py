"""Every figure. Each function takes DataFrames and returns a matplotlib Figure.

Labels come from :mod:`ltv_helpers.labels`. Chinese labels need a CJK font; without one a
warning says so and the figure falls back to English.
"""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import matplotlib.ticker as mticker
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib import font_manager

from ltv_helpers.labels import label
from ltv_helpers.schema import AMOUNT, CUSTOMER_ID

_CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans CJK JP", "Noto Sans SC", "Source Han Sans SC",
              "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei",
              "PingFang SC", "Heiti SC", "AR PL UMing CN", "Droid Sans Fallback")


def cjk_font() -> str | None:
    """Name of an installed font that can draw Chinese, or None.

    matplotlib caches its font list; a CJK font installed after the cache was written is added
    from the system font folders.
    """
    installed = {f.name for f in font_manager.fontManager.ttflist}
    found = next((name for name in _CJK_FONTS if name in installed), None)
    if found is None:
        hints = ("cjk", "wqy", "wenquanyi", "simhei", "droidsansfallback", "uming", "sourcehan")
        for path in font_manager.findSystemFonts():
            if any(h in path.lower().replace("-", "").replace("_", "") for h in hints):
                try:
                    font_manager.fontManager.addfont(path)
                except (OSError, RuntimeError):
                    continue
        installed = {f.name for f in font_manager.fontManager.ttflist}
        found = next((name for name in _CJK_FONTS if name in installed), None)
    return found


def use_theme(language: str = "en") -> str:
    """Apply the house seaborn theme; returns the language figures can really use.

    For ``language="zh"`` a CJK font is put first in the font list; if none is installed a
    warning names the problem and figures are labelled in English.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    plt.rcParams["figure.dpi"] = 100
    plt.rcParams["axes.unicode_minus"] = False
    if language == "zh":
        font = cjk_font()
        if font is None:
            warnings.warn("No CJK font is installed (e.g. Debian's fonts-noto-cjk), so figures are "
                          "labelled in English.", stacklevel=2)
            return "en"
        plt.rcParams["font.sans-serif"] = [font] + list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.family"] = "sans-serif"
    return language


def _title(target, text: str):
    """Set a title with a capital first letter (a no-op for Chinese)."""
    text = text[:1].upper() + text[1:]
    (target.suptitle if isinstance(target, plt.Figure) else target.set_title)(text)


def _money_axis(ax, axis="y"):
    fmt = mticker.FuncFormatter(lambda v, _: f"{v:,.0f}")
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(fmt)


def new_customers_per_month(activity: pd.DataFrame, language: str = "en") -> plt.Figure:
    """Bar chart of customers making their first purchase each month (acquisition cohorts).

    ``activity`` is :func:`ltv_helpers.data.monthly_activity`'s table.
    """
    fig, ax = plt.subplots(figsize=(9, 3.8))
    months = activity.index.strftime("%Y-%m")
    ax.bar(months, activity["new_customers"], color=sns.color_palette()[0])
    _title(ax, label("new customers per month", language))
    ax.set_xlabel(label("month", language))
    ax.set_ylabel(label("new customers", language))
    _money_axis(ax)
    _thin_ticks(ax, len(months))
    fig.tight_layout()
    return fig


def revenue_and_orders(activity: pd.DataFrame, currency: str = "", language: str = "en") -> plt.Figure:
    """Monthly revenue (bars, top) and orders (line, bottom) on a shared month axis."""
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True)
    months = activity.index.strftime("%Y-%m")
    top.bar(months, activity["revenue"], color=sns.color_palette()[2])
    top.set_ylabel(f"{label('revenue', language)} ({currency})" if currency else label("revenue", language))
    _money_axis(top)
    bottom.plot(months, activity["orders"], marker="o", color=sns.color_palette()[1])
    bottom.set_ylabel(label("orders", language))
    bottom.set_xlabel(label("month", language))
    bottom.set_ylim(bottom=0)
    _money_axis(bottom)
    _thin_ticks(bottom, len(months))
    _title(fig, label("revenue and orders per month", language))
    fig.tight_layout()
    return fig


def orders_per_customer(transactions: pd.DataFrame, language: str = "en", cap: int = 10) -> plt.Figure:
    """Share of customers by number of orders, with ``cap`` or more grouped in the last bar."""
    counts = transactions.groupby(CUSTOMER_ID).size().clip(upper=cap)
    share = counts.value_counts(normalize=True).reindex(range(1, cap + 1), fill_value=0)
    fig, ax = plt.subplots(figsize=(7, 3.8))
    names = [str(k) for k in share.index[:-1]] + [f"{cap}+"]
    ax.bar(names, share.to_numpy() * 100, color=sns.color_palette()[0])
    for x, v in zip(names, share.to_numpy() * 100):
        ax.annotate(f"{v:.0f}%", (x, v), ha="center", va="bottom", fontsize=9)
    _title(ax, label("distribution of orders per customer", language))
    ax.set_xlabel(label("orders per customer", language))
    ax.set_ylabel(f"{label('share of customers', language)} (%)")
    fig.tight_layout()
    return fig


def order_value_distribution(transactions: pd.DataFrame, currency: str = "",
                             language: str = "en") -> plt.Figure:
    """Histogram of order values on a log scale, with the median and mean marked."""
    values = transactions[AMOUNT][transactions[AMOUNT] > 0]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    sns.histplot(values, log_scale=True, bins=40, ax=ax, color=sns.color_palette()[0])
    for stat, style in (("median", "--"), ("mean", ":")):
        v = float(getattr(values, stat)())
        ax.axvline(v, color="black", linestyle=style, linewidth=1)
        ax.annotate(f"{stat} {v:,.2f}", (v, ax.get_ylim()[1] * 0.9), rotation=90, ha="right",
                    va="top", fontsize=9)
    unit = f" ({currency}, log scale)" if currency else " (log scale)"
    _title(ax, label("distribution of order value", language))
    ax.set_xlabel(label("order value", language) + unit)
    ax.set_ylabel(label("number of orders", language))
    ax.xaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    fig.tight_layout()
    return fig


def _thin_ticks(ax, n: int, most: int = 12):
    step = max(1, int(np.ceil(n / most)))
    for i, tick in enumerate(ax.get_xticklabels()):
        tick.set_visible(i % step == 0)
    ax.tick_params(axis="x", rotation=45)


# ---------------------------------------------------------------------------------- segmentation

def segment_sizes(table: pd.DataFrame, language: str = "en") -> plt.Figure:
    """Share of customers next to share of revenue for each group of a segment table.

    ``table`` is :func:`ltv_helpers.segments.segment_table`'s output (any language).
    """
    cust, rev = table.iloc[:, 1], table.iloc[:, 3]  # share of customers, share of revenue
    frame = pd.DataFrame({label("share of customers", language): cust.to_numpy() * 100,
                          label("share of revenue", language): rev.to_numpy() * 100},
                         index=table.index)
    long = frame.reset_index(names="group").melt(id_vars="group", var_name="measure", value_name="pct")
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(table) + 1.6))
    sns.barplot(long, y="group", x="pct", hue="measure", ax=ax, orient="h")
    for cont in ax.containers:
        ax.bar_label(cont, fmt="%.0f%%", fontsize=8, padding=2)
    group = str(table.index.name or label("segment", language))
    _title(ax, label("customers and revenue by {group}", language).format(group=group))
    ax.set_xlabel(label("share (%)", language))
    ax.set_ylabel("")
    ax.legend(title=None, loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.6 / len(table)), ncol=2)
    fig.tight_layout()
    return fig


def rf_heatmap(scores: pd.DataFrame, summary: pd.DataFrame, *, value: str = "monetary",
               currency: str = "", language: str = "en") -> plt.Figure:
    """R x F score grid coloured by average spend (``value="monetary"``) or customer count."""
    if value not in ("monetary", "count"):
        raise ValueError("value must be 'monetary' or 'count'.")
    frame = scores[["R", "F"]].copy()
    frame["spend"] = summary["revenue"] if "revenue" in summary else summary["monetary_value"]
    if value == "count":
        grid = frame.pivot_table(index="R", columns="F", values="spend", aggfunc="size", fill_value=0)
        fmt, title = ",.0f", "customers by R and F score"
    else:
        grid = frame.pivot_table(index="R", columns="F", values="spend", aggfunc="mean")
        fmt, title = ",.0f", "average spend by R and F score"
    grid = grid.sort_index(ascending=False)
    fig, ax = plt.subplots(figsize=(7, 5))
    sns.heatmap(grid, annot=True, fmt=fmt, cmap="YlGnBu", ax=ax, linewidths=0.5,
                cbar_kws={"label": (label("revenue", language) + (f" ({currency})" if currency else ""))
                          if value == "monetary" else label("customers", language)})
    _title(ax, label(title, language))
    ax.set_ylabel(label("R score (recency, 5 = most recent)", language))
    ax.set_xlabel(label("F score (frequency)", language))
    fig.tight_layout()
    return fig


def lorenz_curve(conc, language: str = "en") -> plt.Figure:
    """Lorenz curve of customer value with the equality line; the Gini is in the title.

    ``conc`` is :func:`ltv_helpers.segments.concentration`'s result.
    """
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    x = conc.lorenz.iloc[:, 0] * 100
    y = conc.lorenz.iloc[:, 1] * 100
    ax.plot(x, y, color=sns.color_palette()[0], linewidth=2)
    ax.fill_between(x, y, x, color=sns.color_palette()[0], alpha=0.15)
    ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1,
            label=label("equal value", language))
    top20 = conc.top_shares.loc[0.2] * 100
    text = (f"top 20% of customers: {top20:.0f}% of value" if language == "en"
            else f"前 20% 客户：{top20:.0f}% 的价值")
    ax.annotate(text, (80, 100 - top20), xytext=(8, 62), fontsize=9,
                arrowprops={"arrowstyle": "->", "color": "black"})
    ax.scatter([80], [100 - top20], color="black", zorder=3, s=15)
    _title(ax, f"{label('Lorenz curve of customer value', language)} (Gini {conc.gini:.2f})")
    ax.set_xlabel(label("cumulative share of customers (%)", language))
    ax.set_ylabel(label("cumulative share of value (%)", language))
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.legend(loc="upper left")
    fig.tight_layout()
    return fig


def tier_stage_heatmap(tiers: pd.Series, stages: pd.Series, language: str = "en") -> plt.Figure:
    """Customers by value tier (rows) and lifecycle stage (columns)."""
    from ltv_helpers.segments import group_name

    cross = pd.crosstab(tiers, stages, dropna=False)
    cross.index = [group_name(str(t), language) for t in cross.index]
    cross.columns = [group_name(str(s), language) for s in cross.columns]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    sns.heatmap(cross, annot=True, fmt=",d", cmap="Blues", ax=ax, linewidths=0.5,
                cbar_kws={"label": label("customers", language)})
    _title(ax, label("value tier by lifecycle stage (customers)", language))
    ax.set_xlabel(label("stage", language))
    ax.set_ylabel(label("tier", language))
    fig.tight_layout()
    return fig
