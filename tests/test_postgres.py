"""Reading from a real PostgreSQL server (started by the ``postgres`` fixture) and rendering a
report from it without the password reaching any file."""

import json
import secrets

import pandas as pd
import pytest

from ltv_helpers.cli import main
from ltv_helpers.data import clean_transactions, read_transactions
from ltv_helpers.datasets import synthetic_transactions
from ltv_helpers.schema import LTVError


@pytest.fixture(scope="module")
def shop(postgres):
    """Database ``shop`` owned by ``analyst`` (password protected) with two order tables."""
    import psycopg

    analyst_password = "pw-" + secrets.token_hex(12)
    admin = f"host={postgres['host']} port={postgres['port']} user=postgres dbname=postgres"
    with psycopg.connect(admin, password=postgres["password"], autocommit=True) as con:
        con.execute(f"CREATE ROLE analyst LOGIN PASSWORD '{analyst_password}'")
        con.execute("CREATE DATABASE shop OWNER analyst")
        # Times with a zone are read as wall time of the session's zone (README: set it per role).
        con.execute("ALTER ROLE analyst SET timezone = 'Asia/Shanghai'")
    tx = synthetic_transactions(400, seed=3)
    with psycopg.connect(admin.replace("dbname=postgres", "dbname=shop").replace("user=postgres", "user=analyst"),
                         password=analyst_password) as con:
        con.execute('CREATE TABLE orders_cn ("会员ID" text, "支付时间" timestamptz, "实付金额" numeric(12, 2), '
                    '"手机号" text)')
        with con.cursor() as cur:
            cur.executemany('INSERT INTO orders_cn VALUES (%s, %s, %s, %s)', [
                ("M001", "2024-01-03 10:00:00+08", "1234.50", "13800000000"),
                ("M001", "2024-02-01 23:30:00+08", "66.00", "13800000000"),
                ("M002", "2024-01-05 09:00:00+08", "-88.00", "13900000000"),
                (None, "2024-01-06 09:00:00+08", "5.00", "13700000000"),
            ])
        con.execute("CREATE TABLE orders (customer_id text, order_date timestamp, amount double precision)")
        with con.cursor() as cur:
            cur.executemany("INSERT INTO orders VALUES (%s, %s, %s)",
                            tx[["customer_id", "order_date", "amount"]].itertuples(index=False))
    url = f"postgresql://analyst@{postgres['host']}:{postgres['port']}/shop"
    return {"url": url, "password": analyst_password, "transactions": tx}


def test_reads_a_query_with_the_password_from_the_environment(shop, monkeypatch):
    monkeypatch.delenv("LTV_DB_PASSWORD", raising=False)
    with pytest.raises(LTVError, match=r"Reading from postgresql\+psycopg://analyst@.*/shop failed"):
        read_transactions(shop["url"], sql="SELECT * FROM orders_cn")
    monkeypatch.setenv("LTV_DB_PASSWORD", "wrong-" + shop["password"])
    with pytest.raises(LTVError, match="password authentication failed") as err:
        read_transactions(shop["url"], sql="SELECT * FROM orders_cn")
    assert shop["password"] not in str(err.value)
    monkeypatch.setenv("LTV_DB_PASSWORD", shop["password"])
    raw = read_transactions(shop["url"], sql='SELECT * FROM orders_cn ORDER BY "支付时间"')
    assert raw.attrs["columns"] == {"customer_id": "会员ID", "order_date": "支付时间", "amount": "实付金额"}
    assert "手机号" not in raw.columns
    res = clean_transactions(raw)
    assert res.rows_in == 4 and res.rows_kept == 2
    assert res.report["rows"].to_dict() == {"missing customer id": 1, "refund without same-day purchase": 1}
    # numeric(12, 2) arrives as Decimal; timestamptz is the wall time in the role's zone.
    assert res.transactions["amount"].tolist() == [1234.5, 66.0]
    assert res.transactions["order_date"].tolist() == [pd.Timestamp("2024-01-03 10:00"),
                                                       pd.Timestamp("2024-02-01 23:30")]


def test_reading_the_whole_table_equals_the_data_written(shop, monkeypatch):
    monkeypatch.setenv("LTV_DB_PASSWORD", shop["password"])
    res = clean_transactions(read_transactions(shop["url"], sql="SELECT * FROM orders"))
    expected = clean_transactions(shop["transactions"])
    assert res.rows_in == expected.rows_in == len(shop["transactions"])
    pd.testing.assert_frame_equal(res.transactions, expected.transactions)


def test_report_from_postgres_writes_the_password_nowhere(shop, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LTV_DB_PASSWORD", shop["password"])
    out = tmp_path / "reports" / "pgco"
    code = main(["report", shop["url"], "--client", "pgco", "--output", str(out), "--currency", "CNY",
                 "--sql", "SELECT customer_id, order_date, amount FROM orders", "-p", "draws=20", "--no-pdf"])
    assert code == 0, capsys.readouterr().err
    run = (out / "latest").resolve()
    assert (run / "report.html").is_file()
    secret = shop["password"].encode()
    files = [p for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10
    leaked = [str(p) for p in files if secret in p.read_bytes()]
    assert leaked == []
    # The report really was made from the database: the collection saw every row of the table.
    meta = json.loads((run / "collection.json").read_text(encoding="utf-8"))
    assert meta["rows_in"] == len(shop["transactions"])
    notebook = (run / "01_collection.ipynb").read_text(encoding="utf-8")
    assert shop["url"] in notebook  # the URL (without password) is recorded, as a parameter
    page = (run / "report.html").read_text(encoding="utf-8")
    footer = page[page.index("<footer"):]  # the client reads the database's name, not its user or host
    assert "source = postgresql database shop" in footer and "analyst@" not in footer


def test_mysql_urls_use_the_pinned_pymysql_driver(monkeypatch):
    monkeypatch.setenv("LTV_DB_PASSWORD", "s3cret-value")
    refused = r"Reading from mysql\+pymysql://ana:\*\*\*@127.0.0.1:1/x failed: .*Connection refused"
    with pytest.raises(LTVError, match=refused) as err:
        read_transactions("mysql://ana@127.0.0.1:1/x", sql="SELECT 1")
    assert "No module named" not in str(err.value) and "s3cret-value" not in str(err.value)


def test_the_fixture_server_refuses_wrong_passwords(postgres):
    import psycopg

    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(host=postgres["host"], port=postgres["port"], user="postgres", dbname="postgres",
                        password="not-it", connect_timeout=5)
