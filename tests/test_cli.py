import json
import subprocess
import sys

import pytest

from ltv_helpers import cli
from ltv_helpers.cli import main


def test_check_good_file_json(tmp_path, capsys):
    path = tmp_path / "orders.csv"
    path.write_bytes("会员ID,支付时间,实付金额\nM1,2024-01-01,￥10\nM1,2024-02-01,20\n,2024-02-02,5\n"
                     .encode("gb18030"))
    assert main(["check", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["rows_in"] == 3 and out["rows_kept"] == 2
    assert out["rejected"] == {"missing customer id": 1}
    assert out["customers"] == 1 and out["revenue"] == 30.0
    assert out["columns"] == {"customer_id": "会员ID", "order_date": "支付时间", "amount": "实付金额"}


def test_check_text_report(tmp_path, capsys):
    path = tmp_path / "o.csv"
    path.write_text("uid,date,revenue\n1,2024-01-01,5\n1,2024-01-09,6\n", encoding="utf-8")
    assert main(["check", str(path), "--observation-end", "2024-01-05"]) == 0
    text = capsys.readouterr().out
    assert "lines read" in text and "orders kept" in text and "rejected: date after observation end" in text


@pytest.mark.parametrize("content, words", [
    (None, "File not found"),
    (b"", "is empty"),
    (b"name,city\nann,x\n",
     "No customer id column found; pass --customer-id <column name>. The columns are: name, city."),
    (b"id,date,amount\n\x01\x02\x03\xff\xfe\x04,2024-01-01,1\n", "neither UTF-8 nor GBK"),
    (b"customer_id,date,amount\n,,\n", "No usable rows"),
])
def test_check_unusable_files_exit_2_with_one_sentence(tmp_path, capsys, content, words):
    path = tmp_path / "bad.csv"
    if content is not None:
        path.write_bytes(content)
    assert main(["check", str(path)]) == 2
    err = capsys.readouterr().err
    assert words in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_console_script_is_installed(tmp_path):
    path = tmp_path / "x.csv"
    path.write_text("nothing\n1\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "ltv_helpers.cli", "check", str(path)],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_report_passes_typed_parameters(monkeypatch, tmp_path, capsys):
    import ltv_helpers.report as report

    seen = {}
    monkeypatch.setattr(report, "render_report",
                        lambda out, params, **kw: seen.update(out=out, params=params, **kw) or tmp_path / "report.html")
    assert main(["report", "orders.csv", "--client", "acme", "--output", str(tmp_path), "--currency", "CNY",
                 "-p", "horizon_months=6", "-p", "customer_id_column=会员ID", "-p", 'models=["bgnbd"]']) == 0
    assert seen["params"] == {"client": "acme", "source": "orders.csv", "language": "en", "currency": "CNY",
                              "horizon_months": 6, "customer_id_column": "会员ID", "models": ["bgnbd"]}
    assert seen["pdf"] is True and f"report: {tmp_path / 'report.html'}" in capsys.readouterr().out
    assert main(["report", "o.csv", "--client", "a", "--output", "x", "--no-pdf"]) == 0 and seen["pdf"] is False
    assert main(["report", "o.csv", "--client", "a", "--output", "x", "-p", "nonsense"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["report", "o.csv", "--client", "a", "--output", "x", "--cac", "c.csv", "--no-baseline"]) == 0
    assert seen["params"]["cac"] == "c.csv" and seen["params"]["baseline_dir"] is None
    assert main(["report", "o.csv", "--client", "a", "--output", "x", "--baseline", "x/run"]) == 0
    assert seen["params"]["baseline_dir"] == "x/run" and "cac" not in seen["params"]
    assert main(["report", "--config", "c.yaml", "--cac", "c.csv"]) == 2
    assert "put cac in the client's entry" in capsys.readouterr().err


def test_report_on_an_unusable_file_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "export.csv"
    bad.write_text("name,city\nann,x\n", encoding="utf-8")
    assert main(["report", str(bad), "--client", "acme", "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ltv report: 01_collection: No customer id column found")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["report", "postgresql://ana:hunter2@127.0.0.1:1/shop", "--sql", "SELECT 1"],
    ["report", "orders.csv", "-p", "source=mysql://ana:hunter2@db/shop"],
    ["report", "https://api.shop.cn/export?token=hunter2"],
])
def test_report_refuses_credentials_before_writing_anything(tmp_path, capsys, argv):
    out = tmp_path / "reports" / "acme"
    assert main(argv + ["--client", "acme", "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "hunter2" not in err and len(err.strip().splitlines()) == 1
    assert "environment variable" in err
    assert not out.exists()
    leaked = [p for p in tmp_path.rglob("*") if p.is_file() and b"hunter2" in p.read_bytes()]
    assert leaked == []


def test_check_refuses_credentials_with_one_sentence(capsys):
    assert main(["check", "postgresql://ana:hunter2@db.example/x", "--sql", "SELECT 1"]) == 2
    err = capsys.readouterr().err
    assert "LTV_DB_PASSWORD" in err and "hunter2" not in err


def test_check_on_an_order_line_export(tmp_path, capsys):
    path = tmp_path / "明细.csv"
    path.write_bytes(("订单编号,会员ID,下单时间,商品名称,数量,单价\n"
                      "A1,M1,2024/3/1 10:00,面霜,2,￥99.00\nA1,M1,2024/3/1 10:00,精华,1,￥199.00\n"
                      "A2,M2,2024/3/2 11:00,面霜,1,abc\nA3,M1,2024/3/9 09:30,精华,-1,199\n").encode("gb18030"))
    assert main(["check", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["columns"] == {"customer_id": "会员ID", "order_date": "下单时间", "order_id": "订单编号",
                              "quantity": "数量", "unit_price": "单价"}
    assert out["rows_in"] == 4 and out["rows_kept"] == 2 and out["orders"] == 1
    assert out["revenue"] == 397.0 and out["repeat_buyers"] == 0
    assert out["warnings"] == [cli.NO_REPEAT_BUYERS]  # one order: nothing to forecast from
    assert out["rejected"] == {"non-numeric unit price": 1, "refund without same-day purchase": 1}
    assert main(["check", str(path)]) == 0
    text = capsys.readouterr().out
    assert "lines read" in text and "orders kept" in text and "rejected: non-numeric unit price" in text


def test_check_raises_an_input_limit_from_the_command_line(tmp_path, capsys):
    path = tmp_path / "orders.csv"
    path.write_text("customer_id,order_date,amount,a,b\nx,2024-01-01,5,1,2\n", encoding="utf-8")
    assert main(["check", str(path), "--max-columns", "4"]) == 2
    assert "more than the limit of 4; raise it with limits=" in capsys.readouterr().err
    assert main(["check", str(path), "--max-columns", "5", "--max-line-bytes", "100"]) == 0


def test_customers_and_repeat_buyers_are_counted_in_any_row_order():
    import pandas as pd

    from ltv_helpers.data.summary import buyer_counts as _customers

    days = ["2024-01-02 00:00", "2024-01-01 00:00", "2024-01-05 00:00", "2024-01-01 10:00", "2024-01-03 00:00"]
    tx = pd.DataFrame({"customer_id": ["b", "a", "b", "a", "c"], "order_date": pd.to_datetime(days)})
    assert _customers(tx) == (3, 1)  # a bought twice on one day: one purchase day
    assert _customers(tx.sort_values(["customer_id", "order_date"])) == (3, 1)


def test_check_warns_with_the_reports_reason_when_no_forecast_is_possible(tmp_path, capsys):
    """Repeat buyers, but too few for the models: ltv check says so in the report's own sentence."""
    rows = [f"c{i},2024-01-{1 + i % 20:02d},10" for i in range(25)] + [f"c{i},2024-03-01,12" for i in range(3)]
    path = tmp_path / "few.csv"
    path.write_text("customer_id,order_date,amount\n" + "\n".join(rows) + "\n", encoding="utf-8")
    assert main(["check", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["customers"] == 25 and out["repeat_buyers"] == 3
    assert out["warnings"] == ["no forecast is possible: Only 3 customers bought on more than one day; the purchase "
                               "models need at least 5 repeat buyers to learn how often customers come back."]


def test_a_kernel_client_thread_ending_with_a_zmq_error_prints_nothing(monkeypatch):
    import sys
    import threading
    from types import SimpleNamespace

    import zmq

    shown = []
    monkeypatch.setattr(threading, "excepthook", lambda args: shown.append(args.exc_value))
    cli._quiet_channel_threads()
    namespace = {"zmq": zmq}
    exec(compile("def run():\n    raise zmq.error.ZMQError(24)\n", "/x/jupyter_client/channels.py", "exec"), namespace)

    def other():
        raise ValueError("shown")

    for target in (namespace["run"], other):
        try:
            target()
        except Exception:
            kind, value, tb = sys.exc_info()
            threading.excepthook(SimpleNamespace(exc_type=kind, exc_value=value, exc_traceback=tb, thread=None))
    assert [str(e) for e in shown] == ["shown"]
