"""The ``ltv`` command: ``ltv check`` (data quality of an export), ``ltv report`` (one client, or
every client of a ``clients.yaml``), ``ltv demo``, and for large data ``ltv summary`` (DuckDB or
Spark), ``ltv fit`` (model JSON) and ``ltv score``."""

from __future__ import annotations

import argparse
import json
import os
import sys

from ltv_helpers.schema import LTVError


def _check(args) -> int:
    from ltv_helpers.data import clean_transactions, data_quality, read_transactions
    from ltv_helpers.data.summary import buyer_counts
    from ltv_helpers.options import from_arguments

    read, clean, limits = from_arguments(args)
    raw = read_transactions(args.source, limits=limits, **read)
    result = clean_transactions(raw, **clean)
    tx = result.transactions
    usable = result.rows_kept > 0
    customers, repeat = buyer_counts(tx)
    warnings_ = list(result.warnings)
    if usable and repeat == 0:
        warnings_.append(NO_REPEAT_BUYERS)
    elif usable:  # the report's own reason when it could not forecast (too few customers or repeat buyers)
        from ltv_helpers.evaluation import forecast_blocker

        blocker = forecast_blocker(tx, observation_end=clean.get("observation_end"))
        if blocker is not None:
            warnings_.append(f"no forecast is possible: {blocker.text('en')}")
    if args.json:
        print(json.dumps({
            "source": raw.attrs.get("source"),
            "rows_in": result.rows_in,
            "rows_kept": result.rows_kept,
            "orders": result.orders,
            "rows_rejected": len(result.rejected),
            "rejected": {k: int(v) for k, v in result.report["rows"].items()},
            "kept_flagged": dict(result.kept_flags),
            "customers": customers,
            "repeat_buyers": repeat,
            "first_order": tx["order_date"].min().date().isoformat() if usable else None,
            "last_order": tx["order_date"].max().date().isoformat() if usable else None,
            "revenue": round(float(tx["amount"].sum()), 2),
            "refunds_netted": round(float(result.refunded), 2),
            "columns": result.columns,
            "warnings": warnings_,
            "usable": usable,
        }, ensure_ascii=False))
    else:
        print(f"Data quality of {raw.attrs.get('source')}")
        print(data_quality(result).to_string())
        for sentence in warnings_:
            print(f"warning: {sentence}")
    if not usable:
        raise LTVError(f"No usable rows: all {result.rows_in} rows were rejected "
                       f"({', '.join(f'{n} {r}' for r, n in result.report['rows'].items())}).")
    return 0


#: Said by ``ltv check`` when no customer bought on two days: the report could show no forecast.
NO_REPEAT_BUYERS = ("0 repeat buyers: no forecast is possible; map ids with combine_sources if the export has "
                    "one id per order.")


def _demo(args) -> int:
    from ltv_helpers.report import render_report

    html = render_report(args.output, {"client": "demo", "language": args.language}, progress=_announce)
    _print_report(html)
    return 0


def _announce(step: str) -> None:
    print(f"  {step}", flush=True)


def _print_report(html) -> None:
    pdf = html.with_suffix(".pdf")
    print(f"report: {html}" + (f"\n        {pdf}" if pdf.is_file() else ""))


def _report(args) -> int:
    from ltv_helpers.report import render_report

    if args.config:
        if args.source or args.client:
            raise LTVError("--config takes the clients from the file; give either --config or SOURCE --client.")
        from ltv_helpers.options import from_arguments

        given = [key for part in from_arguments(args) for key in part]
        given += [key for key, value in (("cac", args.cac), ("baseline", args.baseline),
                                         ("baseline: false", args.no_baseline)) if value]
        if given:
            raise LTVError(f"--config takes every client's reading options from the file; put {given[0]} "
                           "in the client's entry instead of on the command line.")
        from ltv_helpers.batch import run_config

        return run_config(args.config, workers=args.workers, pdf=not args.no_pdf)
    if not args.source or not args.client or not args.output:
        raise LTVError("ltv report needs SOURCE, --client and --output (or --config clients.yaml).")
    from ltv_helpers.options import from_arguments, notebook_parameters

    params = {"client": args.client, "source": args.source, "language": args.language,
              **notebook_parameters(*from_arguments(args))}
    for key, value in (("currency", args.currency), ("title", args.title), ("cac", args.cac),
                       ("baseline_dir", args.baseline)):
        if value is not None:
            params[key] = value
    if args.no_baseline:
        params["baseline_dir"] = None
    for item in args.param or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise LTVError(f"-p takes KEY=VALUE, got {item!r}.")
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    html = render_report(args.output, params, pdf=not args.no_pdf, progress=_announce)
    _print_report(html)
    return 0


def _lab(args) -> int:
    from ltv_helpers import lab
    from ltv_helpers.report import NOTEBOOKS_DIR

    return lab.run(args.language, args.notebook_dir or NOTEBOOKS_DIR, port=args.port)


def _screenshots(args) -> int:
    import json
    from pathlib import Path

    from ltv_helpers.report import page_pictures, screenshots

    if args.pages:  # pictures of printed pages, e.g. for the README
        report = Path(args.report)
        stamp = json.loads((report.parent / "run.json").read_text(encoding="utf-8"))
        language = stamp["parameters"].get("language", "en")
        files = page_pictures(report.with_suffix(".pdf"), args.pages, name=args.name or language, language=language)
    else:
        files = screenshots(args.report, args.output)
    for path in files:
        print(path)
    return 0


def _spark(args):
    """The Spark session for ``--engine spark`` (``--spark-master`` or $LTV_SPARK_MASTER), else None."""
    if getattr(args, "engine", None) != "spark":
        return None
    from ltv_helpers.data.engines import spark_session

    return spark_session(args.spark_master)


def _summary(args) -> int:
    from ltv_helpers.data import calibration_holdout, rfm_summary
    from ltv_helpers.data.summary import describe_summary_file

    columns = {"customer_id": args.customer_id, "order_date": args.date, "amount": args.amount}
    options = dict(freq=args.freq, freq_multiplier=args.freq_multiplier, compress=args.compress,
                   spend_digits=args.spend_digits, engine=args.engine, columns=columns, table=args.table,
                   spark=_spark(args), output=args.output)
    if args.calibration_end:
        if not args.observation_end:
            raise LTVError("--calibration-end needs --observation-end (the end of the holdout period).")
        path = calibration_holdout(args.source, calibration_end=args.calibration_end,
                                   observation_end=args.observation_end, **options)
    else:
        path = rfm_summary(args.source, observation_end=args.observation_end, **options)
    print(describe_summary_file(path))
    return 0


def _fit(args) -> int:
    from ltv_helpers.data.summary import load_summary
    from ltv_helpers.models import fit, purchase_model

    # ltv summary's files are orders in continuous time; a model of opportunities (BG/BB) is fitted
    # in Python on a summary of opportunities.
    purchase_model(args.model).continuous_only("ltv fit (on ltv summary's files)")
    summary = load_summary(args.summary, compress=True)
    model = fit(summary, model=args.model, spend=None if args.no_spend else "gamma_gamma",
                penalizer=args.penalizer, unit_days=args.unit_days)
    print(repr(model))
    print(f"model: {model.save(args.output)}")
    return 0


def _score(args) -> int:
    from ltv_helpers.models import load_model
    from ltv_helpers.scoring import score

    if not args.output and not args.table:
        raise LTVError("ltv score needs -o OUT.parquet (or --table NAME with --engine spark).")
    model = load_model(args.model)
    out = score(model, args.summary, horizon=args.horizon_days / model.unit_days, gross_margin=args.gross_margin,
                annual_discount_rate=args.annual_discount_rate, engine=args.engine, output=args.output,
                table=args.table, spark=_spark(args))
    print(f"scores: {out}")
    return 0


def _engine_options(parser) -> None:
    parser.add_argument("--engine", default="duckdb", choices=["duckdb", "spark"],
                        help="where the work runs (default duckdb, in this process)")
    parser.add_argument("--spark-master", help="Spark master URL (default $LTV_SPARK_MASTER, else local[*])")


def _quiet_channel_threads() -> None:
    """A notebook kernel's client thread that ends with a ZeroMQ error while its kernel is shut
    down (Ctrl-C during a report: seen once as 'Too many open files' from a heartbeat channel
    started as the kernel stopped) prints nothing: the run's own one-line message says what
    happened. Any other thread's error is printed as Python prints it."""
    import threading

    default = threading.excepthook

    def hook(args):
        frames, tb = [], args.exc_traceback
        while tb is not None:
            frames.append(tb.tb_frame.f_code.co_filename)
            tb = tb.tb_next
        if type(args.exc_value).__module__.startswith("zmq") and any("jupyter_client" in f for f in frames):
            return
        default(args)

    threading.excepthook = hook


def main(argv: list[str] | None = None) -> int:
    # Arrow's buffers from the system allocator (unless the user chose one), here and in the report's
    # notebook kernels: on a 5M-line ltv check, 15% faster and 300 MB less peak memory than the
    # default mimalloc, whose fresh pages cost more than malloc's reused ones (benchmarks/bench_check.py).
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    # Blocks of 4 MiB and more (a column of 500k customers) mapped from the system and unmapped when
    # freed, in the notebook kernels (glibc reads this when a process starts): by default the C
    # heap takes blocks up to 32 MiB once one was freed, and kept freed columns between live ones:
    # a 1M-customer report's peak 1,590 MB became 1,356 MB, and faster; smaller blocks stay on the
    # heap (a fixed threshold of 128 KiB made the forecast cell twice as slow).
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(4 << 20))
    from ltv_helpers.options import ENV, add_arguments, set_interface

    parser = argparse.ArgumentParser(prog="ltv", description="Customer lifetime value toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="read and clean an export, print its data quality report")
    check.add_argument("source", help="CSV/Excel/Parquet/DuckDB file, or cdnow / cdnow_sample")
    add_arguments(check)
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(run=_check)
    demo = sub.add_parser("demo", help="render the demo client report on the bundled CDNOW data")
    demo.add_argument("--output", default="reports/demo", help="folder for the report's runs")
    demo.add_argument("--language", default="en", choices=["en", "zh"])
    demo.set_defaults(run=_demo)
    report = sub.add_parser("report", help="render a client's report (one page, HTML and PDF) into a new run folder")
    report.add_argument("source", nargs="?", help="the client's export (as for ltv check)")
    report.add_argument("--config", help="a clients.yaml: render every client in it (see reports/clients.example.yaml)")
    report.add_argument("--workers", type=int, help="with --config: clients rendered at once (default: the cores)")
    report.add_argument("--client", help="client name shown in the report")
    report.add_argument("--output", help="the client's folder, e.g. reports/acme: each run goes in a new "
                                         "<YYYY-MM-DD_HHMMSS> folder in it, and latest points at the newest")
    report.add_argument("--title", help="the report's title (default: '<client>: customer lifetime value')")
    report.add_argument("--currency", help="currency shown on money axes, e.g. CNY")
    report.add_argument("--language", default="en", choices=["en", "zh"])
    report.add_argument("--no-pdf", action="store_true", help="write report.html only")
    report.add_argument("--cac", metavar="FILE", help="acquisition-cost table (CSV or YAML: channel, month, spend "
                        "and/or new_customers) for the channels' CAC, LTV/CAC and payback")
    last = report.add_mutually_exclusive_group()
    last.add_argument("--baseline", metavar="RUN", help="the earlier run folder to check (default: the newest "
                      "complete run in --output whose data end before this run's)")
    last.add_argument("--no-baseline", action="store_true", help="do not check the last report")
    add_arguments(report)
    report.add_argument("-p", "--param", action="append",
                        help="any other notebook parameter, KEY=VALUE (JSON values allowed), repeatable")
    report.set_defaults(run=_report)
    summ = sub.add_parser("summary", help="per-customer RFM summary of cleaned transactions, written by "
                                          "DuckDB or Spark to Parquet (for ltv fit / ltv score)")
    summ.add_argument("source", help="Parquet file, folder or glob of cleaned transactions; a DuckDB file "
                                     "with --table; with --engine spark also a Spark table name")
    summ.add_argument("-o", "--output", required=True, help="Parquet file to write (Spark: a folder)")
    summ.add_argument("--observation-end", help="end of the observation (YYYY-MM-DD; default: the last order)")
    summ.add_argument("--calibration-end", help="write a calibration/holdout summary split at this date")
    summ.add_argument("--freq", default="D", help="time unit: h, D, W, M, Q, Y (default D)")
    summ.add_argument("--freq-multiplier", type=float, default=1, help="e.g. 7 with --freq D: weeks in exact days")
    summ.add_argument("--compress", action="store_true",
                      help="distinct histories and spends with their customer counts (enough to fit the models)")
    summ.add_argument("--spend-digits", type=int, default=6,
                      help="with --compress: significant digits of the spend rows' average spend (default 6)")
    summ.add_argument("--table", help="table of a DuckDB file")
    summ.add_argument("--customer-id", help="source column of the customer id (default customer_id)")
    summ.add_argument("--date", help="source column of the order date (default order_date)")
    summ.add_argument("--amount", help="source column of the amount (default amount)")
    _engine_options(summ)
    summ.set_defaults(run=_summary)
    fit_cmd = sub.add_parser("fit", help="fit a purchase (and spend) model on a summary, save it as JSON")
    fit_cmd.add_argument("summary", help="a summary Parquet from ltv summary (per customer or --compress)")
    fit_cmd.add_argument("-o", "--output", required=True, help="model JSON file to write")
    # Not argparse choices: the models are the registry's (ltv_helpers.models.MODELS), read only
    # when a fit runs; an unknown name is refused with the list of them.
    fit_cmd.add_argument("--model", default="bgnbd", help="purchase model of orders: bgnbd (default), mbgnbd, "
                         "pareto_nbd, ggomnbd, or any other registered model of orders")
    fit_cmd.add_argument("--no-spend", action="store_true", help="purchases only, no Gamma-Gamma spend model")
    fit_cmd.add_argument("--penalizer", type=float, default=0.0)
    fit_cmd.add_argument("--unit-days", type=float, help="days per time unit (default: from the summary file)")
    fit_cmd.set_defaults(run=_fit)
    score_cmd = sub.add_parser("score", help="score every customer of a summary with a saved model")
    score_cmd.add_argument("model", help="model JSON from ltv fit")
    score_cmd.add_argument("summary", help="summary Parquet from ltv summary; with --engine spark also a table")
    score_cmd.add_argument("-o", "--output", help="Parquet file to write (Spark: a folder)")
    score_cmd.add_argument("--table", help="with --engine spark: write the scores to this Spark table")
    score_cmd.add_argument("--horizon-days", type=float, default=365.0, help="prediction horizon (default 365)")
    score_cmd.add_argument("--gross-margin", type=float, default=1.0, help="share of spend that is margin")
    score_cmd.add_argument("--annual-discount-rate", type=float, default=0.0)
    _engine_options(score_cmd)
    score_cmd.set_defaults(run=_score)
    lab_cmd = sub.add_parser("lab", help="JupyterLab on the notebooks with the narrative in one language "
                                         "(the other folded; the files keep both)")
    lab_cmd.add_argument("--language", default="en", choices=["en", "zh"])
    lab_cmd.add_argument("--notebook-dir", help="folder to open (default: the toolkit's notebooks/)")
    lab_cmd.add_argument("--port", type=int, help="port (default: JupyterLab's, 8888 or the next free one)")
    lab_cmd.set_defaults(run=_lab)
    shots = sub.add_parser("screenshots", help="PNG pictures of a rendered report (summary and each section)")
    shots.add_argument("report", help="a report.html, e.g. reports/demo/latest/report.html")
    shots.add_argument("-o", "--output", help="folder for the PNGs (default: screenshots/ beside the report)")
    shots.add_argument("--pages", metavar="DIR", help="instead: PNGs of three printed pages of report.pdf (summary, "
                                                      "first section, appendix) into DIR")
    shots.add_argument("--name", help="with --pages: file name prefix (default: the report's language)")
    shots.set_defaults(run=_screenshots)
    args = parser.parse_args(argv)
    from ltv_helpers.report import stop_on_sigterm

    # Messages name options as the user gives them: flags here, YAML keys for a clients file.
    before = os.environ.get(ENV)
    set_interface("yaml" if getattr(args, "config", None) else "cli")
    stop_on_sigterm()
    _quiet_channel_threads()
    try:
        return args.run(args)
    except LTVError as err:
        print(f"ltv {args.command}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ltv {args.command}: stopped; nothing that was still being written counts "
              "(a report's run folder stays incomplete and latest does not move).", file=sys.stderr)
        return 130
    except Exception as err:  # an unusable file must not end in a traceback
        if args.command != "check":
            raise
        detail = str(err).splitlines()[0] if str(err) else ""
        print(f"ltv check: {args.source} could not be read ({type(err).__name__}: {detail}).",
              file=sys.stderr)
        return 2
    finally:
        if before is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = before


if __name__ == "__main__":
    sys.exit(main())
