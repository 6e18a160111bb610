import json

import pandas as pd
import pytest

from ltv_helpers.report import run_notebook


def test_collection_notebook_renders_client_html_on_a_client_file(tmp_path):
    src = tmp_path / "export.csv"
    src.write_bytes(("会员ID,支付时间,实付金额,手机号\n"
                     "M1,2024-01-03,￥100,13800000000\nM1,2024-03-04,50,13800000000\n"
                     "M2,2024-02-01,80,13900000000\nM2,2024-02-01,-80,13900000000\n"
                     "M3,bad,10,13700000000\n").encode("gb18030"))
    out = tmp_path / "report"
    html = run_notebook("01_collection", out, {"client": "acme", "source": str(src),
                                               "currency": "CNY", "language": "en"}, html=True)
    page = html.read_text(encoding="utf-8")
    assert "Data collection" in page and "lines read" in page
    assert "import " not in page and "read_transactions(" not in page  # no code for clients
    assert "13800000000" not in page  # personal fields never reach the report
    meta = json.loads((out / "collection.json").read_text(encoding="utf-8"))
    assert meta["client"] == "acme" and meta["rows_in"] == 5 and meta["rows_kept"] == 2
    import hashlib

    assert meta["input_sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()  # as sha256sum prints it
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert sorted(rejected["reason"]) == ["fully refunded", "refund netted into same-day purchase",
                                          "unparseable date"]
    assert len(pd.read_parquet(out / "rfm_summary.parquet")) == 1


def test_pseudonyms_are_hmac_keyed_stable_and_hide_the_id():
    import hashlib
    import hmac

    from ltv_helpers.report import pseudonymize

    ids = pd.Series(["00042", "00043", "00042"])
    a = pseudonymize(ids, "k1")
    assert a.iloc[0] == a.iloc[2] != a.iloc[1]
    assert a.str.match(r"^C-[0-9a-f]{12}$").all()
    assert not a.str.contains("00042").any()
    assert (pseudonymize(ids, "k2") != a).all()
    # HMAC-SHA256 with the key, not a hash of key + id that anyone can enumerate.
    assert a.iloc[0] == "C-" + hmac.new(b"k1", b"00042", hashlib.sha256).hexdigest()[:12]
    assert a.iloc[0] != "C-" + hashlib.sha256(b"k1\x0000042").hexdigest()[:12]


def test_pseudonym_key_is_random_per_client_kept_outside_reports(tmp_path, monkeypatch):
    from ltv_helpers.report import pseudonym_key, pseudonym_key_dir, pseudonymize

    monkeypatch.delenv("LTV_PSEUDONYM_KEY", raising=False)
    monkeypatch.setenv("LTV_KEY_DIR", str(tmp_path / "keys"))
    first = pseudonymize(["7", "8"], client="acme")
    assert pseudonymize(["7", "8"], client="acme").tolist() == first.tolist()  # same across runs
    assert pseudonymize(["7", "8"], client="globex").tolist() != first.tolist()
    # Never derived from the client name: the key is random, 256 bits, owner-readable only.
    files = sorted(pseudonym_key_dir().glob("*.key"))
    assert len(files) == 2 and all(f.stat().st_mode & 0o077 == 0 for f in files)
    assert len(pseudonym_key("acme")) == 64
    monkeypatch.setenv("LTV_KEY_DIR", str(tmp_path / "other-machine"))
    assert pseudonymize(["7"], client="acme").iloc[0] != first.iloc[0]  # random, not derived from the name
    assert first.iloc[0] != pseudonymize(["7"], "acme").iloc[0]
    monkeypatch.setenv("LTV_PSEUDONYM_KEY", "team-secret")
    assert pseudonymize(["7"], client="acme").iloc[0] == pseudonymize(["7"], "team-secret").iloc[0]


def _first_key(args):
    import os

    from ltv_helpers.report import pseudonym_key

    barrier, key_dir = args
    os.environ["LTV_KEY_DIR"] = key_dir
    barrier.wait()
    try:
        return pseudonym_key("acme").decode()
    except Exception as err:  # noqa: BLE001 - the test counts failures
        return f"failed: {err}"


def test_parallel_first_runs_of_a_client_all_get_the_one_key(tmp_path, monkeypatch):
    import multiprocessing as mp

    monkeypatch.delenv("LTV_PSEUDONYM_KEY", raising=False)
    context = mp.get_context("spawn")  # no fork of a process that has threads (it can deadlock)
    with context.Pool(4) as pool:
        manager = context.Manager()
        for attempt in range(40):
            barrier = manager.Barrier(4)
            keys = pool.map(_first_key, [(barrier, str(tmp_path / f"keys{attempt}"))] * 4)
            assert len(set(keys)) == 1 and len(keys[0]) == 64, keys
            left = [p.name for p in (tmp_path / f"keys{attempt}").iterdir()]
            assert len(left) == 1 and left[0].startswith("acme-") and left[0].endswith(".key")  # no temporary file


def test_run_notebook_refuses_a_credential_before_any_file(tmp_path):
    from ltv_helpers.schema import LTVError

    out = tmp_path / "out"
    with pytest.raises(LTVError, match="contains a password"):
        run_notebook("01_collection", out, {"client": "x", "source": "postgresql://a:hunter2@h/db"})
    assert not out.exists()


def test_rows_without_a_file_get_a_stable_fingerprint(tiny):
    from ltv_helpers.data import read_transactions

    a = read_transactions(tiny).attrs["sha256"]
    assert a == read_transactions(tiny.copy()).attrs["sha256"] and len(a) == 64
    changed = tiny.copy()
    changed.loc[4, "amount"] = 8.01
    assert read_transactions(changed).attrs["sha256"] != a


def test_styled_tables_have_human_labels_and_reading_formats():
    from ltv_helpers.report import styled

    table = pd.DataFrame({"expected_purchases": [1234.5], "total_error_pct": [-5.31], "p_alive": [0.8123],
                          "clv": [765099.6], "expected_spend": [36.03], "orders": pd.array([1200], "int64")},
                         index=pd.Index(["mbgnbd"], name="model"))
    en = styled(table, "en", "USD").to_html()
    for text in ("expected purchases", "1,234.50", "total error", "-5.3%", "P(alive)", "81.2%",
                 "CLV (USD)", "765,100", "expected order value (USD)", "36.03", "1,200", "MBG/NBD", ">model<"):
        assert text in en, text
    zh = styled(table, "zh", "CNY").to_html()
    for text in ("预计购买次数", "总量偏差", "P(活跃)", "CLV（CNY）", "预计客单价（CNY）", "订单数", "模型"):
        assert text in zh, text
    assert "expected" not in zh and "total" not in zh


def test_findings_are_written_from_the_numbers_in_both_languages():
    import re

    from ltv_helpers.findings import Headline, findings

    h = Headline(client="acme", currency="CNY", observation_end="2024-06-30", customers=1000, revenue=5e5,
                 repeat_share=0.4, top20_share=0.7, high_customers=150, high_share=0.15, high_revenue_share=0.55,
                 risk_customers=80, risk_revenue_share=0.2, past_revenue=2e5, horizon_months=12, gross_margin=0.4,
                 annual_discount_rate=0.1, purchases=(900.0, 850.0, 950.0), forecast_revenue=(1.5e5, 1.4e5, 1.6e5),
                 clv=(5e4, 4.6e4, 5.4e4), model="bgnbd", holdout_days=182, mae=0.5, total_error_pct=-3.2,
                 baseline="naive", baseline_mae=0.625)
    en = findings(h, "en")
    assert len(en) == 5
    assert "top 20% of customers brought 70%" in en[0] and "150 high-value customers" in en[0]
    assert en[1].startswith("60% of customers bought only once")
    assert "80 customers" in en[2] and "20% of revenue" in en[2]
    assert "CNY 150,000 (90% interval CNY 140,000 to CNY 160,000), 25% below the CNY 200,000" in en[3]
    assert "BG/NBD" in en[4] and "20% less than the best simple baseline" in en[4] and "3.2% too low" in en[4]
    zh = findings(h, "zh")
    assert not any(re.search(r"[A-Za-z]{3,} [A-Za-z]{3,}", s) for s in zh), zh
    assert "偏低 3.2%" in zh[4] and "比前期低 25%" in zh[3]
    worse = findings(Headline(**{**h.__dict__, "mae": 0.7, "risk_customers": 0}), "en")
    assert len(worse) == 4 and "no better than the simple baseline" in worse[-1]
