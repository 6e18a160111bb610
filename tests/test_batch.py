"""Many clients in one run (`ltv report --config`), and what a client finds in the report."""

import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from ltv_helpers.batch import load_config
from ltv_helpers.cli import main
from ltv_helpers.datasets import load_cdnow
from ltv_helpers.schema import LTVError


class _VisibleText(HTMLParser):
    """The text a reader sees: no scripts, no styles, and (``skip_footer``) not the stamp."""

    def __init__(self, skip_footer=False):
        super().__init__()
        self.hidden, self.parts, self.skip = 0, [], {"script", "style"} | ({"footer"} if skip_footer else set())

    def handle_starttag(self, tag, attrs):
        self.hidden += tag in self.skip

    def handle_endtag(self, tag):
        self.hidden -= tag in self.skip

    def handle_data(self, data):
        if not self.hidden and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str, skip_footer=False) -> list[str]:
    parser = _VisibleText(skip_footer)
    parser.feed(html)
    return parser.parts


#: Three or more Latin words in a row is English prose; acronyms and model names alone are not.
ENGLISH = re.compile(r"[A-Za-z][a-z'-]+(?:[ ,;:]+[A-Za-z][a-z'-]+){2,}")
CJK = re.compile(r"[\u3400-\u9fff\uff01-\uff5e\u3000-\u303f]")


@pytest.fixture(scope="module")
def batch(tmp_path_factory, chromium_path):
    """One batch: an English client from a CSV with distinctive customer ids, a Chinese client
    from the bundled sample, and a client whose export has no amount column."""
    root = tmp_path_factory.mktemp("batch")
    tx = load_cdnow(sample=True)
    tx["customer_id"] = "ID" + tx["customer_id"].astype(str) + "X"
    tx.to_csv(root / "acme.csv", index=False)
    (root / "broken.csv").write_text("customer_id,order_date\nM1,2024-01-03\n", encoding="utf-8")
    config = root / "clients.yaml"
    config.write_text(f"""
output: {root / 'reports'}
clients:
  acme:
    source: {root / 'acme.csv'}
    currency: USD
    parameters: {{draws: 20}}
  华东:
    source: cdnow_sample
    currency: CNY
    language: zh
    title: 华东客户终身价值报告
    horizon_months: 6
    parameters: {{draws: 20}}
  broken:
    source: {root / 'broken.csv'}
""", encoding="utf-8")
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["report", "--config", str(config), "--workers", "2"])
    return {"root": root, "code": code, "stdout": out.getvalue(), "ids": tx["customer_id"].unique(),
            "en": root / "reports" / "acme" / "latest", "zh": root / "reports" / "华东" / "latest"}


def test_batch_renders_the_good_clients_and_tables_the_failure(batch):
    assert batch["code"] == 1
    table = batch["stdout"]
    assert re.search(r"^acme\s+ok\s+[\d.]+\s+\S+acme/\d{4}-\d\d-\d\d_\d{6}/report.html", table, re.M), table
    assert re.search(r"^华东\s+ok\s+", table, re.M)
    assert re.search(r"^broken\s+failed\s+[\d.]+\s+-\s+01_collection\s+No amount column found", table, re.M), table
    assert "2 of 3 reports rendered, 1 failed" in table
    for client in ("en", "zh"):
        run = batch[client]
        assert run.is_symlink() and (run / "report.html").is_file() and (run / "report.pdf").is_file()
        assert (run / "report.pdf").read_bytes().startswith(b"%PDF")
        # The executed notebooks and the data files stay beside the report for audit.
        assert {"01_collection.ipynb", "05_summary.ipynb", "transactions.parquet", "run.json"} <= \
            {p.name for p in run.iterdir()}
    assert not (batch["root"] / "reports" / "broken" / "latest").exists()  # no good run to point at


def test_report_is_one_self_contained_page_without_code(batch):
    page = (batch["en"] / "report.html").read_text(encoding="utf-8")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)  # opens offline
    assert "<script src" not in page and "require.js" not in page and "mathjax" not in page.lower()
    images = re.findall(r'<img[^>]*>', page)
    assert len(images) >= 20 and all('src="data:image/png;base64,' in i for i in images)  # embedded
    assert 'alt="Figure: When did customers arrive?"' in page
    assert "read_transactions(" not in page and "import pandas" not in page  # no code
    body = page[:page.index('<footer class="ltv-footer">')]
    assert "draws = 20" not in body and "injected-parameters" not in body  # parameters only in the stamp
    # Summary first, then the contents, the four sections in order, and the technical appendix.
    body = body[body.index("<body"):]
    order = [re.search(f"<h[12][^>]*>{s}", body).start() for s in (
        "At a glance", "What we found", "Contents", "Data collection", "Segmentation",
        "Prediction", "Evaluation", "Technical appendix", "Glossary")]
    assert order == sorted(order)


def test_footer_stamp_traces_every_number(batch):
    page = (batch["en"] / "report.html").read_text(encoding="utf-8")
    footer = page[page.index('<footer class="ltv-footer">'):]
    digest = hashlib.sha256((batch["root"] / "acme.csv").read_bytes()).hexdigest()
    assert digest in footer
    assert "pandas 3.1.1" in footer and "lifetimes 0.11.3" in footer and "ltv-toolkit 0.1.0" in footer
    assert "draws = 20" in footer and "client = acme" in footer
    assert batch["en"].resolve().name in footer


def test_the_summary_page_quotes_the_stages(batch):
    page = (batch["en"] / "report.html").read_text(encoding="utf-8")
    prediction = json.loads((batch["en"] / "prediction.json").read_text())
    evaluation = json.loads((batch["en"] / "evaluation.json").read_text())
    assert f"{prediction['intervals']['expected_purchases']:,.0f}" in page
    assert f"USD {prediction['intervals']['clv']:,.0f}" in page
    assert f"{len(pd.read_parquet(batch['en'] / 'rfm_summary.parquet')):,}" in page
    assert {"bgnbd": "BG/NBD", "mbgnbd": "MBG/NBD", "pareto_nbd": "Pareto/NBD"}[evaluation["chosen_model"]] in page
    findings = re.search(r"What we found.*?<ol>(.*?)</ol>", page, re.S).group(1)
    assert 3 <= findings.count("<li>") <= 5


def test_chinese_report_has_no_english_prose(batch):
    page = (batch["zh"] / "report.html").read_text(encoding="utf-8")
    assert '<html lang="zh">' in page
    prose = [m for t in visible_text(page, skip_footer=True) for m in ENGLISH.findall(t)]
    assert prose == []
    assert "华东客户终身价值报告" in page and "主要发现" in page and "目录" in page
    footer = page[page.index('<footer class="ltv-footer">'):]
    assert "报告生成信息" in footer and "输入数据（SHA-256）" in footer


def test_english_report_has_no_chinese(batch):
    page = (batch["en"] / "report.html").read_text(encoding="utf-8")
    assert [t for t in visible_text(page) if CJK.search(t)] == []


def test_no_raw_customer_id_in_the_client_page(batch):
    page = (batch["en"] / "report.html").read_text(encoding="utf-8")
    assert re.search(r"C-[0-9a-f]{12}", page)  # the top customers are there, pseudonymized
    leaked = [i for i in batch["ids"] if i in page]
    assert leaked == []


def test_report_opens_in_chromium_without_console_errors(batch, chromium_path):
    from playwright.sync_api import sync_playwright

    from ltv_helpers.report import chromium_flags

    problems = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium_path, args=chromium_flags())
        page = browser.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(r.url))
        page.on("request", lambda r: problems.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
        page.goto((batch["zh"] / "report.html").resolve().as_uri(), wait_until="load")
        cards = page.locator(".ltv-card .ltv-value").all_inner_texts()
        title = page.title()
        images = page.evaluate("[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).length")
        browser.close()
    assert problems == []
    customers = len(pd.read_parquet(batch["zh"] / "rfm_summary.parquet"))
    purchases = json.loads((batch["zh"] / "prediction.json").read_text())["intervals"]["expected_purchases"]
    assert cards[0] == f"{customers:,}" and f"{purchases:,.0f}" in cards
    assert title == "华东客户终身价值报告" and images == 0


def test_run_folders_never_collide_and_latest_moves(tmp_path):
    from ltv_helpers.report import new_run_dir, point_latest

    runs = [new_run_dir(tmp_path) for _ in range(3)]
    assert len({r.name for r in runs}) == 3 and all(r.is_dir() for r in runs)
    assert re.fullmatch(r"\d{4}-\d\d-\d\d_\d{6}(_\d+)?", runs[-1].name)
    point_latest(runs[0])
    point_latest(runs[2])
    assert (tmp_path / "latest").resolve() == runs[2].resolve()
    assert not (tmp_path / "latest").readlink().is_absolute()  # the folder can be moved or zipped


def _config(tmp_path, text):
    path = tmp_path / "clients.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("text, message", [
    ("output: r\nclients:\n  acme:\n    source: a.csv\n    horizon: 6\n",
     "Client 'acme' has an unknown key 'horizon'"),
    ("output: r\nclients:\n  acme:\n    currency: CNY\n", "Client 'acme' lacks the key 'source'"),
    ("output: r\nworkers: 2\nclients:\n  acme:\n    source: a.csv\n", "unknown top-level key 'workers'"),
    ("clients:\n  acme:\n    source: a.csv\n", "lacks the top-level key 'output'"),
    ("output: r\nclients:\n  acme:\n    source: a.csv\n    language: fr\n",
     "Client 'acme': language must be en or zh, got 'fr'"),
    ("output: r\nclients:\n  acme:\n    source: a.csv\n    gross_margin: 35\n",
     "Client 'acme': gross_margin must be a share between 0 and 1"),
    ("output: r\nclients:\n  acme:\n    source: a.csv\n    columns: {buyer: x}\n",
     "Client 'acme' has an unknown column role 'buyer'"),
    ("output: r\nclients:\n  acme:\n    source: a.csv\n    parameters: {draw: 10}\n",
     "Client 'acme': no notebook has a parameter 'draw'"),
    ("output: r\nclients:\n  acme:\n    source: postgresql://ana:hunter2@db/shop\n", "contains a password"),
    ("output: r\nclients:\n  ../x:\n    source: a.csv\n", "cannot be a folder name"),
    ("output: r\nclients:\n  acme: [source]\n", "Client 'acme' must be a mapping"),
    ("output: r\nclients:\n  acme:\n    source: a.csv\n   currency: CNY\n", "is not valid YAML at line"),
])
def test_config_errors_are_one_sentence_and_nothing_runs(tmp_path, monkeypatch, capsys, text, message):
    monkeypatch.chdir(tmp_path)
    path = _config(tmp_path, text)
    with pytest.raises(LTVError, match=re.escape(message)):
        load_config(path)
    assert main(["report", "--config", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_config_maps_settings_to_notebook_parameters(tmp_path):
    path = _config(tmp_path, """
output: reports
clients:
  acme:
    source: 订单.csv
    columns: {customer_id: 会员ID, order_date: 支付时间, amount: 实付金额, quantity: null}
    dayfirst: true
    observation_end: 2024-06-30
    gross_margin: 0.35
    query: null
""")
    (job,) = load_config(path)
    assert job.name == "acme" and job.output == Path("reports") / "acme"
    assert job.parameters == {"client": "acme", "source": "订单.csv", "customer_id_column": "会员ID",
                              "date_column": "支付时间", "amount_column": "实付金额", "dayfirst": True,
                              "observation_end": "2024-06-30", "gross_margin": 0.35}


def test_config_takes_the_cost_table_and_the_baseline(tmp_path):
    path = _config(tmp_path, """
output: reports
clients:
  acme: {source: a.csv, cac: costs/获客.csv}
  beta: {source: b.csv, baseline: false}
  gamma: {source: c.csv, baseline: reports/gamma/2026-11-01_090000}
  delta: {source: d.csv, baseline: null}
""")
    params = {job.name: job.parameters for job in load_config(path)}
    assert params["acme"] == {"client": "acme", "source": "a.csv", "cac": "costs/获客.csv"}
    assert params["beta"] == {"client": "beta", "source": "b.csv", "baseline_dir": None}
    assert params["gamma"]["baseline_dir"] == "reports/gamma/2026-11-01_090000"
    assert params["delta"] == {"client": "delta", "source": "d.csv"}  # null: the newest earlier run
    bad = _config(tmp_path, "output: reports\nclients:\n  acme: {source: a.csv, baseline: true}\n")
    with pytest.raises(LTVError, match="baseline must be text"):
        load_config(bad)


def test_the_shipped_example_config_is_valid():
    jobs = load_config(Path(__file__).resolve().parents[1] / "reports" / "clients.example.yaml")
    assert [j.name for j in jobs] == ["cdnow-demo", "cdnow-sample-zh"]


def test_headline_numbers_recomputed_from_the_run_files(batch):
    from ltv_helpers.findings import headline

    run = batch["en"]
    h = headline(run)
    tx = pd.read_parquet(run / "transactions.parquet")
    end = pd.Timestamp(h.observation_end)
    start = end + pd.Timedelta(days=1) - pd.DateOffset(months=h.horizon_months)
    assert h.past_revenue == pytest.approx(tx.loc[tx["order_date"] >= start, "amount"].sum())
    assert h.revenue == pytest.approx(tx["amount"].sum())
    orders = tx.groupby("customer_id").size()
    assert h.customers == len(orders) and h.repeat_share == pytest.approx((orders > 1).mean())
    assert 0 < h.gain < 1 and h.baseline in {"naive", "simple_formula", "ml"}


# --------------------------------------------------------------------------- hostile configs

def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path):
    lines = ["output: out", "clients:", "  a: &a {source: cdnow, parameters: {models: [x, x, x, x, x, x, x, x, x, x]}}"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    path = _config(tmp_path, "\n".join(lines) + "\n")
    assert path.stat().st_size < 700  # stands for about 10^9 values
    with pytest.raises(LTVError, match=r"expands to, through &anchor / \*alias\) more than 100,000 values"):
        load_config(path)
    self_loop = _config(tmp_path, "output: out\nclients:\n  acme:\n    source: cdnow\n"
                                  "    parameters: {limits: &a [*a]}\n")
    with pytest.raises(LTVError, match=r"has an alias that refers to itself \(line 5\)"):
        load_config(self_loop)


def test_duplicate_keys_and_client_names_are_refused_not_resolved_to_the_last(tmp_path):
    twice = _config(tmp_path, "output: out\nclients:\n  acme:\n    source: cdnow\n  acme:\n    source: other.csv\n")
    with pytest.raises(LTVError, match=r"gives the key 'acme' twice \(lines 3 and 5\); keep one"):
        load_config(twice)
    key_twice = _config(tmp_path, "output: out\nclients:\n  acme:\n    source: cdnow\n    currency: USD\n"
                                  "    currency: CNY\n")
    with pytest.raises(LTVError, match="gives the key 'currency' twice"):
        load_config(key_twice)
    same_text = _config(tmp_path, "output: out\nclients:\n  1:\n    source: cdnow\n  '1':\n    source: cdnow\n")
    with pytest.raises(LTVError, match="gives the key '1' twice"):
        load_config(same_text)
    # Shared settings through a merge key are fine; the client's own value wins.
    shared = _config(tmp_path, "output: out\nclients:\n  acme: &base\n    source: cdnow\n    currency: USD\n"
                               "  beta:\n    <<: *base\n    currency: CNY\n")
    assert [(j.name, j.parameters["currency"]) for j in load_config(shared)] == [("acme", "USD"), ("beta", "CNY")]


def test_credentials_nested_in_a_clients_file_are_refused(tmp_path):
    nested = _config(tmp_path, "output: out\nclients:\n  acme:\n    source: cdnow\n"
                               "    parameters: {limits: {dsn: 'postgresql://u:Xy7/Secret#9@db/x'}}\n")
    with pytest.raises(LTVError, match="client 'acme': limits contains a password") as err:
        load_config(nested)
    assert "Secret" not in str(err.value)


def test_a_killed_worker_fails_only_its_client(tmp_path):
    """SIGKILL of one client's worker process (out of memory, an operator's kill -9): the other
    client finishes and the table shows both."""
    import io
    import os
    import signal
    import threading
    import time

    from ltv_helpers.batch import ClientJob, results_table, run_clients

    def kill_once_its_kernel_runs(pid: int) -> None:
        import psutil

        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if any("ipykernel" in " ".join(c.cmdline()) for c in psutil.Process(pid).children()):
                    break
            except psutil.Error:
                pass
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)

    class Log(io.StringIO):
        pid = None

        def write(self, text):
            found = re.search(r"\[victim\] worker process (\d+)", text)
            if found:
                self.pid = int(found.group(1))
            if "[victim] 01_collection" in text:  # its first notebook is starting
                threading.Thread(target=kill_once_its_kernel_runs, args=(self.pid,), daemon=True).start()
            return super().write(text)

    # The healthy client's export has no repeat buyer: its report (collection and segmentation, no
    # forecast) is quick, and the test is of the victim's worker, not of the forecast.
    once = pd.DataFrame({"customer_id": [f"C{i}" for i in range(300)], "amount": 10.0,
                         "order_date": pd.date_range("2024-01-01", periods=300, freq="D")})
    once.to_csv(tmp_path / "once.csv", index=False)
    jobs = [ClientJob("victim", tmp_path / "victim", {"client": "victim", "source": "cdnow_sample", "draws": 20}),
            ClientJob("healthy", tmp_path / "healthy", {"client": "healthy", "source": str(tmp_path / "once.csv")})]
    results = run_clients(jobs, workers=2, pdf=False, stream=Log())
    table = results_table(results)
    assert table.loc["victim", "status"] == "failed" and table.loc["healthy", "status"] == "ok"
    assert table.loc["victim", "reason"] == "its worker process was killed (SIGKILL) before the report was finished"
    assert table.loc["victim", "failed in"] == "01_collection"
    assert (tmp_path / "healthy" / "latest" / "report.html").is_file() and not (tmp_path / "victim" / "latest").exists()
