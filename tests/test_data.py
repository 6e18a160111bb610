import json
import sqlite3
import warnings

import duckdb
import numpy as np
import pandas as pd
import pytest

from ltv_helpers import cli, data
from ltv_helpers.data import (
    REASONS,
    calibration_holdout,
    clean_transactions,
    combine_sources,
    data_quality,
    read_transactions,
    rfm_summary,
)
from ltv_helpers.datasets import lifetimes_data_file, synthetic_transactions
from ltv_helpers.labels import md_escape
from ltv_helpers.schema import LTVError

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

CN_HEADER = "会员ID,支付时间,实付金额,收货人\n"
CN_ROWS = "M001,2024-01-03 10:00:00,\"￥1,234.50\",张三\nM002,2024/1/5,88,李四\nM001,2024年2月1日,￥66.00,张三\n"


def _check_invariant(res):
    assert res.rows_in == res.rows_kept + len(res.rejected)


def _clean_csv(tmp_path, text: str):
    """Write ``text`` as a CSV file, read and clean it, check lines in = kept + rejected."""
    path = tmp_path / "x.csv"
    path.write_text(text, encoding="utf-8")
    res = clean_transactions(read_transactions(path))
    _check_invariant(res)
    return res


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
    (b"id,date,amount\n\x01\x02\x03" + "é".encode("latin-1") * 5 + b"\xff\x04,2024-01-01,1\n", "neither UTF-8 nor GBK"),
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
    res = _clean_csv(tmp_path, "customer_id,order_date,amount\na,2024-01-01,5\nb,2024-01-02,6,extra,fields\n"
                               "c,2024-01-03,7\n")
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
    res = clean_transactions(df, observation_end="2024-06-30", zero_amounts="reject", duplicates="reject")
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


def test_zero_amounts_and_duplicates_are_kept_by_default_and_flagged():
    df = pd.DataFrame({"customer_id": ["a", "a", "a"], "order_date": ["2024-01-01"] * 3,
                       "amount": [0, 5, 5]})
    res = clean_transactions(df)
    _check_invariant(res)
    assert res.rows_kept == 3 and res.rejected.empty
    assert res.kept_flags == {"exact duplicate": 1, "zero amount": 1}
    assert any("duplicates='reject'" in w for w in res.warnings)  # spelled for Python here
    assert any("zero_amounts='reject'" in w for w in res.warnings)
    quality = data_quality(res)
    assert quality.loc["kept: exact duplicate", "value"] == "1"
    assert quality.loc["kept: zero amount", "value"] == "1"
    strict = clean_transactions(df, zero_amounts="reject", duplicates="reject")
    _check_invariant(strict)
    assert strict.rows_kept == 1 and sorted(strict.rejected["reason"]) == ["exact duplicate", "zero amount"]
    assert clean_transactions(df, zero_amount="reject").rows_kept == 2  # the spelling


def test_repeated_lines_of_one_order_are_rejected_when_there_is_an_order_id():
    df = pd.DataFrame({"customer_id": ["a", "a", "a", "b"], "order_id": ["o1", "o1", "o2", "o3"],
                       "order_date": ["2024-01-01"] * 4, "amount": [5, 5, 5, 7]})
    res = clean_transactions(df)
    _check_invariant(res)
    assert res.rejected["reason"].tolist() == ["exact duplicate"] and res.rejected["source_row"].tolist() == [2]
    assert res.orders == 3 and res.kept_flags == {}
    assert clean_transactions(df, duplicates="keep").orders == 3  # both lines of o1 merge into one order


@pytest.mark.parametrize("text, value", [
    ("¥1,234.50", 1234.5), ("￥88", 88.0), ("$1,000", 1000.0), ("RMB 12.5", 12.5),
    ("12.5元", 12.5), ("(12.00)", -12.0), (" 7 ", 7.0), ("１２３", 123.0),
])
def test_currency_strings(text, value):
    parsed = data.parse.parse_numbers(pd.Series([text], dtype=object))
    assert parsed.values.iloc[0] == value and not parsed.missing.iloc[0]


def test_invariant_on_dirty_synthetic_data():
    raw = synthetic_transactions(3000, seed=5, dirty=0.08)
    res = clean_transactions(raw, duplicates="reject")  # the dirty rows' duplicates are errors, not orders
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


@pytest.mark.parametrize("freq,mult", [("D", 1), ("D", 7), ("W", 1)])
def test_prepared_order_days_give_the_same_summaries_as_the_query(cdnow_sample, freq, mult):
    """OrderDays (numpy, for a backtest's many cut-offs) equals calibration_holdout bit for bit:
    the same customers in the same order, periods and exact sums, at several cut-offs, on
    shuffled rows with several orders a day, times of day and awkward amounts."""
    from ltv_helpers.data.summary import OrderDays

    rng = np.random.default_rng(5)
    tx = cdnow_sample.sample(frac=1.0, random_state=1).reset_index(drop=True)
    extra = tx.sample(400, random_state=2).assign(
        order_date=lambda d: d["order_date"] + pd.to_timedelta(rng.integers(0, 86_399, len(d)), "s"),
        amount=lambda d: np.round(rng.gamma(2.0, 20.0, len(d)), 2) + 0.005)
    tx = pd.concat([tx, extra, pd.DataFrame({"customer_id": ["Zoë-1", "äb", "10"], "amount": [0.1, 0.2, 0.3],
                                             "order_date": pd.to_datetime(["1997-01-03 23:59:59", "1997-05-01 00:00:00",
                                                                          "1998-01-01 00:00:01"])})],
                   ignore_index=True)
    prepared = OrderDays(tx)
    for cal_end, obs_end in [("1997-09-30", "1998-06-30"), ("1997-03-31 12:00", "1997-12-31"),
                             ("1997-06-15", "1997-07-01")]:
        ours = prepared.calibration_holdout(calibration_end=cal_end, observation_end=obs_end, freq=freq,
                                            freq_multiplier=mult)
        ref = calibration_holdout(tx, calibration_end=cal_end, observation_end=obs_end, freq=freq,
                                  freq_multiplier=mult)
        pd.testing.assert_frame_equal(ours, ref, check_exact=True)
        assert ours.attrs["unit_days"] == ref.attrs["unit_days"]
        # A sample of the customers whose ids hash lowest: the rows the model errors keep of the whole.
        from ltv_helpers.evaluation import _some_customers

        for most in (1, 500, len(ref) - 1, len(ref), 10**9):
            sampled = prepared.calibration_holdout(calibration_end=cal_end, observation_end=obs_end, freq=freq,
                                                   freq_multiplier=mult, most=most)
            pd.testing.assert_frame_equal(sampled, _some_customers(ref, most), check_exact=True)
    with pytest.raises(LTVError, match="No purchases fall between"):
        prepared.calibration_holdout(calibration_end="1998-06-30", observation_end="1998-07-31")
    monthly = prepared.calibration_holdout(calibration_end="1997-09-30", observation_end="1998-06-30", freq="M")
    pd.testing.assert_frame_equal(monthly, calibration_holdout(tx, calibration_end="1997-09-30",
                                                               observation_end="1998-06-30", freq="M"))
    monthly_some = prepared.calibration_holdout(calibration_end="1997-09-30", observation_end="1998-06-30", freq="M",
                                                most=300)
    pd.testing.assert_frame_equal(monthly_some, _some_customers(monthly, 300), check_exact=True)


def test_prepared_order_days_round_sort_and_refuse_as_the_query_does():
    """Halves of a millionth round away from zero (the query's DECIMAL cast); number ids sort by
    value as the query sorts them; large amounts and sums are exact as in the query; an order
    without a date is left out as the query leaves it; a missing id or amount, or a customer's
    sum past what exact millionths hold, is refused in one sentence."""
    from ltv_helpers.data.summary import OrderDays

    tx = pd.DataFrame({"customer_id": [1, 10, 2, 1, 2, 10, 1],
                       "order_date": pd.to_datetime(["2024-01-01", "2024-01-02", "2024-01-03", "2024-02-01",
                                                     "2024-03-05", "2024-03-06", "2024-03-07"]),
                       "amount": [1234.5678905, 0.0000005, 2.5e-6, 1.0000015, 3.0, 4.0, 5.0]})
    kw = dict(calibration_end="2024-02-15", observation_end="2024-03-31")
    ours = OrderDays(tx).calibration_holdout(**kw)
    pd.testing.assert_frame_equal(ours, calibration_holdout(tx, **kw), check_exact=True)
    assert list(ours.index) == ["1", "2", "10"]
    # Amounts from 9,223,372 (their millionths overflowed an 18-digit multiplication), sums past
    # 2**53 millionths, and an order without a date (in no period, as in the query).
    large = tx.assign(amount=[9_500_000.25, 123_456_789.5, 999_999_999_999.5, 8e11, 3.0, 7e11, 5.0],
                      order_date=tx["order_date"].where(tx.index != 4))
    ours = OrderDays(large).calibration_holdout(**kw)
    pd.testing.assert_frame_equal(ours, calibration_holdout(large, **kw), check_exact=True)
    assert ours.loc["1", "monetary_value_cal"] == 8e11 and ours.loc["10", "monetary_value_holdout"] == 7e11
    with pytest.raises(LTVError, match="have no customer id"):
        OrderDays(tx.assign(customer_id=["a", None, "b", "a", "b", "a", "a"]))
    with pytest.raises(LTVError, match="A customer's amounts add up to more than"):
        OrderDays(pd.concat([tx.assign(amount=9.9e11)] * 5, ignore_index=True))
    with pytest.raises(LTVError, match="Amounts must be finite"):
        OrderDays(tx.assign(amount=[np.nan, 1, 1, 1, 1, 1, 1]))


# ------------------------------------------------------------------------------- notebook helpers

def test_monthly_activity_and_simple_estimate(tiny):
    act = data.monthly_activity(tiny)
    assert act.loc["2024-01-01"].tolist() == [2, 5, 73.0, 2]
    est = data.simple_ltv_estimate(tiny, lifespan_years=2)
    aov = 73.0 / 5
    assert est.loc["average order value", "value"] == pytest.approx(aov)
    assert est.loc["simple LTV", "value"] == pytest.approx(
        aov * est.loc["orders per customer per year", "value"] * 2)


def test_load_collection_reads_a_file_once_and_again_when_it_is_written_again(tmp_path, cdnow_sample):
    """The notebooks of a run share one kernel: the transactions are read once, each caller gets
    its own frame (a change to one reaches neither the kept frame nor the next caller), and a
    file written again (another client's collection in the same folder) is read again."""
    res = data.clean_transactions(cdnow_sample, observation_end="1998-06-30")
    data.save_collection(res, tmp_path, observation_end="1998-06-30", client="x", currency="USD")
    first, meta = data.load_collection(tmp_path)
    first["amount"] *= 100
    first.loc[first.index[0], "customer_id"] = "changed"
    meta["client"] = "changed"
    second, meta2 = data.load_collection(tmp_path)
    assert meta2["client"] == "x" and second["customer_id"].iloc[0] != "changed"
    assert second["amount"].sum() == pytest.approx(res.transactions["amount"].sum())
    other = data.clean_transactions(cdnow_sample.head(500), observation_end="1998-06-30")
    data.save_collection(other, tmp_path, observation_end="1998-06-30", client="y", currency="USD")
    third, meta3 = data.load_collection(tmp_path)
    assert meta3["client"] == "y" and len(third) == len(other.transactions)


def test_save_collection_writes_parquet_for_next_notebook(tmp_path, cdnow_sample):
    res = clean_transactions(cdnow_sample)
    files = data.save_collection(res, tmp_path, observation_end="1998-06-30", client="x", currency="USD")
    assert files.loc["rfm_summary.parquet", "rows"] == res.transactions["customer_id"].nunique()
    back = pd.read_parquet(tmp_path / "transactions.parquet")
    pd.testing.assert_frame_equal(back, res.transactions)
    summary = pd.read_parquet(tmp_path / "rfm_summary.parquet")
    assert summary.index.name == "customer_id"


# ------------------------------------------------------------------------------- real exports: dates

ONLINE_RETAIL = """InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country
536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/10 8:26,2.55,17850,United Kingdom
536365,71053,WHITE METAL LANTERN,6,12/1/10 8:26,3.39,17850,United Kingdom
536365,84406B,CREAM CUPID HEARTS COAT HANGER,8,12/1/10 8:26,2.75,17850,United Kingdom
536366,22633,HAND WARMER UNION JACK,6,12/1/10 8:28,1.85,17850,United Kingdom
536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,12/1/10 8:34,1.69,13047,United Kingdom
536367,22745,POPPY'S PLAYHOUSE BEDROOM,6,12/1/10 8:34,2.10,13047,United Kingdom
536367,22745,POPPY'S PLAYHOUSE BEDROOM,6,12/1/10 8:34,2.10,13047,United Kingdom
536367,22746,POPPY'S PLAYHOUSE LIVINGROOM,6,12/1/10 8:34,2.10,13047,United Kingdom
C536379,D,Discount,-1,12/1/10 9:41,27.50,14527,United Kingdom
536378,22386,JUMBO BAG PINK POLKADOT,10,12/1/10 9:37,1.95,14688,United Kingdom
C536383,35004C,SET OF 3 COLOURED  FLYING DUCKS,-1,12/1/10 9:49,4.65,14688,United Kingdom
536414,22139,RETROSPOT TEA SET,56,12/1/10 11:52,0,,United Kingdom
536544,21773,DECORATIVE ROSE BATHROOM BOTTLE,1,12/1/10 14:32,2.51,,United Kingdom
536592,22000,BAD LINE,1,12/1/10 17:06
536600,22423,REGENCY CAKESTAND 3 TIER,1,12/2/10 10:00,12.75,17850,United Kingdom
536600,22424,REGENCY CAKESTAND 2 TIER,2,12/2/10 10:00,12.75,13047,United Kingdom
536601,22423,REGENCY CAKESTAND 3 TIER,abc,12/2/10 10:05,12.75,17850,United Kingdom
536602,22423,REGENCY CAKESTAND 3 TIER,1,12/9/10 10:05,12.75,17850,United Kingdom
536700,21232,STRAWBERRY CERAMIC TRINKET BOX,2,12/13/10 9:00,4.25,17850,United Kingdom
"""


def test_order_line_export_becomes_orders_with_every_line_accounted(tmp_path):
    path = tmp_path / "Online Retail.csv"
    path.write_text(ONLINE_RETAIL, encoding="utf-8")
    raw = read_transactions(path)
    assert raw.attrs["columns"] == {"customer_id": "CustomerID", "order_date": "InvoiceDate",
                                    "order_id": "InvoiceNo", "quantity": "Quantity",
                                    "unit_price": "UnitPrice"}
    assert "Description" not in raw.columns and "Country" not in raw.columns
    res = clean_transactions(raw)
    _check_invariant(res)
    assert res.rows_in == 19 and res.rows_kept == 10 and res.orders == 6
    assert res.warnings == []  # 12/13/10 shows the order: month/day/year, no assumption needed
    got = dict(zip(res.rejected["source_row"], res.rejected["reason"]))
    assert got == {
        7: "exact duplicate",  # line 8 has the same values but another StockCode: kept
        9: "refund without same-day purchase",  # C536379: 14527 bought nothing that day
        11: "refund netted into same-day purchase",  # C536383 against 536378 of 14688
        12: "missing customer id", 13: "missing customer id",
        14: "malformed line",  # too few fields
        15: "order lines disagree on customer", 16: "order lines disagree on customer",
        17: "non-numeric quantity",
    }
    assert "5 fields where the header has 8" in res.rejected.set_index("source_row").loc[14, "read_error"]
    tx = res.transactions.set_index("order_id")
    assert tx["amount"].to_dict() == pytest.approx({
        "536365": 6 * 2.55 + 6 * 3.39 + 8 * 2.75, "536366": 6 * 1.85, "536367": 32 * 1.69 + 2 * 6 * 2.10,
        "536378": 10 * 1.95 - 4.65, "536602": 12.75, "536700": 8.5}, abs=1e-9)
    assert tx["lines"].to_dict() == {"536365": 3, "536366": 1, "536367": 3, "536378": 1, "536602": 1,
                                     "536700": 1}
    assert tx.loc["536365", "order_date"] == pd.Timestamp("2010-12-01 08:26")
    assert tx.loc["536700", "order_date"] == pd.Timestamp("2010-12-13 09:00")
    assert tx.loc["536365", "customer_id"] == "17850" and tx.loc["536365", "quantity"] == 20
    assert res.refunded == pytest.approx(4.65)
    # The summary counts orders, not lines: 17850 bought on 4 days (Dec 1 twice, 9, 13).
    s = rfm_summary(res.transactions, observation_end="2010-12-31")
    assert s.loc["17850", "frequency"] == 2 and s.loc["13047", "frequency"] == 0


def test_cancellations_follow_the_refund_policy():
    lines = pd.DataFrame({
        "customer_id": ["a", "a", "a", "b"], "order_id": ["1", "1", "C2", "C3"],
        "order_date": ["2024-03-01 10:00", "2024-03-01 10:00", "2024-03-01 12:00", "2024-03-02"],
        "quantity": ["2", "1", "-1", "-5"], "unit_price": ["10", "4", "10", "1"]})
    netted = clean_transactions(lines)
    _check_invariant(netted)
    assert netted.transactions["amount"].tolist() == [14.0] and netted.orders == 1  # 2x10 + 4 - 10
    assert netted.report["rows"].to_dict() == {"refund without same-day purchase": 1,
                                               "refund netted into same-day purchase": 1}
    rejected = clean_transactions(lines, refunds="reject")
    assert rejected.transactions["amount"].tolist() == [24.0]
    assert rejected.report["rows"].to_dict() == {"refund": 2}
    # A cancellation prefix needs a digit after it: order ids such as CN-88 are ordinary orders.
    other = clean_transactions(lines.assign(order_id=["CN-88", "CN-88", "C2", "C3"]))
    assert other.transactions["order_id"].tolist() == ["CN-88"]


def test_unit_price_without_quantity_counts_one_item_and_says_so():
    df = pd.DataFrame({"customer_id": ["a"], "order_date": ["2024-01-01"], "unit_price": ["9.90"]})
    res = clean_transactions(df)
    assert res.transactions["amount"].tolist() == [9.9]
    assert res.warnings and "no quantity column" in res.warnings[0]


def test_us_two_digit_years_are_pivoted_and_impossible_years_rejected():
    df = pd.DataFrame({"customer_id": list("abcdef"),
                       "order_date": ["12/1/10 8:26", "12/31/99 23:59", "1/5/68", "6/15/1989",
                                      "0001-01-01", "1/2/2030"],
                       "amount": ["1"] * 6})
    res = clean_transactions(df)
    _check_invariant(res)
    kept = res.transactions.set_index("customer_id")["order_date"]
    assert kept.to_dict() == {"a": pd.Timestamp("2010-12-01 08:26"), "b": pd.Timestamp("1999-12-31 23:59")}
    # 68 -> 2068 (the POSIX pivot) is in the future; 1989 is before 1990; year 1 and 2030 too.
    assert dict(zip(res.rejected["customer_id"], res.rejected["reason"])) == {
        "c": "implausible date", "d": "implausible date", "e": "implausible date", "f": "implausible date"}
    assert clean_transactions(df, earliest_date="1980-01-01").rows_kept == 3


def test_day_first_dates_are_decided_from_the_data(tmp_path):
    path = tmp_path / "uk.csv"
    path.write_text("customer_id,order_date,amount\na,1/12/2010,5\na,25/12/2010,6\nb,3/1/2011 14:05,7\n",
                    encoding="utf-8")
    res = clean_transactions(read_transactions(path))
    assert res.warnings == []
    assert res.transactions["order_date"].tolist() == [
        pd.Timestamp("2010-12-01"), pd.Timestamp("2010-12-25"), pd.Timestamp("2011-01-03 14:05")]


def test_ambiguous_day_month_order_is_assumed_with_a_warning_and_overridable(tmp_path, capsys):
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,order_date,amount\na,1/12/2010,5\nb,3/1/2011,7\n", encoding="utf-8")
    res = clean_transactions(read_transactions(path))
    assert res.transactions["order_date"].tolist() == [pd.Timestamp("2010-01-12"), pd.Timestamp("2011-03-01")]
    assert len(res.warnings) == 1
    assert "read as month/day/year" in res.warnings[0] and "dayfirst=True" in res.warnings[0]
    zh = data.collection_notes(res, "zh")
    assert zh.startswith("**注意:**") and "已按“月/日/年”读取" in zh and "read as" not in zh
    assert data.collection_notes(res) == f"**Note:** {md_escape(res.warnings[0])}"
    # The client's report states what was done; which option to pass is for the consultant.
    facts, advice = data.collection_notes(res, part="facts"), data.collection_notes(res, part="advice")
    assert "read as month/day/year" in facts and "dayfirst" not in facts and facts.endswith("year\\.")
    assert "cannot be told" not in advice and "pass dayfirst" in advice
    zh_facts = data.collection_notes(res, "zh", part="facts")
    assert "dayfirst" not in zh_facts and "已按" in zh_facts
    for day_first in (clean_transactions(read_transactions(path, dayfirst=True)),
                      clean_transactions(read_transactions(path), dayfirst=True),
                      clean_transactions(read_transactions(path, date_format="%d/%m/%Y"))):
        assert day_first.warnings == []
        assert day_first.transactions["order_date"].tolist() == [pd.Timestamp("2010-12-01"),
                                                                 pd.Timestamp("2011-01-03")]
    from ltv_helpers.cli import main

    assert main(["check", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["orders"] == 2 and "--dayfirst" in out["warnings"][0]
    assert out["warnings"][1:] == [cli.NO_REPEAT_BUYERS]  # two customers, one order each
    assert main(["check", str(path), "--json", "--dayfirst"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["warnings"] == [cli.NO_REPEAT_BUYERS] and out["first_order"] == "2010-12-01"
    assert main(["check", str(path), "--json", "--date-format", "%d/%m/%Y"]) == 0
    assert json.loads(capsys.readouterr().out)["last_order"] == "2011-01-03"


def test_dates_that_mix_both_orders_keep_the_majority_and_reject_the_rest():
    df = pd.DataFrame({"customer_id": list("abcd"), "order_date": ["13/1/2010", "14/2/2010", "1/20/2010", "5/6/2010"],
                       "amount": ["1"] * 4})
    res = clean_transactions(df)
    _check_invariant(res)
    assert res.rejected["reason"].tolist() == ["unparseable date"] and res.rejected["customer_id"].tolist() == ["c"]
    assert res.transactions.set_index("customer_id")["order_date"]["d"] == pd.Timestamp("2010-06-05")
    assert "mix two orders" in res.warnings[0]


@pytest.mark.parametrize("text, expected", [
    ("2024-01-05", "2024-01-05"), ("2024/1/5 10:05", "2024-01-05 10:05"), ("2024年2月1日", "2024-02-01"),
    ("2024年2月1日 10时5分3秒", "2024-02-01 10:05:03"), ("20240105", "2024-01-05"),
    ("2024-01-05T10:00:00+08:00", "2024-01-05 10:00"), ("2024-01-05 10:00:00.25", "2024-01-05 10:00:00.25"),
    ("12/1/2010 3:05 PM", "2010-12-01 15:05"), ("12/1/10 12:10 am", "2010-12-01 00:10"),
    ("2024/1/5 下午3:05", "2024-01-05 15:05"), ("5 Jan 2024", "2024-01-05"),
])
def test_date_formats_seen_in_exports(text, expected):
    stamps, missing, _ = data.parse_dates(pd.Series([text], dtype=object))
    assert stamps.iloc[0] == pd.Timestamp(expected) and not missing.iloc[0]


def test_short_lines_are_malformed_but_empty_trailing_fields_are_not(tmp_path):
    res = _clean_csv(tmp_path, "customer_id,order_date,amount,note\na,2024-01-01,5,\nb,2024-01-02\n"
                               "c,2024-01-03,7,ok\n")
    assert res.rows_kept == 2 and res.rejected["source_row"].tolist() == [2]
    assert res.rejected["reason"].tolist() == ["malformed line"]
    # Too many and too few fields in one file: record numbers stay right.
    res = _clean_csv(tmp_path, "customer_id,order_date,amount\na,2024-01-01\nb,2024-01-02,6,extra\nc,2024-01-03,7\n")
    assert dict(zip(res.rejected["source_row"], res.rejected["reason"])) == {1: "malformed line", 2: "malformed line"}
    assert res.transactions["customer_id"].tolist() == ["c"]


def test_exact_duplicates_compare_every_source_column(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("customer_id,order_date,amount,sku\na,2024-01-01,5,X\na,2024-01-01,5,Y\na,2024-01-01,5,X\n",
                    encoding="utf-8")
    raw = read_transactions(path)
    assert "sku" not in raw.columns  # dropped, but still part of what "exact" means
    res = clean_transactions(raw, duplicates="reject")
    assert res.rows_kept == 2 and res.rejected["source_row"].tolist() == [3]


def test_credentials_are_refused_wherever_a_source_goes():
    for bad in ("postgresql://ana:hunter2@db/x", "mysql://u:p@h/db", "https://api.shop.cn/orders?token=abc123",
                "host=db user=ana password=hunter2"):
        with pytest.raises(LTVError) as err:
            data.refuse_credentials(bad)
        assert "hunter2" not in str(err.value) and "abc123" not in str(err.value)
    for fine in ("postgresql://ana@db/x", "orders.csv", "SELECT * FROM orders WHERE tokens > 2", None, 3):
        data.refuse_credentials(fine)


@pytest.mark.parametrize("bad", [
    "postgresql://analyst:Xy7/Secret#9@host/db",  # / and # in the password: SQLAlchemy's parser decides
    "mysql://u:p w@h/d", "postgresql://analyst:Xy7%2FSecret@host/db", "postgresql://h/d?password=hunter2",
    {"dsn": "postgresql://u:hunter2@db/x"}, ["token=abc123"], {"password": "hunter2"},
    {"nested": [{"deeper": ("api_key=abc123",)}]}, '{"api_key": "abc123"}',
    "SELECT * FROM dblink('postgresql://u:hunter2@h/d', 'SELECT 1')", "https://user:hunter2@files.example/x.csv",
    "SELECT id FROM orders WHERE 'PGPASSWORD=hunter2' <> '' -- s3_secret_access_key=abc123",
    {"db_password": "hunter2"}, {"pw": "hunter2"}, "MYSQL_PWD=hunter2", "AWS_SECRET_ACCESS_KEY=abc123",
    "https://b.s3.example/x.csv?X-Amz-Security-Token=abc123&X-Amz-Signature=abc123",
    "https://a.blob.example/c/x.csv?sv=2020&sig=abc123", "https://x.example/y?api-key=abc123",
    "https://x.example/y?private_token=abc123", "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.abc123.def",
    "CREATE SECRET s3 (TYPE s3, KEY_ID 'a', SECRET 'abc123')",
])
def test_credentials_are_found_in_odd_places_and_never_repeated(bad):
    with pytest.raises(LTVError) as err:
        data.refuse_credentials(bad, "parameter extra")
    message = str(err.value)
    assert "parameter extra" in message and not any(s in message for s in ("hunter2", "abc123", "Secret#9"))


@pytest.mark.parametrize("fine", ["postgresql://u:@h/d", "https://example.com/orders.csv", "Secret: growth plan",
                                  {"columns": ["token_count", "password reset"]}, ["a", 1, None],
                                  "SELECT * FROM t WHERE keyword = 1 AND passenger_count=2", {"max_columns": 5000},
                                  {"customer_id": "会员ID", "amount": "实付金额"}, "monkey=1",
                                  "SELECT * FROM f JOIN c ON f.customer_key=c.customer_key WHERE key=5",
                                  "token_count=1 AND auth_method=2", "SELECT {'key': customer_id} FROM t",
                                  "mysql://u@db/shop?auth_plugin=mysql_native_password",
                                  "postgresql://u@db/shop?sslkey=/path/client.key", {"sort_key": "amount"}])
def test_text_that_only_looks_like_a_credential_passes(fine):
    data.refuse_credentials(fine)


# --------------------------------------------------------------------------- input limits

def test_a_csv_with_too_many_columns_is_refused_before_pandas_reads_it(tmp_path):
    path = tmp_path / "wide.csv"
    n = 200_003
    path.write_text(",".join(f"c{i}" for i in range(n)) + "\n" + ",".join(["1"] * n) + "\n", encoding="utf-8")
    with pytest.raises(LTVError, match=r"^wide.csv has at least [\d,]+ columns in its header, more than the limit of "
                                       r"2,000; raise it with limits=\{'max_columns': \.\.\.\}"):
        read_transactions(path)
    small = tmp_path / "small.csv"
    small.write_text("customer_id,order_date,amount,x1,x2\na,2024-01-01,5,1,2\n", encoding="utf-8")
    with pytest.raises(LTVError, match="has 5 columns in its header, more than the limit of 4"):
        read_transactions(small, limits={"max_columns": 4})
    assert len(read_transactions(small, limits={"max_columns": 5})) == 1


def test_a_line_longer_than_the_limit_is_named_and_shorter_ones_pass(tmp_path):
    path = tmp_path / "long.csv"
    with path.open("w") as fh:
        fh.write("customer_id,order_date,amount\n" + "a,2024-01-01,5\n" * 10)
        fh.write("b,2024-01-02," + "9" * 3_000 + "\n" + "a,2024-01-03,5\n")
    with pytest.raises(LTVError, match=r"^Line 12 of long.csv is longer than 2,000 bytes, the limit for one line"):
        read_transactions(path, limits={"max_line_bytes": 2_000})
    assert len(read_transactions(path, limits={"max_line_bytes": 3_013})) == 12  # 3,013 bytes and its newline
    with pytest.raises(LTVError, match="Line 12 of long.csv is longer than 3,012 bytes"):
        read_transactions(path, limits={"max_line_bytes": 3_012})


def test_a_workbook_that_decompresses_past_the_limit_is_refused(tmp_path):
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["customer_id", "order_date", "amount"])
    book.active.append(["a", "2024-01-01", 5])
    book.save(tmp_path / "small.xlsx")
    # The same workbook with one 3 MB cell (Excel stops at 32,767 characters; a crafted file does not).
    with zipfile.ZipFile(tmp_path / "small.xlsx") as small, \
            zipfile.ZipFile(tmp_path / "orders.xlsx", "w", zipfile.ZIP_DEFLATED) as big:
        for item in small.infolist():
            data = small.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data = data.replace(b"</sheetData>", b'<row r="3"><c r="A3" t="inlineStr"><is><t>'
                                    + b"x" * 3_000_000 + b"</t></is></c></row></sheetData>")
            big.writestr(item, data)
    assert (tmp_path / "orders.xlsx").stat().st_size < 100_000
    with zipfile.ZipFile(tmp_path / "orders.xlsx") as z:
        assert sum(i.file_size for i in z.infolist()) > 3_000_000
    with pytest.raises(LTVError, match=r"orders.xlsx decompresses to 3 MB, more than the limit of 2 MB for a "
                                       r"workbook; raise it with limits=\{'max_unzipped_bytes': \.\.\.\}"):
        read_transactions(tmp_path / "orders.xlsx", limits={"max_unzipped_bytes": 2 * 1024 ** 2})
    assert len(read_transactions(tmp_path / "orders.xlsx")) == 2


@pytest.mark.parametrize("limits, message", [({"max_rows": 5}, "Unknown input limit 'max_rows'"),
                                             ({"max_columns": 0}, "must be a whole number of 1 or more"),
                                             ({"max_columns": "9"}, "must be a whole number")])
def test_input_limits_are_checked(limits, message, tmp_path):
    with pytest.raises(LTVError, match=message):
        read_transactions("cdnow_sample", limits=limits)


def test_a_clients_duckdb_file_cannot_read_local_files(tmp_path):
    import duckdb

    path = tmp_path / "client.duckdb"
    with duckdb.connect(str(path)) as con:
        con.sql("CREATE TABLE base AS SELECT 'c' || i AS customer_id, DATE '2024-01-01' + i::INTEGER AS order_date, "
                "10.0 AS amount FROM range(30) t(i)")
        # The file's only table is a view that would put bytes of /etc/passwd into the amounts.
        con.sql("CREATE VIEW orders AS SELECT customer_id, order_date, "
                "(SELECT length(content) FROM read_text('/etc/passwd')) AS amount FROM base")
        con.sql("DROP TABLE IF EXISTS nothing")
    with pytest.raises(LTVError, match="file system operations are disabled"):
        read_transactions(path, sql="SELECT * FROM orders")
    assert len(read_transactions(path, sql="SELECT * FROM base")) == 30  # the file itself reads


def test_a_form_feed_in_the_header_does_not_hide_its_columns(tmp_path):
    path = tmp_path / "ff.csv"
    header = "customer_id\x0c,order_date,amount," + ",".join(f"c{i}" for i in range(3_000))
    path.write_text(header + "\n" + "a,2024-01-01,5" + "," * 3_000 + "\n", encoding="utf-8")
    with pytest.raises(LTVError, match="has 3,003 columns in its header, more than the limit of 2,000"):
        read_transactions(path)


def test_a_tiny_sheet_that_claims_a_huge_size_is_refused(tmp_path):
    import openpyxl

    book = openpyxl.Workbook()
    book.active.append(["customer_id", "order_date", "amount"])
    book.active.append(["a", "2024-01-01", 5])
    book.active.cell(row=1_048_576, column=16_384, value=1)  # one cell in the last row and column
    book.save(tmp_path / "sparse.xlsx")
    assert (tmp_path / "sparse.xlsx").stat().st_size < 10_000
    with pytest.raises(LTVError, match=r"sparse.xlsx sheet 'Sheet' spans 1,048,576 rows x 16,384 columns, more "
                                       r"than the limit of 100,000,000 cells"):
        read_transactions(tmp_path / "sparse.xlsx")


def test_a_parquet_file_beyond_the_cell_limit_is_refused_before_it_is_read(tmp_path):
    frame = pd.DataFrame({"customer_id": ["a"] * 5_000, "order_date": ["2024-01-01"] * 5_000, "amount": [5.0] * 5_000})
    frame.to_parquet(tmp_path / "orders.parquet")
    with pytest.raises(LTVError, match=r"orders.parquet holds 5,000 rows x 3 columns, more than the limit of "
                                       r"10,000 cells; raise it with limits=\{'max_cells': \.\.\.\}"):
        read_transactions(tmp_path / "orders.parquet", limits={"max_cells": 10_000})
    assert len(read_transactions(tmp_path / "orders.parquet")) == 5_000


def test_a_sheet_whose_dimension_lies_is_measured_by_its_cells(tmp_path):
    import re as regex
    import zipfile

    import openpyxl

    from ltv_helpers.data import read as reader

    book = openpyxl.Workbook()
    book.active.append(["customer_id", "order_date", "amount"])
    book.active.cell(row=900_000, column=200, value=1)
    book.save(tmp_path / "honest.xlsx")
    with zipfile.ZipFile(tmp_path / "honest.xlsx") as honest, \
            zipfile.ZipFile(tmp_path / "liar.xlsx", "w", zipfile.ZIP_DEFLATED) as liar:
        for item in honest.infolist():
            data = honest.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":  # says A1:C2, holds a cell at GR900000
                data = regex.sub(rb'<dimension ref="[^"]*"\s*/>', b'<dimension ref="A1:C2"/>', data)
            liar.writestr(item, data)
    with pytest.raises(LTVError, match=r"liar.xlsx has cells up to 900,000 rows x 200 columns, more than the limit "
                                       r"of 100,000,000 cells"):
        reader._check_workbook_parts(tmp_path / "liar.xlsx", "xl/worksheets/sheet1.xml", 100_000_000)


def test_an_old_mac_csv_with_carriage_returns_only_is_not_one_long_line(tmp_path):
    path = tmp_path / "mac.csv"
    path.write_bytes(b"customer_id,order_date,amount\r" + b"a,2024-01-01,5\r" * 20)
    from ltv_helpers.data import read as reader

    reader._check_csv_lines(path, 64)  # 20 short lines, not one of 330 bytes
    with pytest.raises(LTVError, match="Line 1 of mac.csv is longer than 20 bytes"):
        reader._check_csv_lines(path, 20)


def test_id_positions_are_get_indexers_positions_on_arrow_text_and_others():
    import pyarrow as pa

    from ltv_helpers.data.parse import id_positions

    index = pd.Index(["c3", "a1", "客户2", "b,2", "=1+1"], dtype="str")
    ids = pd.Series(["a1", "zz", "客户2", "c3", "c3", None, "=1+1", "A1"], dtype="str")
    expected = index.get_indexer(ids)
    assert id_positions(ids, index).tolist() == expected.tolist() == [1, -1, 2, 0, 0, -1, 4, -1]
    assert id_positions(pd.Index(ids), index).tolist() == expected.tolist()
    large = pd.Series(pd.arrays.ArrowExtensionArray(pa.array(["a1", "zz", "客户2", "c3", "c3", None, "=1+1", "A1"],
                                                             type=pa.large_string())))
    assert id_positions(large, index).tolist() == expected.tolist()  # other Arrow text types are cast
    assert id_positions(pd.Series([3, 1, 7]), pd.Index([1, 2, 3])).tolist() == [2, 0, -1]  # not text: pandas
    assert id_positions(ids.astype(object), index).tolist() == expected.tolist()
    assert id_positions(ids[:0], index).tolist() == []
    with pytest.raises(LTVError, match="must not repeat"):
        id_positions(ids, pd.Index(["a1", "a1"], dtype="str"))


def test_customer_history_equals_the_summary_query_and_an_independent_group_by(cdnow_sample):
    """The history (numpy on the prepared orders) equals rfm_summary's query bit for bit on its
    columns, and pandas' group-by and DuckDB's exact decimal sum on the plain-money ones, on
    shuffled orders with times of day, several a day, awkward amounts and large sums (past 2**53
    millionths, where DuckDB's cast of a decimal to a double is not a plain division)."""
    import duckdb

    rng = np.random.default_rng(3)
    tx = cdnow_sample.sample(frac=1.0, random_state=4).reset_index(drop=True)
    extra = tx.sample(500, random_state=5).assign(
        order_date=lambda d: d["order_date"] + pd.to_timedelta(rng.integers(0, 86_399, len(d)), "s"),
        amount=lambda d: np.round(rng.gamma(2.0, 20.0, len(d)), 2) + 0.0051)
    big = tx.sample(300, random_state=6).assign(amount=lambda d: rng.uniform(1e9, 9.9e11, len(d)).round(6))
    tx = pd.concat([tx, extra, big], ignore_index=True)
    for end in ("1998-03-31", "1997-02-15", "1998-06-30"):
        history = data.customer_history(tx, observation_end=end)
        upto = tx[tx["order_date"] < pd.Timestamp(end) + pd.Timedelta(days=1)]
        per = upto.groupby("customer_id").agg(orders=("amount", "size"), first_order=("order_date", "min"),
                                              last_order=("order_date", "max"))
        per.index = per.index.astype("str")
        assert history.index.equals(per.index) and history.index.is_monotonic_increasing
        for col in ("orders", "first_order", "last_order"):
            pd.testing.assert_series_equal(history[col], per[col], check_names=False)
        revenue = duckdb.sql("SELECT customer_id, CAST(SUM(CAST(amount AS DECIMAL(18, 6))) AS DOUBLE) AS r "
                             "FROM upto GROUP BY 1 ORDER BY 1").df().set_index("customer_id")["r"]
        assert (history["revenue"].to_numpy() == revenue.to_numpy()).all()
        assert np.allclose(history["revenue"], upto.groupby("customer_id")["amount"].sum(), rtol=1e-12)
        summary = rfm_summary(upto, observation_end=end)
        pd.testing.assert_frame_equal(history[list(summary.columns)], summary, check_exact=True)
        assert history.attrs["unit_days"] == summary.attrs["unit_days"] == 1.0
        assert (history["days_since_last"] == history["T"] - history["recency"]).all()
        assert (history["tenure_days"] == history["T"]).all()
        assert (history["aov"] == history["revenue"] / history["orders"]).all()
    assert list(history.columns) == ["frequency", "recency", "T", "monetary_value", "orders", "revenue",
                                     "first_order", "last_order", "aov", "days_since_last", "tenure_days"]
    assert (history["monetary_value"] > 1e9).any()  # the large sums were in it


def test_exact_sums_become_the_doubles_duckdb_casts_them_to():
    """Whole millionths as DuckDB casts a DECIMAL(38, 6) to DOUBLE, at every magnitude (a plain
    division by a million differs past 2**53)."""
    import duckdb
    import pyarrow as pa

    from ltv_helpers.data.summary import _as_double

    rng = np.random.default_rng(2)
    v = np.concatenate([rng.integers(-10**18 + 1, 10**18 - 1, 200_000), rng.integers(0, 10**10, 200_000),
                        rng.integers(2**53 - 10**6, 2**53 + 10**6, 100_000), [0, 1, -1, 2**53, -(2**53)]])
    buf = np.empty((len(v), 2), dtype=np.int64)
    buf[:, 0], buf[:, 1] = v, v >> 63  # 128-bit two's complement, little end first
    con = duckdb.connect()
    decimals = pa.Array.from_buffers(pa.decimal128(38, 6), len(v), [None, pa.py_buffer(buf)])
    con.register("decimals", pa.table({"x": decimals}))
    theirs = con.sql("SELECT CAST(x AS DOUBLE) AS d FROM decimals").fetchnumpy()["d"]
    assert (_as_double(v) == theirs).all()
    assert (v / 1e6 != theirs).any()  # the case the plain division gets wrong is among them


def test_customer_history_prepares_the_same_transactions_once_and_each_caller_gets_its_own(cdnow_sample,
                                                                                           monkeypatch):
    """The notebooks of a report share one kernel and one frame of transactions: its orders are
    prepared once for histories at any end (and the backtests); a changed copy is prepared again;
    what a caller changes in its history stays its own; orders without a date are in no history."""
    from ltv_helpers.data import summary as sm

    prepared = []
    real = sm.OrderDays.__init__
    monkeypatch.setattr(sm.OrderDays, "__init__", lambda self, tx: prepared.append(1) or real(self, tx))
    end = "1998-03-31"
    first = data.customer_history(cdnow_sample, observation_end=end)
    expected = first.copy(deep=True)
    first["revenue"] = 0.0  # the caller's own
    again = data.customer_history(cdnow_sample.copy(deep=False), observation_end=pd.Timestamp(end))
    pd.testing.assert_frame_equal(again, expected, check_exact=True)
    data.customer_history(cdnow_sample, observation_end="1997-06-30")
    assert prepared == [1]
    changed = cdnow_sample.copy()
    changed.loc[changed.index[0], "amount"] += 1.0
    moved = data.customer_history(changed, observation_end=end)
    assert prepared == [1, 1] and moved["revenue"].sum() == pytest.approx(expected["revenue"].sum() + 1.0)
    undated = cdnow_sample.copy()
    undated.loc[undated.index[:5], "order_date"] = pd.NaT
    pd.testing.assert_frame_equal(data.customer_history(undated, observation_end=end),
                                  data.customer_history(undated.iloc[5:], observation_end=end), check_exact=True)
    assert data.customer_history(cdnow_sample, observation_end="1990-01-01").empty
    with pytest.raises(LTVError, match="carry a time zone"):
        data.customer_history(cdnow_sample.assign(order_date=cdnow_sample["order_date"].dt.tz_localize("Asia/Shanghai")))
    with pytest.raises(LTVError, match="have no customer id"):
        data.customer_history(cdnow_sample.assign(customer_id=cdnow_sample["customer_id"].where(
            cdnow_sample.index > 0)), observation_end=end)


def test_monthly_activity_counts_what_pandas_distinct_counts_give(cdnow_sample):
    """Customers counted on integer codes: pandas' per-month distinct counts of the text ids, on
    CDNOW's sample and on orders with a month without any order and shuffled rows."""
    def by_pandas(tx):
        month = tx["order_date"].dt.to_period("M")
        first = tx.groupby("customer_id", sort=False)["order_date"].transform("min").dt.to_period("M")
        out = pd.DataFrame({"new_customers": tx["customer_id"].where(month == first).groupby(month).nunique(),
                            "orders": month.value_counts(), "revenue": tx["amount"].groupby(month).sum(),
                            "active_customers": tx["customer_id"].groupby(month).nunique()})
        full = pd.period_range(month.min(), month.max(), freq="M")
        out = out.reindex(full, fill_value=0).fillna(0)
        out.index = full.to_timestamp()
        out.index.name = "month"
        return out.astype({"new_customers": "int64", "orders": "int64", "active_customers": "int64"})

    gap = pd.DataFrame({"customer_id": ["b", "a", "a", "c", "b", "a"],
                        "order_date": pd.to_datetime(["2024-03-09", "2024-01-05", "2024-01-20", "2024-04-01",
                                                      "2024-01-31", "2024-04-30"]),
                        "amount": [5.0, 1.5, 2.0, 3.0, 4.0, 1.0]})
    for tx in (cdnow_sample, cdnow_sample.sample(frac=1.0, random_state=1), gap):
        pd.testing.assert_frame_equal(data.monthly_activity(tx), by_pandas(tx), check_exact=True)
    assert data.monthly_activity(gap).loc["2024-02-01"].tolist() == [0, 0, 0, 0]


def test_a_change_to_the_saved_frame_does_not_reach_load_collection(tmp_path):
    """save_collection keeps what it wrote for load_collection; the caller's later changes to its own
    frame stay its own (the file holds the saved values)."""
    from ltv_helpers import data

    raw = pd.DataFrame({"customer_id": ["a", "a", "b"], "order_date": ["2024-01-01", "2024-02-01", "2024-01-05"],
                        "amount": [1.0, 2.0, 3.0]})
    result = data.clean_transactions(raw, observation_end="2024-03-01")
    data.save_collection(result, tmp_path, observation_end="2024-03-01")
    result.transactions.loc[0, "amount"] = 999.0
    result.transactions["extra"] = 1
    loaded, _ = data.load_collection(tmp_path)
    assert "extra" not in loaded and loaded["amount"].iloc[0] == 1.0
