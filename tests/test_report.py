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
                                               "currency": "CNY", "language": "en"})
    page = html.read_text(encoding="utf-8")
    assert "Data collection" in page and "lines read" in page
    assert "import " not in page and "read_transactions(" not in page  # no code for clients
    assert "13800000000" not in page  # personal fields never reach the report
    meta = json.loads((out / "collection.json").read_text(encoding="utf-8"))
    assert meta["client"] == "acme" and meta["rows_in"] == 5 and meta["rows_kept"] == 2
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


def test_run_notebook_refuses_a_credential_before_any_file(tmp_path):
    from ltv_helpers.schema import LTVError

    out = tmp_path / "out"
    with pytest.raises(LTVError, match="contains a password"):
        run_notebook("01_collection", out, {"client": "x", "source": "postgresql://a:hunter2@h/db"})
    assert not out.exists()
