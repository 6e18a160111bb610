"""Every figure. Each function takes DataFrames and returns a matplotlib Figure.

Labels come from :mod:`ltv_helpers.labels`. Chinese labels need a CJK font; without one a
warning says so and the figure falls back to English.
"""

from __future__ import annotations

import warnings

import matplotlib.dates as mdates
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


#: The font weights of text in figures (all "normal" unless a CJK font has one other weight only).
_WEIGHTS = ("font.weight", "axes.titleweight", "axes.labelweight", "figure.titleweight", "figure.labelweight")


def use_theme(language: str = "en") -> str:
    """Apply the house seaborn theme; returns the language figures can really use.

    For ``language="zh"`` a CJK font is put first in the font list; if none is installed a
    warning names the problem and figures are labelled in English.
    """
    sns.set_theme(style="whitegrid", context="notebook")
    for key in _WEIGHTS:
        plt.rcParams[key] = "normal"  # a Chinese theme before may have chosen its font's one weight
    plt.rcParams["figure.dpi"] = 100
    plt.rcParams["axes.unicode_minus"] = False
    # Labels carry the operator's currency ("HK$", "$$"): text, never matplotlib's $...$ math.
    plt.rcParams["text.parse_math"] = False
    if language == "zh":
        font = cjk_font()
        if font is None:
            warnings.warn("No CJK font is installed (e.g. Debian's fonts-noto-cjk), so figures are "
                          "labelled in English.", stacklevel=2)
            return "en"
        plt.rcParams["font.sans-serif"] = [font] + list(plt.rcParams["font.sans-serif"])
        plt.rcParams["font.family"] = "sans-serif"
        # Some CJK fonts come in one weight only (WenQuanYi Zen Hei: 500): ask for it, or matplotlib
        # logs "findfont: Failed to find font weight normal" for every figure.
        weights = {font_manager.weight_dict.get(f.weight, f.weight) for f in font_manager.fontManager.ttflist
                   if f.name == font}
        if weights and 400 not in weights:
            weight = min(weights, key=lambda w: abs(int(w) - 400))
            for key in _WEIGHTS:
                plt.rcParams[key] = weight
    return language


def _title(target, text: str):
    """Set a title with a capital first letter (a no-op for Chinese)."""
    text = text[:1].upper() + text[1:]
    (target.suptitle if isinstance(target, plt.Figure) else target.set_title)(text)


#: Whole numbers with thousands separators (40,000, not 40000), for axes and colour bars.
_THOUSANDS = mticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if float(v).is_integer() else f"{v:,.1f}")


def _money_axis(ax, axis="y"):
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(_THOUSANDS)


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


def _log_histogram(values: pd.Series, bins: int, ax, color) -> None:
    """``sns.histplot(values, log_scale=True, bins=bins)`` with the counts made by NumPy first and
    seaborn drawing the bars from one weighted point per bin: the same picture (pixel for pixel,
    tested), 10 times faster for 2.85M orders (1.3 s)."""
    logged = np.log10(values.to_numpy(dtype=float))
    if len(logged) == 0 or logged.min() == logged.max():  # nothing or one value: seaborn's own bins
        sns.histplot(values, log_scale=True, bins=bins, ax=ax, color=color)
        return
    low, high = float(logged.min()), float(logged.max())
    counts, edges = np.histogram(logged, bins=bins, range=(low, high))
    centers = 10 ** ((edges[:-1] + edges[1:]) / 2)
    sns.histplot(x=centers, weights=counts.astype(float), log_scale=True, bins=bins, binrange=(low, high),
                 ax=ax, color=color)


def order_value_distribution(transactions: pd.DataFrame, currency: str = "",
                             language: str = "en") -> plt.Figure:
    """Histogram of order values on a log scale, with the median and mean marked."""
    values = transactions[AMOUNT][transactions[AMOUNT] > 0]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    _log_histogram(values, 40, ax, sns.color_palette()[0])
    for stat, style in (("median", "--"), ("mean", ":")):  # named in the legend, off the bars
        v = float(getattr(values, stat)())
        ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"{label(stat, language)} {v:,.2f}")
    ax.legend(loc="upper right", fontsize=9)
    unit = _log_unit(currency, language)
    _title(ax, label("distribution of order value", language))
    ax.set_xlabel(label("order amount", language) + unit)
    ax.set_ylabel(label("number of orders", language))
    _log_ticks(ax, "x")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    fig.tight_layout()
    return fig


def _log_ticks(ax, *axes: str) -> None:
    """Plain numbers on logarithmic axes (1, 10, 100, 1,000; 0.1 below one), not 10^k: math text
    is off in these figures, and a client reads 1,000 more easily than a power of ten."""
    plain = mticker.FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    for name in axes or ("x",):
        axis = getattr(ax, f"{name}axis")
        low, high = sorted(getattr(ax, f"get_{name}lim")())
        narrow = low > 0 and np.log10(high / low) < 1.5  # too few powers of ten: label 1, 2 and 5 of each
        axis.set_major_locator(mticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0) if narrow else (1.0,)))
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(mticker.NullFormatter())


def _log_unit(currency: str, language: str) -> str:
    """`` (USD, log scale)``: the unit of a logarithmic money axis."""
    scale = label("log scale", language)
    return f" ({currency}, {scale})" if currency else f" ({scale})"


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
                          if value == "monetary" else label("customers", language), "format": _THOUSANDS})
    ax.grid(False)  # empty cells show the background, not grid lines
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
    # One point per customer is drawn with CURVE_POINTS (1.5 s of drawing at 1M customers).
    x, y = _thinned(conc.lorenz.iloc[:, 0].to_numpy() * 100, conc.lorenz.iloc[:, 1].to_numpy() * 100)
    ax.plot(x, y, color=sns.color_palette()[0], linewidth=2)
    ax.fill_between(x, y, x, color=sns.color_palette()[0], alpha=0.15)
    ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=1,
            label=label("equal value", language))
    top20 = conc.top_shares.loc[0.2] * 100
    text = label("top 20% of customers: {pct}% of value", language).format(pct=f"{top20:.0f}")
    # The top 20% hold the gap between the curve at 80% of customers and 100%: a bracket over it.
    ax.annotate("", xy=(80, 100), xytext=(80, 100 - top20),
                arrowprops={"arrowstyle": "<->", "color": "black", "shrinkA": 0, "shrinkB": 0})
    ax.plot([0, 80], [100 - top20] * 2, color="black", linestyle=":", linewidth=0.8)
    ax.scatter([80], [100 - top20], color="black", zorder=3, s=15)
    ax.text(78, 100 - top20 / 2, text, ha="right", va="center", fontsize=9)
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
    # Tiers and stages without any customer are left out, as in their tables (whose note says why).
    cross = cross.loc[cross.sum(axis=1) > 0, cross.sum(axis=0) > 0]
    cross.index = [group_name(str(t), language) for t in cross.index]
    cross.columns = [group_name(str(s), language) for s in cross.columns]
    fig, ax = plt.subplots(figsize=(7.5, 4))
    sns.heatmap(cross, annot=True, fmt=",d", cmap="Blues", ax=ax, linewidths=0.5,
                cbar_kws={"label": label("customers", language), "format": _THOUSANDS})
    ax.grid(False)
    _title(ax, label("value tier by lifecycle stage (customers)", language))
    ax.set_xlabel(label("stage", language))
    ax.set_ylabel(label("tier", language))
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- prediction

def _unit_name(unit_days: float, language: str) -> str:
    names = {1.0: "days", 7.0: "weeks"}
    if float(unit_days) in names:
        return label(names[float(unit_days)], language)
    return label("units of {n} days", language).format(n=f"{unit_days:g}")


def _model_matrix(model, values: str, horizon: float, max_frequency: int | None, grid: int = 40):
    """Grid of frequency (columns) x recency (rows) for a customer observed for the longest T."""
    model.spec.continuous_only("The expected-purchases and P(alive) map")
    T_max = model.t_max
    f_max = max_frequency or model.typical_max_frequency
    freqs = np.arange(0, f_max + 1)
    recs = np.linspace(0, T_max, grid)
    F, R = np.meshgrid(freqs, recs)
    R = np.where(F == 0, 0.0, R)  # without repeat purchases recency is 0
    args = (F.ravel().astype(float), R.ravel(), np.full(F.size, T_max))
    with np.errstate(all="ignore"):
        z = model.expected_purchases(horizon, *args) if values == "purchases" else model.p_alive(*args)
    return freqs, recs, np.asarray(z, dtype=float).reshape(F.shape), T_max


def model_matrix(model, *, values: str = "purchases", horizon: float = 365, max_frequency: int | None = None,
                 language: str = "en") -> plt.Figure:
    """Expected purchases over ``horizon`` (``values="purchases"``) or P(alive) (``"alive"``) for
    a customer observed over the longest T, by frequency (x) and recency (y)."""
    freqs, recs, z, T_max = _model_matrix(model, values, horizon, max_frequency)
    unit = _unit_name(model.unit_days, language)
    fig, ax = plt.subplots(figsize=(8, 5.5))
    mesh = ax.pcolormesh(freqs, recs, z, cmap="viridis", shading="nearest",
                         vmin=0, vmax=1 if values == "alive" else None)
    if values == "purchases":
        months = horizon * model.unit_days / (365.25 / 12)
        if months >= 1 and abs(months - round(months)) < 0.01:  # "12 months", not "365.25 days"
            title = label("Expected purchases in the next {months} months", language).format(months=round(months))
        else:
            title = label("Expected purchases in the next {horizon} {unit}", language).format(
                horizon=f"{horizon:g}", unit=unit)
        bar = label("expected purchases", language)
    else:
        title = label("Probability that a customer is still active", language)
        bar = label("P(alive)", language)
    fig.colorbar(mesh, ax=ax, label=bar)
    _title(ax, title)
    ax.set_xlabel((label("repeat purchases (frequency)", language)))
    ax.set_ylabel(label("time from first to last purchase ({unit})", language).format(unit=unit))
    ax.xaxis.set_major_locator(mticker.MaxNLocator(integer=True))
    ax.annotate(label("T = {T} {unit}", language).format(T=f"{T_max:,.0f}", unit=unit),
                (0.02, 0.97), xycoords="axes fraction", va="top", color="white", fontsize=9)
    fig.tight_layout()
    return fig


def clv_distribution(predictions: pd.DataFrame, currency: str = "", language: str = "en") -> plt.Figure:
    """Histogram of predicted CLV on a log scale, with median and mean."""
    values = predictions["clv"][predictions["clv"] > 0.01]
    values = values[values >= values.quantile(0.005)]  # a few near-zero customers would stretch the axis
    fig, ax = plt.subplots(figsize=(8, 4))
    _log_histogram(values, 50, ax, sns.color_palette()[2])
    for stat, style in (("median", "--"), ("mean", ":")):  # named in the legend, off the bars
        v = float(getattr(predictions["clv"], stat)())
        if v > 0.01:
            ax.axvline(v, color="black", linestyle=style, linewidth=1, label=f"{label(stat, language)} {v:,.2f}")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="upper right", fontsize=9)
    unit = _log_unit(currency, language)
    _title(ax, label("Distribution of predicted CLV", language))
    ax.set_xlabel((label("predicted CLV", language)) + unit)
    ax.set_ylabel(label("customers", language))
    _log_ticks(ax, "x")
    ax.yaxis.set_major_formatter(mticker.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    fig.tight_layout()
    return fig


def clv_by_group(predictions: pd.DataFrame, labels: pd.Series, currency: str = "",
                 language: str = "en") -> plt.Figure:
    """Average predicted CLV per customer in each group, annotated with the group's share of all CLV."""
    from ltv_helpers.segments import group_name

    frame = pd.DataFrame({"clv": predictions["clv"], "group": labels.reindex(predictions.index)})
    order = (list(labels.cat.categories) if isinstance(labels.dtype, pd.CategoricalDtype)
             else sorted(frame["group"].dropna().unique()))
    stats = frame.groupby("group", observed=True)["clv"].agg(["mean", "sum"]).reindex(order).dropna()
    share = stats["sum"] / stats["sum"].sum()
    names = [group_name(str(g), language) for g in stats.index]
    fig, ax = plt.subplots(figsize=(8, 0.5 * len(stats) + 1.8))
    ax.barh(names, stats["mean"], color=sns.color_palette()[2])
    ax.invert_yaxis()
    for y, (m, s) in enumerate(zip(stats["mean"], share)):
        text = label("{mean}  ({share} of all CLV)", language).format(mean=f"{m:,.0f}", share=f"{s:.0%}")
        ax.annotate(text, (m, y), xytext=(4, 0), textcoords="offset points", va="center", fontsize=9)
    ax.set_xlim(0, stats["mean"].max() * 1.35)
    group = str(labels.name or "group")
    _title(ax, label("Average predicted CLV per customer by {group}", language).format(
        group=label(group, language)))
    ax.set_xlabel((label("average predicted CLV", language))
                  + (f" ({currency})" if currency else ""))
    fig.tight_layout()
    return fig


def purchase_history_alive(model, purchases: pd.Series, *, observation_end, language: str = "en") -> plt.Figure:
    """One customer's purchases and P(alive) over time (lifetimes' ``plot_history_alive`` is
    broken on pandas 3). ``purchases`` are the customer's order dates."""
    from ltv_helpers.models import p_alive_path

    path = p_alive_path(model, purchases, observation_end=observation_end)
    fig, ax = plt.subplots(figsize=(9, 3.8))
    ax.plot(path.index, path["p_alive"], color=sns.color_palette()[0], linewidth=1.8)
    days = pd.to_datetime(purchases).dt.normalize().unique()
    for d in days:
        ax.axvline(d, color=sns.color_palette()[3], linewidth=0.8, linestyle="--")
    ax.set_ylim(0, 1.05)
    _title(ax, label("Purchases (dashed) and probability of being active", language))
    ax.set_ylabel(label("P(alive)", language))
    ax.set_xlabel(label("date", language))
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------- evaluation

def conditional_expectations_plot(table: pd.DataFrame, language: str = "en") -> plt.Figure:
    """Mean holdout purchases by calibration frequency: actual (bars) and each model (lines).

    ``table`` is :func:`ltv_helpers.evaluation.conditional_expectations`'s output.
    """
    fig, ax = plt.subplots(figsize=(8, 4.2))
    x = np.arange(len(table))
    ax.bar(x, table["actual"], color="lightgrey", edgecolor="grey",
           label=label("actual", language))
    for i, name in enumerate(c for c in table.columns if c not in ("customers", "actual")):
        ax.plot(x, table[name], marker="o", color=sns.color_palette()[i], label=label(name, language))
    ax.set_xticks(x, table.index)
    _title(ax, label("Holdout purchases by calibration-period frequency", language))
    ax.set_xlabel(label("repeat purchases in the calibration period", language))
    ax.set_ylabel(label("mean purchases per customer in the holdout", language))
    ax.legend()
    fig.tight_layout()
    return fig


def _finish(fig: plt.Figure, ax, heading: str, xlabel: str, ylabel: str, **legend) -> plt.Figure:
    """Title, axis labels (already in the figure's language), the legend (``legend``: its options)
    and a tight layout: how the lessons' figures end."""
    _title(ax, heading)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(**legend)
    fig.tight_layout()
    return fig


def ltv_by_retention(table: pd.DataFrame, currency: str = "", language: str = "en") -> plt.Figure:
    """LTV against yearly retention, one line per horizon: the value columns of
    :func:`ltv_helpers.lessons.scenario_table` (LTV / CAC, a ratio, is left out)."""
    fig, ax = plt.subplots(figsize=(8, 3.8))
    values = [c for c in table.columns if "CAC" not in str(c)]
    for i, col in enumerate(values):
        ax.plot(table.index, table[col], marker="o", linestyle=_MODEL_LINES[i % len(_MODEL_LINES)] if i else "-",
                color=sns.color_palette()[i], label=str(col))
    ax.xaxis.set_major_formatter(mticker.PercentFormatter(xmax=1, decimals=0))
    _money_axis(ax)
    return _finish(fig, ax, label("LTV grows faster than retention", language),
                   str(table.index.name or label("yearly retention", language)),
                   f"LTV ({currency})" if currency else "LTV")


def lever_values(table: pd.DataFrame, currency: str = "", language: str = "en") -> plt.Figure:
    """Net value of each lever in each group (:func:`ltv_helpers.levers.what_if`'s ``net_value``):
    bars grouped by tier, one colour per lever, the zero line marking where a campaign stops paying."""
    from ltv_helpers.segments import group_name

    net = table["net_value"].unstack("lever")  # unstack sorts: back to the table's order of tiers and levers
    net = net.loc[table.index.get_level_values("group").unique(), table.index.get_level_values("lever").unique()]
    fig, ax = plt.subplots(figsize=(8, 4))
    x = np.arange(len(net))
    width = 0.8 / max(len(net.columns), 1)
    for i, lever in enumerate(net.columns):
        ax.bar(x + (i - (len(net.columns) - 1) / 2) * width, net[lever], width, label=label(str(lever), language),
               color=sns.color_palette()[i])
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(x, [group_name(str(g), language) for g in net.index])
    _money_axis(ax)
    return _finish(fig, ax, label("Net value of each lever, by tier", language), "",
                   label("net value", language) + (f" ({currency})" if currency else ""),
                   title=label("lever", language), fontsize=8)


def sbg_survival(cohorts: dict, fitted_periods: int, language: str = "en") -> plt.Figure:
    """Survival curves of subscription cohorts: the share still active after each period, actual
    (markers) and the sBG model fitted on the first ``fitted_periods`` (line), its projection past
    them set against what happened. ``cohorts``: name -> (:class:`~ltv_helpers.subscription.SBGModel`,
    actual active counts from period 0)."""
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for i, (name, (model, actual)) in enumerate(cohorts.items()):
        actual = np.asarray(actual, dtype=float)
        t = np.arange(len(actual))
        color = sns.color_palette()[i]
        ax.plot(t, 100 * model.survival(t), color=color, label=f"{label(name, language)}: {label('model', language)}")
        ax.plot(t, 100 * actual / actual[0], "o", color=color, markerfacecolor="white",
                label=f"{label(name, language)}: {label('actual', language)}")
    ax.axvline(fitted_periods, color="grey", linestyle=":")
    ax.annotate(label("projection →", language), (fitted_periods, 0.97), xycoords=("data", "axes fraction"),
                xytext=(4, 0), textcoords="offset points", va="top", fontsize=9)
    ax.set_ylim(0, 100)
    ax.yaxis.set_major_formatter(mticker.PercentFormatter())
    return _finish(fig, ax, label("Share of the cohort still active", language), label("period (year)", language),
                   label("still active", language), fontsize=8)


def sbg_retention(models: dict, periods: int, language: str = "en") -> plt.Figure:
    """Retention rate by period of tenure (the share of those active after t - 1 periods who stay
    through t) for each fitted sBG model: ``models``, name -> model."""
    fig, ax = plt.subplots(figsize=(8, 3.6))
    t = np.arange(1, periods + 1)
    for i, (name, model) in enumerate(models.items()):
        ax.plot(t, 100 * model.retention(t), marker="o", color=sns.color_palette()[i], label=label(name, language))
    ax.yaxis.set_major_formatter(mticker.PercentFormatter(decimals=0))
    ax.set_xticks(t)
    return _finish(fig, ax, label("Retention rises with tenure", language), label("period (year)", language),
                   label("retention rate", language))


#: Line styles that tell the models apart in print, also without colour (":" marks the holdout).
_MODEL_LINES = ("--", "-.", (0, (1, 1)), (0, (5, 1, 1, 1, 1, 1)))


def tracking_plot(track: pd.DataFrame, *, cumulative: bool = True, language: str = "en") -> plt.Figure:
    """Actual and predicted repeat transactions per period, cumulative or incremental, with the
    end of the calibration period marked: one panel per model (their lines lie too close to tell
    apart on one), each with the actual line. ``track`` is :func:`ltv_helpers.evaluation.tracking`'s."""
    if not cumulative and "complete" in track:  # a period cut short by the end of the data would dip
        track = track[track["complete"].to_numpy(bool)]
    names = [c[len("cumulative_"):] for c in track.columns if c.startswith("cumulative_") and c != "cumulative_actual"]
    fig, axes = plt.subplots(1, max(len(names), 1), figsize=(9, 3.6), sharey=True, squeeze=False)
    actual = track["cumulative_actual"] if cumulative else track["actual"]
    boundary = track.index[track["holdout"].to_numpy().argmax()] if track["holdout"].any() else None
    for i, (ax, name) in enumerate(zip(axes[0], names or [None])):
        ax.plot(track.index, actual, color="black", linewidth=1.8, label=label("actual", language))
        if name is not None:
            ax.plot(track.index, track[f"cumulative_{name}"] if cumulative else track[name],
                    linestyle=_MODEL_LINES[0], linewidth=1.6, color=sns.color_palette()[i], label=label(name, language))
            ax.set_title(label(name, language), fontsize=10)
        if boundary is not None:
            ax.axvline(boundary, color="grey", linestyle=":", linewidth=1.5)
            ax.annotate(label("holdout →", language), (boundary, 1), xycoords=("data", "axes fraction"),
                        xytext=(3, -3), textcoords="offset points", fontsize=8, va="top")
        dates = mdates.AutoDateLocator(minticks=2, maxticks=4)  # a few ticks per panel, for any span
        ax.xaxis.set_major_locator(dates)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(dates))
        ax.tick_params(axis="x", rotation=30, labelsize=8)
    axes[0][0].yaxis.set_major_formatter(_THOUSANDS)
    axes[0][0].set_ylabel(label("repeat transactions", language))
    what = label("cumulative" if cumulative else "per period", language)
    _title(fig, label("Repeat transactions, {what}: actual and predicted", language).format(what=what))
    # One legend for all panels (each panel's title names its model), above them on the right.
    handles = [plt.Line2D([], [], color="black", linewidth=1.8),
               plt.Line2D([], [], color="grey", linestyle=_MODEL_LINES[0], linewidth=1.6)]
    fig.legend(handles, [label("actual", language), label("model", language)], loc="upper right", ncol=2,
               fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


#: Points a curve of one point per customer is drawn with at most: at 1M customers, six panels
#: of full gains curves took 4 s to draw and look the same with 2,001 points.
CURVE_POINTS = 2001


def _thinned(x: np.ndarray, y: np.ndarray, points: int = CURVE_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """``x`` and ``y`` at ``points`` positions at most, the first and last kept (all of them when
    there are fewer): evenly spaced ones and, for a rising ``y`` (a Lorenz or gains curve), half of
    them where it crosses even steps of its range, so that a steep end (the top customers) keeps its
    shape: between two kept points neither x nor y moves more than a ``points // 2``-th of its range."""
    if len(x) <= points:
        return x, y
    rising = bool(np.all(np.diff(y) >= 0))
    keep = np.linspace(0, len(x) - 1, points // 2 + 1 if rising else points).round().astype(int)
    if rising:
        levels = np.linspace(y[0], y[-1], points // 2)
        keep = np.concatenate((keep, np.minimum(np.searchsorted(y, levels), len(y) - 1)))
    keep = np.unique(keep)
    return x[keep], y[keep]


def gains_plot(result, language: str = "en") -> plt.Figure:
    """Cumulative-gains curves: share of holdout revenue captured by the top x% of customers as
    ranked by each model (by predicted spend) and baseline, one panel each (six curves on one
    axis cannot be told apart), each against random and perfect ranking, with its top 20% marked."""
    from ltv_helpers.evaluation import gains_curve

    pred = result.predictions
    actual = pred["actual_spend"]
    perfect = gains_curve(actual, actual).to_numpy() * 100
    px, py = _thinned(perfect[:, 0], perfect[:, 1])
    names = list(result.fitted) + [b for b in ("ml", "rfm", "naive") if f"{b}_spend" in pred]
    cols = max(1, min(3, len(names)))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(9, 3.1 * rows + 0.6), sharex=True, sharey=True, squeeze=False)
    for i, (ax, name) in enumerate(zip(axes.flat, names or [None])):
        if name is None:  # nothing to rank with: the reference lines alone
            ax.plot(px, py, color="black", linewidth=0.8,
                    label=label("perfect", language))
            ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=0.8, label=label("random", language))
            continue
        score = pred["rfm_score"] if name == "rfm" else pred[f"{name}_spend"]
        curve = gains_curve(score, actual)
        x, y = curve.iloc[:, 0].to_numpy() * 100, curve.iloc[:, 1].to_numpy() * 100
        at20 = float(np.interp(20, x, y))
        ax.plot(px, py, color="black", linewidth=0.8,
                label=label("perfect", language))
        ax.plot([0, 100], [0, 100], color="grey", linestyle="--", linewidth=0.8, label=label("random", language))
        x, y = _thinned(x, y)
        ax.plot(x, y, color=sns.color_palette()[i], linewidth=2, label=label(name, language))
        ax.scatter([20], [at20], color=sns.color_palette()[i], zorder=3, s=18)
        ax.annotate(label("top 20%: {pct}%", language).format(pct=f"{at20:.0f}"), (20, at20), xytext=(6, -14),
                    textcoords="offset points", fontsize=8)
        ax.set_title(label(name, language), fontsize=10)
        ax.set_xlim(0, 100)
        ax.set_ylim(0, 100)
    for ax in axes.flat[max(len(names), 1):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel(label("customers, ranked by prediction (%)", language), fontsize=9)
    for ax in axes[:, 0]:
        ax.set_ylabel(label("share of holdout revenue (%)", language), fontsize=9)
    handles = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles[0][:2], handles[1][:2], loc="upper right", ncol=2, fontsize=8, frameon=False)
    _title(fig, label("Cumulative gains of the rankings", language))
    fig.tight_layout()
    return fig


#: Points a scatter plot draws at most: beyond, a fixed random sample and the largest values on
#: either axis (1M points took 5.6 s to draw and look the same as 50k at this size).
SCATTER_POINTS = 50_000


def _scatter_sample(x: np.ndarray, y: np.ndarray, top: int = 500) -> np.ndarray:
    """Positions to draw: all of them up to SCATTER_POINTS, else a random sample (seed 0) with the
    ``top`` largest of x and of y, so the outliers stay on the plot."""
    n = len(x)
    if n <= SCATTER_POINTS:
        return np.arange(n)
    keep = np.random.default_rng(0).choice(n, SCATTER_POINTS - 2 * top, replace=False)
    largest = [np.argsort(np.nan_to_num(v, nan=-np.inf))[-top:] for v in (x, y)]
    return np.unique(np.concatenate([keep, *largest]))


def predicted_vs_actual(result, model: str, language: str = "en") -> plt.Figure:
    """Predicted against actual holdout purchases per customer, on axes that are linear from 0 to 1
    and logarithmic above (symlog), so customers with no purchase show at 0 without shifting.
    Beyond :data:`SCATTER_POINTS` customers, a random sample and the largest are drawn (and said)."""
    pred = result.predictions
    x, y = pred[f"{model}_purchases"], pred["actual_purchases"]
    fig, ax = plt.subplots(figsize=(6, 5.5))
    shown = _scatter_sample(x.to_numpy(dtype=float), y.to_numpy(dtype=float))
    ax.scatter(x.iloc[shown], y.iloc[shown], s=8, alpha=0.3, color=sns.color_palette()[0], edgecolor="none")
    if len(shown) < len(x):
        ax.annotate(label("{shown} of {total} customers: a random sample and the largest", language).format(
                    shown=f"{len(shown):,}", total=f"{len(x):,}"), (0.02, 0.98), xycoords="axes fraction",
                    va="top", fontsize=8, color="grey")
    largest = [float(np.nanmax(v.to_numpy(dtype=float), initial=0.0)) for v in (x, y)]
    top = max(*largest, 1.0) * 1.2
    ax.plot([0, top], [0, top], color="grey", linestyle="--", linewidth=1)
    ticks = [t for t in (0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if t <= top]
    for axis, setter in ((ax.xaxis, ax.set_xscale), (ax.yaxis, ax.set_yscale)):
        setter("symlog", linthresh=1, linscale=0.6)
        axis.set_major_locator(mticker.FixedLocator(ticks))
        axis.set_major_formatter(_THOUSANDS)
        axis.set_minor_locator(mticker.NullLocator())
    ax.set_xlim(-0.05, top)
    ax.set_ylim(-0.05, top)
    _title(ax, label("{model}: predicted vs actual per customer", language).format(model=label(model, language)))
    ax.set_xlabel(label("predicted holdout purchases", language))
    ax.set_ylabel(label("actual holdout purchases", language))
    fig.tight_layout()
    return fig


def forecast_check(table: pd.DataFrame, language: str = "en") -> plt.Figure:
    """The last report's forecast of purchase days per tier (bar, 90% interval as a line) against
    the purchase days that happened (dot): :func:`ltv_helpers.monitoring.forecast_table`."""
    from ltv_helpers.segments import group_name

    names = [group_name(str(g), language) for g in table.index]
    y = np.arange(len(table))
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(table) + 1.8))
    colors = sns.color_palette()
    ax.barh(y, table["predicted_purchases"], color=colors[0], alpha=0.35, label=label("forecast", language))
    ax.hlines(y, table["purchases_low"], table["purchases_high"], color=colors[0], linewidth=2.5,
              label=label("90% interval", language))
    ax.plot(table["actual_purchases"], y, "o", color=colors[3], markersize=8, label=label("actual", language))
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    ax.set_xlim(0, max(table["purchases_high"].max(), table["actual_purchases"].max()) * 1.1)
    return _finish(fig, ax, label("The last forecast of purchase days against what happened", language),
                   label("purchase days in the window", language), "", loc="lower right")


def channel_values(table: pd.DataFrame, currency: str = "", language: str = "en") -> plt.Figure:
    """Per acquisition channel (:func:`ltv_helpers.channels.channel_economics`): LTV/CAC with its
    90% interval when the table has costs (a line at 1, where acquisition pays back), else the
    realised first-year and predicted value per customer. Best channel on top, as in
    :func:`ltv_helpers.channels.channel_table`."""
    key = "ltv_cac" if "ltv_cac" in table and table["ltv_cac"].notna().any() else "predicted_value"
    table = table.sort_values(key, ascending=False, kind="stable")
    names = [label(str(c), language) for c in table.index]
    y = np.arange(len(table))
    colors = sns.color_palette()
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(table) + 1.8))
    if "ltv_cac" in table and table["ltv_cac"].notna().any():
        ax.barh(y, table["ltv_cac"], color=colors[2])
        if "ltv_cac_low" in table:
            ax.hlines(y, table["ltv_cac_low"], table["ltv_cac_high"], color="black", linewidth=2,
                      label=label("90% interval", language))
        ax.axvline(1, color=colors[3], linestyle="--", linewidth=1, label=label("pays back its cost", language))
        heading, xlabel = label("LTV/CAC by acquisition channel", language), label("LTV/CAC", language)
    else:
        history = table["value_365d"].fillna(0.0)
        ax.barh(y - 0.2, history, height=0.4, color=colors[0], label=label("value_365d", language))
        ax.barh(y + 0.2, table["predicted_value"], height=0.4, color=colors[2],
                label=label("predicted_value", language))
        if "predicted_value_low" in table:
            ax.hlines(y + 0.2, table["predicted_value_low"], table["predicted_value_high"], color="black",
                      linewidth=2, label=label("90% interval", language))
        heading = label("Value per customer by acquisition channel", language)
        xlabel = label("value per customer", language) + (f" ({currency})" if currency else "")
    ax.set_yticks(y, names)
    ax.invert_yaxis()
    return _finish(fig, ax, heading, xlabel, "", loc="lower right")


def value_curves(curves: pd.DataFrame, currency: str = "", language: str = "en") -> plt.Figure:
    """Realised value per customer 30-365 days after the first order, one line per channel
    (customer-weighted over the cohorts old enough for each point)."""
    columns = [c for c in curves.columns if c.startswith("value_")]
    days = [int(c[len("value_"):-1]) for c in columns]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for channel, part in curves.groupby(level=0, sort=True):
        points = [(d, np.average(part[c].dropna(), weights=part.loc[part[c].notna(), "customers"]))
                  for d, c in zip(days, columns) if part[c].notna().any()]
        if points:
            ax.plot(*zip(*points), marker="o", label=label(str(channel), language))
    ax.set_xticks(days)
    ax.set_ylim(bottom=0)
    return _finish(fig, ax, label("Realised value per customer since the first order", language),
                   label("days since the first order", language),
                   label("value per customer", language) + (f" ({currency})" if currency else ""), loc="upper left")
