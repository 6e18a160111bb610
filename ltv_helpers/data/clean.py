"""Cleaning with an audit trail: type every value, reject what cannot be used with a reason, turn
order lines into orders, net refunds. Lines in = lines kept + lines rejected, always.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ltv_helpers.data.parse import (IMPLAUSIBLE_AMOUNT, _as_timestamp, _clean_ids, _end_cut, parse_dates,
                                   parse_numbers)
from ltv_helpers.data.read import _list
from ltv_helpers.labels import (NOTE_DECIMAL_COMMA, NOTE_DECIMAL_MIXED, NOTE_DUPLICATES_KEPT, NOTE_NO_QUANTITY,
                                NOTE_ORDER_TIMES, NOTE_ZERO_KEPT, Note)
from ltv_helpers.options import spell
from ltv_helpers.schema import (
    AMOUNT,
    CHANNEL,
    CUSTOMER_ID,
    LINES,
    ORDER_DATE,
    ORDER_ID,
    QUANTITY,
    READ_ERROR,
    REASON,
    ROW_KEY,
    SOURCE_ROW,
    UNIT_PRICE,
    LTVError,
)

#: Rejection reasons, in the order they are checked; a line gets the first that applies.
REASONS = (
    "malformed line",
    "missing customer id: merged cell",
    "missing customer id: formula not calculated",
    "missing customer id",
    "missing date: merged cell",
    "missing date: formula not calculated",
    "missing date",
    "unparseable date",
    "implausible date",
    "missing amount: merged cell",
    "missing amount: formula not calculated",
    "missing amount",
    "non-numeric amount",
    "ambiguous amount",
    "implausible amount",
    "missing quantity",
    "non-numeric quantity",
    "missing unit price",
    "non-numeric unit price",
    "date after observation end",
    "zero amount",
    "exact duplicate",
    "order lines disagree on customer",
    "refund",
    "refund without same-day purchase",
    "refund netted into same-day purchase",
    "fully refunded",
)

_REASON_CODE = {why: number for number, why in enumerate(REASONS, start=1)}

#: Dates before this are rejected as implausible (two-digit years and Excel's day 0 land there).
EARLIEST_DATE = "1990-01-01"


@dataclass
class CleanResult:
    """What :func:`clean_transactions` kept and rejected.

    ``transactions``: canonical typed orders, sorted by customer, date and amount (one row per
    order; for order-line exports ``lines`` says how many source lines each order merges).
    ``rejected``: every dropped line as it was read, with ``reason``.
    ``report``: lines per rejection reason (``rows``, ``share`` of lines read).
    ``rows_in`` / ``rows_kept``: source lines read / kept (``rows_in = rows_kept + len(rejected)``);
    ``orders``: orders kept. ``refunded``: total refund amount netted into purchases.
    ``input_sha256``: the reader's fingerprint of the input (the file's SHA-256).
    ``kept_flags``: lines kept that a consultant should know about (``"zero amount"``,
    ``"exact duplicate"``), with their counts.
    ``notes``: the assumptions the cleaner made (e.g. the day/month order of dates), as
    :class:`~ltv_helpers.labels.Note` (``note.text("zh")`` for Chinese reports); ``warnings``:
    the same as English sentences.
    """

    transactions: pd.DataFrame
    rejected: pd.DataFrame
    report: pd.DataFrame
    rows_in: int
    rows_kept: int
    refunded: float = 0.0
    columns: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    input_sha256: str = ""
    kept_flags: dict = field(default_factory=dict)

    @property
    def orders(self) -> int:
        return len(self.transactions)

    @property
    def warnings(self) -> list[str]:
        return [str(note) for note in self.notes]

    def __repr__(self) -> str:
        return (f"CleanResult(rows_in={self.rows_in}, kept={self.rows_kept}, orders={self.orders}, "
                f"rejected={len(self.rejected)}, warnings={len(self.warnings)})")


def clean_transactions(
    df: pd.DataFrame,
    *,
    observation_end=None,
    refunds: str = "net",
    zero_amounts: str = "keep",
    duplicates: str = "auto",
    date_format: str | None = None,
    dayfirst: bool | None = None,
    earliest_date=EARLIEST_DATE,
    cancel_prefix: str | None = "C",
    decimal: str | None = None,
    zero_amount: str | None = None,
) -> CleanResult:
    """Type, validate and de-duplicate transactions, listing every dropped line with a reason.

    Checks, in order (a line gets the first reason that applies, see :data:`REASONS`): malformed
    line, missing customer id, missing or unparseable date, implausible date (before
    ``earliest_date`` or after today), missing or non-numeric amount (currency strings such as
    ``¥1,234.50``, ``￥88``, ``$1,000`` and ``(12.00)`` parse; for order lines the quantity and
    unit price instead), date after ``observation_end`` (the whole end day is kept), zero
    amount, exact duplicate (every source column equal, also columns the reader dropped; the
    first is kept).

    Dates: see :func:`ltv_helpers.data.parse.parse_dates`. The day/month order of ``1/12/2010``
    is decided from the data unless ``dayfirst`` or ``date_format`` is given (defaults: what
    :func:`read_transactions` recorded); an assumption is reported in ``warnings``.

    Order lines: without an amount column, amount = quantity x unit price. With an order id,
    the lines of one order become one order (amount = sum of its lines, date = its earliest
    line); an order whose lines name different customers is rejected. Cancellation lines (an
    order id of ``cancel_prefix`` followed by a digit, e.g. ``C536379``, or a negative quantity
    or amount) are refunds.

    Refunds: ``refunds="net"`` nets each refund (a cancellation order, or a refund row) against
    the same customer's purchases of the same calendar day, largest first; the refund's lines are
    then rejected as netted, a purchase brought to zero as "fully refunded", and a refund with no
    same-day purchase is rejected as such. ``refunds="reject"`` rejects every refund line.

    Zero amounts are kept by default (free items and vouchers are visits, which the purchase
    models count), counted in ``kept_flags`` and a note; ``zero_amounts="reject"`` (or its alias
    ``zero_amount="reject"``) drops them. Exact duplicates: ``duplicates="auto"`` rejects them
    when the export has an order id (a repeated line of one order) and keeps them, with a note,
    when it has none (two identical lines can be two real orders); ``"reject"`` and ``"keep"``
    force either.

    Invariant: ``rows_in == rows_kept + len(rejected)``.

    >>> res = clean_transactions(pd.DataFrame({"customer_id": ["a", "a", ""],
    ...     "order_date": ["2024-01-01", "2024-01-01", "2024-01-02"],
    ...     "amount": ["¥1,200.00", "-200", "5"]}))
    >>> res.transactions["amount"].tolist(), res.report["rows"].to_dict()
    ([1000.0], {'missing customer id': 1, 'refund netted into same-day purchase': 1})
    """
    if zero_amount is not None:
        zero_amounts = zero_amount
    for name, value, allowed in (("refunds", refunds, ("net", "reject")),
                                 ("zero_amounts", zero_amounts, ("reject", "keep")),
                                 ("duplicates", duplicates, ("auto", "reject", "keep")),
                                 ("decimal", decimal, (None, ".", ",")),
                                 ("dayfirst", dayfirst, (None, True, False))):
        if value not in allowed:
            raise LTVError(f"{name} must be {' or '.join(map(repr, allowed))}, got {value!r}.")
    if not isinstance(df, pd.DataFrame):
        raise LTVError("clean_transactions takes a DataFrame (the output of read_transactions).")
    missing = [c for c in (CUSTOMER_ID, ORDER_DATE) if c not in df.columns]
    if AMOUNT not in df.columns and UNIT_PRICE not in df.columns:
        missing.append(AMOUNT)
    if missing:
        raise LTVError(
            f"The data has no {', '.join(missing)} column; the columns are: {_list(df.columns)}. "
            "Read it with read_transactions, which maps the client's column names."
        )
    options = df.attrs.get("date_options") or {}
    dayfirst = options.get("dayfirst") if dayfirst is None else dayfirst
    date_format = options.get("date_format") if date_format is None else date_format
    earliest = _as_timestamp(earliest_date, "earliest_date")
    raw = df.reset_index(drop=True)
    n = len(raw)
    if SOURCE_ROW not in raw:
        raw[SOURCE_ROW] = np.arange(1, n + 1)
    # Each line's reason as its number in REASONS plus one; 0 while the line is kept.
    code = np.zeros(n, dtype=np.int8)
    notes: list[Note] = list(df.attrs.get("notes", []))  # the reader's, on the columns it chose

    def alive() -> np.ndarray:
        return code == 0

    def reject(mask, why):
        mask = np.asarray(mask, dtype=bool) & (code == 0)
        code[mask] = _REASON_CODE[why]

    if READ_ERROR in raw:
        reject(raw[READ_ERROR].notna(), "malformed line")

    ids = _clean_ids(raw[CUSTOMER_ID])
    hints = df.attrs.get("cell_hints", {})
    _why_missing(hints, raw, ids.isna().to_numpy(), CUSTOMER_ID, reject)
    reject(ids.isna(), "missing customer id")

    dates, date_missing, date_notes = parse_dates(raw[ORDER_DATE], date_format, dayfirst)
    notes += date_notes
    _why_missing(hints, raw, np.asarray(date_missing, dtype=bool), ORDER_DATE, reject)
    reject(date_missing, "missing date")
    reject(dates.isna(), "unparseable date")
    tomorrow = _end_cut(pd.Timestamp.now().normalize())
    reject((dates < earliest) | (dates >= tomorrow), "implausible date")

    if AMOUNT in raw:
        _why_missing(hints, raw, raw[AMOUNT].isna().to_numpy(), AMOUNT, reject)
    amounts, quantity = _amounts(raw, reject, notes, decimal, df.attrs.get("columns", {}))
    cancel = (amounts < 0).to_numpy().copy()
    if quantity is not None:
        cancel |= (quantity < 0).to_numpy()
    order_ids = _clean_ids(raw[ORDER_ID]) if ORDER_ID in raw else None
    if order_ids is not None and cancel_prefix:
        cancel |= order_ids.str.match(rf"^{re.escape(cancel_prefix)}\d").fillna(False).to_numpy(bool)
    amounts = amounts.where(~cancel, -amounts.abs())

    if observation_end is not None:
        reject(dates >= _end_cut(observation_end), "date after observation end")
    flags = {}
    if zero_amounts == "reject":
        reject(amounts == 0, "zero amount")
    if duplicates == "auto":
        duplicates = "reject" if order_ids is not None and order_ids.notna().any() else "keep"
    columns = [c for c in raw.columns if c not in (SOURCE_ROW, READ_ERROR)]
    dup = _duplicated(raw, columns, alive())
    if duplicates == "reject":
        reject(dup, "exact duplicate")
    elif dup.any():
        flags["exact duplicate"] = int(dup.sum())
        notes.append(Note(NOTE_DUPLICATES_KEPT, {"rows": int(dup.sum()), "option": spell("duplicates", "reject")}))
    if refunds == "reject":
        reject(cancel, "refund")

    typed = pd.DataFrame({CUSTOMER_ID: ids, ORDER_DATE: dates, AMOUNT: amounts})
    if order_ids is not None:
        typed[ORDER_ID] = order_ids
    if CHANNEL in raw:
        typed[CHANNEL] = _clean_ids(raw[CHANNEL])
    if quantity is not None:
        typed[QUANTITY] = quantity
    by_order = order_ids is not None and order_ids[alive()].notna().any()
    if by_order:
        entities, line_entity = _orders_from_lines(typed, alive, reject, cancel, notes)
    else:
        kept = alive()
        entities = typed[kept].reset_index(drop=True)
        line_entity = np.full(n, -1)
        line_entity[kept] = np.arange(kept.sum())

    # Refunds (negative entities) against the same customer's same-day purchases.
    amount, netted, unmatched, refunded = _net_refunds(
        entities[CUSTOMER_ID], entities[ORDER_DATE].dt.normalize(), entities[AMOUNT].to_numpy())
    entity_code = np.zeros(len(entities), dtype=np.int8)
    entity_code[unmatched] = _REASON_CODE["refund without same-day purchase"]
    entity_code[netted] = _REASON_CODE["refund netted into same-day purchase"]
    entity_code[(entity_code == 0) & (amount <= 0) & (entities[AMOUNT].to_numpy() > 0)] = _REASON_CODE["fully refunded"]
    has_line = line_entity >= 0
    line_code = np.zeros(n, dtype=np.int8)
    line_code[has_line] = entity_code[line_entity[has_line]]
    for why in ("refund without same-day purchase", "refund netted into same-day purchase", "fully refunded"):
        reject(line_code == _REASON_CODE[why], why)
    entities[AMOUNT] = amount

    keep = alive()
    zero_kept = int((keep & (amounts == 0).to_numpy()).sum())
    if zero_kept:
        flags["zero amount"] = zero_kept
        notes.append(Note(NOTE_ZERO_KEPT, {"rows": zero_kept, "option": spell("zero_amounts", "reject")}))
    transactions = entities.take(_sort_order(entities, entity_code == 0)).reset_index(drop=True)
    rejected = raw[~keep].copy()
    rejected[REASON] = pd.Series(np.asarray(REASONS, dtype=object)[code[~keep] - 1], index=rejected.index).astype("str")
    rejected = rejected.reset_index(drop=True)
    counts = np.bincount(code, minlength=len(REASONS) + 1)[1:]
    report = pd.DataFrame({"rows": counts.astype("int64")}, index=list(REASONS))
    report = report[report["rows"] > 0]
    report.index.name = REASON
    report["share"] = report["rows"] / max(n, 1)
    lines_kept = int(transactions[LINES].sum()) if LINES in transactions else len(transactions)
    if lines_kept != int(keep.sum()) or lines_kept + len(rejected) != n:
        raise AssertionError("clean_transactions lost rows")  # an internal guarantee, not a user error
    return CleanResult(transactions, rejected, report, n, lines_kept, float(refunded),
                       dict(df.attrs.get("columns", {})), notes, df.attrs.get("sha256", ""), flags)


def _duplicated(raw: pd.DataFrame, columns: list, alive: np.ndarray) -> np.ndarray:
    """Which ``alive`` lines repeat an earlier alive line in every one of ``columns`` (the first is
    kept). With the reader's ``row_key`` (a hash of every source column) the keys that repeat are
    found by sorting, and each repeat is confirmed equal to its key's first line (a hash can collide);
    without it, pandas compares the columns."""
    out = np.zeros(len(raw), dtype=bool)
    rows = np.flatnonzero(alive)
    if ROW_KEY not in raw:
        out[rows] = raw.loc[alive, columns].duplicated(keep="first").to_numpy()
        return out
    keys = raw[ROW_KEY].to_numpy().astype(np.uint64)[rows]
    # Only the lines whose key repeats matter: the sorted keys show them (NumPy sorts 64-bit keys
    # in a few hundredths of a second per million rows), and the work below runs on their lines alone.
    ordered = np.sort(keys)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeated):
        return out
    some = np.flatnonzero(pc.is_in(pa.array(keys), value_set=pa.array(repeated)).to_numpy(zero_copy_only=False))
    rows = rows[some]
    codes = pd.factorize(keys[some])[0]  # numbered in order of appearance
    running = np.maximum.accumulate(codes)
    first = np.flatnonzero(np.r_[True, running[1:] > running[:-1]])  # key k's first line
    repeat = np.flatnonzero(first[codes] != np.arange(len(codes)))
    if repeat.size:
        left = raw.iloc[rows[repeat]][columns].astype("str").to_numpy()
        right = raw.iloc[rows[first[codes[repeat]]]][columns].astype("str").to_numpy()
        same = (left == right).all(axis=1)
        out[rows[repeat[same]]] = True
        if not same.all():  # a hash collision: those keys' lines are compared column by column
            collided = np.isin(codes, codes[repeat[~same]])
            lines = rows[collided]
            out[lines] = raw.iloc[lines][columns].astype("str").duplicated(keep="first").to_numpy()
    return out


def _sort_order(frame: pd.DataFrame, keep: np.ndarray) -> np.ndarray:
    """The rows where ``keep`` holds, by customer, date and amount, ties in row order (a stable
    sort), by DuckDB."""
    from ltv_helpers.data.engines import on_frames

    keep = np.asarray(keep, dtype=bool)
    if keep.sum() < 2:
        return np.flatnonzero(keep)
    keys = pd.DataFrame({"c": frame[CUSTOMER_ID].astype("str").array, "d": frame[ORDER_DATE].to_numpy(),
                         "a": frame[AMOUNT].to_numpy(dtype=float), "i": np.arange(len(frame)), "k": keep})
    return on_frames("SELECT i FROM k WHERE k ORDER BY c, d, a, i", k=keys)["i"].astype(np.int64)


_HINT_REASON = {"merged": "merged cell", "formula": "formula not calculated"}


def _why_missing(hints: dict, raw: pd.DataFrame, missing: np.ndarray, role: str, reject) -> None:
    """Reject the missing cells of ``role`` that the reader found to be merged or uncalculated
    formula cells with that reason (``missing amount: formula not calculated``)."""
    rows = hints.get(role)
    if not rows:
        return
    what = {CUSTOMER_ID: "customer id", ORDER_DATE: "date", AMOUNT: "amount"}[role]
    for hint, why in _HINT_REASON.items():
        mask = np.zeros(len(raw), dtype=bool)
        mask[[r for r, h in rows.items() if h == hint and r < len(raw)]] = True
        reject(mask & missing, f"missing {what}: {why}")


def _numbers(raw: pd.DataFrame, role: str, decimal, columns: dict, notes: list, reject, what: str) -> pd.Series:
    """One numeric column parsed (:func:`parse_numbers`), its lines rejected where the value is
    missing, not a number, ambiguous or implausible, and a note on how its decimal mark was read."""
    parsed = parse_numbers(raw[role], decimal)
    text = raw[role].astype("str")
    column = columns.get(role, role)
    reject(parsed.missing, f"missing {what}")
    if what == "amount":
        reject(parsed.implausible, "implausible amount")
        reject(parsed.ambiguous, "ambiguous amount")
    reject(parsed.values.isna(), f"non-numeric {what}")
    if decimal is None and parsed.decimal == "," and what != "quantity":
        forms = text[text.str.contains(r",|\.\d{3}\.", regex=True).fillna(False).to_numpy(bool)]
        example = forms.iloc[0] if len(forms) else "-"
        notes.append(Note(NOTE_DECIMAL_COMMA, {"column": str(column), "example": str(example),
                                               "option": spell("decimal", ".")}))
    elif parsed.decimal == "mixed":
        comma = text[text.str.contains(r"\d,\d{1,2}\b|\.\d{3},", regex=True)]
        dot = text[text.str.contains(r"\d\.\d{1,2}\b|,\d{3}\.", regex=True)]
        example = text[parsed.ambiguous].iloc[0] if parsed.ambiguous.any() else "-"
        notes.append(Note(NOTE_DECIMAL_MIXED, {
            "column": str(column), "comma": str(comma.iloc[0]) if len(comma) else "-",
            "dot": str(dot.iloc[0]) if len(dot) else "-", "rows": int(parsed.ambiguous.sum()), "example": str(example),
            "comma_option": spell("decimal", ","), "dot_option": spell("decimal", ".")}))
    return parsed.values


def _amounts(raw: pd.DataFrame, reject, notes: list, decimal=None, columns: dict | None = None
             ) -> tuple[pd.Series, pd.Series | None]:
    """Line amounts (the amount column, or quantity x unit price) and quantities, rejecting
    the lines where they are missing, not numbers, ambiguous or implausible."""
    columns = columns or {}
    if AMOUNT in raw:
        qty = parse_numbers(raw[QUANTITY], decimal).values if QUANTITY in raw else None
        return _numbers(raw, AMOUNT, decimal, columns, notes, reject, "amount"), qty
    if QUANTITY not in raw:
        notes.append(Note(NOTE_NO_QUANTITY, {"quantity": spell("quantity")}))
        qty = None
    else:
        qty = _numbers(raw, QUANTITY, decimal, columns, notes, reject, "quantity")
    price = _numbers(raw, UNIT_PRICE, decimal, columns, notes, reject, "unit price")
    if qty is None:
        return price, None
    # Rounded to a millionth: 3 x 2.55 is 7.6499999... in binary floating point.
    amount = (qty * price).round(6)
    reject(~np.isfinite(amount.fillna(0)) | (amount.abs() >= IMPLAUSIBLE_AMOUNT), "implausible amount")
    return amount, qty


def _orders_from_lines(typed: pd.DataFrame, kept, reject, cancel: np.ndarray,
                       notes: list) -> tuple[pd.DataFrame, np.ndarray]:
    """One purchase entity per order (its positive lines) and one refund entity per order with
    refund lines; returns them and, per source line, the row of its entity (-1: none). ``kept()``
    is the mask of the lines not rejected so far."""
    n = len(typed)
    alive = kept()
    # A line without an order id is an order of its own.
    key = typed[ORDER_ID].astype(object).where(typed[ORDER_ID].notna(),
                                               "\x00line" + pd.Series(np.arange(n)).astype(str))
    customers = typed[CUSTOMER_ID][alive].groupby(key[alive].to_numpy()).nunique()
    clash = key.map(customers).gt(1).to_numpy() & alive
    reject(clash, "order lines disagree on customer")
    alive = kept()
    lines = typed[alive].reset_index(drop=True)
    refund_line = cancel[alive]
    group = pd.DataFrame({"key": key[alive].to_numpy(), "refund": refund_line})
    codes = group.groupby(["key", "refund"], sort=False).ngroup().to_numpy()
    g = lines.groupby(codes, sort=True)
    entities = pd.DataFrame({
        CUSTOMER_ID: g[CUSTOMER_ID].first(),
        ORDER_DATE: g[ORDER_DATE].min(),
        AMOUNT: g[AMOUNT].sum().round(6),
    })
    entities[ORDER_ID] = g[ORDER_ID].first()
    if CHANNEL in lines:
        entities[CHANNEL] = g[CHANNEL].first()
    if QUANTITY in lines:
        entities[QUANTITY] = g[QUANTITY].sum()
    entities[LINES] = g.size().astype("int64")
    spread = int((g[ORDER_DATE].nunique() > 1).sum())
    if spread:
        notes.append(Note(NOTE_ORDER_TIMES, {"orders": spread}))
    entities = entities.reset_index(drop=True)
    line_entity = np.full(n, -1)
    line_entity[alive] = codes
    return entities, line_entity


def _net_refunds(customer: pd.Series, day: pd.Series, amount: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Net negative amounts into the same customer's positive amounts of the same day.

    Each (customer, day)'s refunds are allocated to its purchases, largest first, never below
    zero. Returns the purchases' new amounts (refunds unchanged), the masks of refunds netted and
    of refunds without a same-day purchase, and the total netted.
    """
    amount = np.asarray(amount, dtype=float)
    new = amount.copy()
    neg = amount < 0
    if not neg.any():
        return new, np.zeros(len(amount), bool), np.zeros(len(amount), bool), 0.0
    # Only the customers with a refund matter: the work runs on their rows alone.
    ids = pa.array(customer.astype("str").array)
    involved = pc.is_in(ids, value_set=pc.unique(ids.filter(pa.array(neg)))).to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(involved)
    # One code per (customer, day): the customer's code and the day number packed in an int64.
    customers = pd.factorize(ids.take(pa.array(rows)).to_numpy(zero_copy_only=False))[0].astype(np.int64)
    days = day.to_numpy()[rows].astype("datetime64[D]").astype(np.int64)
    days -= days.min()
    group = pd.factorize(customers * (int(days.max()) + 1) + days)[0]
    sub = amount[rows]
    sub_neg = neg[rows]
    bought = np.bincount(group, weights=np.where(sub_neg, 0.0, sub))[group]
    owed = np.bincount(group, weights=np.where(sub_neg, -sub, 0.0))[group]
    netted = np.zeros(len(amount), bool)
    unmatched = np.zeros(len(amount), bool)
    netted[rows] = sub_neg & (bought > 0)
    unmatched[rows] = sub_neg & ~(bought > 0)
    target = ~sub_neg & (owed > 0) & (sub > 0)
    if not target.any():
        return new, netted, unmatched, 0.0
    part = pd.DataFrame({"c": customers[target], "d": days[target], "amt": sub[target],
                         "owed": owed[target]}, index=rows[target])
    part = part.sort_values(["c", "d", "amt"], ascending=[True, True, False], kind="stable")
    before = part.groupby(["c", "d"], sort=False)["amt"].cumsum() - part["amt"]
    cut = (part["owed"] - before).clip(lower=0).clip(upper=part["amt"])
    new[part.index.to_numpy()] = (part["amt"] - cut).round(10).to_numpy()
    return new, netted, unmatched, float(cut.sum())

