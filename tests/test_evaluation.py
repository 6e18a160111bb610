import warnings

import json

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import evaluation as ev
from ltv_helpers.data import summary as summary_module
from ltv_helpers.data.collection import collection_kept, load_collection
from ltv_helpers.data.summary import OrderDays, buyer_counts, shared
from ltv_helpers.schema import LTVError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes.utils import expected_cumulative_transactions


@pytest.fixture(scope="module")
def weekly(cdnow_sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ev.backtest(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                           freq="D", freq_multiplier=7)


@pytest.fixture(scope="module")
def daily(cdnow_sample):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ev.backtest(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                           models=("bgnbd",), baselines=False)


def test_actual_holdout_counts_equal_an_independent_count(weekly, cdnow_sample):
    hold = cdnow_sample[cdnow_sample["order_date"] > "1997-09-30"]
    days = hold.groupby("customer_id")["order_date"].nunique()
    got = weekly.predictions["actual_purchases"]
    assert got.sum() == days.sum() == 1882
    assert (got.loc[days.index] == days).all()
    revenue = hold.groupby("customer_id")["amount"].sum()
    assert np.allclose(weekly.predictions.loc[revenue.index, "actual_spend"], revenue)
    assert len(weekly.predictions) == 2357


def test_conditional_expectations_equal_lifetimes_from_the_same_parameters(weekly):
    table = ev.conditional_expectations(weekly)
    m = weekly.fitted["bgnbd"]
    s = weekly.summary
    ref = m.fitter.conditional_expected_number_of_purchases_up_to_time(
        39, s["frequency_cal"], s["recency_cal"], s["T_cal"])
    freq = s["frequency_cal"].clip(upper=7).astype(int)
    expected = pd.Series(np.asarray(ref), index=s.index).groupby(freq.to_numpy()).mean()
    assert np.allclose(table["bgnbd"].to_numpy(), expected.to_numpy(), rtol=1e-6)
    assert weekly.metrics.loc["bgnbd", "predicted"] == pytest.approx(float(np.sum(ref)), rel=1e-6)
    assert list(table.index) == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert table["customers"].sum() == 2357
    # Actual means by hand for the one-time buyers.
    zero = s["frequency_cal"] == 0
    assert table.loc["0", "actual"] == pytest.approx(s.loc[zero, "frequency_holdout"].mean())


def test_metrics_have_every_baseline_and_sane_values(weekly):
    m = weekly.metrics
    assert set(ev.BASELINES) | {"bgnbd", "pareto_nbd", "mbgnbd"} == set(m.index)
    assert (m.loc[["bgnbd", "pareto_nbd", "mbgnbd"], "kind"] == "model").all()
    assert np.isnan(m.loc["rfm", "mae"]) and m.loc["rfm", "top20_capture"] > 0.5
    for name in m.index:
        assert 0 <= m.loc[name, "top20_precision"] <= 1
        assert m.loc[name, "top10_capture"] <= m.loc[name, "top20_capture"] <= 1
    # The models beat the naive extrapolation and the one-size formula per customer.
    assert m.loc["bgnbd", "mae"] < m.loc["naive", "mae"] < m.loc["simple_formula", "mae"]
    assert abs(m.loc["simple_formula", "gains_gini"]) < 0.1  # constant forecast: random ranking
    assert weekly.best("mae") in ("bgnbd", "pareto_nbd", "mbgnbd")


def test_metrics_by_hand_on_a_tiny_case():
    pred = pd.DataFrame({"actual_purchases": [0.0, 1, 3, 0], "actual_spend": [0.0, 10, 30, 0],
                         "x_purchases": [0.5, 1, 2, 0], "x_spend": [5.0, 10, 20, 0]},
                        index=list("abcd"))
    got = ev._metrics(pred, "x")
    assert got["mae"] == pytest.approx((0.5 + 0 + 1 + 0) / 4)
    assert got["rmse"] == pytest.approx(np.sqrt((0.25 + 1) / 4))
    assert got["total_error_pct"] == pytest.approx(100 * (3.5 / 4 - 1))
    assert got["top20_capture"] == pytest.approx(0.75)  # top 1 of 4 predicted (c) holds 30 of 40
    assert got["top20_precision"] == 1.0
    # Predicted order c, b, a, d (a's 5 > d's 0) captures 30, 40, 40, 40: the perfect ranking.
    assert got["gains_gini"] == pytest.approx(1.0)


def test_metrics_shared_by_the_rows_give_the_definitions():
    """The sorts and ranks one backtest's rows share (_Holdout) give what pandas and gains_curve give
    per row: Spearman's correlation, captures, Gini and precision, with ties in scores and spend."""
    rng = np.random.default_rng(1)
    n = 5000
    pred = pd.DataFrame({"actual_purchases": rng.poisson(1, n).astype(float),
                         "actual_spend": np.round(rng.gamma(0.5, 40, n) * (rng.random(n) < 0.4), 1),
                         "x_purchases": rng.gamma(1, 1, n), "x_spend": np.round(rng.gamma(1, 10, n), 0)})
    pred["y_purchases"], pred["y_spend"] = pred["actual_purchases"] + 0.1, pred["actual_spend"] * 2  # near perfect
    shared = ev._Holdout(pred)
    actual = pred["actual_spend"]
    perfect = ev.gains_curve(actual, actual)
    area = lambda c: np.trapezoid(c["share of value"], c["share of customers"]) - 0.5  # noqa: E731
    for name in ("x", "y"):
        got = ev._metrics(pred, name, shared)
        assert got == ev._metrics(pred, name)
        score = pred[f"{name}_spend"]
        curve = ev.gains_curve(score, actual)
        assert got["spend_spearman"] == pytest.approx(score.corr(actual, method="spearman"), rel=1e-12)
        assert got["top20_capture"] == pytest.approx(curve["share of value"].iloc[n // 5], rel=1e-12)
        assert got["gains_gini"] == pytest.approx(area(curve) / area(perfect), rel=1e-12)
        top_actual = set(actual.sort_values(ascending=False, kind="stable").index[: n // 5])
        top_pred = set(score.sort_values(ascending=False, kind="stable").index[: n // 5])
        assert got["top20_precision"] == len(top_actual & top_pred) / (n // 5)
    assert ev._metrics(pred, "y", shared)["gains_gini"] == pytest.approx(1.0)
    from scipy.stats import rankdata

    for values in (pred["actual_spend"].to_numpy(), np.array([3.0, -0.0, 0.0, 3.0, 1.0, 3.0]), np.array([]),
                   rng.integers(0, 5, 1000).astype(float)):
        np.testing.assert_array_equal(ev._average_ranks(values, ev._descending(values)), rankdata(values))


def test_gains_curve_random_and_perfect():
    actual = pd.Series([5.0, 0, 0, 5])
    perfect = ev.gains_curve(actual, actual)
    assert perfect["share of value"].tolist() == [0, 0.5, 1, 1, 1]
    flat = ev.gains_curve(pd.Series([1.0] * 4), actual)
    assert flat["share of value"].iloc[-1] == 1


def test_backtest_without_baselines_ranks_models_only(daily):
    assert list(daily.metrics.index) == ["bgnbd"] and (daily.metrics["kind"] == "model").all()
    assert daily.best("mae") == "bgnbd"
    assert daily.metrics.loc["bgnbd", "actual"] == 1882


def test_tracking_equals_lifetimes_expected_cumulative_transactions(daily, cdnow_sample):
    tr = ev.tracking(cdnow_sample, daily, freq="D")
    m = daily.fitted["bgnbd"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = expected_cumulative_transactions(m.fitter, cdnow_sample, "order_date", "customer_id",
                                               t=len(tr) - 1, freq="D")
    # lifetimes' row i is the instant that starts day i + 1 (its loop skips day 0), our day i's end.
    n = len(ref)
    assert n == len(tr) - 1
    assert np.allclose(tr["cumulative_bgnbd"].to_numpy()[:n], ref["predicted"].to_numpy(), rtol=1e-9)
    assert (tr["cumulative_actual"].to_numpy()[:n] == ref["actual"].to_numpy()).all()
    assert tr["holdout"].sum() == 273
    weekly = ev.tracking(cdnow_sample, daily, freq="W")
    assert weekly["actual"].sum() == tr["actual"].sum()
    assert weekly["cumulative_bgnbd"].iloc[-1] == pytest.approx(tr["cumulative_bgnbd"].iloc[-1])
    # Every day is whole; of the weeks, only one that the end of the data cuts is not.
    assert tr["complete"].all()
    end = daily.observation_end
    cut = end.weekday() != 6  # weeks run Monday to Sunday
    assert list(weekly["complete"]).count(False) == int(cut) and bool(weekly["complete"].iloc[-1]) != cut


@pytest.mark.parametrize("unit", ["D", "W"])
def test_tracking_counts_on_prepared_orders_equal_the_query(cdnow_sample, unit):
    """The tracking chart's repeat purchases per period and customers per first day, counted in
    numpy on the prepared orders, equal the query's for every tracking period, on shuffled orders
    with times of day and several a day, for a part of the customers."""
    from ltv_helpers.data.summary import OrderDays

    rng = np.random.default_rng(8)
    tx = cdnow_sample.sample(frac=1.0, random_state=3).reset_index(drop=True)
    tx = pd.concat([tx, tx.sample(600, random_state=4).assign(
        order_date=lambda d: d["order_date"] + pd.to_timedelta(rng.integers(0, 86_399, len(d)), "s"))],
        ignore_index=True)
    prepared = OrderDays(tx)
    ids = prepared.ids[rng.random(len(prepared.ids)) < 0.7]
    for freq in ("D", "W", "M", "Q", "Y", "h"):
        ours = prepared.repeat_counts(ids, "1998-03-31", unit=unit, freq=freq)
        theirs = ev._repeat_counts_query(tx, ids, "1998-03-31", unit=unit, freq=freq)
        pd.testing.assert_series_equal(ours[0], theirs[0], check_exact=True)
        assert (ours[1] == theirs[1]).all() and (ours[2] == theirs[2]).all()
        assert ours[2].sum() == len(ids) and ours[0].sum() > 0
    with pytest.raises(LTVError, match="no customers to track"):
        light = ev.backtest(cdnow_sample, observation_end="1998-06-30", models=("bgnbd",), baselines=False,
                            intervals=False).without_customers()
        ev.tracking(cdnow_sample, light)


def test_rolling_backtest_rows(cdnow_sample):
    table = ev.rolling_backtest(cdnow_sample, cutoffs=["1997-06-30", "1997-09-30"], holdout_days=180)
    assert len(table) == 2
    assert {"r", "alpha", "a", "b", "mae", "gains_gini"} <= set(table.columns)
    assert (table["r"] > 0).all()


def test_verdict_names_the_best_model(weekly):
    text = ev.verdict(weekly)
    assert "Use **" in text and "%" in text
    assert "建议使用" in ev.verdict(weekly, "zh")


def test_bad_model_name(cdnow_sample):
    with pytest.raises(LTVError, match="models must be among"):
        ev.backtest(cdnow_sample, models=("xgboost",))


def test_a_model_whose_prediction_fails_is_left_out_with_one_sentence(cdnow_sample, monkeypatch):
    from ltv_helpers import models

    real = models.LTVModel.predict

    def pareto_overflows(self, summary, **kwargs):
        if self.model == "pareto_nbd":
            raise LTVError(f"Pareto/NBD gave no finite prediction for 7 of {len(summary):,} customers; "
                           "try another model.")
        return real(self, summary, **kwargs)

    monkeypatch.setattr(models.LTVModel, "predict", pareto_overflows)
    with pytest.warns(UserWarning, match=r"^Pareto/NBD left out of the backtest: Pareto/NBD gave no finite "
                                         r"prediction for 7 of [\d,]+ customers"):
        result = ev.backtest(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                             models=("bgnbd", "pareto_nbd"), baselines=False)
    assert list(result.metrics.index) == ["bgnbd"] and result.best("mae") == "bgnbd"

    def nothing_fits(self, summary, **kwargs):
        raise LTVError("no finite prediction")

    monkeypatch.setattr(models.LTVModel, "predict", nothing_fits)
    with pytest.warns(UserWarning):
        none = ev.backtest(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                           models=("bgnbd",))
    with pytest.raises(LTVError, match=r"^No purchase model could be fitted and predicted on the calibration "
                                       r"period \(BG/NBD: no finite prediction\)\.$"):
        none.best("mae")


def test_forecast_blocker_says_why_no_model_can_forecast(cdnow_sample):
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(range(300), unit="D")
    one_each = pd.DataFrame({"customer_id": [f"c{i}" for i in range(300)], "order_date": days, "amount": 10.0})
    assert ev.forecast_blocker(cdnow_sample) is None
    few = ev.forecast_blocker(one_each.head(5))
    assert str(few) == ("The purchase models need at least 20 customers to learn how often customers buy and "
                        "when they stop; the data hold 5.")
    assert "只有 5 位" in few.text("zh")
    assert str(ev.forecast_blocker(one_each.assign(order_date=days[0]))).startswith("All orders fall on one day")
    assert str(ev.forecast_blocker(one_each)).startswith("Only 0 customers bought on more than one day; the purchase")
    # Repeat buyers only at the very end: none in the first two thirds, which the backtest fits on.
    late = pd.concat([one_each, one_each.head(10).assign(order_date=days[-1] + pd.Timedelta(days=1))])
    assert str(ev.forecast_blocker(late)).startswith("Only 0 customers bought on more than one day before 2023-07-20")


def test_collection_blocker_counts_in_the_parquet_file_as_forecast_blocker_does(cdnow_sample, tmp_path):
    """ltv report decides from the run folder's Parquet file (DuckDB), not from transactions it loads:
    the same sentence, or None, in every case, with order times inside the day and a quote in the path."""
    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(range(300), unit="D")
    one_each = pd.DataFrame({"customer_id": [f"c{i}" for i in range(300)], "order_date": days, "amount": 10.0})
    late = pd.concat([one_each, one_each.head(10).assign(order_date=days[-1] + pd.Timedelta(days=1))])
    # Two orders on one day are one purchase; a second day 23 hours later is a repeat purchase.
    same_day = pd.concat([one_each.head(30), one_each.head(30).assign(order_date=days[:30] + pd.Timedelta(hours=5)),
                          one_each.head(4).assign(order_date=days[:4] + pd.Timedelta(hours=47))])
    cases = {"cdnow": (cdnow_sample, None), "few": (one_each.head(5), None),
             "one day": (one_each.assign(order_date=days[0]), None), "no repeat": (one_each, None),
             "late": (late, None), "same day": (same_day, None), "split": (late, "2023-12-31")}
    for i, (name, (tx, cal)) in enumerate(cases.items()):
        folder = tmp_path / f"it's {i}"
        folder.mkdir()
        tx.to_parquet(folder / "transactions.parquet")
        end = str(tx["order_date"].max().date())
        (folder / "collection.json").write_text(json.dumps({"observation_end": end}))
        expected = ev.forecast_blocker(tx, observation_end=end, calibration_end=cal)
        found = ev.collection_blocker(folder, calibration_end=cal)
        assert (None if found is None else str(found)) == (None if expected is None else str(expected)), name
        # Where this process keeps the file's transactions (a report's kernel), they are counted.
        kept, _ = load_collection(folder)
        assert collection_kept(folder / "transactions.parquet") is not None
        again = ev.collection_blocker(folder, calibration_end=cal)
        assert (None if again is None else str(again)) == (None if expected is None else str(expected)), name
        for before in (None, days[0], days[150], days[-1], days[-1] + pd.Timedelta(hours=30)):
            part = kept if before is None else kept[kept["order_date"] < before]
            assert OrderDays(kept).buyer_counts(before) == buyer_counts(part), (name, before)
    # Counted by order rows, the 30 two-order customers would be repeat buyers enough for a forecast.
    assert str(ev.collection_blocker(tmp_path / "it's 5")).startswith("Only 4 customers bought on more than one day")
    rewritten = tmp_path / "it's 5" / "transactions.parquet"
    rewritten.write_bytes((tmp_path / "it's 4" / "transactions.parquet").read_bytes())
    assert collection_kept(rewritten) is None  # written again: read again


def test_metrics_table_shows_shares_in_percent_and_money_to_the_cent(weekly):
    """The same metric in the same unit as the verdict and the stability table (72.5%, not 0.725)."""
    html = ev.highlight_best(weekly.metrics).to_html()
    row = weekly.metrics.iloc[0]
    assert f"{row['top20_capture']:.1%}" in html and f"{row['top20_precision']:.1%}" in html
    assert f"{row['spend_mae']:,.2f}<" in html and f"{row['spend_mae']:,.3f}<" not in html
    assert f">{row['mae']:,.3f}<" in html


def test_a_saved_backtest_is_reused_and_gives_the_same_result(cdnow_sample, tmp_path):
    """The prediction notebook's backtest, saved and read back, spares the evaluation notebook the
    fits, backtests and intervals of its models; the result is identical to computing it again."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models_only = ev.backtest(cdnow_sample, observation_end="1998-06-30", baselines=False,
                                  models=("bgnbd", "pareto_nbd"))
        ev.save_backtest(models_only, tmp_path, cdnow_sample)
        saved = ev.load_backtest(tmp_path)
    # What the prediction notebook keeps once it is saved: the model choice's parts, no customers.
    light = models_only.without_customers()
    assert light.predictions.empty and light.summary.empty and len(models_only.predictions) > 1000
    assert list(light.predictions.columns) == list(models_only.predictions.columns)
    assert light.summary.attrs == models_only.summary.attrs and light.fitted is models_only.fitted
    assert light.choose() == models_only.choose() and light.charges().equals(models_only.charges())
    pd.testing.assert_frame_equal(light.metrics, models_only.metrics)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = ev.backtest(cdnow_sample, observation_end="1998-06-30", models=("bgnbd", "pareto_nbd", "mbgnbd"),
                            reuse=saved)
        fresh = ev.backtest(cdnow_sample, observation_end="1998-06-30", models=("bgnbd", "pareto_nbd", "mbgnbd"))
    assert again.fitted["bgnbd"] is saved.fitted["bgnbd"]                  # reused, not refitted
    pd.testing.assert_frame_equal(again.metrics, fresh.metrics, check_exact=True)  # reused rows are the scored ones
    pd.testing.assert_frame_equal(again.predictions, fresh.predictions)
    for name in fresh.model_errors:
        pd.testing.assert_frame_equal(again.model_errors[name].origins, fresh.model_errors[name].origins)
    # Without intervals, the reused models give what a fresh run without intervals gives.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = ev.backtest(cdnow_sample, observation_end="1998-06-30", models=("bgnbd",), intervals=False,
                            baselines=False, reuse=saved)
        plain_fresh = ev.backtest(cdnow_sample, observation_end="1998-06-30", models=("bgnbd",), intervals=False,
                                  baselines=False)
    assert plain.fitted["bgnbd"] is saved.fitted["bgnbd"] and plain.model_errors == {}
    pd.testing.assert_frame_equal(plain.metrics, plain_fresh.metrics)
    # Other data (another client, re-keyed ids, one order moved) or another time unit: never reused.
    rekeyed = cdnow_sample.assign(customer_id="m" + cdnow_sample["customer_id"].astype(str))
    moved = cdnow_sample.copy()
    moved.loc[moved.index[0], "order_date"] += pd.Timedelta(days=30)
    fewer = cdnow_sample[cdnow_sample["customer_id"] != cdnow_sample["customer_id"].iloc[0]]
    for other, options in ((rekeyed, {}), (moved, {}), (fewer, {}), (cdnow_sample, {"freq_multiplier": 7})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            elsewhere = ev.backtest(other, observation_end="1998-06-30", models=("bgnbd",), baselines=False,
                                    intervals=False, reuse=saved, **options)
        assert elsewhere.fitted["bgnbd"] is not saved.fitted["bgnbd"]
    # Saving needs the transactions the backtest ran on; a damaged or missing set is not loaded.
    with pytest.raises(LTVError, match="not the transactions the backtest ran on"):
        ev.save_backtest(models_only, tmp_path / "x", cdnow_sample.assign(amount=cdnow_sample["amount"] * 2))
    assert ev.load_backtest(tmp_path / "missing") is None
    # Customers who first buy in the holdout are not the backtest's, and saving still works.
    newcomer = pd.DataFrame({"customer_id": ["new-1", "new-1"], "amount": [20.0, 30.0],
                             "order_date": pd.to_datetime(["1998-03-01", "1998-04-01"])})
    arrivals = pd.concat([cdnow_sample, newcomer.astype({"customer_id": cdnow_sample["customer_id"].dtype})],
                         ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with_new = ev.backtest(arrivals, observation_end="1998-06-30", models=("bgnbd",), baselines=False,
                               intervals=False)
    assert "new-1" not in with_new.predictions.index
    ev.save_backtest(with_new, tmp_path / "arrivals", arrivals)
    assert ev.load_backtest(tmp_path / "arrivals") is not None
    (tmp_path / "backtest.json").write_text("{}", encoding="utf-8")
    assert ev.load_backtest(tmp_path) is None


def test_tracking_counts_purchases_as_a_weekly_backtest_does(cdnow_sample):
    """A weekly backtest's model counts purchase weeks: the tracking chart's actual line must too, so
    its cumulative count at the calibration end is the summary's calibration repeat purchases."""
    # Sundays: the weeks of the summary (from Monday) and of the chart end together at the split.
    result = ev.backtest(cdnow_sample, calibration_end="1997-09-28", observation_end="1998-06-28", freq="W",
                         models=["bgnbd"], baselines=False, intervals=False)
    track = ev.tracking(cdnow_sample, result, freq="W")
    calibration = track.loc[~track["holdout"], "actual"].sum()
    assert calibration == result.summary["frequency_cal"].sum()
    holdout = track.loc[track["holdout"], "actual"].sum()
    assert holdout == result.summary["frequency_holdout"].sum()


def test_fits_in_threads_give_what_one_at_a_time_gives(cdnow_sample, weekly, monkeypatch):
    """The backtest's models and the model errors' cut-offs are fitted FIT_THREADS at a time: the
    result is the same, bit for bit, as one at a time."""
    monkeypatch.setattr(ev, "FIT_THREADS", 1)
    monkeypatch.setattr(summary_module, "_LAST_SHARED", None)  # the model errors' cut-offs are fitted again
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alone = ev.backtest(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30",
                            freq="D", freq_multiplier=7)
    assert ev.FIT_THREADS == 1 and len(alone.fitted) == 3
    pd.testing.assert_frame_equal(alone.metrics, weekly.metrics, check_exact=True)
    pd.testing.assert_frame_equal(alone.predictions, weekly.predictions, check_exact=True)
    for name, error in weekly.model_errors.items():
        assert error.cutoffs >= 2
        pd.testing.assert_frame_equal(alone.model_errors[name].origins, error.origins, check_exact=True)


def test_transactions_share_what_was_computed_only_while_their_memory_is_the_same(cdnow_sample):
    """A shallow copy (what load_collection hands each notebook) shares the OrderDays, fingerprint
    and cut-offs; a deep copy, a filter, a changed amount or an id re-keyed do not (new memory)."""
    tx = cdnow_sample.copy()
    first = shared(tx)
    assert shared(tx.copy(deep=False)) is first and shared(tx) is first
    for other in (tx.copy(), tx[tx["amount"] > 0], tx.assign(amount=tx["amount"] * 2)):
        assert shared(other) is not first
    # Two are kept: one other set (a sample of customers) does not push the first out, two do.
    sample = tx[tx["amount"] > 10]
    first = shared(tx)
    made = shared(sample)
    assert shared(tx) is first and shared(sample) is made
    shared(tx.copy())
    assert shared(sample) is made and shared(tx) is not first
    first = shared(tx)
    changed = tx.copy(deep=False)
    before = shared(changed)
    changed.loc[changed.index[0], "amount"] = 123456.0  # copy-on-write: the kept memory stays as it was
    assert shared(changed) is not before and tx["amount"].iloc[0] != 123456.0
    rekeyed = tx.copy(deep=False)
    kept = shared(rekeyed)
    rekeyed["customer_id"] = "x" + rekeyed["customer_id"]
    assert shared(rekeyed) is not kept
    assert ev._fingerprint(rekeyed) != ev._fingerprint(tx)


def test_cut_offs_measured_once_give_what_measuring_them_again_gives(cdnow_sample, monkeypatch):
    """model_errors takes a model's row at a cut-off it measured before (a cell run again, a
    forecast made one step of the model error's later), and the result equals a fresh measurement."""
    monkeypatch.setattr(summary_module, "_LAST_SHARED", None)
    fits = []
    real = ev._fit_and_predict
    monkeypatch.setattr(ev, "_fit_and_predict", lambda s, name, d: fits.append(name) or real(s, name, d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 1997-12-31 is a year after the first order: holdouts of 90 days (not a third of the
        # history, 121), cut-offs 90 // 4 = 22 days apart.
        kw = dict(as_of="1997-12-31", horizon_days=90, models=("bgnbd",))
        later_as_of = pd.Timestamp("1997-12-31") + pd.Timedelta(days=22)
        first = ev.model_errors(cdnow_sample, **kw)["bgnbd"]
        n = len(fits)
        again = ev.model_errors(cdnow_sample.copy(deep=False), **kw)["bgnbd"]
        assert len(fits) == n and n == first.cutoffs >= 2  # nothing fitted the second time
        later = ev.model_errors(cdnow_sample, **{**kw, "as_of": later_as_of})
        assert len(fits) == n + 1  # one step later: one new cut-off
        monkeypatch.setattr(summary_module, "_LAST_SHARED", None)
        fresh = ev.model_errors(cdnow_sample, **{**kw, "as_of": later_as_of})
    pd.testing.assert_frame_equal(again.origins, first.origins, check_exact=True)
    pd.testing.assert_frame_equal(later["bgnbd"].origins, fresh["bgnbd"].origins, check_exact=True)
    assert later["bgnbd"].purchases_var == fresh["bgnbd"].purchases_var
    cal_end, obs_end = pd.Timestamp("1998-01-31"), pd.Timestamp("1998-06-30")
    cuts, days = ev.stability_cutoffs(cdnow_sample, calibration_end=cal_end, observation_end=obs_end)
    assert [(cal_end - c).days for c in cuts] == [2 * (150 // 3), 150 // 3, 0] and days == 150


def test_stability_of_a_large_base_is_measured_on_the_same_sample_at_every_cut_off(cdnow_sample):
    """Beyond max_customers, every cut-off is measured on the orders of the customers whose ids hash
    lowest (the model error's sample); the same table as measuring those customers' orders alone."""
    kw = dict(cutoffs=["1997-06-30", "1997-09-30"], holdout_days=180, intervals=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = ev.rolling_backtest(cdnow_sample, max_customers=1000, **kw)
        ids = cdnow_sample["customer_id"].drop_duplicates()
        hashed = pd.util.hash_array(ids.to_numpy(dtype=object), categorize=False)
        chosen = set(ids.to_numpy()[np.argsort(hashed)[:1000]])
        alone = ev.rolling_backtest(cdnow_sample[cdnow_sample["customer_id"].isin(chosen)], max_customers=None, **kw)
        everyone = ev.rolling_backtest(cdnow_sample, max_customers=None, **kw)
    assert table.attrs["customers"] == (1000, len(ids)) and everyone.attrs["customers"] == (len(ids), len(ids))
    pd.testing.assert_frame_equal(table, alone, check_exact=True)
    assert not np.isclose(table["r"], everyone["r"]).all()
    assert "1,000 of the 2,357 customers" in ev.stability_note(table)
    assert "1,000" in ev.stability_note(table, "zh") and ev.stability_note(everyone) == ""


def test_the_stability_sample_of_a_growing_base_is_the_model_errors_sample_at_the_last_cut_off():
    """Customers arrive over time: the sample is taken among those who had bought by the last
    cut-off, so it is what _some_customers takes from that cut-off's summary; orders without an id
    are refused (as a backtest refuses them)."""
    from ltv_helpers.data import calibration_holdout
    from ltv_helpers.datasets import synthetic_transactions

    sim = synthetic_transactions(3000, seed=4)
    last = pd.Timestamp(sim.groupby("customer_id")["order_date"].min().quantile(0.6)).normalize()
    summary = calibration_holdout(sim, calibration_end=last, observation_end=last + pd.Timedelta(days=60))
    assert sim.groupby("customer_id")["order_date"].min().gt(last).sum() > 100  # many arrive later
    # In the rows' order or shuffled, with undated orders (nobody's): the chosen customers' dated orders.
    undated = sim.iloc[:3].assign(order_date=pd.NaT)
    for frame in (sim, pd.concat([sim, undated], ignore_index=True).sample(frac=1.0, random_state=2)):
        sample, arrived = ev._sample_customers(frame, 1000, last)
        assert arrived == len(summary) and sample["order_date"].notna().all()
        assert set(sample["customer_id"]) == set(ev._some_customers(summary, 1000).index)
        chosen = frame[frame["customer_id"].isin(set(sample["customer_id"])) & frame["order_date"].notna()]
        pd.testing.assert_frame_equal(sample, chosen)
    assert ev._sample_customers(sim, None, last)[0] is sim
    with pytest.raises(LTVError, match="no customer id"):
        ev._sample_customers(pd.concat([sim, sim.iloc[:3].assign(customer_id=None)], ignore_index=True), 1000, last)
    with pytest.raises(LTVError, match="at least 1"):
        ev._sample_customers(sim, 0, last)
