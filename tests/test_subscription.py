"""The sBG retention model against Fader and Hardie (2007), and retention tables from transactions."""

import numpy as np
import pandas as pd
import pytest

from ltv_helpers.data import retention_table
from ltv_helpers.datasets import synthetic_subscriptions
from ltv_helpers.models import fit_sbg
from ltv_helpers.schema import LTVError

#: "How to project customer retention" (2007), the two cohorts of 1,000 customers: active after years 1-7,
#: and what the paper reports actually happened in years 8-12.
HIGH_END = [1000, 869, 743, 653, 593, 551, 517, 491]
REGULAR = [1000, 631, 468, 382, 326, 289, 262, 241]
HIGH_END_LATER = [468, 445, 427, 409, 394]
REGULAR_LATER = [223, 207, 194, 183, 173]


@pytest.mark.parametrize("counts, alpha, beta, log_likelihood", [
    (HIGH_END, 0.668, 3.806, -1611.2), (REGULAR, 0.704, 1.182, -1680.3)])
def test_fits_equal_the_published_parameters(counts, alpha, beta, log_likelihood):
    m = fit_sbg(counts)
    assert round(m.params["alpha"], 3) == alpha and round(m.params["beta"], 3) == beta
    assert m.log_likelihood == pytest.approx(log_likelihood, abs=0.05)
    assert 0 < m.standard_errors["alpha"] < m.params["alpha"]


@pytest.mark.parametrize("counts, later", [(HIGH_END, HIGH_END_LATER), (REGULAR, REGULAR_LATER)])
def test_projections_of_years_8_to_12_track_what_happened(counts, later):
    projected = fit_sbg(counts).project(12, 1000)["active"].iloc[8:].to_numpy()
    # The paper's point: the model projects five years ahead within a few percent (slightly low).
    assert np.all(np.abs(projected / np.array(later) - 1) < 0.05)
    assert np.all(projected < np.array(later))


def test_survival_retention_and_derl_follow_their_definitions():
    m = fit_sbg(REGULAR)
    a, b = m.params["alpha"], m.params["beta"]
    s = m.survival(np.arange(6))
    assert s[0] == 1 and s[1] == pytest.approx(b / (a + b))  # P(survive period 1) = E[1 - theta]
    assert m.retention([1, 2, 3]) == pytest.approx(s[1:4] / s[0:3])
    assert np.all(np.diff(m.retention(np.arange(1, 20))) > 0)  # retention rises with tenure
    # DERL (hypergeometric closed form) equals the direct discounted sum of survival probabilities.
    d = 0.1
    for renewals in (0, 3):
        n = renewals + 1
        t = np.arange(n, 5000)
        direct = (m.survival(t) / m.survival(n - 1) / (1 + d) ** (t - n)).sum()
        assert m.derl(d, renewals) == pytest.approx(direct, rel=1e-9)
    assert m.clv(100, d, 3) == pytest.approx(100 * m.derl(d, 3))
    assert m.expected_lifetime == np.inf  # alpha < 1: a heavy tail of loyal customers


def test_several_cohorts_share_one_fit_and_bad_counts_are_one_sentence():
    both = fit_sbg(np.array([HIGH_END, REGULAR], dtype=float))
    assert both.params["alpha"] != fit_sbg(HIGH_END).params["alpha"] and len(both.cohorts) == 2
    ragged = fit_sbg(pd.DataFrame([HIGH_END, REGULAR[:5] + [np.nan] * 3]))
    assert np.isfinite(ragged.log_likelihood)
    with pytest.raises(LTVError, match="cannot rise"):
        fit_sbg([1000, 800, 850])
    with pytest.raises(LTVError, match="cohort size"):
        fit_sbg([0, 0, 0])
    with pytest.raises(LTVError, match="at least one later count"):
        fit_sbg([1000])


def test_retention_table_counts_customers_until_they_stop():
    tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "c", "c", "d"],
                       "order_date": pd.to_datetime(["2024-01-05", "2024-02-05", "2024-03-05", "2024-01-20",
                                                     "2024-02-10", "2024-03-10", "2024-04-02"]),
                       "amount": 9.9})
    table = retention_table(tx, observation_end="2024-03-31")
    assert table.index.tolist() == ["2024-01", "2024-02"]  # d joined after the end
    assert table.loc["2024-01"].tolist() == [2, 1, 1]
    assert table.loc["2024-02", 0] == 1 and table.loc["2024-02", 1] == 1 and np.isnan(table.loc["2024-02", 2])
    # An end inside a month leaves that (incomplete) month out.
    assert retention_table(tx, observation_end="2024-03-15").columns.tolist() == [0, 1]


def test_retention_table_feeds_fit_sbg_and_recovers_the_simulation():
    subs = synthetic_subscriptions(20_000, seed=3, alpha=0.7, beta=1.2)
    table = retention_table(subs, observation_end=subs.attrs["true_params"]["observation_end"])
    assert table.shape == (12, 24) and (table[0] > 0).all()
    fitted = fit_sbg(table).params
    assert fitted["alpha"] == pytest.approx(0.7, rel=0.1) and fitted["beta"] == pytest.approx(1.2, rel=0.1)


def test_the_fit_in_a_sentence_and_its_figures():
    """The model as a sentence (never a repr), in both languages; the survival figure draws each
    cohort's model and actual counts (shares of the cohort) and marks the end of the fit; the
    retention figure rises with tenure."""
    from ltv_helpers import plots

    m = fit_sbg(REGULAR)
    text = m.describe("en")
    assert "0.704" in text and "1.182" in text and "37%" in text and "SBGModel" not in text
    assert "alpha = 0.704" in m.describe("zh") and "留存率" in m.describe("zh")
    fig = plots.sbg_survival({"regular": (m, REGULAR)}, fitted_periods=7)
    ax = fig.axes[0]
    model_line, actual = ax.lines[0], ax.lines[1]
    assert np.allclose(model_line.get_ydata(), 100 * m.survival(np.arange(len(REGULAR))))
    assert np.allclose(actual.get_ydata(), 100 * np.asarray(REGULAR) / REGULAR[0])
    assert any(np.allclose(line.get_xdata(), [7, 7]) for line in ax.lines[2:])  # the end of the fit
    fig = plots.sbg_retention({"regular": m}, 12, "zh")
    y = fig.axes[0].lines[0].get_ydata()
    assert len(y) == 12 and (np.diff(y) > 0).all()
