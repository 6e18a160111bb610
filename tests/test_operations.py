"""LTV operations through the report: a client's second report checks the first (CDNOW reported to
1998-03-31 and then to 1998-06-30), and a client with acquisition channels and costs gets its
channel section. The numbers are checked against what the bundled data and lifetimes' own formulas
say, never against the toolkit's own outputs alone."""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

from ltv_helpers import monitoring as mo
from ltv_helpers import report
from ltv_helpers.datasets import load_cdnow, synthetic_channels
from ltv_helpers.report import render_report
from ltv_helpers.schema import LTVError

START, END, BEFORE = "1998-04-01", "1998-06-30", "1998-03-31"


@pytest.fixture(scope="module")
def runs(monitored_demo):
    first, html = monitored_demo
    return first, html.parent, json.loads((html.parent / mo.MONITORING_FILE).read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def days():
    """The bundled CDNOW, one row per customer and purchase day (read here, not from a run)."""
    raw = load_cdnow()
    raw = raw.assign(customer_id=raw["customer_id"].astype(str), day=raw["order_date"].dt.normalize())
    return raw


def test_a_second_run_keeps_the_first_and_latest_moves(runs):
    first, second, _ = runs
    assert (first / "report.html").is_file() and first.parent == second.parent
    assert (first.parent / "latest").resolve() == second.resolve()
    assert sorted(p.name for p in first.parent.iterdir() if not p.is_symlink()) == [first.name, second.name]


def test_the_second_report_checks_the_first_over_the_days_between_them(runs, monitored_demo):
    first, second, spec = runs
    assert (spec["window_start"], spec["window_end"], spec["window_days"]) == (START, END, 91)
    assert spec["baseline_run"] == first.name and spec["baseline_observation_end"] == BEFORE
    stamp = json.loads((second / "run.json").read_text(encoding="utf-8"))
    assert stamp["parameters"]["baseline_dir"] == str(first)
    html = monitored_demo[1].read_text(encoding="utf-8")
    assert "Since the last report" in html and "Watch list" in html
    assert f"The last report (data to {BEFORE}) expected its customers to buy on" in html  # the summary's finding


def test_actual_purchases_are_distinct_purchase_days_of_the_first_runs_customers(runs, days):
    first, _, spec = runs
    customers = set(pd.read_parquet(first / "predictions.parquet").index.astype(str))
    window = days[(days["day"] >= START) & (days["day"] <= END) & days["customer_id"].isin(customers)]
    assert spec["actual_purchases"] == len(window.drop_duplicates(["customer_id", "day"]))
    assert spec["actual_revenue"] == pytest.approx(window["amount"].sum(), rel=1e-12)
    assert spec["customers"] == len(customers) == 23_570
    assert spec["new_customers"] == 0  # CDNOW's customers all arrived in the first quarter of 1997


def test_predicted_purchases_equal_lifetimes_formula_with_the_first_runs_parameters(runs, days):
    first, _, spec = runs
    facts = json.loads((first / "prediction.json").read_text(encoding="utf-8"))
    fitter = {"bgnbd": BetaGeoFitter, "mbgnbd": ModifiedBetaGeoFitter, "pareto_nbd": ParetoNBDFitter}[facts["model"]]()
    fitter.params_ = pd.Series(facts["params"])
    before = days[days["day"] <= BEFORE].drop_duplicates(["customer_id", "day"]).groupby("customer_id")["day"]
    first_day, last_day = before.min(), before.max()
    frequency = before.size() - 1
    recency = (last_day - first_day).dt.days
    age = (pd.Timestamp(BEFORE) - first_day).dt.days
    expected = fitter.conditional_expected_number_of_purchases_up_to_time(91, frequency, recency, age)
    assert spec["predicted_purchases"] == pytest.approx(float(expected.sum()), rel=1e-6)
    assert spec["purchases_low"] < spec["predicted_purchases"] < spec["purchases_high"]
    assert spec["revenue_low"] < spec["predicted_revenue"] < spec["revenue_high"]


def test_the_tiers_add_up_to_all_customers(runs):
    _, _, spec = runs
    for key in ("customers", "predicted_purchases", "actual_purchases", "predicted_revenue", "actual_revenue"):
        assert sum(t[key] for t in spec["tiers"].values()) == pytest.approx(spec[key], rel=1e-9), key


def test_the_migration_table_adds_up_to_the_customers_of_both_runs(runs):
    first, second, spec = runs
    old = pd.read_parquet(first / "segments.parquet")["tier"]
    new = pd.read_parquet(second / "segments.parquet")["tier"]
    table = pd.DataFrame(spec["migrations"]).T  # rows: the first run's tiers
    assert table.drop(index=mo.NEW).sum(axis=1).to_dict() == old.value_counts().reindex(table.index[:-1],
                                                                                        fill_value=0).to_dict()
    assert table.drop(columns=mo.GONE).sum(axis=0).to_dict() == new.value_counts().reindex(table.columns[:-1],
                                                                                           fill_value=0).to_dict()
    assert int(table.to_numpy().sum()) == len(old.index.union(new.index))


def test_the_watch_list_matches_its_rule_and_its_ids_stay_out_of_the_report(runs, monitored_demo):
    first, second, spec = runs
    old = pd.read_parquet(first / "predictions.parquet")
    new = pd.read_parquet(second / "predictions.parquet")
    tiers = pd.read_parquet(first / "segments.parquet")["tier"]
    ids = old.index.intersection(new.index)
    rule = ((tiers.reindex(ids) == "high value") & (old.loc[ids, "p_alive"] >= 0.5)
            & (new.loc[ids, "p_alive"] < 0.5))
    expected = set(ids[rule.to_numpy()])
    watch = pd.read_csv(second / mo.WATCHLIST_FILE, dtype={"customer_id": str}, encoding="utf-8-sig")
    assert watch["customer_id"].is_unique and set(watch["customer_id"]) == expected and expected
    assert spec["watchlist"]["customers"] == len(expected)
    assert spec["watchlist"]["value_at_stake"] == pytest.approx(old.loc[list(expected), "clv"].sum())
    assert watch["value_at_stake"].is_monotonic_decreasing
    assert (watch["p_alive_now"] - watch["p_alive_before"]).round(9).equals(watch["p_alive_change"].round(9))
    text = re.sub(r"data:image/[a-z]+;base64,[^\"']+", "", monitored_demo[1].read_text(encoding="utf-8"))
    shown = watch["customer_id"].head(20)
    assert not any(f">{i}<" in text for i in shown), "a raw customer id in the report"


def test_the_check_reads_in_chinese_too(runs, tmp_path):
    import shutil

    from ltv_helpers.report import export_html, run_notebook

    first, second, _ = runs
    run = tmp_path / second.name
    shutil.copytree(second, run, ignore=shutil.ignore_patterns("*.ipynb", "*.html", "*.pdf"))
    page = export_html(run_notebook("07_monitoring", run, {"client": "demo", "language": "zh",
                                                           "baseline_dir": str(first), "draws": 20}), "zh")
    text = re.sub(r"<(style|script)\b.*?</\1>|<[^>]+>|data:image/[^\"']+", " ", page.read_text(encoding="utf-8"),
                  flags=re.S)
    assert "自上一份报告以来" in text and "预警名单" in text and "上一份报告预计其" in text
    prose = re.findall(r"[A-Za-z][a-z'-]+(?:[ ,;:]+[A-Za-z][a-z'-]+){2,}", text)
    assert not prose, prose[:5]  # three English words in a row would be untranslated prose


def test_a_baseline_of_another_client_currency_or_columns_is_refused(runs, tmp_path):
    first, second, _ = runs
    meta = json.loads((second / "collection.json").read_text(encoding="utf-8"))
    mo.check_baseline(first, meta, "demo")
    with pytest.raises(LTVError, match=r"of client 'demo', not 'acme': two clients are never compared"):
        mo.check_baseline(first, meta, "acme")
    with pytest.raises(LTVError, match=r"counted money in USD, this run in CNY; pass --no-baseline"):
        mo.check_baseline(first, {**meta, "currency": "CNY"}, "demo")
    with pytest.raises(LTVError, match=r"other columns \(amount: amount then, 实付金额 now\)"):
        mo.check_baseline(first, {**meta, "columns": {**meta["columns"], "amount": "实付金额"}}, "demo")
    with pytest.raises(LTVError, match="not before this run's 1998-06-30"):
        mo.check_baseline(second, meta, "demo")
    mo.check_baseline(first, {**meta, "columns": {**meta["columns"], "channel": "渠道"}})  # a channel added later
    with pytest.raises(LTVError, match="is not a run of this client's folder"):
        mo.check_baseline(first, meta, folder=tmp_path)
    with pytest.raises(LTVError, match=r"holds the runs of client 'demo', not 'acme'; give each client its own"):
        render_report(first.parent, {"client": "acme", "source": "cdnow_sample"}, pdf=False)


def test_the_baseline_is_the_newest_run_that_ends_before(runs, tmp_path, monkeypatch):
    import shutil

    first, second, _ = runs
    assert mo.runs(first.parent) == [second, first]
    # Runs are ordered by their data's end: a later rerun of March is not newer than June.
    folder = tmp_path / "client"
    for name, run in (("2026-01-01_000000", second), ("2026-02-01_000000", first)):
        shutil.copytree(run, folder / name, ignore=shutil.ignore_patterns("*.ipynb", "*.html", "*.pdf"))
    assert [p.name for p in mo.runs(folder)] == ["2026-01-01_000000", "2026-02-01_000000"]
    assert mo.find_baseline(folder, observation_end="1998-07-31").name == "2026-01-01_000000"
    stamp = json.loads((folder / "2026-01-01_000000" / "run.json").read_text(encoding="utf-8"))
    (folder / "2026-01-01_000000" / "run.json").write_text(json.dumps({**stamp, "status": "failed"}))
    assert mo.find_baseline(folder, observation_end="1998-07-31").name == "2026-02-01_000000"
    with pytest.raises(LTVError, match="the run is failed, not complete"):
        mo.check_baseline(folder / "2026-01-01_000000", {"client": "demo", "observation_end": "1998-07-31"})
    # A report run in a relative --output hands its notebooks (which run in notebooks/) an absolute baseline.
    new = folder / "2026-03-01_000000"
    new.mkdir()
    meta = json.loads((second / "collection.json").read_text(encoding="utf-8"))
    (new / "collection.json").write_text(json.dumps({**meta, "observation_end": "1998-07-31"}), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    params = {"client": "demo"}
    assert report._operations(Path("client") / new.name, params, forecast=True) == {"07_monitoring"}
    assert params["baseline_dir"] == str(folder / "2026-02-01_000000") and Path(params["baseline_dir"]).is_absolute()
    params = {"client": "demo", "baseline_dir": None}  # --no-baseline: nothing checked, the choice recorded
    assert report._operations(Path("client") / new.name, params, forecast=True) == set()
    assert params == {"client": "demo", "baseline_dir": None}
    assert mo.find_baseline(first.parent, observation_end=END) == first  # a rerun of June compares with March
    assert mo.find_baseline(first.parent, observation_end="1998-07-31") == second
    assert mo.find_baseline(first.parent, observation_end=BEFORE) is None
    assert mo.find_baseline(tmp_path / "new-client", observation_end=END) is None


def test_costs_without_a_channel_column_are_refused_in_one_sentence(tmp_path):
    costs = tmp_path / "cac.csv"
    costs.write_text("channel,month,spend\ntmall,1997-01,100\n", encoding="utf-8")
    with pytest.raises(LTVError, match=r"^An acquisition-cost table was given \(--cac\) but the data have no channel"):
        render_report(tmp_path / "r", {"client": "x", "source": "cdnow_sample", "cac": str(costs)}, pdf=False)
    with pytest.raises(LTVError, match="month must be YYYY-MM"):  # before any notebook runs
        costs.write_text("channel,month,spend\ntmall,Jan 97,100\n", encoding="utf-8")
        render_report(tmp_path / "s", {"client": "x", "source": "cdnow_sample", "cac": str(costs)}, pdf=False)
    assert not (tmp_path / "s").exists()


def test_a_client_with_channels_and_costs_gets_the_channel_section(tmp_path, capfd):
    tx, costs = synthetic_channels(1_000, seed=40)
    tx.to_csv(tmp_path / "orders.csv", index=False)
    costs.to_csv(tmp_path / "cac.csv", index=False)
    html = render_report(tmp_path / "shop", {"client": "shop", "source": str(tmp_path / "orders.csv"),
                                             "cac": str(tmp_path / "cac.csv"), "currency": "CNY", "draws": 30,
                                             "model": "bgnbd"}, pdf=False)
    run = html.parent
    table = pd.read_parquet(run / "channels.parquet")
    assert table["ltv_cac"].sort_values(ascending=False).index.tolist() == ["store", "tmall", "ads"]
    assert (table["ltv_cac_low"] < table["ltv_cac"]).all() and (table["ltv_cac"] < table["ltv_cac_high"]).all()
    assert table["cac"].round(9).tolist() == [40.0, 40.0, 40.0]
    assert table["new_customer_value"].sort_values(ascending=False).index.tolist() == ["store", "tmall", "ads"]
    page = html.read_text(encoding="utf-8")
    body, appendix = page.split('<a id="appendix"></a>', 1)
    assert "Channels and acquisition" in body and "LTV/CAC" in body
    assert "Value curves by channel and cohort" in appendix and "Value curves by channel and cohort" not in body
    assert "Customers acquired through ads return" in body  # the summary's finding: ads clearly below
    curves = pd.read_parquet(run / "value_curves.parquet")
    assert set(curves.index.get_level_values(0)) == {"ads", "store", "tmall"}
    assert "Since the last report" not in page  # the client's first report
    assert "running over TCP" not in capfd.readouterr().err  # no kernel noise in a report run


def test_a_progress_bar_widget_in_a_notebook_leaves_no_trace_in_the_page(monitored_demo, tmp_path):
    """DuckDB drew its progress bar as a Jupyter widget for queries over 2 s (a 1M-customer report on
    a busy machine), and nbconvert wrote the widget's state into the page as a <script>, which the page
    check refused. The package's connections have no bar; a widget from any library is dropped whole."""
    import shutil

    import nbformat

    from ltv_helpers.data import engines

    run = tmp_path / "run"
    shutil.copytree(monitored_demo[1].parent, run)
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"m1": {"model_name": "HBoxModel"}},
                                                            "version_major": 2, "version_minor": 0}}
    for name in ("02_segmentation", "05_summary"):
        nb = nbformat.read(run / f"{name}.ipynb", as_version=4)
        nb.metadata["widgets"] = state
        cell = next(c for c in nb.cells if c.cell_type == "code" and "parameters" not in c.metadata.get("tags", []))
        cell.outputs.insert(0, nbformat.v4.new_output("display_data", data={
            "application/vnd.jupyter.widget-view+json": {"model_id": "m1", "version_major": 2, "version_minor": 0},
            "text/plain": "HBox(children=(FloatProgress(value=0.0),))"}))
        nbformat.write(nb, run / f"{name}.ipynb")
    page = report.assemble_report(run).read_text(encoding="utf-8")
    assert "<script" not in page and "HBox" not in page and "widget-state" not in page
    with engines.connect() as con:
        assert con.execute("SELECT current_setting('enable_progress_bar')").fetchone() == (False,)
    with engines.connect(config={"lock_configuration": True}) as con:
        assert con.execute("SELECT current_setting('lock_configuration')").fetchone() == (True,)
    package = Path(engines.__file__).parents[1]
    opened = [str(p.relative_to(package)) for p in package.rglob("*.py") if "duckdb.connect(" in p.read_text()]
    assert opened == ["data/engines.py"]  # every other connection goes through engines.connect


@pytest.mark.parametrize("value", ["2024-12-31", "2024-12-31T00:00:00", "2024-12-31 13:05:00", "2024-06",
                                   "20241231", pd.Timestamp("2024-12-31"), "2024/12/31"])
def test_run_folder_dates_compare_as_pandas_reads_them(value):
    """monitoring._when reads ISO text without pandas, anything else as pd.Timestamp does."""
    assert mo._when(value) == pd.Timestamp(value).to_pydatetime()
