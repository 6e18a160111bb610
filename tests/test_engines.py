"""One summary definition, several engines: pandas/DuckDB, DuckDB on Parquet and DuckDB files, Spark
local; compressed summaries; model JSON; scoring in batches and on Spark (pandas UDF)."""

import json

import duckdb
import numpy as np
import pandas as pd
import pytest

from ltv_helpers import models
from ltv_helpers.cli import main
from ltv_helpers.data import calibration_holdout, rfm_summary
from ltv_helpers.data.engines import summary_meta
from ltv_helpers.data.summary import load_summary
from ltv_helpers.schema import LTVError
from ltv_helpers.scoring import SCORE_COLUMNS, score

CAL = {"calibration_end": "1997-09-30", "observation_end": "1998-06-30"}


@pytest.fixture(scope="module")
def cdnow_parquet(cdnow, tmp_path_factory):
    path = tmp_path_factory.mktemp("engines") / "orders.parquet"
    cdnow[["customer_id", "order_date", "amount"]].to_parquet(path)
    return path


@pytest.fixture(scope="module")
def weekly(cdnow):
    return rfm_summary(cdnow, freq="D", freq_multiplier=7)


@pytest.fixture(scope="module")
def fitted(weekly):
    return models.fit(weekly, model="bgnbd")


def _lifetimes_summary(tx, **kw):
    import warnings

    from lifetimes.utils import summary_data_from_transaction_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summary_data_from_transaction_data(tx, "customer_id", "order_date", "amount", **kw)


# ------------------------------------------------------------------------------- DuckDB

def test_duckdb_parquet_and_duckdb_file_equal_the_dataframe_summary(cdnow, cdnow_parquet, weekly, tmp_path):
    from_file = rfm_summary(cdnow_parquet, freq="D", freq_multiplier=7)
    pd.testing.assert_frame_equal(from_file, weekly)
    db = tmp_path / "client.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE orders AS SELECT customer_id AS 买家, order_date AS 下单时间, amount AS 金额 "
                    f"FROM read_parquet('{cdnow_parquet}')")
    mapped = rfm_summary(db, table="orders", freq="D", freq_multiplier=7,
                         columns={"customer_id": "买家", "order_date": "下单时间", "amount": "金额"})
    pd.testing.assert_frame_equal(mapped, weekly)
    # and all of it is lifetimes' definition
    ref = _lifetimes_summary(cdnow, freq="D", freq_multiplier=7).sort_index()
    np.testing.assert_allclose(weekly[["frequency", "recency", "T"]].to_numpy(),
                               ref[["frequency", "recency", "T"]].to_numpy(), rtol=0, atol=1e-12)
    np.testing.assert_allclose(weekly["monetary_value"], ref["monetary_value"], rtol=1e-9)


def test_source_errors_name_the_problem(cdnow_parquet, tmp_path):
    with pytest.raises(LTVError, match=r"no buyer column; the columns are: customer_id, order_date, amount\. Map"):
        rfm_summary(cdnow_parquet, columns={"customer_id": "buyer"})
    db = tmp_path / "x.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE orders AS SELECT 1 AS a")
    with pytest.raises(LTVError, match="needs table=; its tables are: orders"):
        rfm_summary(db)
    with pytest.raises(LTVError, match="File not found"):
        rfm_summary(tmp_path / "missing.parquet")
    with pytest.raises(LTVError, match="engine must be one of duckdb, spark"):
        rfm_summary(cdnow_parquet, engine="polars")
    text = pd.DataFrame({"customer_id": ["a"], "order_date": ["2024-01-01"], "amount": [1.0]})
    with pytest.raises(LTVError, match="order_date is varchar, not a date"):
        rfm_summary(text)


def test_compressed_summary_counts_every_customer_and_fits_the_same_models(cdnow, weekly):
    packed = rfm_summary(cdnow, freq="D", freq_multiplier=7, compress=True)
    purchases, spend = packed[packed["part"] == "purchases"], packed[packed["part"] == "spend"]
    assert purchases["customers"].sum() == len(weekly) and len(purchases) < len(weekly) / 2
    assert packed.attrs["unit_days"] == 7.0
    # purchase rows: each distinct (frequency, recency, T) with its customers and their spend
    by_row = weekly.groupby(["frequency", "recency", "T"])["monetary_value"].agg(["size", "sum", "mean"])
    keyed = purchases.set_index(["frequency", "recency", "T"]).sort_index()
    np.testing.assert_array_equal(keyed["customers"], by_row["size"])
    np.testing.assert_allclose(keyed["monetary_value_sum"], by_row["sum"], rtol=1e-12)
    np.testing.assert_allclose(keyed["monetary_value"], by_row["mean"], rtol=1e-12)
    # spend rows: every repeat buyer once, at a spend within 5e-6 of their own (6 significant digits)
    buyers = weekly[(weekly["frequency"] > 0) & (weekly["monetary_value"] > 0)]
    assert spend["customers"].sum() == len(buyers) and spend[["recency", "T"]].isna().all().all()
    np.testing.assert_allclose(spend["monetary_value_sum"].sum(), buyers["monetary_value"].sum(), rtol=1e-12)
    mean_in_row = spend["monetary_value_sum"] / spend["customers"]
    assert ((spend["monetary_value"] / mean_in_row - 1).abs() <= 5e-6).all()
    for name in ("bgnbd", "pareto_nbd"):
        full, small = models.fit(weekly, model=name), models.fit(packed, model=name)
        for key, value in full.params.items():
            assert small.params[key] == pytest.approx(value, rel=1e-9)
        for key, value in full.spend_model.params.items():
            assert small.spend_model.params[key] == pytest.approx(value, rel=1e-6)
        assert small.log_likelihood == pytest.approx(full.log_likelihood, rel=1e-12)
        assert small.n_customers == full.n_customers and small.n_distinct == full.n_distinct
        assert small.spend_model.n_customers == full.spend_model.n_customers
    exact = models.fit(rfm_summary(cdnow, freq="D", freq_multiplier=7, compress=True, spend_digits=None))
    for key, value in models.fit(weekly).spend_model.params.items():
        assert exact.spend_model.params[key] == pytest.approx(value, rel=1e-9)
    # predictions per purchase row, times customers, give the base's totals (spend is linear)
    m = models.fit(weekly)
    per_row = m.predict(packed, horizon=52, annual_discount_rate=0.1)
    per_customer = m.predict(weekly, horizon=52, annual_discount_rate=0.1)
    assert len(per_row) == len(purchases)
    for col in ("expected_purchases", "clv"):
        assert (per_row[col] * purchases["customers"]).sum() == pytest.approx(per_customer[col].sum(), rel=1e-12)
    a = models.intervals(m, packed, horizon=52, draws=30)
    b = models.intervals(m, weekly, horizon=52, draws=30)
    purchases_cols = [c for c in a.columns if "purchases" in c]
    np.testing.assert_allclose(a[purchases_cols].to_numpy(), b[purchases_cols].to_numpy(), rtol=1e-9)
    # Revenue's customer spread is quadratic in each customer's average order value, of which a
    # compressed row keeps only the mean: the bounds agree to a few in ten thousand.
    np.testing.assert_allclose(a.drop(columns=purchases_cols).to_numpy(), b.drop(columns=purchases_cols).to_numpy(),
                               rtol=2e-3)


def test_spend_digits_round_the_spend_rows_not_the_sums(cdnow):
    exact = rfm_summary(cdnow, compress=True, spend_digits=None)
    rounded = rfm_summary(cdnow, compress=True, spend_digits=2)
    spend_exact, spend_rounded = (f[f["part"] == "spend"] for f in (exact, rounded))
    assert len(spend_rounded) < len(spend_exact) / 5
    assert spend_rounded["customers"].sum() == spend_exact["customers"].sum()
    digits = spend_rounded["monetary_value"] / 10 ** np.floor(np.log10(spend_rounded["monetary_value"]) - 1)
    np.testing.assert_allclose(digits, np.round(digits), atol=1e-9)  # two significant digits
    assert spend_rounded["monetary_value_sum"].sum() == pytest.approx(spend_exact["monetary_value_sum"].sum(),
                                                                     rel=1e-12)
    with pytest.raises(LTVError, match="spend_digits must be a whole number"):
        rfm_summary(cdnow, compress=True, spend_digits=0)


def test_calibration_holdout_compressed_keeps_the_holdout_counts(cdnow):
    full = calibration_holdout(cdnow, freq="D", freq_multiplier=7, **CAL)
    packed = calibration_holdout(cdnow, freq="D", freq_multiplier=7, compress=True, **CAL)
    purchases = packed[packed["part"] == "purchases"]
    assert purchases["customers"].sum() == len(full)
    assert (purchases["frequency_holdout"] * purchases["customers"]).sum() == full["frequency_holdout"].sum()
    revenue = full["monetary_value_holdout"].sum()
    assert purchases["monetary_value_holdout_sum"].sum() == pytest.approx(revenue, rel=1e-12)
    small, big = models.fit(packed), models.fit(full)
    assert small.params["r"] == pytest.approx(big.params["r"], rel=1e-9)
    assert small.spend_model.params["q"] == pytest.approx(big.spend_model.params["q"], rel=1e-6)
    with pytest.raises(LTVError, match="part must be 'purchases' or 'spend'"):
        models.fit(packed.assign(part="other"))


def test_summary_written_by_the_engine_says_what_it_holds(cdnow_parquet, weekly, tmp_path):
    path = rfm_summary(cdnow_parquet, freq="D", freq_multiplier=7, output=tmp_path / "s.parquet")
    meta = summary_meta(path)
    assert meta["kind"] == "rfm_summary" and meta["unit_days"] == 7.0 and meta["engine"] == "duckdb"
    assert meta["observation_end"] == "1998-06-30T00:00:00" and meta["compressed"] is False
    back = load_summary(path).sort_index()
    pd.testing.assert_frame_equal(back, weekly, check_like=True)
    assert back.attrs["unit_days"] == 7.0
    grouped = load_summary(path, compress=True)
    pd.testing.assert_frame_equal(grouped, rfm_summary(cdnow_parquet, freq="D", freq_multiplier=7, compress=True),
                                  check_exact=False, rtol=1e-12)
    assert models.fit(grouped).params["alpha"] == pytest.approx(models.fit(weekly).params["alpha"], rel=1e-9)


# ------------------------------------------------------------------------------- models as JSON

def test_model_json_round_trip_predicts_identically(fitted, weekly, tmp_path):
    path = fitted.save(tmp_path / "model.json")
    spec = json.loads(path.read_text())
    assert spec["format"] == "ltv-model/1" and spec["model"] == "bgnbd" and spec["toolkit"]
    back = models.load_model(path)
    assert back.params == fitted.params and back.spend_model.params == fitted.spend_model.params
    a = fitted.predict(weekly, horizon=52, annual_discount_rate=0.1, gross_margin=0.4)
    b = back.predict(weekly, horizon=52, annual_discount_rate=0.1, gross_margin=0.4)
    pd.testing.assert_frame_equal(a, b, check_exact=True)
    np.testing.assert_array_equal(models.intervals(back, weekly, horizon=52, draws=20),
                                  models.intervals(fitted, weekly, horizon=52, draws=20))
    pareto = models.fit(weekly, model="pareto_nbd", spend=None)
    again = models.model_from_dict(pareto.to_dict())
    pd.testing.assert_frame_equal(pareto.predict(weekly, horizon=10), again.predict(weekly, horizon=10),
                                  check_exact=True)


def test_damaged_model_files_fail_in_one_sentence(fitted, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(LTVError, match="is not JSON"):
        models.load_model(bad)
    bad.write_text(json.dumps({"format": "something else"}))
    with pytest.raises(LTVError, match="not a saved LTV model"):
        models.load_model(bad)
    spec = fitted.to_dict()
    del spec["params"]
    with pytest.raises(LTVError, match="incomplete or damaged"):
        models.model_from_dict(spec)


# ------------------------------------------------------------------------------- scoring

def test_scoring_a_parquet_in_batches_equals_predict(fitted, cdnow_parquet, weekly, tmp_path):
    path = rfm_summary(cdnow_parquet, freq="D", freq_multiplier=7, output=tmp_path / "s.parquet")
    expected = fitted.predict(weekly, horizon=52, annual_discount_rate=0.1)
    out = score(fitted, path, horizon=52, annual_discount_rate=0.1, output=tmp_path / "scores.parquet",
                batch_rows=4_000)
    got = pd.read_parquet(out)
    assert list(got.columns) == ["customer_id"] + SCORE_COLUMNS and len(got) == len(weekly)
    got = got.set_index("customer_id").sort_index()
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12, atol=0)
    in_memory = score(fitted, path, horizon=52, annual_discount_rate=0.1)
    assert len(in_memory) == len(weekly)


def test_stopped_scoring_leaves_no_partial_file(fitted, cdnow_parquet, tmp_path, monkeypatch):
    from ltv_helpers import scoring

    path = rfm_summary(cdnow_parquet, freq="D", freq_multiplier=7, output=tmp_path / "s.parquet")
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"an older file")
    real, calls = scoring._score_frame, []

    def stopped_midway(*args):
        calls.append(1)
        if len(calls) == 3:  # two batches are written, then Ctrl-C
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(scoring, "_score_frame", stopped_midway)
    with pytest.raises(KeyboardInterrupt):
        score(fitted, path, horizon=52, output=out, batch_rows=5_000)
    assert out.read_bytes() == b"an older file"  # untouched: the partial scores never took its name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.parquet", "scores.parquet"]


def test_cli_summary_fit_score(cdnow_parquet, weekly, tmp_path, capsys):
    s, m, o = tmp_path / "s.parquet", tmp_path / "m.json", tmp_path / "o.parquet"
    assert main(["summary", str(cdnow_parquet), "-o", str(s), "--freq", "D", "--freq-multiplier", "7"]) == 0
    assert "23,570 rows for 23,570 customers, time unit 7 days" in capsys.readouterr().out
    assert main(["fit", str(s), "-o", str(m)]) == 0
    assert "23,570 customers" in capsys.readouterr().out
    assert main(["score", str(m), str(s), "-o", str(o), "--horizon-days", "364"]) == 0
    got = pd.read_parquet(o).set_index("customer_id").sort_index()
    expected = models.fit(weekly).predict(weekly, horizon=52)
    # purchases exactly; spend within the 6 significant digits the fit's spend rows keep
    np.testing.assert_allclose(got[["expected_purchases", "p_alive"]], expected[["expected_purchases", "p_alive"]],
                               rtol=1e-12)
    np.testing.assert_allclose(got[["expected_spend", "clv"]], expected[["expected_spend", "clv"]], rtol=1e-6)
    assert main(["summary", str(cdnow_parquet), "-o", str(s), "--customer-id", "buyer"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ltv summary: The transactions have no buyer column") and "Traceback" not in err
    assert main(["score", str(m), str(s)]) == 2
    assert "needs -o" in capsys.readouterr().err


# ------------------------------------------------------------------------------- Spark

@pytest.mark.parametrize("freq, mult", [("D", 1), ("D", 7), ("W", 1), ("M", 1), ("h", 1)])
def test_spark_summary_equals_duckdb(spark, cdnow, freq, mult):
    a = rfm_summary(cdnow, freq=freq, freq_multiplier=mult)
    b = rfm_summary(spark.createDataFrame(cdnow[["customer_id", "order_date", "amount"]]), freq=freq,
                    freq_multiplier=mult)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=0)


def test_spark_calibration_compression_table_and_parquet(spark, cdnow, cdnow_parquet, tmp_path):
    a = calibration_holdout(cdnow, freq="D", freq_multiplier=7, **CAL)
    b = calibration_holdout(cdnow_parquet, freq="D", freq_multiplier=7, engine="spark", **CAL)
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=0)
    spark.read.parquet(str(cdnow_parquet)).withColumnRenamed("customer_id", "buyer") \
        .createOrReplaceTempView("orders_view")
    packed = rfm_summary("orders_view", engine="spark", compress=True, columns={"customer_id": "buyer"})
    pd.testing.assert_frame_equal(packed, rfm_summary(cdnow, compress=True), check_exact=False, rtol=1e-9)
    cal_packed = calibration_holdout(cdnow_parquet, engine="spark", compress=True, spend_digits=3, **CAL)
    pd.testing.assert_frame_equal(cal_packed, calibration_holdout(cdnow, compress=True, spend_digits=3, **CAL),
                                  check_exact=False, rtol=1e-9)
    path = rfm_summary(cdnow_parquet, engine="spark", freq_multiplier=7, output=tmp_path / "spark_summary")
    assert summary_meta(path)["engine"] == "spark"
    back = load_summary(path).sort_index()
    pd.testing.assert_frame_equal(back, rfm_summary(cdnow, freq_multiplier=7), check_like=True, rtol=1e-9)
    with pytest.raises(LTVError, match="There is no table 'no_such_table'"):
        rfm_summary("no_such_table", engine="spark")


def test_spark_fit_and_scores_equal_pandas(spark, cdnow, cdnow_parquet, weekly, fitted, tmp_path):
    summary = rfm_summary(cdnow_parquet, engine="spark", freq="D", freq_multiplier=7, compress=True)
    spark_fit = models.fit(summary)
    duckdb_fit = models.fit(rfm_summary(cdnow_parquet, freq="D", freq_multiplier=7, compress=True))
    for mine, ref, tol in ((spark_fit.params, duckdb_fit.params, 1e-9), (spark_fit.params, fitted.params, 1e-9),
                           (spark_fit.spend_model.params, duckdb_fit.spend_model.params, 1e-9),
                           (spark_fit.spend_model.params, fitted.spend_model.params, 1e-6)):
        for key, value in ref.items():
            assert mine[key] == pytest.approx(value, rel=tol)
    per_customer = rfm_summary(cdnow_parquet, engine="spark", freq_multiplier=7, output=tmp_path / "s")
    out = score(spark_fit, str(per_customer), engine="spark", horizon=52, annual_discount_rate=0.1,
                output=tmp_path / "scores")
    got = pd.read_parquet(out).set_index("customer_id").sort_index()
    expected = spark_fit.predict(weekly, horizon=52, annual_discount_rate=0.1)
    assert list(got.columns) == SCORE_COLUMNS and len(got) == len(weekly)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-12, atol=0)
    # scores to a Spark table; the Spark DataFrame without output is lazy and gives the same rows
    lazy = score(spark_fit, spark.read.parquet(str(per_customer)), horizon=52, annual_discount_rate=0.1)
    assert lazy.count() == len(weekly)
    with pytest.raises(LTVError, match="horizon must be a positive number"):
        score(spark_fit, str(per_customer), engine="spark", horizon=-1, output=tmp_path / "bad")


def test_collection_notebook_summary_on_spark(spark, cdnow_sample, tmp_path):
    from ltv_helpers.report import run_notebook

    out = tmp_path / "run"
    run_notebook("01_collection", out, {"source": "cdnow_sample", "engine": "spark"})
    assert json.loads((out / "collection.json").read_text())["summary_engine"] == "spark"
    got = pd.read_parquet(out / "rfm_summary.parquet")
    expected = rfm_summary(pd.read_parquet(out / "transactions.parquet"), observation_end="1998-06-30")
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9, atol=0)


def test_compressed_output_is_written_here_with_what_it_holds(cdnow_parquet, tmp_path):
    path = rfm_summary(cdnow_parquet, freq="W", compress=True, output=tmp_path / "packed.parquet")
    meta = summary_meta(path)
    assert meta["compressed"] is True and meta["freq"] == "W" and meta["spend_digits"] == 6
    back = load_summary(path, compress=True)  # already compressed: read as it is
    expected = rfm_summary(cdnow_parquet, freq="W", compress=True)
    pd.testing.assert_frame_equal(back, expected)
    assert back.attrs["unit_days"] == 7.0
    assert models.fit(back).params == models.fit(expected).params


def test_spark_without_java_fails_in_one_sentence(cdnow_parquet, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "JAVA_HOME": str(tmp_path / "no-java")}
    env.pop("LTV_SPARK_MASTER", None)
    code = "import sys; from ltv_helpers.cli import main; sys.exit(main(sys.argv[1:]))"
    run = subprocess.run([sys.executable, "-c", code, "summary", str(cdnow_parquet), "-o", str(tmp_path / "s"),
                          "--engine", "spark"], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("ltv summary: Spark could not start") and "openjdk-17-jre-headless" in last
    assert "Traceback" not in run.stderr
