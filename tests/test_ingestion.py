"""Real exports' quirks (issue 18): every case is a small file written here, read by
``read_transactions`` + ``clean_transactions`` (or ``ltv check``), and every one reconciles the
lines of the file with the lines kept plus the lines rejected."""

import datetime as dt
import json
import warnings

import numpy as np
import pandas as pd
import pytest

from ltv_helpers import cli
from ltv_helpers.data import clean_transactions, read_transactions
from ltv_helpers.data.parse import parse_numbers
from ltv_helpers.schema import LTVError


def _lines(data: bytes) -> int:
    """Data lines of a CSV: non-blank physical lines after the header."""
    return sum(1 for line in data.splitlines() if line.strip()) - 1


def _check(tmp_path, data: bytes, name="export.csv", records=None, **options):
    path = tmp_path / name
    path.write_bytes(data)
    res = clean_transactions(read_transactions(path, **{k: v for k, v in options.items() if k in READ}),
                             **{k: v for k, v in options.items() if k not in READ})
    assert res.rows_in == res.rows_kept + len(res.rejected)
    assert res.rows_in == (records if records is not None else _lines(data))  # nothing vanished
    return res


READ = {"encoding", "sheet", "customer_id", "order_date", "amount", "order_id", "quantity", "unit_price"}


def _csv(rows, header="customer_id,order_date,amount", sep=",") -> bytes:
    return (header.replace(",", sep) + "\n" + "\n".join(rows) + "\n").encode("utf-8")


# ----------------------------------------------------------------------------- amounts

def test_european_decimal_commas_are_read_as_decimals(tmp_path):
    res = _check(tmp_path, _csv(['a;2024-01-01;"12,50"', 'a;2024-02-01;"3,00"', 'b;2024-01-03;"0,99"'], sep=";"))
    assert res.transactions["amount"].tolist() == [12.5, 3.0, 0.99]
    assert any("decimal comma" in w for w in res.warnings)


@pytest.mark.parametrize("sep", [";", ","])
def test_thousands_dots_with_a_decimal_comma(tmp_path, sep):
    res = _check(tmp_path, _csv([f'a{sep}2024-01-01{sep}"1.234,50"', f'b{sep}2024-01-02{sep}"12,00"',
                                 f'c{sep}2024-01-03{sep}"1.000.000,01"'], sep=sep))
    assert res.transactions["amount"].tolist() == [1234.5, 12.0, 1000000.01]


def test_a_column_mixing_both_conventions_reads_each_value_or_rejects_the_ambiguous(tmp_path):
    res = _check(tmp_path, _csv(['a,2024-01-01,"1,234.56"', 'b,2024-01-02,"1.234,56"', 'c,2024-01-03,"1,234"',
                                 'd,2024-01-04,"12.50"', 'e,2024-01-05,"7,5"']))
    assert res.transactions.set_index("customer_id")["amount"].to_dict() == {
        "a": 1234.56, "b": 1234.56, "d": 12.5, "e": 7.5}
    assert res.rejected["reason"].tolist() == ["ambiguous amount"]
    assert any("mixes decimal commas and decimal points" in w for w in res.warnings)
    one_way = _check(tmp_path, _csv(['a,2024-01-01,"1,234.56"', 'c,2024-01-03,"1,234"']), decimal=".")
    assert one_way.transactions["amount"].tolist() == [1234.56, 1234.0]


def test_number_forms():
    us = parse_numbers(pd.Series(["¥1,200.00", "(12.00)", "-200", "$1,000", "CHF 1'234.50", "1,234,567", "", "abc"]))
    assert us.values.tolist()[:6] == [1200.0, -12.0, -200.0, 1000.0, 1234.5, 1234567.0]
    assert us.decimal == "." and us.missing.tolist()[6] and np.isnan(us.values[7])
    eu = parse_numbers(pd.Series(["1 234,50", "0,5", "1.234.567", "€ 1.000", "-3,25"]))
    assert eu.values.tolist() == [1234.5, 0.5, 1234567.0, 1000.0, -3.25] and eu.decimal == ","
    assert parse_numbers(pd.Series(["1,234", "2,000"])).values.tolist() == [1234.0, 2000.0]  # nothing says comma
    assert parse_numbers(pd.Series(["1,234", "2,50"])).values.tolist() == [1.234, 2.5]  # the column says comma
    assert parse_numbers(pd.Series(["1.234", "2,50", "7"])).values.tolist() == [1234.0, 2.5, 7.0]
    forced = parse_numbers(pd.Series(["12.50", "1,5", "1.234"]), decimal=",")  # a value only a point can write
    assert forced.values.tolist()[1:] == [1.5, 1234.0] and forced.ambiguous.tolist() == [True, False, False]
    assert parse_numbers(pd.Series(["1.234.567", "12"])).values.tolist() == [1234567.0, 12.0]
    cells = parse_numbers(pd.Series([12.345, "12,50", None, 5], dtype=object))  # workbook numbers stay numbers
    assert cells.values.tolist()[:2] == [12.345, 12.5] and cells.values.tolist()[3] == 5.0
    mixed = parse_numbers(pd.Series(["1,234.50", "2,50", "1,000"]))
    assert mixed.decimal == "mixed" and mixed.ambiguous.tolist() == [False, False, True]
    with pytest.raises(LTVError, match="decimal must be"):
        parse_numbers(pd.Series(["1"]), decimal=";")


def test_implausible_amounts_are_rejected(tmp_path):
    res = _check(tmp_path, _csv(["a,2024-01-01,1e308", "a,2024-01-02,5", "b,2024-01-03,1e400", "c,2024-01-04,2e12"]))
    assert res.report.loc["implausible amount", "rows"] == 3
    assert np.isfinite(res.transactions["amount"]).all() and res.transactions["amount"].sum() == 5


def test_zero_amounts_are_purchases_unless_rejected(tmp_path):
    data = _csv(["a,2024-01-01,0", "a,2024-02-01,5", "b,2024-01-03,0.00"])
    res = _check(tmp_path, data)
    assert res.rows_kept == 3 and res.kept_flags == {"zero amount": 2}
    assert _check(tmp_path, data, zero_amounts="reject").report.loc["zero amount", "rows"] == 2


def test_identical_lines_without_an_order_id_are_kept_and_counted(tmp_path):
    data = _csv(["a,2024-01-01,5", "a,2024-01-01,5", "b,2024-01-02,6"])
    res = _check(tmp_path, data)
    assert res.rows_kept == 3 and res.kept_flags == {"exact duplicate": 1}
    assert any("duplicates='reject'" in w for w in res.warnings)
    assert _check(tmp_path, data, duplicates="reject").rows_kept == 2
    with_ids = _check(tmp_path, _csv(["o1,a,2024-01-01,5", "o1,a,2024-01-01,5", "o2,b,2024-01-02,6"],
                                     header="order_id,customer_id,order_date,amount"))
    assert with_ids.rejected["reason"].tolist() == ["exact duplicate"]


# ----------------------------------------------------------------------------- lines and quotes

def test_one_unmatched_quote_costs_one_line(tmp_path):
    rows = [f"c{i % 37},2024-01-{i % 28 + 1:02d},{i}.50,ok" for i in range(1, 150)]
    rows[21] = 'c5,2024-01-05,3.00,"broken'
    rows[40] = 'c9,2024-01-09,4.00,"two\nlines"'  # a quoted field across two lines is one record
    data = _csv(rows, header="customer_id,order_date,amount,note")
    assert _lines(data) == 150  # 149 records, one of them over two lines
    res = _check(tmp_path, data, records=149)
    assert res.rows_kept == 148
    assert res.rejected["reason"].tolist() == ["malformed line"]
    assert "unmatched quote" in res.rejected["read_error"].iloc[0] and "line 23" in res.rejected["read_error"].iloc[0]


# ----------------------------------------------------------------------------- encodings

def _western(encoding: str) -> bytes:
    text = "customer_id,order_date,amount,product\n" + "".join(
        f"c{i % 7},2024-01-{i % 28 + 1:02d},12.50,Französisch Übersetzung\n" for i in range(40))
    return text.encode(encoding)


@pytest.mark.parametrize("encoding, read_as", [("latin-1", "cp1252"), ("cp1252", "cp1252"), ("mac_roman", "mac_roman")])
def test_western_encodings_are_detected(tmp_path, encoding, read_as):
    path = tmp_path / "export.csv"
    path.write_bytes(_western(encoding))
    raw = read_transactions(path, customer_id="customer_id")
    res = clean_transactions(raw)
    assert res.rows_in == res.rows_kept == 40
    notes = [w for w in res.warnings if "not UTF-8" in w]
    assert notes and f"read as {read_as}" in notes[0]
    frame = pd.read_csv(path, encoding=read_as)
    assert frame["product"].iloc[0] == "Französisch Übersetzung"  # the chosen reading is the right text


def test_big5_and_gbk_are_told_apart(tmp_path):
    big5 = ("會員ID,下單時間,實付金額,商品\n" + "".join(f"c{i % 7},2024-01-{i % 28 + 1:02d},12.50,連衣裙 女裝\n"
                                                  for i in range(40))).encode("big5")
    gbk = ("会员ID,下单时间,实付金额,商品\n" + "".join(f"c{i % 7},2024-01-{i % 28 + 1:02d},12.50,连衣裙 女装\n"
                                               for i in range(40))).encode("gbk")
    res = _check(tmp_path, big5)
    assert res.columns["customer_id"] == "會員ID" and any("read as big5" in w for w in res.warnings)
    res = _check(tmp_path, gbk)
    assert res.columns["customer_id"] == "会员ID" and not any("UTF-8" in w for w in res.warnings)


def test_one_gbk_line_in_a_utf8_file_is_rejected_with_its_line_number(tmp_path):
    lines = ("会员ID,下单时间,实付金额,商品\n" + "".join(f"c{i % 7},2024-01-{i % 28 + 1:02d},12.50,连衣裙\n"
                                                 for i in range(40))).encode("utf-8").split(b"\n")
    lines[17] = "c3,2024-01-05,9.90,女装夏季".encode("gbk")
    res = _check(tmp_path, b"\n".join(lines))
    assert res.rows_kept == 39 and res.rejected["reason"].tolist() == ["malformed line"]
    assert "line 18 is not valid utf-8 text" in res.rejected["read_error"].iloc[0]
    assert res.transactions["customer_id"].nunique() == 7


def test_a_file_that_is_not_text_is_refused_in_one_sentence(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes(b"id,date,amount\n" + bytes(range(1, 9)) * 20 + b"\xff\xfe,2024-01-01,1\n")
    with pytest.raises(LTVError, match="neither UTF-8 nor GBK.*pass its encoding"):
        read_transactions(path)


# ----------------------------------------------------------------------------- workbooks

def _retail_workbook(path):
    frame = pd.DataFrame({"Invoice": ["536365", "536366", "536367", "536368"],
                          "Customer ID": [12349.0, np.nan, 12350.0, 12349.0],
                          "InvoiceDate": pd.to_datetime(["2010-12-01 08:26", "2010-12-01 08:28", "2010-12-02 10:00",
                                                         "2010-12-05 11:00"]),
                          "Quantity": [6, 2, 3, 1], "Price": [2.55, 3.39, 1.0, 4.0]})
    with warnings.catch_warnings(), pd.ExcelWriter(path) as writer:
        warnings.simplefilter("ignore")
        frame.to_excel(writer, sheet_name="Year 2009-2010", index=False)
        frame.assign(Invoice=["536400", "536401", "536402", "536403"]).to_excel(
            writer, sheet_name="Year 2010-2011", index=False)
        pd.DataFrame({"note": ["read me"]}).to_excel(writer, sheet_name="Notes", index=False)


def test_other_sheets_are_named_and_all_stacks_those_with_the_same_columns(tmp_path):
    path = tmp_path / "online_retail.xlsx"
    _retail_workbook(path)
    first = clean_transactions(read_transactions(path))
    assert first.rows_in == 4 == first.rows_kept + len(first.rejected)
    assert any("Year 2010-2011 (4 rows)" in w and "all" in w for w in first.warnings)
    both = clean_transactions(read_transactions(path, sheet="all"))
    assert both.rows_in == 8 == both.rows_kept + len(both.rejected)
    assert any("left out: Notes" in w for w in both.warnings)
    with pytest.raises(LTVError, match="no sheet 'Year 2011'.*sheet='all'"):
        read_transactions(path, sheet="Year 2011")


def test_numeric_excel_ids_with_blanks_keep_their_form(tmp_path):
    path = tmp_path / "online_retail.xlsx"
    _retail_workbook(path)
    res = clean_transactions(read_transactions(path))
    assert sorted(res.transactions["customer_id"].unique()) == ["12349", "12350"]
    assert res.rejected["reason"].tolist() == ["missing customer id"]


def test_formula_and_merged_cells_are_named_in_the_reason(tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.append(["customer_id", "order_date", "quantity", "unit_amount", "amount"])
    for i, (cust, day) in enumerate([("c1", 1), ("c1", 2), ("c2", 3), (None, 4), ("c3", 5)], start=2):
        sheet.append([cust, dt.datetime(2024, 1, day), 2, 5.0, f"=C{i}*D{i}" if i < 5 else 9.0])
    sheet.merge_cells("A4:A5")  # c2's cell covers the row under it
    path = tmp_path / "formulas.xlsx"
    book.save(path)
    res = clean_transactions(read_transactions(path))
    assert res.rows_in == 5 == res.rows_kept + len(res.rejected)
    assert dict(zip(res.rejected["source_row"], res.rejected["reason"])) == {
        1: "missing amount: formula not calculated", 2: "missing amount: formula not calculated",
        3: "missing amount: formula not calculated", 4: "missing customer id: merged cell"}


# ----------------------------------------------------------------------------- headers

@pytest.mark.parametrize("header, roles", [
    ("order_id,customer_id,customer_unique_id,order_purchase_timestamp,payment_value",
     {"customer_id": "customer_unique_id", "order_date": "order_purchase_timestamp", "amount": "payment_value"}),
    ("entity_id,customer_id,created_at,grand_total,subtotal",
     {"customer_id": "customer_id", "order_date": "created_at", "amount": "grand_total"}),
    ("订单编号,买家会员名,买家实际支付金额,订单创建时间",
     {"customer_id": "买家会员名", "order_date": "订单创建时间", "amount": "买家实际支付金额"}),
])
def test_more_headers_are_recognised(tmp_path, header, roles):
    values = {"order_purchase_timestamp": "2024-01-01", "created_at": "2024-01-01", "订单创建时间": "2024-01-01"}
    row = ",".join(values.get(h, "7") for h in header.split(","))
    res = _check(tmp_path, (header + "\n" + row + "\n").encode("utf-8"))
    assert {k: res.columns[k] for k in roles} == roles


def test_several_candidate_columns_and_a_header_named_twice_are_stated(tmp_path):
    res = _check(tmp_path, _csv(["a,2024-01-01,5,6,7", "a,2024-02-01,5,6,8"],
                                header="customer_id,order_date,amount,total,amount"))
    assert res.columns["amount"] == "amount"
    assert any("also found: total" in w for w in res.warnings)
    assert any("names amount twice" in w and "amount='amount.1'" in w for w in res.warnings)


# ----------------------------------------------------------------------------- ltv check and report

def test_check_warns_when_no_customer_bought_twice(tmp_path, capsys):
    path = tmp_path / "olist.csv"
    path.write_bytes(_csv([f"o{i},2024-01-{i:02d},{i}" for i in range(1, 21)]))
    assert cli.main(["check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "warning: 0 repeat buyers: no forecast is possible; map ids with combine_sources" in out


def test_check_json_carries_every_figure_of_the_text(tmp_path, capsys):
    path = tmp_path / "x.csv"
    path.write_bytes(_csv(["a,2024-01-01,10", "a,2024-01-01,-4", "a,2024-02-01,0", "b,2024-01-03,5", "b,2024-01-03,5"]))
    assert cli.main(["check", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["refunds_netted"] == 4.0 and out["kept_flagged"] == {"exact duplicate": 1, "zero amount": 1}
    assert out["rows_rejected"] == 1 and out["repeat_buyers"] == 1
    assert cli.main(["check", str(path), "--json", "--zero-amounts", "reject", "--duplicates", "reject"]) == 0
    strict = json.loads(capsys.readouterr().out)
    assert strict["rejected"] == {"zero amount": 1, "exact duplicate": 1, "refund netted into same-day purchase": 1}


def test_messages_name_the_option_the_way_the_interface_takes_it(tmp_path, capsys, monkeypatch):
    path = tmp_path / "x.csv"
    path.write_bytes(_csv(["a,2024-01-01,5"], header="customer_id,order_date,grand_totl"))
    assert cli.main(["check", str(path), "--amount", "grand_total"]) == 2
    assert "(given as --amount grand_total)" in capsys.readouterr().err
    with pytest.raises(LTVError, match=r"given as amount='grand_total'"):
        read_transactions(path, amount="grand_total")
    monkeypatch.setenv("LTV_INTERFACE", "yaml")
    with pytest.raises(LTVError, match=r"given as columns: \{amount: grand_total\}"):
        read_transactions(path, amount="grand_total")
    monkeypatch.setenv("LTV_INTERFACE", "notebook")
    with pytest.raises(LTVError, match=r"given as amount_column = 'grand_total'"):
        read_transactions(path, amount="grand_total")


def test_report_takes_every_reading_option_of_check():
    from ltv_helpers.options import OPTIONS, from_arguments, notebook_parameters
    from ltv_helpers.report import notebook_parameters as declared

    collection = declared()["01_collection"]
    assert {o.parameter for o in OPTIONS} | {"limits"} <= collection
    parser = cli.argparse.ArgumentParser()
    from ltv_helpers.options import add_arguments

    add_arguments(parser)
    args = parser.parse_args(["--amount", "grand_total", "--sheet", "all", "--encoding", "cp1252", "--decimal", ",",
                              "--zero-amounts", "reject", "--duplicates", "keep", "--monthfirst", "--max-columns", "9"])
    params = notebook_parameters(*from_arguments(args))
    assert params == {"amount_column": "grand_total", "sheet": "all", "encoding": "cp1252", "dayfirst": False,
                      "decimal": ",", "zero_amounts": "reject", "duplicates": "keep", "limits": {"max_columns": 9}}


def test_every_option_is_a_key_of_the_clients_yaml():
    from ltv_helpers import batch
    from ltv_helpers.options import OPTIONS

    params = batch._client_parameters("acme", {
        "source": "orders.csv", "decimal": ",", "zero_amounts": "reject", "duplicates": "keep", "sheet": "all",
        "limits": {"max_columns": 5000}, "columns": {"amount": "grand_total", "channel": "shop"}})
    assert params["decimal"] == "," and params["amount_column"] == "grand_total" and params["channel_column"] == "shop"
    assert params["limits"] == {"max_columns": 5000}
    # The keys come from OPTIONS; what can fail is the example file a consultant copies, which
    # must show every one of them.
    example = open("reports/clients.example.yaml", encoding="utf-8").read()
    for opt in OPTIONS:
        assert f" {opt.yaml.split('.')[-1]}:" in example, opt.yaml
    with pytest.raises(LTVError, match="acme.*duplicates must be one of auto, reject, keep"):
        batch._client_parameters("acme", {"source": "x.csv", "duplicates": "drop"})


# ----------------------------------------------------------------------------- found in review

def test_a_quote_open_to_the_end_of_the_file_costs_one_line(tmp_path):
    data = b'customer_id,order_date,amount\nA,2024-01-05,1\nB,"2024-01-06,3\nC,2024-01-07,2\nD,2024-01-08,4\n'
    res = _check(tmp_path, data)
    assert res.rows_kept == 3 and res.rejected["reason"].tolist() == ["malformed line"]


def test_a_gbk_export_with_a_cut_character_is_still_gbk(tmp_path):
    rows = "".join(f"c{i % 7},2024-01-{i % 28 + 1:02d},12.50,北京市朝阳区\n" for i in range(40))
    lines = ("会员ID,下单时间,实付金额,地址\n" + rows).encode("gbk").split(b"\n")
    lines[5] = "c9,2024-01-09,3.00,北京市朝阳".encode("gbk") + "区".encode("gbk")[:1]
    data = b"\n".join(lines)
    res = _check(tmp_path, data)
    assert res.columns["customer_id"] == "会员ID" and res.rows_kept == 39
    given = _check(tmp_path, data, encoding="gb18030")
    assert given.rows_kept == 39 and given.report.loc["malformed line", "rows"] == 1


def test_utf16_with_a_quoted_field_over_two_lines(tmp_path):
    text = 'customer_id,order_date,amount,address\nA,2024-01-05,1,"l1\nl2"\nB,2024-01-06,3,x\n'
    res = _check(tmp_path, text.encode("utf-16"), records=2)
    assert res.rows_kept == 2 and res.rejected.empty


def test_bad_fields_and_bad_text_in_one_file_are_both_malformed_lines(tmp_path):
    lines = _csv([f"c{i},2024-01-{i + 1:02d},{i}" for i in range(20)]).split(b"\n")
    lines[3] = b"c2,2024-01-03,2,extra"
    lines[7] = "c6,2024-01-07,6,女装".encode("gbk")
    res = _check(tmp_path, b"\n".join(lines))
    assert res.rows_kept == 18 and res.report.loc["malformed line", "rows"] == 2


def test_hour_24_is_not_a_time():
    from ltv_helpers.data.parse import parse_dates

    got = parse_dates(pd.Series(["2024-01-05 24:00", "2024-01-05 23:59"]))[0].tolist()
    assert pd.isna(got[0]) and got[1] == pd.Timestamp("2024-01-05 23:59")


def test_a_hash_collision_still_finds_the_real_duplicate():
    raw = pd.DataFrame({"customer_id": ["A", "B", "B"], "order_id": ["o1", "o2", "o2"],
                        "order_date": ["2024-01-01"] * 3, "amount": ["5", "6", "6"],
                        "row_key": np.array([42, 42, 42], dtype=np.uint64)})
    res = clean_transactions(raw)
    assert res.rejected["source_row"].tolist() == [3] and res.rejected["reason"].tolist() == ["exact duplicate"]


def test_options_are_spelled_so_they_can_be_pasted():
    import yaml

    from ltv_helpers.options import spell

    assert spell("amount", "Order Total", "cli") == "--amount 'Order Total'"
    assert yaml.safe_load(spell("decimal", ",", "yaml")) == {"decimal": ","}
    assert yaml.safe_load(spell("amount", "2024", "yaml")) == {"columns": {"amount": "2024"}}


def test_reading_options_beside_a_config_are_refused(capsys):
    assert cli.main(["report", "--config", "reports/clients.example.yaml", "--amount", "x"]) == 2
    assert "put amount in the client's entry" in capsys.readouterr().err
