"""The reading and cleaning options of an export, under every name a user meets them.

The same option is ``amount="grand_total"`` in Python, ``amount_column = "grand_total"`` in the
collection notebook's parameters, ``--amount grand_total`` on the command line (``ltv check``
and ``ltv report``) and ``columns: {amount: grand_total}`` in a clients YAML. :data:`OPTIONS`
lists them once; the command line, the YAML checks and the messages are built from it, so a
message names the option the way the user wrote it (:func:`spell`).

The interface in use is the environment variable ``LTV_INTERFACE`` (``python``, ``notebook``,
``cli`` or ``yaml``), set by the ``ltv`` command and inherited by the notebooks it runs; a notebook
opened by hand sets ``notebook`` (:func:`default_interface`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ltv_helpers.schema import LIMIT_HELP, LIMITS, LTVError

INTERFACES = ("python", "notebook", "cli", "yaml")
ENV = "LTV_INTERFACE"


@dataclass(frozen=True)
class Option:
    """One option: its Python keyword, notebook parameter, command-line flag and YAML key (a
    column role lives under ``columns:``), the values it takes, and what it does."""

    python: str
    parameter: str
    flag: str
    yaml: str
    help: str
    choices: tuple = ()
    stage: str = "read"  # "read": read_transactions; "clean": clean_transactions

    @property
    def is_column(self) -> bool:
        return self.yaml.startswith("columns.")


OPTIONS: tuple[Option, ...] = (
    Option("customer_id", "customer_id_column", "--customer-id", "columns.customer_id",
           "column holding the customer id"),
    Option("order_date", "date_column", "--date", "columns.order_date", "column holding the order date"),
    Option("amount", "amount_column", "--amount", "columns.amount", "column holding the order amount"),
    Option("order_id", "order_id_column", "--order-id", "columns.order_id",
           "column holding the order id (order-line exports)"),
    Option("channel", "channel_column", "--channel", "columns.channel", "column holding the sales channel"),
    Option("quantity", "quantity_column", "--quantity", "columns.quantity",
           "column holding the quantity of an order line"),
    Option("unit_price", "unit_price_column", "--unit-price", "columns.unit_price",
           "column holding the unit price of an order line"),
    Option("encoding", "encoding", "--encoding", "encoding", "text encoding of a CSV (default: detect)"),
    Option("sheet", "sheet", "--sheet", "sheet",
           "Excel sheet name, or 'all' to stack the sheets that have the same columns"),
    Option("sql", "sql", "--sql", "query", "query for a DuckDB file or database URL"),
    Option("dayfirst", "dayfirst", "--dayfirst", "dayfirst", "read 1/12/2010 as 1 December (--monthfirst: 12 January)",
           (True, False)),
    Option("date_format", "date_format", "--date-format", "date_format",
           "strptime format of the dates, e.g. '%d/%m/%Y %H:%M'"),
    Option("decimal", "decimal", "--decimal", "decimal", "decimal mark of the amounts (default: decided per column)",
           (".", ","), "clean"),
    Option("observation_end", "observation_end", "--observation-end", "observation_end",
           "last date to keep (YYYY-MM-DD)", (), "clean"),
    Option("refunds", "refunds", "--refunds", "refunds", "net refunds into same-day purchases, or reject them",
           ("net", "reject"), "clean"),
    Option("zero_amounts", "zero_amounts", "--zero-amounts", "zero_amounts",
           "keep zero-value lines as purchases (flagged), or reject them", ("keep", "reject"), "clean"),
    Option("duplicates", "duplicates", "--duplicates", "duplicates",
           "exact repeats: auto (rejected with an order id, kept without), reject or keep",
           ("auto", "reject", "keep"), "clean"),
)
BY_PYTHON = {o.python: o for o in OPTIONS}


def add_arguments(parser) -> None:
    """Every option of :data:`OPTIONS` on an argparse parser (``ltv check``, ``ltv report``),
    and the input limits (``--max-columns`` ...)."""
    for opt in OPTIONS:
        if opt.python == "dayfirst":
            order = parser.add_mutually_exclusive_group()
            order.add_argument("--dayfirst", dest="dayfirst", action="store_const", const=True,
                               help="dates are day/month/year (default: decided from the data)")
            order.add_argument("--monthfirst", dest="dayfirst", action="store_const", const=False,
                               help="dates are month/day/year")
            continue
        parser.add_argument(opt.flag, dest=opt.python, choices=list(opt.choices) or None,
                            help=opt.help.replace("%", "%%"))
    for key, default in LIMITS.items():
        parser.add_argument(f"--{key.replace('_', '-')}", type=int,
                            help=f"raise the limit on {LIMIT_HELP[key]} (default {default:,})")


def from_arguments(args) -> tuple[dict, dict, dict]:
    """The options given on the command line: (read_transactions keywords, clean_transactions
    keywords, input limits)."""
    read, clean = {}, {}
    for opt in OPTIONS:
        value = getattr(args, opt.python, None)
        if value is not None:
            (read if opt.stage == "read" else clean)[opt.python] = value
    limits = {key: getattr(args, key) for key in LIMITS if getattr(args, key, None) is not None}
    return read, clean, limits


def notebook_parameters(read: dict, clean: dict, limits: dict) -> dict:
    """The collection notebook's parameters for these options (what ``ltv report`` passes)."""
    params = {BY_PYTHON[k].parameter: v for k, v in {**read, **clean}.items()}
    if limits:
        params["limits"] = limits
    return params


def interface() -> str:
    """The interface in use (``LTV_INTERFACE``; ``python`` when unset or unknown)."""
    value = os.environ.get(ENV, "python")
    return value if value in INTERFACES else "python"


def set_interface(name: str) -> None:
    """Name ``name`` as the interface in use, for this process and the notebooks it starts."""
    if name not in INTERFACES:
        raise LTVError(f"The interface must be one of {', '.join(INTERFACES)}, got {name!r}.")
    os.environ[ENV] = name


def default_interface(name: str = "notebook") -> str:
    """Set the interface unless a caller (``ltv report``) already did; returns the one in use."""
    os.environ.setdefault(ENV, name)
    return interface()


def _value(value, where: str) -> str:
    """``value`` as the user would type it there: Python's repr, a shell word, a YAML scalar."""
    import json
    import re
    import shlex

    if value is True or value is False:
        return {"python": str(value), "notebook": str(value), "yaml": str(value).lower()}.get(where, "")
    if isinstance(value, str) and value.startswith("<"):
        return value
    if where in ("python", "notebook"):
        return repr(value)
    if where == "cli":
        return shlex.quote(str(value))
    text = str(value)  # YAML: plain when safe (letters of any script, digits, . _ - /), else quoted
    plain = re.fullmatch(r"[^\W\d][\w.\-/]*", text) and text.lower() not in ("true", "false", "null", "yes", "no",
                                                                          "on", "off")
    return text if plain else json.dumps(text, ensure_ascii=False)


def spell(name: str, value=None, where: str | None = None) -> str:
    """Option ``name`` (its Python keyword) set to ``value``, written for the interface in use:
    ``amount='grand_total'``, ``amount_column = 'grand_total'``, ``--amount grand_total`` or
    ``columns: {amount: grand_total}``. ``value=None`` gives a placeholder.

    >>> spell("amount", "grand_total", "cli"), spell("amount", "grand_total", "yaml")
    ('--amount grand_total', 'columns: {amount: grand_total}')
    >>> spell("dayfirst", False, "cli"), spell("zero_amounts", "reject", "python")
    ('--monthfirst', "zero_amounts='reject'")
    """
    where = where or interface()
    opt = BY_PYTHON[name]
    shown = _value("<column name>" if value is None and opt.is_column else
                   "<value>" if value is None else value, where)
    if where == "python":
        return f"{opt.python}={shown}"
    if where == "notebook":
        return f"{opt.parameter} = {shown}"
    if where == "cli":
        if opt.python == "dayfirst":
            return "--dayfirst" if value is not False else "--monthfirst"
        return f"{opt.flag} {shown}"
    if opt.is_column:
        return f"columns: {{{opt.yaml.split('.', 1)[1]}: {shown}}}"
    return f"{opt.yaml}: {shown}"
