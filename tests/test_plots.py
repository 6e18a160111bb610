import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import pytest

from ltv_helpers import data, plots


@pytest.fixture(scope="module")
def cleaned(cdnow_sample):
    return data.clean_transactions(cdnow_sample).transactions


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in (ax.title, ax.xaxis.label, ax.yaxis.label)] + \
        [fig._suptitle.get_text() if fig._suptitle else ""]


def test_collection_figures_have_titles_and_units(cleaned):
    act = data.monthly_activity(cleaned)
    figs = [plots.new_customers_per_month(act), plots.revenue_and_orders(act, "USD"),
            plots.orders_per_customer(cleaned), plots.order_value_distribution(cleaned, "USD")]
    for fig in figs:
        texts = [t for t in _texts(fig) if t]
        assert any("per month" in t.lower() or "distribution" in t.lower() for t in texts)
        assert all(ax.get_xlabel() or ax.get_ylabel() for ax in fig.axes)
        plt.close(fig)
    assert "revenue (USD)" in _texts(figs[1])
    assert "(USD, log scale)" in figs[3].axes[0].get_xlabel()


def test_orders_per_customer_bars_sum_to_100(cleaned):
    fig = plots.orders_per_customer(cleaned)
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert len(heights) == 10 and sum(heights) == pytest.approx(100)
    plt.close(fig)


def test_new_customer_bars_match_the_data(cleaned):
    act = data.monthly_activity(cleaned)
    fig = plots.new_customers_per_month(act)
    assert [p.get_height() for p in fig.axes[0].patches] == act["new_customers"].tolist()
    assert act["new_customers"].sum() == cleaned["customer_id"].nunique()
    plt.close(fig)


def test_chinese_labels_or_a_clear_fallback(cleaned, monkeypatch):
    act = data.monthly_activity(cleaned)
    if plots.cjk_font() is not None:
        assert plots.use_theme("zh") == "zh"
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fig = plots.new_customers_per_month(act, "zh")
            fig.canvas.draw()
        assert fig.axes[0].get_title() == "每月新客户数（获客队列）"
        assert not [w for w in caught if "missing from font" in str(w.message)]
        plt.close(fig)
    monkeypatch.setattr(plots, "cjk_font", lambda: None)
    with pytest.warns(UserWarning, match="No CJK font"):
        assert plots.use_theme("zh") == "en"
    plots.use_theme("en")


@pytest.fixture(scope="module")
def seg_inputs(cdnow_sample):
    from ltv_helpers import segments as sg

    tx = data.clean_transactions(cdnow_sample).transactions
    hist = data.customer_history(tx, observation_end="1998-06-30")
    scores = sg.rfm_scores(hist)
    return sg, tx, hist, scores


def test_segment_sizes_bars_are_the_table_shares(seg_inputs):
    sg, _, hist, scores = seg_inputs
    table = sg.segment_table(sg.value_tiers(hist), hist)
    fig = plots.segment_sizes(table)
    bars = sorted(round(p.get_width(), 6) for p in fig.axes[0].patches if p.get_width() > 0)
    expected = sorted(round(v * 100, 6) for v in
                      list(table["share of customers"]) + list(table["share of revenue"]) if v > 0)
    assert bars == pytest.approx(expected)
    assert fig.axes[0].get_title() == "Customers and revenue by tier"
    plt.close(fig)


def test_rf_heatmap_counts_add_up(seg_inputs):
    _, _, hist, scores = seg_inputs
    fig = plots.rf_heatmap(scores, hist, value="count")
    values = [float(t.get_text().replace(",", "")) for t in fig.axes[0].texts]
    assert sum(values) == len(hist)
    assert fig.axes[0].get_ylabel().startswith("R score")
    plt.close(fig)


def test_lorenz_title_has_gini(seg_inputs):
    sg, _, hist, _ = seg_inputs
    conc = sg.concentration(hist["revenue"])
    fig = plots.lorenz_curve(conc)
    assert f"Gini {conc.gini:.2f}" in fig.axes[0].get_title()
    line = fig.axes[0].lines[0]
    assert line.get_ydata()[-1] == pytest.approx(100)
    plt.close(fig)


def test_a_lorenz_curve_of_many_customers_is_drawn_thinned_and_true_to_its_steep_end():
    """200,000 heavy-tailed values (the top customers hold most of the value): at most CURVE_POINTS
    points are drawn, and the drawn line is within 0.2 points (of 100) of the curve at every customer."""
    from ltv_helpers import segments as sg

    values = np.random.default_rng(1).pareto(1.1, 200_000)
    conc = sg.concentration(values)
    fig = plots.lorenz_curve(conc)
    x, y = (np.asarray(a, dtype=float) for a in fig.axes[0].lines[0].get_data())
    assert len(x) <= plots.CURVE_POINTS and (x[0], y[0]) == (0, 0) and (x[-1], y[-1]) == pytest.approx((100, 100))
    true_x, true_y = conc.lorenz.iloc[:, 0].to_numpy() * 100, conc.lorenz.iloc[:, 1].to_numpy() * 100
    assert np.abs(np.interp(true_x, x, y) - true_y).max() < 0.2
    plt.close(fig)


def test_tier_stage_heatmap_counts(seg_inputs):
    sg, tx, hist, _ = seg_inputs
    tiers = sg.value_tiers(hist)
    stages = sg.lifecycle_stages(tx, observation_end="1998-06-30")
    fig = plots.tier_stage_heatmap(tiers, stages)
    values = [int(t.get_text().replace(",", "")) for t in fig.axes[0].texts]
    # Stages no customer is in (CDNOW has no recent starters) are left out, as in their table.
    present = stages.value_counts().gt(0).sum() * tiers.value_counts().gt(0).sum()
    assert sum(values) == len(hist) and len(values) == present < 16
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [s for s in sg.STAGES if (stages == s).any()]
    plt.close(fig)


@pytest.fixture(scope="module")
def fitted(seg_inputs):
    from ltv_helpers import models

    _, tx, hist, _ = seg_inputs
    return models, tx, hist, models.fit(hist, model="bgnbd")


@pytest.mark.parametrize("values", ["purchases", "alive"])
def test_model_matrix_values_come_from_the_model(fitted, values):
    _, _, hist, m = fitted
    fig = plots.model_matrix(m, values=values, horizon=365)
    mesh = fig.axes[0].collections[0]
    z = np.asarray(mesh.get_array())
    assert z.min() >= 0 and (values == "purchases" or z.max() <= 1)
    assert "days" in fig.axes[0].get_ylabel()
    plt.close(fig)


def test_clv_figures(fitted):
    _, tx, hist, m = fitted
    from ltv_helpers import segments as sg

    pred = m.predict(hist, horizon=365)
    fig = plots.clv_distribution(pred, "USD")
    assert "USD, log scale" in fig.axes[0].get_xlabel()
    plt.close(fig)
    tiers = sg.value_tiers(hist)
    fig = plots.clv_by_group(pred, tiers, "USD")
    widths = [p.get_width() for p in fig.axes[0].patches]
    expected = pred["clv"].groupby(tiers, observed=True).mean().reindex(sg.TIERS).dropna()
    assert widths == pytest.approx(expected.tolist())
    assert fig.axes[0].get_title() == "Average predicted CLV per customer by tier"
    plt.close(fig)


def test_purchase_history_alive_marks_every_purchase_day(fitted):
    _, tx, hist, m = fitted
    cid = hist["frequency"].idxmax()
    dates = tx.loc[tx["customer_id"] == cid, "order_date"]
    fig = plots.purchase_history_alive(m, dates, observation_end="1998-06-30")
    ax = fig.axes[0]
    assert len(ax.lines) == 1 + dates.dt.normalize().nunique()
    assert ax.get_ylim()[1] <= 1.05
    plt.close(fig)


@pytest.fixture(scope="module")
def backtested(cdnow_sample):
    from ltv_helpers import evaluation as ev

    import warnings as w
    with w.catch_warnings():
        w.simplefilter("ignore")
        return ev, ev.backtest(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                               freq="D", freq_multiplier=7)


def test_conditional_expectations_plot_bars_are_actual(backtested):
    ev, res = backtested
    table = ev.conditional_expectations(res)
    fig = plots.conditional_expectations_plot(table)
    ax = fig.axes[0]
    assert [p.get_height() for p in ax.patches] == pytest.approx(table["actual"].tolist())
    assert len(ax.lines) == 3
    plt.close(fig)


@pytest.mark.parametrize("cumulative", [True, False])
def test_tracking_plot_marks_the_holdout(backtested, cdnow_sample, cumulative):
    ev, res = backtested
    track = ev.tracking(cdnow_sample, res)
    fig = plots.tracking_plot(track, cumulative=cumulative)
    # One panel per model, each with the actual line, its model's line and the holdout boundary.
    assert [ax.get_title() for ax in fig.axes] == ["BG/NBD", "Pareto/NBD", "MBG/NBD"]
    for ax, name in zip(fig.axes, ("bgnbd", "pareto_nbd", "mbgnbd")):
        boundary = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
        assert len(boundary) == 1
        actual = ax.lines[0].get_ydata()
        # Per period, a last period cut short by the end of the data is left out (it would dip).
        expected = track["cumulative_actual"] if cumulative else track["actual"][track["complete"]]
        assert list(actual) == expected.tolist()
        model = track[f"cumulative_{name}"] if cumulative else track[name][track["complete"]]
        assert list(ax.lines[1].get_ydata()) == model.tolist()
    fig.canvas.draw()
    assert all("," in t.get_text() for t in fig.axes[0].get_yticklabels() if len(t.get_text()) > 4)
    plt.close(fig)


def test_gains_and_scatter(backtested):
    ev, res = backtested
    fig = plots.gains_plot(res)
    # One panel per ranking: perfect, random and its own curve, marked at the top 20%.
    shown = [ax for ax in fig.axes if ax.get_visible()]
    titles = [ax.get_title() for ax in shown]
    assert {"BG/NBD", "RFM score ranking", "naive (past rate continues)"} <= set(titles)
    assert len(titles) == len(set(titles))
    for ax in shown:
        assert [ln.get_label() for ln in ax.lines] == ["perfect", "random", ax.get_title()]
        assert all(ln.get_ydata()[-1] == pytest.approx(100) for ln in ax.lines)
        x, y = ax.lines[2].get_xdata(), ax.lines[2].get_ydata()
        # The line is drawn with CURVE_POINTS points at most; the marker is read on the whole curve.
        assert len(x) <= plots.CURVE_POINTS and x[0] == 0 and x[-1] == pytest.approx(100)
        assert ax.collections[0].get_offsets()[0][1] == pytest.approx(np.interp(20, x, y), abs=0.5)
    name = "bgnbd"
    curve = ev.gains_curve(res.predictions[f"{name}_spend"], res.predictions["actual_spend"]) * 100
    (ax,) = [a for a in shown if a.get_title() == "BG/NBD"]
    assert ax.collections[0].get_offsets()[0][1] == pytest.approx(np.interp(20, *curve.to_numpy().T))
    plt.close(fig)
    fig = plots.predicted_vs_actual(res, "bgnbd")
    ax = fig.axes[0]
    assert ax.get_xscale() == "symlog" and ax.get_yscale() == "symlog"
    assert "0.1" not in ax.get_xlabel() + ax.get_ylabel()
    offsets = ax.collections[0].get_offsets()
    assert len(offsets) == len(res.predictions) and offsets[:, 1].min() == 0      # zeros as they are
    plt.close(fig)
    x = np.random.default_rng(1).gamma(0.5, 2.0, 200_000)
    shown = plots._scatter_sample(x, x[::-1].copy())
    assert len(shown) <= plots.SCATTER_POINTS and x.argmax() in shown and (len(x) - 1 - x.argmax()) in shown
    assert (plots._scatter_sample(x[:1000], x[:1000]) == np.arange(1000)).all()


def test_a_currency_with_dollar_signs_is_text_not_math(cdnow_sample):
    import matplotlib

    matplotlib.use("Agg")
    from ltv_helpers import data

    plots.use_theme("en")
    activity = data.monthly_activity(cdnow_sample)
    for currency in ("$$", "HK$ (not US$)", "$\\alpha$"):
        fig = plots.revenue_and_orders(activity, currency, "en")
        fig.canvas.draw()  # math parsing would fail here, or draw italics
        labels = [ax.get_ylabel() for ax in fig.axes]
        assert any(currency in text for text in labels), labels


def test_chinese_figures_log_no_missing_font_weight(caplog):
    import io
    import logging

    from matplotlib import font_manager

    if plots.cjk_font() is None:
        pytest.skip("no CJK font installed")
    # matplotlib warns once per process and font: forget earlier look-ups (other tests drew Chinese).
    font_manager.fontManager._findfont_cached.cache_clear()
    with caplog.at_level(logging.INFO, logger="matplotlib.font_manager"):
        assert plots.use_theme("zh") == "zh"
        fig, ax = plt.subplots()
        ax.set_title("价值分层")
        ax.set_xlabel("客户")
        fig.suptitle("总标题")
        fig.savefig(io.BytesIO(), format="png")
        plt.close(fig)
    assert not [r for r in caplog.records if "findfont" in r.getMessage()]
    plots.use_theme("en")
    assert plt.rcParams["font.weight"] == "normal"


def test_lesson_figures_draw_the_tables_they_are_given():
    """Lesson 2's LTV-by-retention lines are the scenario table's value columns; lesson 7's bars are
    the what-if table's net values, tiers in the table's order."""
    from ltv_helpers import datasets, lessons, levers
    from ltv_helpers import segments as sg

    table = lessons.scenario_table(margin=600, retention=[0.3, 0.6, 0.9], cac=300)
    ax = plots.ltv_by_retention(table).axes[0]
    assert len(ax.lines) == 2  # LTV / CAC, a ratio, is not drawn on a money axis
    assert np.allclose(ax.lines[1].get_ydata(), table.iloc[:, 1])
    tx = datasets.load_cdnow(sample=True)
    history = data.customer_history(tx)
    tiers = sg.value_tiers(history)
    what_if = levers.what_if(levers.lever_baseline(history, tiers, gross_margin=0.3),
                             {"order value": 0.1, "margin": 0.05}, cost_per_customer={"order value": 2, "margin": 0.5})
    ax = plots.lever_values(what_if, "USD").axes[0]
    groups = list(what_if.index.get_level_values("group").unique())
    assert [t.get_text() for t in ax.get_xticklabels()] == groups
    heights = [bar.get_height() for bar in ax.patches[:len(groups)]]  # the first lever, tier by tier
    assert np.allclose(heights, what_if.xs("order value", level="lever").loc[groups, "net_value"])


@pytest.mark.parametrize("values", [np.round(np.exp(np.random.default_rng(2).normal(3, 1.2, 20_000)), 2),
                                    np.array([5.0] * 10), np.array([0.5, 2.0, 2.0, 1e4])])
def test_log_histograms_counted_by_numpy_look_as_seaborns_own(values):
    """The order value and CLV histograms count the bins with NumPy: the same pixels as seaborn's
    histplot of every value."""
    import io

    from PIL import Image

    def png(draw):
        fig, ax = plt.subplots(figsize=(6, 3))
        draw(ax)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=60)
        plt.close(fig)
        return np.asarray(Image.open(buf))

    series = pd.Series(values)
    ours = png(lambda ax: plots._log_histogram(series, 40, ax, "C0"))
    theirs = png(lambda ax: sns.histplot(series, log_scale=True, bins=40, ax=ax, color="C0"))
    assert np.array_equal(ours, theirs)
