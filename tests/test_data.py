import sqlite3
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest

from ltv_helpers import data
from ltv_helpers.data import (
    REASONS,
    calibration_holdout,
    clean_transactions,
    combine_sources,
    read_transactions,
    rfm_summary,
)
from ltv_helpers.datasets import lifetimes_data_file, synthetic_transactions
from ltv_helpers.schema import LTVError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

CN_HEADER = "会员ID,支付时间,实付金额,收货人\n"
CN_ROWS = "M001,2024-01-03 10:00:00,\"￥1,234.50\",张三\nM002,2024/1/5,88,李四\nM001,2024年2月1日,￥66.00,张三\n"


def _check_invariant(res):
    assert res.rows_in == res.rows_kept + len(res.rejected)


# ------------------------------------------------------------------------------- readers

@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk", "gb18030"])
def test_csv_encodings_with_chinese_headers(tmp_path, encoding):
    path = tmp_path / "orders.csv"
    path.write_bytes((CN_HEADER + CN_ROWS).encode(encoding))
    raw = read_transactions(path)
    assert raw.attrs["columns"] == {"customer_id": "会员ID", "order_date": "支付时间", "amount": "实付金额"}
    assert "收货人" not in raw.columns  # personal fields are left behind
    res = clean_transactions(raw)
    assert res.transactions["amount"].tolist() == [1234.5, 66.0, 88.0]
    assert res.transactions["order_date"].tolist() == [
        pd.Timestamp("2024-01-03 10:00"), pd.Timestamp("2024-02-01"), pd.Timestamp("2024-01-05")]


def test_tab_separated_and_explicit_overrides(tmp_path):
    path = tmp_path / "x.tsv"
    path.write_text("buyer\twhen\tpaid\tdate\nb1\t2024-03-01\t5\tnot-this\n", encoding="utf-8")
    raw = read_transactions(path, customer_id="buyer", order_date="when", amount="paid")
    assert raw.attrs["columns"]["order_date"] == "when"
    assert clean_transactions(raw).rows_kept == 1


def test_excel(tmp_path):
    path = tmp_path / "orders.xlsx"
    df = pd.DataFrame({"客户编号": [1001, 1002], "订单日期": pd.to_datetime(["2024-01-01", "2024-01-02"]),
                       "订单金额": [10.5, 20.0]})
    with pd.ExcelWriter(path) as xw:
        pd.DataFrame({"a": [1]}).to_excel(xw, sheet_name="notes", index=False)
        df.to_excel(xw, sheet_name="orders", index=False)
    res = clean_transactions(read_transactions(path, sheet="orders"))
    assert res.transactions["customer_id"].tolist() == ["1001", "1002"]  # no "1001.0"
    assert res.transactions["amount"].sum() == 30.5
    with pytest.raises(LTVError, match="no sheet 'missing'.*notes, orders"):
        read_transactions(path, sheet="missing")


def test_parquet(tmp_path, tiny):
    path = tmp_path / "t.parquet"
    tiny.rename(columns={"customer_id": "user_id", "amount": "revenue"}).to_parquet(path)
    res = clean_transactions(read_transactions(path))
    assert res.rows_kept == 5
    assert res.transactions["order_date"].dtype.kind == "M"


def test_duckdb_file(tmp_path, tiny):
    path = tmp_path / "shop.duckdb"
    con = duckdb.connect(str(path))
    con.register("t", tiny)
    con.execute("CREATE TABLE orders AS SELECT * FROM t")
    con.execute("CREATE TABLE other AS SELECT 1 AS x")
    con.close()
    with pytest.raises(LTVError, match="2 tables .*orders.*pass sql"):
        read_transactions(path)
    raw = read_transactions(path, sql="SELECT * FROM orders WHERE amount > 9")
    assert clean_transactions(raw).rows_kept == 3


def test_sql_url_reads_and_keeps_password_out(tmp_path, tiny, monkeypatch):
    db = tmp_path / "shop.sqlite"
    with sqlite3.connect(db) as con:
        tiny.assign(order_date=tiny["order_date"].astype(str)).to_sql("orders", con, index=False)
    raw = read_transactions(f"sqlite:///{db}", sql="SELECT * FROM orders")
    assert clean_transactions(raw).rows_kept == 5
    with pytest.raises(LTVError, match="LTV_DB_PASSWORD"):
        read_transactions("postgresql://ana:hunter2@db.example/x", sql="SELECT 1")
    monkeypatch.setenv("LTV_DB_PASSWORD", "s3cret-value")
    with pytest.raises(LTVError) as err:  # no driver installed: the message must not echo it
        read_transactions("postgresql://ana@127.0.0.1:1/x", sql="SELECT 1")
    assert "s3cret-value" not in str(err.value)


def test_missing_column_names_the_columns_found(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("member,when,notes\n1,2024-01-01,x\n", encoding="utf-8")
    with pytest.raises(LTVError, match=r"No customer id column found.*columns are: member, when, notes"):
        read_transactions(path)
    with pytest.raises(LTVError, match=r"'nope' is not in the data"):
        read_transactions(path, customer_id="nope")


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\xff\xfe\x00", "UTF-16 byte-order mark but is not valid text"),
    (b"id,date,amount\n" + "é".encode("latin-1") * 5 + b"\xff\xff,2024-01-01,1\n", "neither UTF-8 nor GBK"),
])
def test_unusable_files(tmp_path, content, message):
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(LTVError, match=message):
        read_transactions(path)


def test_file_not_found():
    with pytest.raises(LTVError, match="File not found"):
        read_transactions("/nonexistent/orders.csv")


def test_malformed_lines_become_rejected_rows(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("customer_id,order_date,amount\na,2024-01-01,5\nb,2024-01-02,6,extra,fields\n"
                    "c,2024-01-03,7\n", encoding="utf-8")
    res = clean_transactions(read_transactions(path))
    _check_invariant(res)
    assert res.rows_in == 3 and res.rows_kept == 2
    assert res.rejected["reason"].tolist() == ["malformed line"]
    assert res.rejected["source_row"].tolist() == [2]  # the second data record
    assert "5 fields where the header has 3" in res.rejected["read_error"].iloc[0]


# ------------------------------------------------------------------------------- cleaning

def test_every_rejection_reason():
    df = pd.DataFrame({
        "customer_id": ["a", "", None, "b", "c", "d", "e", "f", "g", "g", "h", "h", "i", "i", "j", "j"],
        "order_date": ["2024-01-01", "2024-01-01", "2024-01-01", None, "yesterday", "2024-01-02",
                       "2024-01-02", "2024-12-31", "2024-01-02", "2024-01-02", "2024-01-03",
                       "2024-01-03", "2024-01-04", "2024-01-04 20:00", "2024-01-05", "2024-01-06"],
        "amount": ["5", "5", "5", "5", "5", "", "abc", "5", "0", "7", "7", "7", "10", "-4", "3", "-9"],
    })
    res = clean_transactions(df, observation_end="2024-06-30")
    _check_invariant(res)
    got = dict(zip(res.rejected["source_row"], res.rejected["reason"]))
    assert got == {
        2: "missing customer id", 3: "missing customer id", 4: "missing date",
        5: "unparseable date", 6: "missing amount", 7: "non-numeric amount",
        8: "date after observation end", 9: "zero amount", 12: "exact duplicate",
        14: "refund netted into same-day purchase", 16: "refund without same-day purchase",
    }
    kept = res.transactions.set_index("customer_id")["amount"]
    assert kept["i"] == 6.0  # 10 - 4, netted on the same calendar day
    assert res.refunded == 4.0
    assert set(res.report.index) <= set(REASONS)
    assert res.report["rows"].sum() == len(res.rejected)


def test_refunds_reject_mode_and_full_refund():
    df = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "b"],
                       "order_date": ["2024-01-01"] * 3 + ["2024-01-02"] * 2,
                       "amount": [10, 4, -12, 5, -5]})
    res = clean_transactions(df)
    _check_invariant(res)
    # a: 12 refunded from the largest purchase first: 10 -> 0 (fully refunded), 4 -> 2.
    assert res.transactions["amount"].tolist() == [2.0]
    assert sorted(res.rejected["reason"]) == sorted([
        "fully refunded", "refund netted into same-day purchase", "fully refunded",
        "refund netted into same-day purchase"])
    rej = clean_transactions(df, refunds="reject")
    assert rej.report.loc["refund", "rows"] == 2 and rej.rows_kept == 3
    with pytest.raises(LTVError, match="refunds must be"):
        clean_transactions(df, refunds="ignore")


def test_keep_options_for_zero_and_duplicates():
    df = pd.DataFrame({"customer_id": ["a", "a", "a"], "order_date": ["2024-01-01"] * 3,
                       "amount": [0, 5, 5]})
    assert clean_transactions(df).rows_kept == 1
    assert clean_transactions(df, zero_amounts="keep", duplicates="keep").rows_kept == 3


@pytest.mark.parametrize("text, value", [
    ("¥1,234.50", 1234.5), ("￥88", 88.0), ("$1,000", 1000.0), ("RMB 12.5", 12.5),
    ("12.5元", 12.5), ("(12.00)", -12.0), (" 7 ", 7.0), ("１２３", 123.0),
])
def test_currency_strings(text, value):
    amounts, missing = data.parse._parse_amounts(pd.Series([text], dtype=object))
    assert amounts.iloc[0] == value and not missing.iloc[0]


def test_invariant_on_dirty_synthetic_data():
    raw = synthetic_transactions(3000, seed=5, dirty=0.08)
    res = clean_transactions(raw)
    _check_invariant(res)
    for reason in ("missing customer id", "unparseable date", "non-numeric amount", "exact duplicate"):
        assert res.report.loc[reason, "rows"] > 0
    assert (res.transactions["amount"] > 0).all()
    assert res.transactions["customer_id"].str.strip().ne("").all()


def test_clean_rejects_wrong_input():
    with pytest.raises(LTVError, match="no amount column.*columns are: customer_id, order_date"):
        clean_transactions(pd.DataFrame({"customer_id": ["a"], "order_date": ["2024-01-01"]}))


# ------------------------------------------------------------------------------- combining

def test_combine_sources_with_one_id_table():
    web = pd.DataFrame({"customer_id": ["w1", "w2"], "order_date": ["2024-01-01"] * 2, "amount": [5, 6]})
    shop = pd.DataFrame({"customer_id": ["w1", "13800"], "order_date": ["2024-01-02"] * 2, "amount": [7, 8]})
    id_map = pd.DataFrame({"channel": ["web", "shop"], "source_id": ["w1", "w1"],
                           "customer_id": ["P1", "P9"]})
    both = combine_sources({"web": web, "shop": shop}, id_map)
    assert both["channel"].tolist() == ["web", "web", "shop", "shop"]
    assert both["customer_id"].tolist() == ["P1", "w2", "P9", "13800"]
    assert both["source_customer_id"].tolist() == ["w1", "w2", "w1", "13800"]
    res = clean_transactions(both)
    assert set(res.transactions["channel"]) == {"web", "shop"}
    with pytest.raises(LTVError, match="more than one customer id"):
        combine_sources({"web": web}, pd.DataFrame({"source_id": ["w1", "w1"], "customer_id": ["A", "B"]}))


# ------------------------------------------------------------------------------- RFM summary

def _lifetimes_summary(tx, **kw):
    ref = summary_data_from_transaction_data(tx, "customer_id", "order_date", "amount", **kw)
    ref.index = ref.index.astype(str)
    return ref


def test_rfm_summary_hand_checked(tiny):
    s = rfm_summary(tiny, observation_end="2024-01-31")
    # a: days 1, 11, 21 -> frequency 2, recency 20, T 30; repeat periods worth 30 and 20.
    assert s.loc["a"].tolist() == [2.0, 20.0, 30.0, 25.0]
    assert s.loc["b"].tolist() == [0.0, 0.0, 26.0, 0.0]
    assert list(s.columns) == ["frequency", "recency", "T", "monetary_value"]


def test_rfm_summary_equals_lifetimes_on_full_cdnow(cdnow):
    ours = rfm_summary(cdnow, observation_end="1998-06-30")
    ref = _lifetimes_summary(cdnow, observation_period_end="1998-06-30")
    assert len(ours) == 23_570
    pd.testing.assert_frame_equal(ours, ref.loc[ours.index], check_exact=False, rtol=1e-9, atol=1e-9,
                                  check_names=False, check_index_type=False)


@pytest.mark.parametrize("freq, mult", [("W", 1), ("D", 7), ("h", 24)])
def test_rfm_summary_equals_lifetimes_other_units(cdnow_sample, freq, mult):
    ours = rfm_summary(cdnow_sample, observation_end="1998-06-30", freq=freq, freq_multiplier=mult)
    ref = _lifetimes_summary(cdnow_sample, observation_period_end="1998-06-30", freq=freq,
                             freq_multiplier=mult)
    assert np.allclose(ours.to_numpy(), ref.loc[ours.index].to_numpy(), rtol=1e-9, atol=1e-9)


def test_rfm_summary_gives_the_published_cdnow_summary(cdnow_sample):
    cal = cdnow_sample[cdnow_sample["order_date"] <= "1997-09-30"]
    ours = rfm_summary(cal, observation_end="1997-09-30", freq="D", freq_multiplier=7)
    pub = pd.read_csv(lifetimes_data_file("cdnow_customers_summary.csv")).set_index("ID")
    ours.index = ours.index.astype(int)
    assert len(ours) == len(pub) == 2_357
    diff = (ours.loc[pub.index, ["frequency", "recency", "T"]] - pub).abs().max()
    assert diff["frequency"] == 0 and diff["recency"] <= 0.005 and diff["T"] <= 0.005


def test_monthly_summary_where_lifetimes_fails(cdnow_sample):
    with pytest.raises(ValueError):
        _lifetimes_summary(cdnow_sample, freq="M")
    s = rfm_summary(cdnow_sample, observation_end="1998-06-30", freq="M")
    # First purchases in Jan-Mar 1997 -> T in months is 15, 16 or 17 (June 1998 minus the month).
    assert set(s["T"].unique()) <= {15.0, 16.0, 17.0}
    daily = rfm_summary(cdnow_sample, observation_end="1998-06-30")
    assert (s["frequency"] <= daily["frequency"]).all()  # same-month purchases merge


def test_rfm_summary_from_parquet_path(tmp_path, cdnow_sample):
    path = tmp_path / "tx.parquet"
    cdnow_sample.to_parquet(path)
    pd.testing.assert_frame_equal(rfm_summary(path, observation_end="1998-06-30"),
                                  rfm_summary(cdnow_sample, observation_end="1998-06-30"))


def test_rfm_summary_errors(tiny):
    with pytest.raises(LTVError, match="freq must be one of"):
        rfm_summary(tiny, freq="fortnight")
    with pytest.raises(LTVError, match="not a date"):
        rfm_summary(tiny.assign(order_date=tiny["order_date"].astype(str)))
    with pytest.raises(LTVError, match="no amount column"):
        rfm_summary(tiny.drop(columns="amount"))


def test_rfm_summary_equals_lifetimes_on_synthetic_timestamps():
    tx = synthetic_transactions(3000, seed=11)  # times of day: same-day merging matters
    tx = tx.sort_values(["customer_id", "order_date", "amount"])
    ours = rfm_summary(tx, observation_end="2024-12-31")
    ref = _lifetimes_summary(tx, observation_period_end="2024-12-31")
    assert np.allclose(ours.to_numpy(), ref.loc[ours.index].to_numpy(), rtol=1e-9, atol=1e-9)


# ------------------------------------------------------------------------------- calibration / holdout

def test_calibration_holdout_matches_lifetimes(cdnow_sample):
    kw = dict(calibration_end="1997-09-30", observation_end="1998-06-30", freq="D", freq_multiplier=7)
    ours = calibration_holdout(cdnow_sample, **kw)
    ref = calibration_and_holdout_data(
        cdnow_sample, "customer_id", "order_date", calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30", freq="D", freq_multiplier=7, monetary_value_col="amount")
    ref.index = ref.index.astype(str)
    same = ["frequency_cal", "recency_cal", "T_cal", "monetary_value_cal", "frequency_holdout",
            "duration_holdout"]
    assert len(ours) == 2_357
    assert np.allclose(ours[same].to_numpy(), ref.loc[ours.index, same].to_numpy(), atol=1e-9)
    assert ours["duration_holdout"].iloc[0] == pytest.approx(273 / 7)
    # lifetimes#431: our holdout monetary value is the mean of per-day sums.
    per_day = (cdnow_sample[cdnow_sample["order_date"] > "1997-09-30"]
               .groupby(["customer_id", "order_date"])["amount"].sum().groupby("customer_id").mean())
    assert np.allclose(ours.loc[per_day.index, "monetary_value_holdout"], per_day)
    assert (ours.drop(per_day.index)["monetary_value_holdout"] == 0).all()


def test_calibration_holdout_works_where_lifetimes_fails_without_monetary(cdnow_sample):
    with pytest.raises(ValueError, match="No objects to concatenate"):
        calibration_and_holdout_data(cdnow_sample, "customer_id", "order_date",
                                     calibration_period_end="1997-09-30",
                                     observation_period_end="1998-06-30")
    ours = calibration_holdout(cdnow_sample, calibration_end="1997-09-30", observation_end="1998-06-30")
    # Independent count: distinct purchase days per customer in the holdout.
    hold = cdnow_sample[cdnow_sample["order_date"] > "1997-09-30"]
    days = hold.groupby("customer_id")["order_date"].nunique()
    assert (ours.loc[days.index, "frequency_holdout"] == days).all()
    assert ours["frequency_holdout"].sum() == days.sum()


def test_calibration_holdout_includes_the_whole_end_day(tiny):
    tx = pd.concat([tiny, pd.DataFrame({"customer_id": ["a"], "order_date": [pd.Timestamp("2024-01-11 15:00")],
                                        "amount": [1.0]})])
    out = calibration_holdout(tx, calibration_end="2024-01-11", observation_end="2024-01-31")
    assert out.loc["a", "frequency_cal"] == 1  # day 1 and day 11 (both rows of day 11)
    assert out.loc["a", "monetary_value_cal"] == 31.0
    assert out.loc["a", "frequency_holdout"] == 1
    with pytest.raises(LTVError, match="must come after"):
        calibration_holdout(tx, calibration_end="2024-02-01", observation_end="2024-01-31")
    with pytest.raises(LTVError, match="No purchases fall between"):
        calibration_holdout(tx, calibration_end="2024-01-25", observation_end="2024-01-31")


# ------------------------------------------------------------------------------- notebook helpers

def test_monthly_activity_and_simple_estimate(tiny):
    act = data.monthly_activity(tiny)
    assert act.loc["2024-01-01"].tolist() == [2, 5, 73.0, 2]
    est = data.simple_ltv_estimate(tiny, lifespan_years=2)
    aov = 73.0 / 5
    assert est.loc["average order value", "value"] == pytest.approx(aov)
    assert est.loc["simple LTV", "value"] == pytest.approx(
        aov * est.loc["orders per customer per year", "value"] * 2)


def test_save_collection_writes_parquet_for_next_notebook(tmp_path, cdnow_sample):
    res = clean_transactions(cdnow_sample)
    files = data.save_collection(res, tmp_path, observation_end="1998-06-30", client="x", currency="USD")
    assert files.loc["rfm_summary.parquet", "rows"] == res.transactions["customer_id"].nunique()
    back = pd.read_parquet(tmp_path / "transactions.parquet")
    pd.testing.assert_frame_equal(back, res.transactions)
    summary = pd.read_parquet(tmp_path / "rfm_summary.parquet")
    assert summary.index.name == "customer_id"
