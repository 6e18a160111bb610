"""Reading a client's export: column detection, file and database readers, credential checks.

Values stay as read (strings from text files); :mod:`ltv_helpers.data.clean` types them.
"""

from __future__ import annotations

import csv
import io
import os
import re
import unicodedata
from pathlib import Path
from typing import Iterable

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_helpers.credentials import refuse_credentials
from ltv_helpers.data.engines import connect
from ltv_helpers.datasets import load_cdnow
from ltv_helpers.labels import (NOTE_COLUMN_CHOICE, NOTE_COLUMN_TWICE, NOTE_ENCODING, NOTE_OTHER_SHEETS,
                                NOTE_SHEETS_STACKED, Note)
from ltv_helpers.options import spell
from ltv_helpers.schema import (
    AMOUNT,
    BUNDLED,
    CHANNEL,
    CUSTOMER_ID,
    LIMITS,
    ORDER_DATE,
    ORDER_ID,
    QUANTITY,
    READ_ERROR,
    ROW_KEY,
    SOURCE_ROW,
    UNIT_PRICE,
    LTVError,
)

# --------------------------------------------------------------------------------------------
# Column detection
# --------------------------------------------------------------------------------------------

#: Header names recognised for each role, most specific first. Matching ignores case, spaces,
#: underscores, hyphens, dots and full-width forms, so "Customer ID", "customer_id" and
#: "客户ＩＤ" all match.
COLUMN_CANDIDATES: dict[str, tuple[str, ...]] = {
    CUSTOMER_ID: (
        # Olist and other marketplaces give every order its own customer_id and the person a
        # customer_unique_id: the person is the customer.
        "customer_unique_id", "unique_customer_id", "customer_id", "customer", "cust_id", "customer_no",
        "customer_number", "client_id",
        "user_id", "userid", "uid", "member_id", "member_no", "buyer_id", "account_id", "one_id",
        "客户ID", "客户编号", "客户号", "会员ID", "会员编号", "会员号", "会员卡号", "用户ID",
        "用户编号", "买家ID", "顾客ID", "顾客编号", "OneID", "买家会员名", "买家会员ID", "买家昵称",
    ),
    ORDER_DATE: (
        "order_date", "order_time", "order_datetime", "order_purchase_timestamp", "purchase_timestamp",
        "order_created_at", "order_placed_at", "purchase_date", "purchase_time",
        "transaction_date", "transaction_time", "invoice_date", "paid_at", "payment_time",
        "created_at", "date", "datetime", "timestamp", "time",
        "下单时间", "订单日期", "支付时间", "付款时间", "订单付款时间", "交易时间", "成交时间", "订单创建时间",
        "创建时间", "下单日期", "购买日期", "购买时间", "日期", "时间",
    ),
    AMOUNT: (
        "amount", "revenue", "order_amount", "order_value", "order_total", "grand_total",
        "total_paid", "amount_paid", "paid_amount", "payment_amount", "payment_value", "sales",
        "sales_amount", "net_sales", "total_sales", "total", "total_amount", "line_total",
        "value", "dollar_value", "gmv",
        "买家实际支付金额", "实际支付金额", "实付金额", "订单金额", "支付金额", "实收金额", "付款金额", "成交金额", "销售额",  # noqa: E501
        "销售金额", "消费金额", "金额", "总金额", "应付金额", "小计",
    ),
    ORDER_ID: ("order_id", "order_no", "order_number", "invoice", "invoice_no", "invoice_id",
               "invoice_number", "receipt_no", "transaction_id", "order",
               "订单号", "订单编号", "订单ID", "主订单编号", "交易号", "流水号", "小票号"),
    CHANNEL: ("channel", "acquisition_channel", "sales_channel", "platform", "source", "utm_source", "store",
              "shop", "渠道", "获客渠道", "平台", "店铺", "来源"),
    QUANTITY: ("quantity", "qty", "units", "items", "number_of_cds",
               "数量", "购买数量", "商品数量", "件数"),
    # "price" next to a quantity is the price of one item (order-line exports such as the
    # Online Retail data: Invoice, StockCode, Quantity, InvoiceDate, Price, Customer ID).
    UNIT_PRICE: ("unit_price", "price_each", "item_price", "price", "sale_price",
                 "单价", "商品单价", "成交单价", "销售单价", "价格"),
}


#: Traditional characters of the Chinese headers, folded to the simplified ones of
#: :data:`COLUMN_CANDIDATES` (Taiwan and Hong Kong exports: 會員ID, 下單時間, 實付金額).
_TRADITIONAL = str.maketrans("會員戶單時間實額訂號編數價買銷費總應創購顧碼帳", "会员户单时间实额订号编数价买销费总应创购顾码账")  # noqa: E501


def _norm_header(name: object) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip().lower().translate(_TRADITIONAL)
    return re.sub(r"[\s_\-./()（）]+", "", text)


def detect_columns(columns: Iterable[object], **overrides: str | None) -> dict[str, str]:
    """Map canonical roles to source column names.

    Each role (``customer_id``, ``order_date``, ``amount``, and the optional ``order_id``,
    ``channel``, ``quantity``, ``unit_price``) takes the explicit override when given, else the
    first header of :data:`COLUMN_CANDIDATES` found among ``columns``. An order-line export
    without an amount column needs a unit price (the amount is then quantity x unit price).
    Raises :class:`LTVError` naming the missing role and the columns that exist when a required
    role has no column.

    >>> detect_columns(["会员ID", "支付时间", "实付金额", "备注"])
    {'customer_id': '会员ID', 'order_date': '支付时间', 'amount': '实付金额'}
    >>> detect_columns(["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"])["unit_price"]
    'UnitPrice'
    """
    columns = [str(c) for c in columns]
    by_norm: dict[str, str] = {}
    for col in columns:
        by_norm.setdefault(_norm_header(col), col)
    found: dict[str, str] = {}
    used: set[str] = set()
    for role, candidates in COLUMN_CANDIDATES.items():
        wanted = overrides.get(role)
        if wanted is not None:
            if wanted not in columns:
                raise LTVError(
                    f"The {role.replace('_', ' ')} column {wanted!r} is not in the data (given as "
                    f"{spell(role, wanted)}); the columns are: {_list(columns)}."
                )
            found[role] = wanted
            used.add(wanted)
            continue
        for cand in candidates:
            col = by_norm.get(_norm_header(cand))
            if col is not None and col not in used and col not in overrides.values():
                found[role] = col
                used.add(col)
                break
    for role in (CUSTOMER_ID, ORDER_DATE):
        if role not in found:
            raise LTVError(
                f"No {role.replace('_', ' ')} column found; pass {spell(role)}. "
                f"The columns are: {_list(columns)}."
            )
    if AMOUNT not in found and UNIT_PRICE not in found:
        raise LTVError(
            f"No amount column found; pass {spell(AMOUNT)}, or {spell(UNIT_PRICE)} and {spell(QUANTITY)} for "
            f"an export with one row per order line. The columns are: {_list(columns)}."
        )
    return found


def column_notes(columns: Iterable[object], mapping: dict, overrides: dict | None = None) -> list[Note]:
    """Notes on the column choice a user should check: a required role that several headers
    could fill (the one used and the others), and a header name that appears twice (pandas reads
    the second as ``name.1``)."""
    columns = [str(c) for c in columns]
    overrides = overrides or {}
    notes = []
    for role in (CUSTOMER_ID, ORDER_DATE, AMOUNT):
        if role not in mapping or role in overrides:
            continue
        wanted = {_norm_header(c) for c in COLUMN_CANDIDATES[role]}
        others = [c for c in columns if _norm_header(c) in wanted and c != mapping[role]
                  and c not in mapping.values()]
        if others:
            notes.append(Note(NOTE_COLUMN_CHOICE, {"role": role.replace("_", " "), "used": mapping[role],
                                                   "others": ", ".join(others[:5]),
                                                   "option": spell(role, others[0])}))
    present = set(columns)
    for col in columns:
        match = re.match(r"^(.+)\.(\d+)$", col)
        if match and match.group(1) in present and match.group(1) in mapping.values():
            role = next(r for r, c in mapping.items() if c == match.group(1))
            notes.append(Note(NOTE_COLUMN_TWICE, {"column": match.group(1), "role": role.replace("_", " "),
                                                  "option": spell(role, col)}))
    return notes


def _list(columns: Iterable[object], most: int = 40) -> str:
    """Names for a message: all of them, or the first ``most`` and how many more."""
    cols = [str(c) for c in columns]
    if len(cols) > most:
        return ", ".join(cols[:most]) + f" and {len(cols) - most:,} more"
    return ", ".join(cols) if cols else "(none)"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def input_limits(limits: dict | None = None) -> dict:
    """:data:`LIMITS` with ``limits`` (a mapping of the same keys to whole numbers) applied."""
    out = dict(LIMITS)
    for key, value in (limits or {}).items():
        if key not in LIMITS:
            raise LTVError(f"Unknown input limit {key!r}; the limits are: {', '.join(LIMITS)}.")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise LTVError(f"The input limit {key} must be a whole number of 1 or more, got {value!r}.")
        out[key] = value
    return out


def _limit_hint(key: str) -> str:
    return f"raise it with limits={{'{key}': ...}} (ltv check --{key.replace('_', '-')})"


def _check_csv_lines(path: Path, limit: int) -> int:
    """Refuse a file with a line longer than ``limit`` bytes, naming the line; else return the
    number of physical lines. One pass over the file in blocks of half the limit: a line that
    long spans a whole block without a newline, and only then is its exact length measured."""
    half = max(1, limit // 2)
    start, pos, line = 0, 0, 1  # start of the current line, bytes read, its number
    with path.open("rb") as fh:
        newline = b"\n"
        while block := fh.read(half):
            if pos == 0 and b"\n" not in block and b"\r" in block:
                newline = b"\r"  # an old Mac export: lines end in a carriage return alone
            first = block.find(newline)
            end = pos + (first if first >= 0 else len(block))
            if end - start > limit:
                raise LTVError(f"Line {line} of {path.name} is longer than {limit:,} bytes, the limit for one line "
                               f"of a CSV export; {_limit_hint('max_line_bytes')}.")
            if first >= 0:
                line += block.count(newline)
                start = pos + block.rfind(newline) + 1
            pos += len(block)
    return line - 1 if pos == start else line  # a last line without a newline counts too


def _check_unzipped_size(path: Path, limit: int) -> None:
    """Refuse a workbook (a zip file) whose contents decompress to more than ``limit`` bytes."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as book:
            size = sum(info.file_size for info in book.infolist())
    except zipfile.BadZipFile:
        return  # an old .xls, or not a workbook: the Excel reader says so
    if size > limit:
        raise LTVError(f"{path.name} decompresses to {size / 1024 ** 2:,.0f} MB, more than the limit of "
                       f"{limit / 1024 ** 2:,.0f} MB for a workbook; {_limit_hint('max_unzipped_bytes')}, "
                       "or export the sheet as CSV.")


#: Longest run of text without markup in a workbook's XML: Excel itself stops a cell at 32,767
#: characters, so a run this long is a crafted file (one 1.5 GB cell in a 1.5 MB workbook).
_XML_TEXT_RUN = 4 * 1024 ** 2
_CELL_COLUMN = re.compile(rb'<c\b[^>]*?\sr="([A-Z]{1,3})')
_CELL_ROW = re.compile(rb'<c\b[^>]*?\sr="[A-Z]{1,3}([0-9]{1,7})"')


def _column_number(letters: bytes) -> int:
    """``b"A"`` -> 1, ``b"AB"`` -> 28, ``b"XFD"`` -> 16,384."""
    number = 0
    for char in letters:
        number = number * 26 + char - 64
    return number


def _check_workbook_parts(path: Path, sheet_part: str | None, max_cells: int) -> None:
    """Read the sheet's XML (and the shared strings) as a stream before openpyxl does: refuse a
    cell larger than Excel allows, and a sheet whose real extent (its last row times its last
    column, from the cells' own references, whatever its <dimension> says) passes ``max_cells``.
    Streams in 4 MiB blocks: memory stays flat."""
    import zipfile

    with zipfile.ZipFile(path) as book:
        names = set(book.namelist())
        parts = [p for p in ("xl/sharedStrings.xml", sheet_part) if p and p in names]
        for part in parts:
            rows = columns = 0
            tail = b""
            with book.open(part) as fh:
                while block := fh.read(_XML_TEXT_RUN):
                    if b"<" not in block:
                        raise LTVError(f"{path.name} holds a cell of more than {_XML_TEXT_RUN // 1024 ** 2} MB, which "
                                       "Excel cannot write (it stops at 32,767 characters), so it is not read.")
                    if part == sheet_part:  # the block's distinct columns, and its largest row
                        text = tail + block
                        columns = max([columns, *map(_column_number, set(_CELL_COLUMN.findall(text)))])
                        rows = max([rows, *map(int, _CELL_ROW.findall(text))])
                        tail = text[-64:]
            if part == sheet_part:
                _check_cells(path, rows, columns, max_cells, "has cells up to")


_CELL = re.compile(rb'<c\b[^>]*?\br="([A-Z]{1,3})([0-9]{1,7})"[^>]*?(?:/>|>(.*?)</c>)', re.S)
_VALUE = re.compile(rb"<v>[^<]+</v>")
_MERGED = re.compile(rb'<mergeCell\b[^>]*?\bref="([A-Z]{1,3})([0-9]{1,7}):([A-Z]{1,3})([0-9]{1,7})"')


def _cell_hints(path: Path, sheet_part: str | None) -> dict:
    """Cells a reader sees as empty for a reason worth naming: a formula whose value was never
    saved (a file written by a program, not by Excel) and the covered cells of a merged range
    (only the first cell of a range holds the value). ``{(column number, row): "formula" |
    "merged"}``; streamed over the sheet's XML."""
    import zipfile

    hints: dict = {}
    if not sheet_part:
        return hints
    with zipfile.ZipFile(path) as book:
        if sheet_part not in book.namelist():
            return hints
        with book.open(sheet_part) as fh:
            carry = b""
            while block := fh.read(_XML_TEXT_RUN):
                text = carry + block
                cut = max(text.rfind(b"</c>") + 4, text.rfind(b"/>") + 2, 0)
                text, carry = text[:cut], text[cut:]
                if b"<f" in text:
                    for col, row, inner in _CELL.findall(text):
                        if inner and b"<f" in inner and not _VALUE.search(inner):
                            hints[(_column_number(col), int(row))] = "formula"
                for c1, r1, c2, r2 in _MERGED.findall(text):
                    left, right, top, bottom = _column_number(c1), _column_number(c2), int(r1), int(r2)
                    if (right - left + 1) * (bottom - top + 1) > 1_000_000:
                        continue  # a whole-column merge: nothing to name cell by cell
                    for col in range(left, right + 1):
                        for row in range(top, bottom + 1):
                            if (col, row) != (left, top):
                                hints[(col, row)] = "merged"
    return hints


def _check_cells(path: Path, rows, columns, limit: int, what: str) -> None:
    """Refuse a table whose stated size (rows x columns) passes ``limit`` cells."""
    if rows and columns and rows * columns > limit:
        raise LTVError(f"{path.name} {what} {rows:,} rows x {columns:,} columns, more than the limit of "
                       f"{limit:,} cells; {_limit_hint('max_cells')}, or summarise large data with ltv summary "
                       "(DuckDB).")


_EXCEL = {".xlsx", ".xlsm", ".xls"}
_PARQUET = {".parquet", ".pq"}
_DUCKDB = {".duckdb", ".ddb", ".db"}


def read_transactions(
    source,
    *,
    customer_id: str | None = None,
    order_date: str | None = None,
    amount: str | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    sql: str | None = None,
    order_id: str | None = None,
    channel: str | None = None,
    quantity: str | None = None,
    unit_price: str | None = None,
    dayfirst: bool | None = None,
    date_format: str | None = None,
    limits: dict | None = None,
    password_env: str = "LTV_DB_PASSWORD",
) -> pd.DataFrame:
    """Read a transaction export into the canonical column names, values still as read.

    ``source`` is a path to a CSV/TSV/TXT, Excel, Parquet or DuckDB database file, a SQLAlchemy
    URL (with ``sql``; ``postgresql://`` uses psycopg 3, ``mysql://`` PyMySQL), a DataFrame, or
    a bundled data set name (``"cdnow"``, ``"cdnow_sample"``). Columns are detected from common
    English and Chinese headers (:data:`COLUMN_CANDIDATES`); explicit arguments override.
    Columns that play no role are dropped, so personal fields (names, phones) go no further;
    ``row_key`` keeps a hash of every source column, so duplicates are judged on all of them.

    CSV encodings: a BOM (UTF-8, UTF-16) wins; otherwise UTF-8, then GB18030 (a superset of GBK
    and GB2312) are tried; ``encoding`` forces one. Records that do not have the header's number
    of fields (too many or too few) are kept as rows with a ``read_error`` and rejected by
    :func:`clean_transactions` as malformed lines.

    Files beyond the input limits (:data:`LIMITS`: columns of a CSV header, bytes of one CSV line,
    an Excel workbook's decompressed size, rows x columns of a sheet or a Parquet file; a cell
    larger than Excel can write) are refused at once; ``limits={"max_columns": 5000}``
    raises one.

    ``dayfirst`` and ``date_format`` are recorded in ``attrs["date_options"]`` and used by
    :func:`clean_transactions` (dates are parsed there, so rejected rows keep their text).

    A source or query that carries a credential is refused (:func:`refuse_credentials`): the
    database password is read from the environment variable
    ``password_env`` (default ``LTV_DB_PASSWORD``) and never printed, because notebook parameters
    are recorded in rendered reports. Times with a zone keep their wall time in the database
    session's zone (for PostgreSQL, ``ALTER ROLE analyst SET timezone = 'Asia/Shanghai'``).

    Returns a DataFrame with ``customer_id``, ``order_date``, ``amount`` (or ``quantity`` and
    ``unit_price`` for order lines; plus ``order_id``, ``channel``, ``quantity`` where found),
    ``source_row`` (1-based position of the record in the source) and ``row_key``.
    ``df.attrs["columns"]`` maps each role to its source column.

    >>> raw = read_transactions("cdnow_sample")
    >>> raw.attrs["columns"]["amount"]
    'amount'
    """
    overrides = {CUSTOMER_ID: customer_id, ORDER_DATE: order_date, AMOUNT: amount,
                 ORDER_ID: order_id, CHANNEL: channel, QUANTITY: quantity, UNIT_PRICE: unit_price}
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if dayfirst not in (None, True, False):
        raise LTVError(f"dayfirst must be True, False or None (detect), got {dayfirst!r}.")
    refuse_credentials(source, "source", password_env)
    refuse_credentials(sql, "query", password_env)
    limits = input_limits(limits)
    fingerprint = None
    if isinstance(source, pd.DataFrame):
        frame, origin = source, "DataFrame"
    elif isinstance(source, str) and source in BUNDLED:
        frame, origin = load_cdnow(sample=BUNDLED[source]), f"bundled {source}"
    elif isinstance(source, str) and "://" in source:
        frame, origin = _read_sql_url(source, sql, password_env), "database"
    else:
        path = Path(source)
        if not path.exists():
            raise LTVError(f"File not found: {path}.")
        if path.is_dir():
            raise LTVError(f"{path} is a folder; pass the path of a data file.")
        if path.stat().st_size == 0:
            raise LTVError(f"{path} is empty.")
        suffix = path.suffix.lower()
        if suffix in _EXCEL:
            _check_unzipped_size(path, limits["max_unzipped_bytes"])
            frame = _read_excel(path, sheet, limits["max_cells"])
        elif suffix in _PARQUET:
            frame = _read_parquet(path, limits["max_cells"])
        elif suffix in _DUCKDB:
            frame = _read_duckdb(path, sql)
        else:
            frame = _read_csv(path, encoding, limits)
        origin, fingerprint = str(path), _file_sha256(path)
    if len(frame.columns) == 0 or (len(frame) == 0 and READ_ERROR not in frame):
        raise LTVError(f"{origin} has no data rows.")
    source_columns = [c for c in frame.columns if c not in (SOURCE_ROW, READ_ERROR)]
    mapping = detect_columns(source_columns, **overrides)
    # .array keeps a CSV's Arrow strings as they are (to_numpy would make Python objects of them).
    out = pd.DataFrame({role: _one_chunk(frame[col].reset_index(drop=True).array) for role, col in mapping.items()})
    out[SOURCE_ROW] = (frame[SOURCE_ROW].to_numpy() if SOURCE_ROW in frame
                       else np.arange(1, len(frame) + 1))
    if READ_ERROR in frame:
        out[READ_ERROR] = frame[READ_ERROR].to_numpy()
    out[ROW_KEY] = row_key(frame[source_columns])
    out.attrs["columns"] = mapping
    out.attrs["source"] = origin
    out.attrs["date_options"] = {"dayfirst": dayfirst, "date_format": date_format}
    out.attrs["sha256"] = fingerprint or _rows_sha256(source_columns, out[ROW_KEY].to_numpy())
    out.attrs["notes"] = frame.attrs.get("notes", []) + column_notes(source_columns, mapping, overrides)
    hints = frame.attrs.get("cell_hints", {})
    out.attrs["cell_hints"] = {role: hints[col] for role, col in mapping.items() if col in hints}
    return out


def _file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, as ``sha256sum`` prints it, so an auditor can check the input."""
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _one_chunk(values):
    """An Arrow-backed column in one piece: Arrow's CSV reader gives one chunk per block, and every
    selection (take) from a column of many chunks first joins them (about 70 ms per selection on 5M
    rows). Columns too large for one string array (2 GiB) stay as they are."""
    if not hasattr(values, "__arrow_array__") or not isinstance(values.dtype, (pd.StringDtype, pd.ArrowDtype)):
        return values
    chunked = values.__arrow_array__()
    if not isinstance(chunked, pa.ChunkedArray) or chunked.num_chunks < 2 or chunked.nbytes >= 2**31 - 2**20:
        return values
    return pd.array(pa.chunked_array([chunked.combine_chunks()], type=chunked.type), dtype=values.dtype)


def _rows_sha256(columns, keys: np.ndarray) -> str:
    """SHA-256 of rows that come from no file (a query, a DataFrame, the bundled data): their
    column names and every row's :func:`row_key`, in order."""
    import hashlib

    digest = hashlib.sha256("\x1f".join(map(str, columns)).encode("utf-8"))
    digest.update(np.ascontiguousarray(keys, dtype=np.uint64).tobytes())
    return digest.hexdigest()


def row_key(frame: pd.DataFrame) -> np.ndarray:
    """A 64-bit hash per row of all of ``frame``'s columns (values compared as text), by DuckDB's
    ``hash`` (in parallel; about 20 times pandas' speed on Arrow strings)."""
    from ltv_helpers.data.engines import on_frames

    if len(frame) == 0 or len(frame.columns) == 0:
        return np.zeros(len(frame), dtype=np.uint64)
    text = pd.DataFrame({f"c{i}": (col if isinstance(col.dtype, pd.StringDtype) else col.astype("str")).array
                         for i, (_, col) in enumerate(frame.items())})
    columns = ", ".join(f"coalesce(c{i}, '')" for i in range(len(frame.columns)))
    # A SELECT from one table keeps the rows' order (DuckDB's documented order preservation).
    return on_frames(f"SELECT hash({columns}) AS h FROM t", t=text)["h"].astype(np.uint64)


#: Encodings a CSV that is not UTF-8 is checked against (charset-normalizer's candidates): the
#: Chinese, Japanese and Korean ones, and the two Western ones that old Windows and Mac exports use.
CANDIDATE_ENCODINGS = ("gb18030", "big5", "shift_jis", "euc_kr", "cp1252", "mac_roman")
_WESTERN = ("cp1252", "mac_roman", "latin-1")
#: A UTF-8 file may have this many lines (or this share of its lines, whichever is more) in another
#: encoding, each rejected as a malformed line; more, and the file is taken to be in another one.
BAD_TEXT_LINES = (10, 0.01)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _latin_letters(text: str) -> int:
    """Letters of the Latin-1 range (à, ö, ß ...): what European text written in the right
    single-byte encoding is full of, and the wrong one turns into symbols (Z¸rich, Franzšsisch)."""
    return sum(1 for ch in text if "\u00c0" <= ch <= "\u00ff" and ch not in "\u00d7\u00f7")


def _sniff_encoding(path: Path, head: bytes) -> tuple[str, list]:
    """The encoding of a file that is not UTF-8, and the note saying so; or one sentence naming
    the encodings to try when the bytes fit two of them equally well."""
    from charset_normalizer import from_bytes

    with path.open("rb") as fh:
        sample = fh.read(1 << 20)
    results = {m.encoding: m for m in from_bytes(sample, cp_isolation=list(CANDIDATE_ENCODINGS))}
    if "gb18030" not in results and _mostly(sample, "gb18030"):
        # A GBK export with a few lines cut mid-character: judged without those lines.
        kept = b"\n".join(ln for ln in re.split(rb"\r\n|\n|\r", sample) if _decodes(ln, "gb18030"))
        results.update({m.encoding: m for m in from_bytes(kept, cp_isolation=list(CANDIDATE_ENCODINGS))})
    best = min(results.values(), key=lambda m: (m.chaos, -m.coherence), default=None)
    if best is not None and best.encoding not in _WESTERN:
        # Chinese clients first: GB18030 whenever it reads the bytes as cleanly as the best.
        gb = results.get("gb18030")
        enc = "gb18030" if gb is not None and gb.chaos <= best.chaos else best.encoding
        big5 = results.get("big5")
        if enc == "gb18030" and (big5 is None or big5.chaos > gb.chaos):
            return enc, []  # GBK, as most Chinese exports not in UTF-8 are: nothing to check
    else:
        readings = {}
        for enc in _WESTERN:
            try:
                text = sample.decode(enc)
            except UnicodeDecodeError:
                continue
            if len(_CONTROL.findall(text)) <= 0.005 * len(text):  # text, not binary
                readings[enc] = text
        scores = {enc: _latin_letters(text) for enc, text in readings.items()}
        ranked = sorted(scores, key=lambda e: (-scores[e], _WESTERN.index(e)))
        if len(ranked) >= 2 and scores[ranked[0]] == scores[ranked[1]] and ranked[1] != "latin-1":
            word = lambda text: next((w for w in re.findall(r"\S*[^\x00-\x7f]\S*", text)), "")[:30]  # noqa: E731
            raise LTVError(f"{path.name} is not UTF-8 text, and it reads equally well as {ranked[0]} "
                           f"({word(readings[ranked[0]])!r}) and as {ranked[1]} ({word(readings[ranked[1]])!r}); "
                           f"pass {spell('encoding', ranked[0])} or {spell('encoding', ranked[1])}.")
        if not ranked:
            raise LTVError(f"{path.name} is neither UTF-8 nor GBK/GB18030 text, nor any other of "
                           f"{', '.join(CANDIDATE_ENCODINGS[1:])}; pass its encoding "
                           f"({spell('encoding', 'big5')}, for example), or check that it is a text export.")
        enc = ranked[0]
    other = {"cp1252": "mac_roman", "mac_roman": "cp1252", "latin-1": "mac_roman",
             "gb18030": "big5"}.get(enc, "gb18030")
    return enc, [Note(NOTE_ENCODING, {"file": path.name, "encoding": enc, "option": spell("encoding", other)})]


def _decodes(data: bytes, encoding: str) -> bool:
    try:
        data.decode(encoding)
        return True
    except UnicodeDecodeError:
        return False


def _few_bad(bad: int, lines: int) -> bool:
    """Whether ``bad`` undecodable lines of ``lines`` are few enough to reject one by one."""
    return bad <= max(BAD_TEXT_LINES[0], BAD_TEXT_LINES[1] * lines)


def _mostly(head: bytes, encoding: str = "utf-8") -> bool:
    """Whether a start that is not valid ``encoding`` text is such a file with a few lines in
    another encoding (or cut mid-character): its other lines with non-ASCII bytes decode, and the
    bad ones are few."""
    lines = [ln for ln in re.split(rb"\r\n|\n|\r", head[: head.rfind(b"\n") + 1] or head) if ln.strip()]
    wide = [_decodes(ln, encoding) for ln in lines if max(ln, default=0) >= 0x80]
    return any(wide) and _few_bad(wide.count(False), len(lines))


def _decode_sample(path: Path, encoding: str | None) -> tuple[str, str, list]:
    """Pick the file's encoding and return it with a decoded sample of its start and the notes on
    the choice. A byte-order mark wins; then UTF-8 (also for a UTF-8 file with a few lines in
    another encoding, which become malformed lines); then the best of
    :data:`CANDIDATE_ENCODINGS` by charset-normalizer, GB18030 first among equals; Windows and
    Mac Western encodings are told apart by which one reads letters rather than symbols, and a
    file that fits both equally is refused with the two to try."""
    head = _head(path)
    given = encoding is not None
    if not given:
        if head.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
        elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
    notes: list = []
    if encoding is None:
        try:
            head[: len(head) - 3 if len(head) == 1 << 16 else len(head)].decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            if _mostly(head, "utf-8"):
                return "utf-8", head.decode("utf-8", errors="replace"), notes
            encoding, notes = _sniff_encoding(path, head)
    try:
        # A cut at 64 KiB may split a multi-byte character: ignore only the last 3 bytes.
        text = head.decode(encoding)
    except UnicodeDecodeError as err:
        if err.start >= len(head) - 3 and len(head) == 1 << 16:
            text = head[: err.start].decode(encoding)
        elif _mostly(head, encoding):  # a few bad lines: each becomes a malformed line
            text = head.decode(encoding, errors="replace")
        elif given:
            raise LTVError(f"{path.name} cannot be decoded as {encoding}; check the encoding argument "
                           f"({spell('encoding', encoding)}).") from None
        elif encoding.startswith("utf-"):
            raise LTVError(f"{path.name} starts with a {encoding.upper().replace('-SIG', '')} byte-order mark but "
                           "is not valid text in that encoding; re-export it or pass its encoding.") from None
        else:
            raise LTVError(f"{path.name} is not valid {encoding} text either; pass its encoding "
                           f"({spell('encoding', 'big5')}, for example).") from None
    except LookupError:
        raise LTVError(f"Unknown encoding {encoding!r}; try utf-8, gb18030 or big5.") from None
    return encoding, text, notes


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(1 << 16)


def _read_csv(path: Path, encoding: str | None, limits: dict | None = None) -> pd.DataFrame:
    limits = limits or LIMITS
    physical = _check_csv_lines(path, limits["max_line_bytes"])
    enc, sample, notes = _decode_sample(path, encoding)
    lines = [ln for ln in sample.splitlines() if ln.strip()][:50]
    if not lines:
        raise LTVError(f"{path.name} is empty.")
    try:  # on at most 16 KiB: the sniffer's patterns are slow on long crafted text
        sep = csv.Sniffer().sniff("\n".join(lines[:1] if len(lines[0]) > 4096 else lines)[: 1 << 14],
                                  delimiters=",\t;|").delimiter
    except csv.Error:
        sep = ","
    # The header's fields as pandas will see them (only \n and \r end a record, not the form feeds
    # and separators that splitlines() also splits on), from the sample: a header longer than the
    # sample is cut there, so its count is a lower bound, already more than any real export has.
    fields = len(next(csv.reader(io.StringIO(sample.lstrip("\r\n"), newline=""), delimiter=sep), []))
    if fields > limits["max_columns"]:
        raise LTVError(f"{path.name} has {'at least ' if chr(10) not in sample else ''}{fields:,} columns in its "
                       f"header, more than the limit of {limits['max_columns']:,}; {_limit_hint('max_columns')}.")
    options = dict(sep=sep, encoding=enc, dtype=str, keep_default_na=False, na_filter=False,
                   skip_blank_lines=True, encoding_errors="strict")
    frame = _read_csv_frame(path, enc, sep, options, physical)
    frame.attrs["notes"] = notes + frame.attrs.get("notes", [])
    return frame


def _read_csv_frame(path: Path, enc: str, sep: str, options: dict, physical: int) -> pd.DataFrame:
    fast = _read_csv_fast(path, enc, sep, physical)
    if fast is not None:
        return fast
    try:
        frame = pd.read_csv(path, **options)
    except UnicodeDecodeError:
        # Lines in another encoding (one GBK line in a UTF-8 export): each is a malformed line
        # naming its line number, unless so many that the file is not in this encoding at all.
        return _read_csv_by_lines(path, enc, sep)
    except pd.errors.EmptyDataError:
        raise LTVError(f"{path.name} is empty.") from None
    except pd.errors.ParserError as err:
        if "EOF" in str(err):  # a quote that never closes: the careful reader costs it one line
            return _read_csv_by_lines(path, enc, sep)
        try:
            frame = _read_csv_with_bad_lines(path, sep, options)
        except (UnicodeDecodeError, pd.errors.ParserError):  # bad fields and bad text together
            return _read_csv_by_lines(path, enc, sep)
        if len(frame) + 1 < physical and _has_line_breaks(frame.drop(columns=[READ_ERROR], errors="ignore")):
            return _read_csv_by_lines(path, enc, sep)
        return frame
    if len(frame) + 1 < physical and _has_line_breaks(frame):
        # Fewer records than lines and fields holding line breaks: a quoted field across lines, or a
        # quote that never closes and swallowed the lines after it. Read line by line to tell.
        return _read_csv_by_lines(path, enc, sep)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
    # pandas pads a record with too few fields with empty strings, like a record whose last
    # fields are empty; only then is the file counted field by field to tell them apart.
    if len(frame) and len(frame.columns) > 2 and (frame.iloc[:, -2] == "").any():
        widths = _record_widths(path, enc, sep)
        header, records = widths[0], widths[1:]
        if len(records) == len(frame) and (records < header).any():
            _mark_short(frame, records, header)
    return frame


def _read_csv_fast(path: Path, enc: str, sep: str, physical: int) -> pd.DataFrame | None:
    """The file read by Arrow's multi-threaded CSV reader, when it is regular: every record on one
    line with the header's fields, valid text. Anything else (a record with other fields, a quote
    that never closes, a line in another encoding) returns None, and the careful readers take over."""
    try:
        frame = pd.read_csv(path, engine="pyarrow", sep=sep, encoding=enc, dtype=str, keep_default_na=False)
    except Exception:  # pyarrow raises its own types for any irregular record: read it the careful way
        return None
    if len(frame) + 1 != physical:
        return None  # blank lines, or records over several lines: the careful readers count them
    frame.columns = [str(c).strip() for c in frame.columns]
    frame = frame.fillna("")  # Arrow reads an empty field as missing; the other readers as ""
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
    return frame


#: Lines a quoted field may span before its opening quote is taken as one that never closes.
MULTILINE_MAX = 20


def _has_line_breaks(frame: pd.DataFrame) -> bool:
    return any(frame[c].astype("str").str.contains(r"[\r\n]", regex=True).any() for c in frame.columns
               if c not in (SOURCE_ROW, READ_ERROR))


def _read_csv_by_lines(path: Path, encoding: str, sep: str) -> pd.DataFrame:
    """Read a CSV one physical line at a time: for quoting that spans lines, and for lines that are
    not valid text in the file's encoding.

    A line that is not valid ``encoding`` text is a malformed line naming its line number.
    A line that parses on its own (strict quoting) is a record. A line with a quote that does not
    close there takes the following lines, up to :data:`MULTILINE_MAX`, until the quote closes and
    the record has the header's fields (an address over two lines); failing that, the line alone
    is a malformed line ("unmatched quote") and reading resumes on the next line, so one stray
    quote costs one line, not the rest of the file. Records with another number of fields are
    marked as in :func:`_read_csv_with_bad_lines`. More undecodable lines than
    :data:`BAD_TEXT_LINES` allow is one sentence naming the first.
    """
    raw = path.read_bytes()
    lines: list[str | None] = []
    undecodable = []
    if encoding.lower().replace("_", "-").startswith(("utf-16", "utf-32")):
        # Wide encodings: a newline byte is half a character, so the text is decoded whole.
        try:
            lines = re.split(r"\r\n|\n|\r", raw.decode(encoding).lstrip("\ufeff"))
        except UnicodeDecodeError as err:
            raise LTVError(f"{path.name} is not valid {encoding} text (at byte {err.start:,}); pass its "
                           f"encoding ({spell('encoding', 'utf-8')}, for example).") from None
    else:
        if raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        for number, chunk in enumerate(re.split(rb"\r\n|\n|\r", raw), start=1):
            try:
                lines.append(chunk.decode(encoding))
            except UnicodeDecodeError:
                lines.append(None)
                undecodable.append(number)
    counted = sum(1 for ln in lines if ln is None or ln.strip())
    if undecodable and (not _few_bad(len(undecodable), counted) or undecodable[0] == 1):
        raise LTVError(f"Line {undecodable[0]:,} of {path.name} is not valid {encoding} text "
                       f"({len(undecodable):,} lines are not); pass its encoding ({spell('encoding', 'gb18030')} "
                       "or cp1252, for example).")
    parse = lambda chunk: next(csv.reader([chunk], delimiter=sep, strict=True), [])  # noqa: E731
    i = 0
    while i < len(lines) and not (lines[i] or "").strip():
        i += 1
    header = [str(c).strip() for c in parse(lines[i])]
    width = len(header)
    rows, errors = [], []
    i += 1
    while i < len(lines):
        if lines[i] is None:
            errors.append(f"line {i + 1:,} is not valid {encoding} text")
            rows.append([""] * width)
            i += 1
            continue
        if not lines[i].strip():
            i += 1
            continue
        fields, end = None, i
        try:
            fields = parse(lines[i])
        except csv.Error:
            for end in range(i + 1, min(i + MULTILINE_MAX, len(lines))):
                if lines[end] is None:
                    break
                try:
                    joined = parse("\n".join(lines[i:end + 1]))
                except csv.Error:
                    continue
                fields = joined if len(joined) == width else None
                break
            if fields is None:
                errors.append(f"line {i + 1:,}: unmatched quote: {lines[i][:200]}")
                rows.append([""] * width)
                i += 1
                continue
        if len(fields) == width:
            rows.append(fields)
            errors.append(None)
        else:
            errors.append(f"line {i + 1:,}: {len(fields)} fields where the header has {width}: "
                          f"{sep.join(fields)[:200]}")
            rows.append((fields + [""] * width)[:width])
        i = end + 1
    frame = pd.DataFrame(rows, columns=header, dtype=object) if rows else pd.DataFrame(columns=header)
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
    frame[READ_ERROR] = pd.Series(errors, dtype=object)
    return frame


def _mark_short(frame: pd.DataFrame, widths: np.ndarray, header: int) -> None:
    """A ``read_error`` on the rows whose record has fewer fields (``widths``, one per row) than
    the header; the other rows get none."""
    frame[READ_ERROR] = pd.Series([None] * len(frame), dtype=object)
    short = np.flatnonzero(widths < header)
    frame.loc[short, READ_ERROR] = [f"{widths[i]} fields where the header has {header}" for i in short]


def _record_widths(path: Path, encoding: str, sep: str) -> np.ndarray:
    """Number of fields of every non-blank record, header first (one pass of the csv module)."""
    with path.open(encoding=encoding, newline="") as fh:
        widths = np.fromiter((len(r) for r in csv.reader(fh, delimiter=sep)), dtype=np.int64)
    return widths[widths > 0]


def _read_csv_with_bad_lines(path: Path, sep: str, options: dict) -> pd.DataFrame:
    """Read a CSV with records that have more fields than the header.

    Those records become rows with a ``read_error`` (the cleaner rejects them), and every row's
    ``source_row`` is its record number among the data records, found by one pass of the csv
    module (only on this error path). Records with too few fields are marked the same way.
    """
    bad: list[list[str]] = []

    def keep_aside(fields: list[str]) -> None:
        bad.append(fields)

    frame = pd.read_csv(path, engine="python", on_bad_lines=keep_aside, **options)
    frame.columns = [str(c).strip() for c in frame.columns]
    widths = _record_widths(path, options["encoding"], sep)
    header, records = widths[0], widths[1:]
    number = np.arange(1, len(records) + 1)
    fits = records <= header
    frame[SOURCE_ROW] = number[fits][: len(frame)]
    _mark_short(frame, records[fits][: len(frame)], header)
    extra = pd.DataFrame({
        READ_ERROR: [f"{len(f)} fields where the header has {header}: {sep.join(f)[:200]}"
                     for f in bad],
        SOURCE_ROW: number[~fits][: len(bad)],
    })
    return pd.concat([frame, extra], ignore_index=True).sort_values(SOURCE_ROW, kind="stable") \
        .reset_index(drop=True)


def _read_excel(path: Path, sheet, max_cells: int = LIMITS["max_cells"]) -> pd.DataFrame:
    """One sheet of a workbook (the first by default, with a note naming the others), or with
    ``sheet="all"`` every sheet whose header has the first sheet's columns, stacked in order
    (``source_row`` runs on across them; sheets with other columns are named in a note)."""
    try:
        book = pd.ExcelFile(path)
    except Exception as err:  # openpyxl raises many types for a broken file
        raise LTVError(f"{path.name} cannot be opened as an Excel workbook ({err}).") from None
    names = list(book.sheet_names)
    if sheet == "all" and "all" not in names:
        return _stack_sheets(path, book, names, max_cells)
    notes = []
    if sheet is None:
        sheet = 0
        rows = _sheet_rows(book) if len(names) > 1 else {}
        if any(rows.get(n, 1) > 0 for n in names[1:]):
            notes.append(Note(NOTE_OTHER_SHEETS, {
                "file": path.name, "first": names[0],
                "others": ", ".join(f"{n} ({rows.get(n, 0):,} rows)" for n in names[1:] if rows.get(n, 1) > 0),
                "option": spell("sheet", "all")}))
    elif sheet not in names and not isinstance(sheet, int):
        raise LTVError(f"{path.name} has no sheet {sheet!r}; its sheets are: {_list(names)} "
                       f"({spell('sheet', 'all')} stacks those with the same columns).")
    frame = _read_sheet(path, book, sheet, max_cells)
    frame.attrs["notes"] = notes + frame.attrs.get("notes", [])
    return frame


def _sheet_rows(book) -> dict:
    """Data rows per sheet as the workbook states them (its dimension), without reading them."""
    worksheets = getattr(book.book, "worksheets", None) or []
    return {ws.title: max(int(getattr(ws, "max_row", 1) or 1) - 1, 0) for ws in worksheets}


def _read_sheet(path: Path, book, sheet, max_cells: int) -> pd.DataFrame:
    # The sheet's stated size (its <dimension>, which openpyxl pads every row to) and its real
    # extent (its cells' references): one cell at XFD1048576 would make pandas build a table of
    # 17 billion empty cells from a 5 kB file.
    worksheets = getattr(book.book, "worksheets", None)
    if worksheets is not None:  # an .xlsx (openpyxl); an old .xls has no XML to look at
        if isinstance(sheet, int) and not 0 <= sheet < len(worksheets):
            raise LTVError(f"{path.name} has {len(worksheets)} sheet(s); sheet {sheet} does not exist. Its sheets "
                           f"are: {_list(book.sheet_names)}.")
        ws = book.book[sheet] if isinstance(sheet, str) else worksheets[sheet]
        _check_cells(path, getattr(ws, "max_row", None), getattr(ws, "max_column", None), max_cells,
                     f"sheet {ws.title!r} spans")
        _check_workbook_parts(path, getattr(ws, "_worksheet_path", None), max_cells)
    frame = pd.read_excel(book, sheet_name=sheet, dtype=object)
    frame.columns = [str(c).strip() for c in frame.columns]
    if worksheets is not None and frame.isna().to_numpy().any():
        # Empty cells only: which were formulas never calculated, or covered by a merged range.
        hints = _cell_hints(path, getattr(ws, "_worksheet_path", None))
        by_column: dict = {}
        for (col, row), hint in hints.items():
            if 1 <= col <= len(frame.columns) and 0 <= row - 2 < len(frame) and pd.isna(frame.iat[row - 2, col - 1]):
                by_column.setdefault(frame.columns[col - 1], {})[row - 2] = hint
        frame.attrs["cell_hints"] = by_column
    return frame


def _stack_sheets(path: Path, book, names: list, max_cells: int) -> pd.DataFrame:
    frames, skipped = [], []
    first = None
    for name in names:
        frame = _read_sheet(path, book, name, max_cells)
        key = sorted(_norm_header(c) for c in frame.columns)
        if first is None:
            first = (key, list(frame.columns))
        elif key != first[0]:
            skipped.append(name)
            continue
        else:
            by_norm = {_norm_header(c): c for c in frame.columns}
            hints = frame.attrs.get("cell_hints", {})
            rename = {by_norm[_norm_header(c)]: c for c in first[1]}
            frame = frame[[by_norm[_norm_header(c)] for c in first[1]]].set_axis(first[1], axis=1)
            frame.attrs["cell_hints"] = {rename.get(col, col): rows for col, rows in hints.items()}
        frames.append((name, frame))
    hints, offset = {}, 0
    for _, f in frames:
        for col, rows in f.attrs.get("cell_hints", {}).items():
            hints.setdefault(col, {}).update({offset + r: h for r, h in rows.items()})
        offset += len(f)
    total = sum(len(f) for _, f in frames)
    _check_cells(path, total, len(first[1]), max_cells, "stacks")
    out = pd.concat([f for _, f in frames], ignore_index=True)
    out.attrs["cell_hints"] = hints
    out.attrs["notes"] = [Note(NOTE_SHEETS_STACKED, {
        "file": path.name, "sheets": ", ".join(f"{n} ({len(f):,} rows)" for n, f in frames),
        "skipped": ", ".join(skipped) if skipped else "-"})]
    return out


def _read_parquet(path: Path, max_cells: int = LIMITS["max_cells"]) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path).metadata
        _check_cells(path, meta.num_rows, meta.num_columns, max_cells, "holds")
        return pd.read_parquet(path)
    except LTVError:
        raise
    except Exception as err:
        raise LTVError(f"{path.name} cannot be read as Parquet ({err}).") from None


#: A client's DuckDB file is opened without access to anything but itself: a view in it could
#: otherwise read the consultant's local files (``read_text('/etc/passwd')``) or load extensions.
_CLIENT_DUCKDB = {"enable_external_access": False, "autoinstall_known_extensions": False,
                  "autoload_known_extensions": False, "lock_configuration": True}


def _read_duckdb(path: Path, sql: str | None) -> pd.DataFrame:
    try:
        con = connect(str(path), read_only=True, config=_CLIENT_DUCKDB)
    except duckdb.Error as err:
        raise LTVError(f"{path.name} cannot be opened as a DuckDB database ({err}).") from None
    try:
        if sql is None:
            tables = [t[0] for t in con.sql("SHOW TABLES").fetchall()]
            if len(tables) != 1:
                raise LTVError(
                    f"{path.name} has {len(tables)} tables ({_list(tables)}); pass sql='SELECT ...' "
                    "to say which rows to read."
                )
            return con.table(tables[0]).df()
        return con.sql(sql).df()
    except duckdb.Error as err:
        raise LTVError(f"The query on {path.name} failed: {err}".rstrip(".") + ".") from None
    finally:
        con.close()


#: Drivers used when a URL names only the database kind (both are pinned dependencies).
DEFAULT_DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg",
                   "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def _read_sql_url(url: str, sql: str | None, password_env: str) -> pd.DataFrame:
    import sqlalchemy

    if not sql:
        raise LTVError("A database URL needs sql='SELECT ...' naming the transactions to read.")
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:
        raise LTVError("The database URL cannot be parsed; use dialect://user@host/database.") from None
    if parsed.drivername in DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=DEFAULT_DRIVERS[parsed.drivername])
    secret = os.environ.get(password_env)
    if secret:
        parsed = parsed.set(password=secret)
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(parsed)
        with engine.connect() as con:
            # Rows as the driver returns them: pandas.read_sql would turn times with a zone
            # into UTC, and the local wall time of an order is what counts (its day, its hour).
            result = con.execute(sqlalchemy.text(sql))
            frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()))
        engine.dispose()
    except Exception as err:
        detail = " ".join(str(err).split("\n")[0].split()) if str(err) else type(err).__name__
        if secret:
            detail = detail.replace(secret, "***")
        raise LTVError(f"Reading from {shown} failed: {detail}".rstrip(".") + ".") from None
    return frame
