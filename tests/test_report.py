import json
import re
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest

from conftest import pdf_text
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
    with context.Pool(4) as pool, context.Manager() as manager:
        for attempt in range(40):
            barrier = manager.Barrier(4)
            keys = pool.map(_first_key, [(barrier, str(tmp_path / f"keys{attempt}"))] * 4)
            assert len(set(keys)) == 1 and len(keys[0]) == 64, keys
            left = [p.name for p in (tmp_path / f"keys{attempt}").iterdir()]
            assert len(left) == 1 and left[0].startswith("acme-") and left[0].endswith(".key")  # no temporary file


def test_the_notebooks_of_a_run_share_a_kernel_cleared_between_them(tmp_path, monkeypatch):
    """In shared_kernel() the package's notebooks run in one kernel: the next notebook finds none of
    the last one's variables, display options, figures, warning filters, environment (01 sets
    LTV_INTERFACE), working folder or Matplotlib settings (a user's rc file stays in force); a
    kernel a cell killed is started again; the kernel ends with the block."""
    import psutil

    from ltv_helpers.report import shared_kernel

    rc = tmp_path / "matplotlibrc"
    rc.write_text("image.cmap: cividis\n")
    monkeypatch.setenv("MATPLOTLIBRC", str(rc))
    monkeypatch.delenv("LTV_INTERFACE", raising=False)
    probe = ("import os, sys, warnings, pandas as pd, matplotlib as mpl, matplotlib.pyplot as plt\n"
             "print([n for n in ('raw', 'result', 'activity', 'lb', '_plt', '_filters', '_release_memory') "
             "if n in globals()], "
             "pd.get_option('display.float_format'), mpl.rcParams['image.cmap'], len(plt.get_fignums()), "
             "os.environ.get('LTV_INTERFACE'), warnings.filters == sys._ltv_kernel_start[0], "
             "os.getcwd() == sys._ltv_kernel_start[3], 'ltv_helpers.plots' in sys.modules)")

    def ask(kernel) -> str:
        seen = {}
        kc = kernel.manager.blocking_client()
        kc.start_channels()
        try:
            reply = kc.execute_interactive(probe, timeout=60, output_hook=lambda msg: seen.update(
                text=msg["content"].get("text", seen.get("text"))))
        finally:
            kc.stop_channels()
        assert reply["content"]["status"] == "ok"
        return seen["text"].strip()

    with shared_kernel() as kernel:
        run_notebook("01_collection", tmp_path, {"client": "x", "source": "cdnow_sample"})
        pid = kernel.manager.provisioner.pid
        kc = kernel.manager.blocking_client()
        kc.start_channels()  # what a notebook might leave behind
        kc.execute_interactive("import os, warnings, matplotlib as mpl; warnings.simplefilter('error'); "
                               "os.chdir('/'); mpl.rcParams['image.cmap'] = 'magma'", timeout=60)
        kc.stop_channels()
        assert " magma 0 notebook False False " in ask(kernel)
        kernel.fresh()
        assert ask(kernel) == "[] None cividis 0 None True True True"  # modules stay: the saving
        assert psutil.pid_exists(pid)
        run_notebook("02_segmentation", tmp_path, {"client": "x"})
        psutil.Process(pid).kill()  # a cell that kills its kernel: the next notebook has a new one
        psutil.Process(pid).wait(10)
        run_notebook("05_summary", tmp_path, {"client": "x"})
        restarted = kernel.manager.provisioner.pid
        assert restarted != pid
    counts = [c.execution_count for c in nbformat.read(tmp_path / "02_segmentation.ipynb", 4).cells
              if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))  # its own numbering, not the kernel's running count
    assert not psutil.pid_exists(restarted) or psutil.Process(restarted).status() == psutil.STATUS_ZOMBIE


def test_threads_each_render_in_their_own_kernel(tmp_path):
    """The shared kernel is per thread: two runs in threads of one process never share one."""
    import threading

    from ltv_helpers import report

    seen = {}

    def run(name):
        with report.shared_kernel() as kernel:
            seen[name] = (kernel, report._SHARED_KERNEL.get())

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(k is mine for k, mine in seen.values()) and seen["a"][0] is not seen["b"][0]
    assert report._SHARED_KERNEL.get() is None


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
                          "clv": [765099.6], "expected_spend": [36.03], "orders": pd.array([1200], "int64"),
                          "customers": [12313.0], "note": ["text"]},
                         index=pd.Index(["mbgnbd"], name="model"))
    en = styled(table, "en", "USD").to_html()
    for text in ("expected purchases", "1,234.50", "total error", "-5.3%", "probability still active", "81.2%",
                 "CLV (USD)", "765,100", "expected order value (USD)", "36.03", "1,200", "MBG/NBD", ">model<",
                 ">12,313<"):
        assert text in en, text
    assert "12,313.00" not in en  # a count that a missing value made a float is still a count
    # The index's name sits in the header row's corner, not on a row of its own.
    head = en.split("<thead>")[1].split("</thead>")[0]
    assert head.count("<tr>") == 1 and ">model<" in head
    # Numbers right-aligned under right-aligned headers, text to the left.
    for cell in ("th.col_heading.col0", "td.col0"):
        assert re.search(re.escape(cell) + r"\s*\{\s*text-align: right", en), cell
    for cell in ("th.col_heading.col7", "td.col7"):
        assert re.search(re.escape(cell) + r"\s*\{\s*text-align: left", en), cell
    # A table of measures whose values are already formatted text (the data-quality table) reads
    # as numbers too: right-aligned, with the index name in the corner.
    measures = pd.DataFrame({"value": ["69,659", "0", "1997-01-01", "2,500,315.63", "customer_id"]},
                            index=pd.Index(["lines read", "lines rejected", "first order", "revenue", "column"],
                                           name="measure"))
    text = styled(measures, "en").to_html()
    assert re.search(r"td\.col0\s*\{\s*text-align: right", text)
    assert text.split("<thead>")[1].split("</thead>")[0].count("<tr>") == 1
    zh = styled(table, "zh", "CNY").to_html()
    for text in ("预计购买次数", "总量偏差", "仍活跃的概率", "CLV（CNY）", "预计客单价（CNY）", "订单数", "模型"):
        assert text in zh, text
    assert "expected" not in zh and "total" not in zh


def _headline(**changes):
    """A client's headline numbers, as the summary page quotes them."""
    from ltv_helpers.findings import Headline

    values = dict(client="acme", currency="CNY", observation_end="2024-06-30", customers=1000, revenue=5e5,
                  repeat_share=0.4, top20_share=0.7, high_customers=150, high_share=0.15, high_revenue_share=0.55,
                  risk_customers=80, risk_revenue_share=0.2, past_revenue=2e5, horizon_months=12, gross_margin=0.4,
                  annual_discount_rate=0.1, purchases=(900.0, 850.0, 950.0), forecast_revenue=(1.5e5, 1.4e5, 1.6e5),
                  clv=(5e4, 4.6e4, 5.4e4), model="bgnbd", holdout_days=182, mae=0.5, total_error_pct=-3.2,
                  baseline="naive", baseline_mae=0.625)
    return Headline(**{**values, **changes})


def test_findings_are_written_from_the_numbers_in_both_languages():
    import re

    from ltv_helpers.findings import Headline, findings

    h = _headline()
    en = findings(h, "en")
    assert len(en) == 5
    assert "top 20% of customers brought 70%" in en[0] and "150 high-value customers" in en[0]
    assert en[1].startswith("60% of customers bought only once")
    assert "80 customers" in en[2] and "20% of revenue" in en[2]
    assert "CNY 150,000 (90% interval CNY 140,000 to CNY 160,000), 25% below the CNY 200,000" in en[3]
    # The summary speaks of a repeat-purchase model; the model's name is for the appendix.
    assert "repeat-purchase model" in en[4] and "BG/NBD" not in " ".join(en)
    assert "20% less than the best simple baseline" in en[4] and "3.2% too low" in en[4]
    zh = findings(h, "zh")
    assert not any(re.search(r"[A-Za-z]{3,} [A-Za-z]{3,}", s) for s in zh), zh
    assert "偏低 3.2%" in zh[4] and "比前期低 25%" in zh[3]
    worse = findings(Headline(**{**h.__dict__, "mae": 0.7, "risk_customers": 0}), "en")
    assert len(worse) == 4 and "no better than the simple baseline" in worse[-1]


def test_the_summary_cards_give_value_per_customer_and_call_revenue_without_a_margin_what_it_is():
    from ltv_helpers.findings import Headline, cards

    h = _headline(gross_margin=1.0)
    page = cards(h)
    assert "discounted expected revenue, next 12 months" in page and "CLV = this x gross margin" in page
    assert "CNY 150.00 per customer" in page and "CNY 50.00 per customer" in page
    assert "BG/NBD" not in page and "repeat-purchase model" in page and ">20%<" in page
    with_margin = cards(Headline(**{**h.__dict__, "gross_margin": 0.4}))
    assert "CLV, next 12 months" in with_margin and "margin 40%" in with_margin
    assert "复购模型" in cards(h, "zh") and "每位客户 CNY 150.00" in cards(h, "zh")


# --------------------------------------------------------------------------- hostile values

HOSTILE = {
    "client": "evil<script>document.title='pwned'</script>",
    "title": "<img src=x onerror=alert(2)>Q4 *review* $x$",
    "currency": '<iframe src="file:///etc/passwd" width=800 height=400></iframe>',
}
HOSTILE_COLUMN = "amount<script>alert(3)</script>"
HOSTILE_IDS = ['=HYPERLINK("http://evil.example","c0")', "+cmd|' /C calc'!A0", "@SUM(1+1)",
               "<img src=x onerror=alert(4)>"]


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory, cdnow_sample, chromium_path):
    """A whole report (HTML and PDF) with hostile text in every field the operator controls and
    in the data: client, title, currency, a column header and customer ids."""
    from ltv_helpers.report import render_report

    root = tmp_path_factory.mktemp("hostile")
    tx = cdnow_sample[["customer_id", "order_date", "amount"]].copy()
    tx["customer_id"] = tx["customer_id"].astype(str)
    first = tx["customer_id"].unique()[: len(HOSTILE_IDS)]
    tx["customer_id"] = tx["customer_id"].replace(dict(zip(first, HOSTILE_IDS)))
    tx = tx.rename(columns={"amount": HOSTILE_COLUMN})
    tx.to_csv(root / "orders.csv", index=False)
    html = render_report(root / "reports", {**HOSTILE, "source": str(root / "orders.csv"), "draws": 20,
                                            "amount_column": HOSTILE_COLUMN})
    return html


def _elements(page: str) -> list[tuple[str, dict]]:
    from html.parser import HTMLParser

    found = []

    class Collect(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.append((tag, dict(attrs)))

    Collect().feed(page)
    return found


def test_hostile_values_show_as_text_and_nothing_in_the_page_can_act(hostile_run):
    import html as html_lib

    page = hostile_run.read_text(encoding="utf-8")
    elements = _elements(page)
    assert not [t for t, _ in elements if t in ("script", "iframe", "object", "embed", "form", "link", "svg")]
    assert not [a for _, attrs in elements for a in attrs if a.startswith("on")]
    assert all(attrs["src"].startswith("data:image/") for t, attrs in elements if t == "img")
    policy = [attrs["content"] for t, attrs in elements if t == "meta" and attrs.get("http-equiv")]
    assert policy == ["default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
                      "base-uri 'none'; form-action 'none'"]
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page))  # what the reader sees, as characters
    for value in (*HOSTILE.values(), HOSTILE_COLUMN):
        assert value in text, value  # shown as typed
    assert "Q4 *review* $x$" in text and "<em>review</em>" not in page  # no Markdown either


def test_the_printed_report_holds_no_byte_of_a_local_file(hostile_run, pdftotext):
    from pathlib import Path

    pdf = hostile_run.with_suffix(".pdf")
    text = pdf_text(pdftotext, pdf)
    local = [line for line in Path("/etc/passwd").read_text().splitlines() if line.strip()]
    assert local and not any(line in text for line in local)
    assert "root:x:0:0" not in text and "evil<script>" in text  # the hostile client shows as text


def test_crm_exports_neutralise_formula_ids_and_the_footer_names_only_the_file(hostile_run):
    run = hostile_run.parent
    segments = pd.read_csv(run / "segments.csv", encoding="utf-8-sig", dtype=str)
    ids = set(segments["customer_id"])
    assert {"'" + v for v in HOSTILE_IDS[:3]} <= ids and HOSTILE_IDS[3] in ids
    assert not segments["customer_id"].str.match(r"^[=+\-@\t\r]").any()
    # Parquet keeps the ids as they are (no spreadsheet reads it), so joins back to the CRM work.
    assert set(HOSTILE_IDS) <= set(pd.read_parquet(run / "segments.parquet").index)
    page = hostile_run.read_text(encoding="utf-8")
    footer = page[page.index("<footer"):]
    assert "source = orders.csv" in footer and str(run.parent.parent) not in footer
    stamp = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert stamp["status"] == "complete" and (run.parent / "latest").resolve() == run


@pytest.mark.parametrize("snippet", [
    "<script>alert(1)</script>", '<img src="file:///etc/passwd">', '<img src=x onerror="alert(1)">',
    '<iframe src="file:///etc/passwd"></iframe>', '<object data="x"></object>', '<embed src="x">',
    '<meta http-equiv="refresh" content="0;url=file:///etc/passwd">', '<link rel="stylesheet" href="x.css">',
    '<a href="javascript:alert(1)">x</a>', '<div style="background:url(file:///etc/passwd)">x</div>',
    "<style>@import 'file:///etc/passwd';</style>", '<svg onload="alert(1)"></svg>', "<base href='http://x/'>",
    '<form action="http://x"><input name=a></form>',
])
def test_a_page_with_active_content_is_never_written(snippet):
    from ltv_helpers.report import check_client_html
    from ltv_helpers.schema import LTVError

    safe = ('<html><head><meta charset="utf-8"><style>.a{background:url(data:image/png;base64,AA==)}</style>'
            '</head><body><a href="#s1-0">x</a><img src="data:image/png;base64,AA==">{}</body></html>')
    assert check_client_html(safe.replace("{}", "")) == safe.replace("{}", "")
    with pytest.raises(LTVError, match="report.html was not written: it would hold"):
        check_client_html(safe.replace("{}", snippet))


def test_outputs_are_sanitized_and_tables_escape_labels_and_values():
    import nbformat

    from ltv_helpers.report import _sanitize_outputs, styled

    table = pd.DataFrame({"amount<script>x</script>": [1.5], "note": ["<img src=x onerror=1>"]},
                         index=pd.Index(["<b>id</b>"], name="customer"))
    shown = styled(table, currency="<i>CNY</i>").to_html()
    assert "<script>" not in shown and "<img" not in shown and "<b>" not in shown and "<i>" not in shown
    assert "amount&lt;script&gt;x&lt;/script&gt;" in shown and "&lt;b&gt;id&lt;/b&gt;" in shown
    outputs = [nbformat.v4.new_output("display_data", data={
                   "text/markdown": "Client: <script>alert(1)</script> **bold**", "text/plain": "x"}),
               nbformat.v4.new_output("display_data", data={
                   "text/html": '<style>td{color:red}</style><table><tr><td onclick="x()">1</td></tr></table>'
                                '<iframe src="file:///etc/passwd"></iframe>',
                   "application/javascript": "alert(1)"}),
               nbformat.v4.new_output("display_data", data={"image/svg+xml": "<svg onload='x()'/>"})]
    md, table_html, svg = _sanitize_outputs(outputs)
    assert md.data["text/markdown"] == "Client: &lt;script&gt;alert(1)&lt;/script&gt; **bold**"
    assert table_html.data["text/html"] == ('<style>td{color:red}</style><table><tbody><tr><td>1</td></tr></tbody>'
                                            '</table>&lt;iframe src="file:///etc/passwd"&gt;&lt;/iframe&gt;')
    assert "application/javascript" not in table_html.data and svg.data == {}


def test_the_content_security_policy_stops_scripts_and_local_files_in_chromium(tmp_path, chromium_path, pdftotext):
    from ltv_helpers.report import CONTENT_SECURITY_POLICY, print_pdf

    page = (f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
            f'content="{CONTENT_SECURITY_POLICY}"></head><body><p>visible</p>'
            '<script>document.write("SCRIPT RAN")</script>'
            '<img src=x onerror="document.body.append(\'HANDLER RAN\')">'
            '<iframe src="file:///etc/passwd"></iframe><object data="file:///etc/passwd"></object>'
            '<embed src="file:///etc/passwd"></body></html>')
    html = tmp_path / "report.html"
    html.write_text(page, encoding="utf-8")
    text = pdf_text(pdftotext, print_pdf(html))
    assert "visible" in text and "RAN" not in text and "root:" not in text
    # Without the policy the same page does run and does print the local file: the test can fail.
    html.write_text(page.replace(CONTENT_SECURITY_POLICY, "default-src *"), encoding="utf-8")
    assert "root:" in pdf_text(pdftotext, print_pdf(html))


def test_a_cut_short_pdf_never_becomes_report_pdf(tmp_path, monkeypatch):
    from ltv_helpers.report import pdf_pages, print_pdf
    from ltv_helpers.schema import LTVError

    fake = tmp_path / "chromium"  # prints half a PDF and says it succeeded, as on a full disk
    fake.write_text('#!/bin/sh\nfor a in "$@"; do case "$a" in --print-to-pdf=*) '
                    'printf "%%PDF-1.4\\n1 0 obj <</Type /Page>>" > "${a#--print-to-pdf=}";; esac; done\nexit 0\n')
    fake.chmod(0o755)
    monkeypatch.setenv("LTV_CHROMIUM", str(fake))
    html = tmp_path / "run" / "report.html"
    html.parent.mkdir()
    html.write_text("<html></html>")
    with pytest.raises(LTVError, match="PDF of report.html is incomplete"):
        print_pdf(html)
    assert sorted(p.name for p in html.parent.iterdir()) == ["report.html"]
    whole = tmp_path / "whole.pdf"
    whole.write_bytes(b"%PDF-1.4\n1 0 obj <</Type /Pages /Count 1>> 2 0 obj <</Type /Page>>\nstartxref\n9\n%%EOF\n")
    assert pdf_pages(whole) == 1


def _fake_notebooks(monkeypatch):
    """Notebooks and page assembly that write only a stand-in file each (no kernel), to test
    render_report's own steps."""
    from ltv_helpers import report

    def fake(name, run, parameters):
        (Path(run) / "collection.json").write_text('{"input_sha256": "abc", "observation_end": "2020-01-01", '
                                                   '"client": "x", "columns": {}}')

    def page(run_dir, language="en"):
        (Path(run_dir) / "report.html").write_text("<html></html>")
        return Path(run_dir) / "report.html"

    monkeypatch.setattr(report, "run_notebook", fake)
    monkeypatch.setattr(report, "assemble_report", page)
    monkeypatch.setattr(report, "_forecast_blocker", lambda run, parameters: None)
    return report


def test_a_failed_write_leaves_latest_on_the_last_good_run(tmp_path, monkeypatch):
    import errno

    from ltv_helpers.files import write_error
    from ltv_helpers.schema import LTVError

    report = _fake_notebooks(monkeypatch)
    good = tmp_path / "2020-01-01_000000"
    good.mkdir()
    report.point_latest(good)

    def disk_full(run_dir, language="en"):
        raise write_error(Path(run_dir) / "report.html", OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(report, "assemble_report", disk_full)
    with pytest.raises(LTVError, match="Could not write report.html in .*: the disk is full"):
        report.render_report(tmp_path, {"client": "x"}, pdf=False)
    failed = [p for p in tmp_path.iterdir() if p.name not in ("latest", good.name)]
    stamp = json.loads((failed[0] / "run.json").read_text()) if len(failed) == 1 else {}
    assert stamp["status"] == "failed" and "the disk is full" in stamp["reason"]
    assert (tmp_path / "latest").resolve() == good.resolve()
    monkeypatch.setattr(report, "assemble_report", lambda run_dir, language="en": Path(run_dir) / "report.html")

    def no_pdf(html):
        raise LTVError("Chromium's PDF of report.html is incomplete")

    monkeypatch.setattr(report, "print_pdf", no_pdf)
    with pytest.raises(LTVError, match="incomplete"):
        report.render_report(tmp_path, {"client": "x"})
    assert (tmp_path / "latest").resolve() == good.resolve()


def test_output_folders_that_cannot_hold_runs_are_one_sentence(tmp_path, monkeypatch):
    import errno

    from ltv_helpers.schema import LTVError

    report = _fake_notebooks(monkeypatch)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(LTVError, match="is a file, not a folder"):
        report.render_report(tmp_path / "a-file", {"client": "x"}, pdf=False)
    run = report.render_report(tmp_path / "acme", {"client": "x"}, pdf=False).parent
    for inside in (tmp_path / "acme" / "latest", run, run / "sub"):
        with pytest.raises(LTVError, match="is a run folder or inside one; give the client's folder"):
            report.render_report(inside, {"client": "x"}, pdf=False)
    copied = tmp_path / "copied"
    (copied / "latest").mkdir(parents=True)  # an unzipped report folder: latest is a real folder
    with pytest.raises(LTVError, match=r"copied/latest is a folder, not the link to the newest run"):
        report.render_report(copied, {"client": "x"}, pdf=False)

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "mkdir", read_only)
    with pytest.raises(LTVError, match="the folder cannot be written to; choose another --output"):
        report.render_report(tmp_path / "elsewhere", {"client": "x"}, pdf=False)
    assert sorted(p.name for p in (tmp_path / "acme").iterdir()) == sorted(["latest", run.name])


def test_parameters_no_notebook_declares_and_nested_credentials_are_refused(tmp_path):
    from ltv_helpers.report import render_report
    from ltv_helpers.schema import LTVError

    with pytest.raises(LTVError, match="No report notebook has a parameter 'extra'; the parameters are: "):
        render_report(tmp_path / "r", {"client": "x", "extra": "anything"})
    with pytest.raises(LTVError, match="parameter models contains a token= credential"):
        render_report(tmp_path / "r", {"client": "x", "models": ["bgnbd", "token=abc"]})
    with pytest.raises(LTVError, match="parameter limits contains a password"):
        render_report(tmp_path / "r", {"client": "x", "limits": {"dsn": "postgresql://u:Xy7/Secret#9@db/x"}})
    assert not (tmp_path / "r").exists()


def _children(pid: int) -> list:
    import psutil

    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_an_interrupt_stops_with_one_line_and_ends_the_kernel(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    cmd = [sys.executable, "-m", "ltv_helpers.cli", "report", "cdnow_sample", "--client", "x",
           "--output", str(tmp_path), "--no-pdf"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    for line in proc.stdout:  # wait until a notebook kernel is running
        if "02_segmentation" in line:
            break
    deadline = time.time() + 60
    while not any("ipykernel" in " ".join(c.cmdline()) for c in _children(proc.pid)) and time.time() < deadline:
        time.sleep(0.2)
    kernels = [c for c in _children(proc.pid) if "ipykernel" in " ".join(c.cmdline())]
    assert kernels
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["ltv report: stopped; nothing that was still being written counts "
                                        "(a report's run folder stays incomplete and latest does not move)."]
    time.sleep(1)
    assert not [k for k in kernels if k.is_running() and k.status() != "zombie"]
    (run,) = [p for p in tmp_path.iterdir()]
    assert json.loads((run / "run.json").read_text())["status"] == "stopped" and not (tmp_path / "latest").exists()


def test_the_summary_names_the_model_that_made_the_forecast(hostile_run):
    import dataclasses

    from ltv_helpers import findings

    run = findings.load_run(hostile_run.parent)
    tested = run.metrics.index[run.metrics["kind"] == "model"]
    assert len(tested) == 3
    for model in tested:  # e.g. -p model=bgnbd while the evaluation preferred another
        h = findings.headline(dataclasses.replace(run, prediction={**run.prediction, "model": model}))
        assert h.model == model and h.mae == pytest.approx(run.metrics.loc[model, "mae"])


def test_a_forecast_model_the_evaluation_did_not_test_is_never_given_another_models_error(hostile_run):
    import dataclasses

    from ltv_helpers import findings

    run = findings.load_run(hostile_run.parent)
    tested = run.metrics[run.metrics["kind"] == "model"]
    only_one = dataclasses.replace(run, metrics=run.metrics.drop(index=[m for m in tested.index if m != "bgnbd"]),
                                   prediction={**run.prediction, "model": "pareto_nbd"})
    h = findings.headline(only_one)
    assert h.model == "pareto_nbd" and np.isnan(h.mae) and np.isnan(h.gain)
    assert "not checked on the holdout" in findings.cards(h)
    assert len(findings.findings(h)) == len(findings.findings(findings.headline(run))) - 1


def test_a_model_given_by_name_is_the_forecast_and_is_checked_alone(tmp_path):
    import nbformat

    out = tmp_path / "run"
    params = {"client": "acme", "source": "cdnow_sample", "model": "mbgnbd", "draws": 20}
    run_notebook("01_collection", out, params)
    executed = run_notebook("03_prediction", out, params)
    assert json.loads((out / "prediction.json").read_text())["model"] == "mbgnbd"
    nb = nbformat.read(executed, as_version=4)
    (choice,) = [c for c in nb.cells if c.cell_type == "code" and "ev.backtest(" in c.source]
    shown = " ".join(str(o.get("data", {})) for o in choice.outputs)
    assert "Model used: **MBG/NBD**" in shown and "Pareto/NBD" not in shown and ">BG/NBD</th>" not in shown


@pytest.mark.parametrize("language, heading, note", [
    ("en", "Why there is no forecast", "Only 0 customers bought on more than one day"),
    ("zh", "为何没有预测", "只有 0 位客户在不止一天购买过")])
def test_a_report_without_repeat_buyers_renders_collection_and_segmentation_and_says_why(
        tmp_path, language, heading, note):
    import html as html_lib

    from ltv_helpers.report import render_report

    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(400) % 300, unit="D")
    pd.DataFrame({"customer_id": [f"c{i}" for i in range(400)], "order_date": days.strftime("%Y-%m-%d"),
                  "amount": 20.0 + np.arange(400) % 7}).to_csv(tmp_path / "orders.csv", index=False)  # one id per order
    page = render_report(tmp_path / "r", {"client": "olist", "source": str(tmp_path / "orders.csv"),
                                          "language": language}, pdf=False)
    text = html_lib.unescape(re.sub(r"<[^>]+>", "", page.read_text(encoding="utf-8")))
    assert heading in text and note in text
    assert "expected purchases" not in text and "预计购买次数" not in text  # no forecast cards
    run = page.parent
    assert not (run / "03_prediction.ipynb").exists() and not (run / "prediction.json").exists()
    stamp = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert stamp["status"] == "complete" and stamp["forecast"] is False and "Only 0 customers" in stamp["no_forecast"]
    assert (run.parent / "latest").resolve() == run


def test_split_appendix_moves_tagged_sections_and_reads_code_fences_as_code():
    import nbformat

    from ltv_helpers.report import split_appendix

    new = nbformat.v4
    cells = [new.new_markdown_cell("# Title"), new.new_markdown_cell("## A", metadata={"tags": ["appendix"]}),
             new.new_markdown_cell("text\n```\n# a comment\n```"), new.new_code_cell("x = 1"),
             new.new_markdown_cell("### A.1"), new.new_markdown_cell("## B"),
             new.new_markdown_cell("# Section title", metadata={"tags": ["appendix"]})]
    body, appendix = split_appendix(cells)
    assert [c.source for c in body] == ["# Title", "## B", "# Section title"]  # a section's title stays
    assert [c.source for c in appendix] == ["### A", "text\n```\n# a comment\n```", "x = 1", "#### A.1"]


def test_styled_keeps_the_index_name_with_two_header_rows():
    from ltv_helpers.report import styled

    table = pd.DataFrame({("a", "x"): [1.5], ("a", "y"): [2.5]}, index=pd.Index(["p"], name="model"))
    assert ">model<" in styled(table).to_html()


def test_the_shared_kernel_counts_the_blocker_as_this_process_would(tmp_path, monkeypatch):
    """_Kernel.forecast_blocker (the count ltv report leaves to the notebooks' kernel) gives what
    collection_blocker gives here, for a run folder named relatively (the kernel works in another
    folder) with a quote in its name, with and without a calibration end; a user's error raised
    in the kernel arrives as its own sentence; a kernel that dies is told at once, not at the timeout."""
    import time

    from ltv_helpers import report
    from ltv_helpers.evaluation import collection_blocker
    from ltv_helpers.schema import LTVError

    days = pd.Timestamp("2023-01-01") + pd.to_timedelta(np.arange(400) % 300, unit="D")
    tx = pd.DataFrame({"customer_id": [f"c{i % 250}" for i in range(400)], "order_date": days, "amount": 10.0})
    folder = tmp_path / "it's {run}"
    folder.mkdir()
    tx.to_parquet(folder / "transactions.parquet")
    (folder / "collection.json").write_text(json.dumps({"observation_end": "2023-12-31"}))
    monkeypatch.chdir(tmp_path)
    relative = Path("it's {run}")
    with report.shared_kernel() as kernel:
        for cal in (None, "2023-01-03", "2023-11-30"):
            found, here = kernel.forecast_blocker(relative, cal), collection_blocker(folder, calibration_end=cal)
            assert (found is None) == (here is None) and (found is None or found == here), cal
        assert kernel.forecast_blocker(relative, "2023-01-03") is not None  # one case with a sentence
        with pytest.raises(LTVError, match=r"^Say this\.$"):
            kernel._run("from ltv_helpers.schema import LTVError\nraise LTVError('Say this.')", "in a test")
        started = time.monotonic()
        with pytest.raises(LTVError, match="died"):
            kernel._run("import os\nos._exit(1)", "in a test", timeout=600)
        assert time.monotonic() - started < 60


def test_the_process_that_runs_the_notebooks_imports_papermill_without_numpy_or_an_iri_grammar():
    """papermill is imported without pyarrow's file systems (NumPy and Arrow: 40 MB beside the
    kernel) and jsonschema's IRI grammar (2 s a start); both import as usual afterwards."""
    import subprocess
    import sys

    code = ("import sys, importlib.util; from ltv_helpers import report; report._papermill(); "
            "print('numpy' in sys.modules, 'pyarrow' in sys.modules, 'rfc3987_syntax' in sys.modules); "
            "import pyarrow.fs; print(importlib.util.find_spec('rfc3987_syntax') is None "
            "or __import__('rfc3987_syntax') is not None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False", "False", "True"], out.stderr
