import warnings

import matplotlib.pyplot as plt
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
