"""The ``ltv`` command: ``ltv check`` (data quality of an export), ``ltv report`` (one client, or
every client of a ``clients.yaml``) and ``ltv demo``."""

from __future__ import annotations

import argparse
import json
import sys

from ltv_helpers.schema import LTVError


def _check(args) -> int:
    from ltv_helpers.data import clean_transactions, data_quality, read_transactions

    raw = read_transactions(args.source, customer_id=args.customer_id, order_date=args.date,
                            amount=args.amount, encoding=args.encoding, sheet=args.sheet,
                            sql=args.sql, order_id=args.order_id, quantity=args.quantity,
                            unit_price=args.unit_price, dayfirst=args.dayfirst,
                            date_format=args.date_format)
    result = clean_transactions(raw, observation_end=args.observation_end)
    tx = result.transactions
    usable = result.rows_kept > 0
    if args.json:
        print(json.dumps({
            "source": raw.attrs.get("source"),
            "rows_in": result.rows_in,
            "rows_kept": result.rows_kept,
            "orders": result.orders,
            "rejected": {k: int(v) for k, v in result.report["rows"].items()},
            "customers": int(tx["customer_id"].nunique()),
            "first_order": tx["order_date"].min().date().isoformat() if usable else None,
            "last_order": tx["order_date"].max().date().isoformat() if usable else None,
            "revenue": round(float(tx["amount"].sum()), 2),
            "columns": result.columns,
            "warnings": result.warnings,
            "usable": usable,
        }, ensure_ascii=False))
    else:
        print(f"Data quality of {raw.attrs.get('source')}")
        print(data_quality(result).to_string())
        for sentence in result.warnings:
            print(f"warning: {sentence}")
    if not usable:
        raise LTVError(f"No usable rows: all {result.rows_in} rows were rejected "
                       f"({', '.join(f'{n} {r}' for r, n in result.report['rows'].items())}).")
    return 0


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
        from ltv_helpers.batch import run_config

        return run_config(args.config, workers=args.workers, pdf=not args.no_pdf)
    if not args.source or not args.client or not args.output:
        raise LTVError("ltv report needs SOURCE, --client and --output (or --config clients.yaml).")
    params = {"client": args.client, "source": args.source, "language": args.language}
    for key, value in (("currency", args.currency), ("sql", args.sql), ("dayfirst", args.dayfirst),
                       ("date_format", args.date_format), ("title", args.title)):
        if value is not None:
            params[key] = value
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


def _screenshots(args) -> int:
    from ltv_helpers.report import screenshots

    for path in screenshots(args.report, args.output):
        print(path)
    return 0


def _date_options(parser) -> None:
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--dayfirst", dest="dayfirst", action="store_const", const=True,
                       help="dates are day/month/year (default: decided from the data)")
    order.add_argument("--monthfirst", dest="dayfirst", action="store_const", const=False,
                       help="dates are month/day/year")
    parser.add_argument("--date-format", help="strptime format of the dates, e.g. '%%d/%%m/%%Y %%H:%%M'")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ltv", description="Customer lifetime value toolkit.")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="read and clean an export, print its data quality report")
    check.add_argument("source", help="CSV/Excel/Parquet/DuckDB file, or cdnow / cdnow_sample")
    check.add_argument("--customer-id", help="column holding the customer id")
    check.add_argument("--date", help="column holding the order date")
    check.add_argument("--amount", help="column holding the order amount")
    check.add_argument("--encoding", help="text encoding of a CSV (default: detect UTF-8/GB18030)")
    check.add_argument("--sheet", help="Excel sheet name")
    check.add_argument("--sql", help="query for a DuckDB file or database URL")
    check.add_argument("--order-id", help="column holding the order id (order-line exports)")
    check.add_argument("--quantity", help="column holding the quantity of an order line")
    check.add_argument("--unit-price", help="column holding the unit price of an order line")
    _date_options(check)
    check.add_argument("--observation-end", help="last date to keep (YYYY-MM-DD)")
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
    report.add_argument("--sql", help="query for a DuckDB file or database URL")
    report.add_argument("--no-pdf", action="store_true", help="write report.html only")
    _date_options(report)
    report.add_argument("-p", "--param", action="append",
                        help="any other notebook parameter, KEY=VALUE (JSON values allowed), repeatable")
    report.set_defaults(run=_report)
    shots = sub.add_parser("screenshots", help="PNG pictures of a rendered report (summary and each section)")
    shots.add_argument("report", help="a report.html, e.g. reports/demo/latest/report.html")
    shots.add_argument("-o", "--output", help="folder for the PNGs (default: screenshots/ beside the report)")
    shots.set_defaults(run=_screenshots)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except LTVError as err:
        print(f"ltv {args.command}: {err}", file=sys.stderr)
        return 2
    except Exception as err:  # an unusable file must not end in a traceback
        if args.command != "check":
            raise
        detail = str(err).splitlines()[0] if str(err) else ""
        print(f"ltv check: {args.source} could not be read ({type(err).__name__}: {detail}).",
              file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
