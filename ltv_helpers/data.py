"""Collection: read a client's export, map its columns, clean it with an audit trail, summarize RFM.

Data flows ``read_transactions`` -> ``clean_transactions`` -> ``rfm_summary`` /
``calibration_holdout``. Every input row ends either in ``CleanResult.transactions`` or in
``CleanResult.rejected`` with a reason: rows in = kept + rejected.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import duckdb
import numpy as np
import pandas as pd

from ltv_helpers.datasets import BUNDLED, load_cdnow
from ltv_helpers.labels import label
from ltv_helpers.schema import (
    AMOUNT,
    CHANNEL,
    CUSTOMER_ID,
    FREQUENCY,
    MONETARY_VALUE,
    OPTIONAL_COLUMNS,
    ORDER_DATE,
    ORDER_ID,
    QUANTITY,
    READ_ERROR,
    REASON,
    RECENCY,
    REQUIRED_COLUMNS,
    SOURCE_ROW,
    T,
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
        "customer_id", "customer", "cust_id", "customer_no", "customer_number", "client_id",
        "user_id", "userid", "uid", "member_id", "member_no", "buyer_id", "account_id", "one_id",
        "客户ID", "客户编号", "客户号", "会员ID", "会员编号", "会员号", "会员卡号", "用户ID",
        "用户编号", "买家ID", "顾客ID", "顾客编号", "OneID",
    ),
    ORDER_DATE: (
        "order_date", "order_time", "order_datetime", "purchase_date", "purchase_time",
        "transaction_date", "transaction_time", "invoice_date", "paid_at", "payment_time",
        "created_at", "date", "datetime", "timestamp", "time",
        "下单时间", "订单日期", "支付时间", "付款时间", "交易时间", "成交时间", "订单创建时间",
        "创建时间", "下单日期", "购买日期", "购买时间", "日期", "时间",
    ),
    AMOUNT: (
        "amount", "revenue", "order_amount", "order_value", "order_total", "paid_amount",
        "payment_amount", "sales", "sales_amount", "total", "total_amount", "value",
        "dollar_value", "price", "gmv",
        "实付金额", "订单金额", "支付金额", "实收金额", "付款金额", "成交金额", "销售额",
        "销售金额", "消费金额", "金额", "总金额", "应付金额",
    ),
    ORDER_ID: ("order_id", "order_no", "order_number", "invoice", "invoice_no", "transaction_id",
               "订单号", "订单编号", "订单ID", "交易号", "流水号"),
    CHANNEL: ("channel", "platform", "source", "store", "shop", "渠道", "平台", "店铺", "来源"),
    QUANTITY: ("quantity", "qty", "units", "items", "number_of_cds",
               "数量", "购买数量", "商品数量", "件数"),
}

_ROLE_ARGS = {CUSTOMER_ID: "customer_id", ORDER_DATE: "order_date", AMOUNT: "amount"}


def _norm_header(name: object) -> str:
    text = unicodedata.normalize("NFKC", str(name)).strip().lower()
    return re.sub(r"[\s_\-./()（）]+", "", text)


def detect_columns(columns: Iterable[object], **overrides: str | None) -> dict[str, str]:
    """Map canonical roles to source column names.

    Each role (``customer_id``, ``order_date``, ``amount``, and the optional ``order_id``,
    ``channel``, ``quantity``) takes the explicit override when given, else the first header of
    :data:`COLUMN_CANDIDATES` found among ``columns``. Raises :class:`LTVError` naming the missing
    role and the columns that exist when a required role has no column.

    >>> detect_columns(["会员ID", "支付时间", "实付金额", "备注"])
    {'customer_id': '会员ID', 'order_date': '支付时间', 'amount': '实付金额'}
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
                    f"The {role} column {wanted!r} is not in the data; the columns are: "
                    f"{_list(columns)}."
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
    for role in REQUIRED_COLUMNS:
        if role not in found:
            raise LTVError(
                f"No {role.replace('_', ' ')} column found; pass {_ROLE_ARGS[role]}=<column name>. "
                f"The columns are: {_list(columns)}."
            )
    return found


def _list(columns: Iterable[object]) -> str:
    cols = [str(c) for c in columns]
    return ", ".join(cols) if cols else "(none)"


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

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
    password_env: str = "LTV_DB_PASSWORD",
) -> pd.DataFrame:
    """Read a transaction export into the canonical column names, values still as read.

    ``source`` is a path to a CSV/TSV/TXT, Excel, Parquet or DuckDB database file, a SQLAlchemy
    URL (with ``sql``), a DataFrame, or a bundled data set name (``"cdnow"``,
    ``"cdnow_sample"``). Columns are detected from common English and Chinese headers
    (:data:`COLUMN_CANDIDATES`); explicit arguments override. Columns that play no role are
    dropped, so personal fields (names, phones) go no further.

    CSV encodings: a BOM (UTF-8, UTF-16) wins; otherwise UTF-8, then GB18030 (a superset of GBK
    and GB2312) are tried; ``encoding`` forces one. Lines that cannot be split into the header's
    fields are kept as rows with a ``read_error`` and rejected by :func:`clean_transactions`.

    A database URL must not carry a password: it is read from the environment variable
    ``password_env`` (default ``LTV_DB_PASSWORD``) and never printed, because notebook parameters
    are recorded in rendered reports.

    Returns a DataFrame with ``customer_id``, ``order_date``, ``amount`` (plus ``order_id``,
    ``channel``, ``quantity`` where found) and ``source_row`` (1-based position of the record in
    the source). ``df.attrs["columns"]`` maps each role to its source column.

    >>> raw = read_transactions("cdnow_sample")
    >>> raw.attrs["columns"]["amount"]
    'amount'
    """
    overrides = {CUSTOMER_ID: customer_id, ORDER_DATE: order_date, AMOUNT: amount,
                 ORDER_ID: order_id, CHANNEL: channel, QUANTITY: quantity}
    overrides = {k: v for k, v in overrides.items() if v is not None}
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
            frame = _read_excel(path, sheet)
        elif suffix in _PARQUET:
            frame = _read_parquet(path)
        elif suffix in _DUCKDB:
            frame = _read_duckdb(path, sql)
        else:
            frame = _read_csv(path, encoding)
        origin = str(path)
    if len(frame.columns) == 0 or (len(frame) == 0 and READ_ERROR not in frame):
        raise LTVError(f"{origin} has no data rows.")
    mapping = detect_columns([c for c in frame.columns if c not in (SOURCE_ROW, READ_ERROR)],
                             **overrides)
    out = pd.DataFrame({role: frame[col].to_numpy() for role, col in mapping.items()})
    out[SOURCE_ROW] = (frame[SOURCE_ROW].to_numpy() if SOURCE_ROW in frame
                       else np.arange(1, len(frame) + 1))
    if READ_ERROR in frame:
        out[READ_ERROR] = frame[READ_ERROR].to_numpy()
    out.attrs["columns"] = mapping
    out.attrs["source"] = origin
    return out


def _decode_sample(path: Path, encoding: str | None) -> tuple[str, str]:
    """Pick the file's encoding and return it with a decoded sample of its start."""
    head = _head(path)
    given = encoding is not None
    if not given:
        if head.startswith(b"\xef\xbb\xbf"):
            encoding = "utf-8-sig"
        elif head.startswith((b"\xff\xfe", b"\xfe\xff")):
            encoding = "utf-16"
    for enc in [encoding] if encoding else ["utf-8", "gb18030"]:
        try:
            # A cut at 64 KiB may split a multi-byte character: ignore only the last 3 bytes.
            text = head.decode(enc)
        except UnicodeDecodeError as err:
            if err.start >= len(head) - 3 and len(head) == 1 << 16:
                text = head[: err.start].decode(enc)
            else:
                continue
        except LookupError:
            raise LTVError(f"Unknown encoding {encoding!r}; try utf-8, gb18030 or big5.") from None
        return enc, text
    if given:
        raise LTVError(f"{path.name} cannot be decoded as {encoding}; check the encoding argument.")
    if encoding:
        raise LTVError(f"{path.name} starts with a {encoding.upper().replace('-SIG', '')} byte-order mark but "
                       "is not valid text in that encoding; re-export it or pass its encoding.")
    raise LTVError(
        f"{path.name} is neither UTF-8 nor GBK/GB18030 text; pass its encoding "
        "(e.g. encoding='big5' or 'latin-1')."
    )


def _head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(1 << 16)


def _read_csv(path: Path, encoding: str | None) -> pd.DataFrame:
    enc, sample = _decode_sample(path, encoding)
    lines = [ln for ln in sample.splitlines() if ln.strip()][:50]
    if not lines:
        raise LTVError(f"{path.name} is empty.")
    try:
        sep = csv.Sniffer().sniff("\n".join(lines), delimiters=",\t;|").delimiter
    except csv.Error:
        sep = ","
    options = dict(sep=sep, encoding=enc, dtype=str, keep_default_na=False, na_filter=False,
                   skip_blank_lines=True, encoding_errors="strict")
    try:
        frame = pd.read_csv(path, **options)
    except UnicodeDecodeError as err:
        raise LTVError(
            f"{path.name} is not valid {enc} text past its first 64 KiB ({err.reason}); "
            "pass its encoding explicitly."
        ) from None
    except pd.errors.EmptyDataError:
        raise LTVError(f"{path.name} is empty.") from None
    except pd.errors.ParserError:
        return _read_csv_with_bad_lines(path, sep, options)
    frame.columns = [str(c).strip() for c in frame.columns]
    frame[SOURCE_ROW] = np.arange(1, len(frame) + 1)
    return frame


def _read_csv_with_bad_lines(path: Path, sep: str, options: dict) -> pd.DataFrame:
    """Read a CSV with records that have more fields than the header.

    Those records become rows with a ``read_error`` (the cleaner rejects them), and every row's
    ``source_row`` is its record number among the data records, found by one pass of the csv
    module (only on this error path).
    """
    bad: list[list[str]] = []

    def keep_aside(fields: list[str]) -> None:
        bad.append(fields)

    frame = pd.read_csv(path, engine="python", on_bad_lines=keep_aside, **options)
    frame.columns = [str(c).strip() for c in frame.columns]
    with path.open(encoding=options["encoding"], newline="") as fh:
        widths = np.fromiter((len(r) for r in csv.reader(fh, delimiter=sep)), dtype=np.int64)
    widths = widths[widths > 0]
    header, records = widths[0], widths[1:]
    number = np.arange(1, len(records) + 1)
    frame[SOURCE_ROW] = number[records <= header][: len(frame)]
    frame[READ_ERROR] = pd.Series([None] * len(frame), dtype=object)
    extra = pd.DataFrame({
        READ_ERROR: [f"{len(f)} fields where the header has {header}: {sep.join(f)[:200]}"
                     for f in bad],
        SOURCE_ROW: number[records > header][: len(bad)],
    })
    return pd.concat([frame, extra], ignore_index=True).sort_values(SOURCE_ROW, kind="stable") \
        .reset_index(drop=True)


def _read_excel(path: Path, sheet) -> pd.DataFrame:
    try:
        book = pd.ExcelFile(path)
    except Exception as err:  # openpyxl raises many types for a broken file
        raise LTVError(f"{path.name} cannot be opened as an Excel workbook ({err}).") from None
    if sheet is None:
        sheet = 0
    elif sheet not in book.sheet_names and not isinstance(sheet, int):
        raise LTVError(f"{path.name} has no sheet {sheet!r}; its sheets are: {_list(book.sheet_names)}.")
    return pd.read_excel(book, sheet_name=sheet, dtype=object)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path)
    except Exception as err:
        raise LTVError(f"{path.name} cannot be read as Parquet ({err}).") from None


def _read_duckdb(path: Path, sql: str | None) -> pd.DataFrame:
    try:
        con = duckdb.connect(str(path), read_only=True)
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


def _read_sql_url(url: str, sql: str | None, password_env: str) -> pd.DataFrame:
    import sqlalchemy

    if not sql:
        raise LTVError("A database URL needs sql='SELECT ...' naming the transactions to read.")
    try:
        parsed = sqlalchemy.engine.make_url(url)
    except Exception:
        raise LTVError("The database URL cannot be parsed; use dialect://user@host/database.") from None
    if parsed.password:
        raise LTVError(
            f"Remove the password from the database URL and set the {password_env} environment "
            "variable instead: notebook parameters are recorded in rendered reports."
        )
    secret = os.environ.get(password_env)
    if secret:
        parsed = parsed.set(password=secret)
    shown = parsed.render_as_string(hide_password=True)
    try:
        engine = sqlalchemy.create_engine(parsed)
        with engine.connect() as con:
            frame = pd.read_sql(sqlalchemy.text(sql), con)
        engine.dispose()
    except Exception as err:
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if secret:
            detail = detail.replace(secret, "***")
        raise LTVError(f"Reading from {shown} failed: {detail}") from None
    return frame


# --------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------

#: Rejection reasons, in the order they are checked; a row gets the first that applies.
REASONS = (
    "malformed line",
    "missing customer id",
    "missing date",
    "unparseable date",
    "missing amount",
    "non-numeric amount",
    "date after observation end",
    "zero amount",
    "exact duplicate",
    "refund",
    "refund without same-day purchase",
    "refund netted into same-day purchase",
    "fully refunded",
)

_NULL_TOKENS = {"", "nan", "none", "null", "na", "n/a", "#n/a", "-", "--", "nat", "未知", "无"}


@dataclass
class CleanResult:
    """What :func:`clean_transactions` kept and rejected.

    ``transactions``: canonical typed rows, sorted by customer, date and amount.
    ``rejected``: every dropped row as it was read, with ``reason``.
    ``report``: rows per rejection reason (``rows``, ``share`` of rows read).
    ``refunded``: total refund amount netted into purchases.
    """

    transactions: pd.DataFrame
    rejected: pd.DataFrame
    report: pd.DataFrame
    rows_in: int
    refunded: float = 0.0
    columns: dict = field(default_factory=dict)

    @property
    def rows_kept(self) -> int:
        return len(self.transactions)

    def __repr__(self) -> str:
        return (f"CleanResult(rows_in={self.rows_in}, kept={self.rows_kept}, "
                f"rejected={len(self.rejected)})")


def clean_transactions(
    df: pd.DataFrame,
    *,
    observation_end=None,
    refunds: str = "net",
    zero_amounts: str = "reject",
    duplicates: str = "reject",
    date_format: str | None = None,
    dayfirst: bool = False,
) -> CleanResult:
    """Type, validate and de-duplicate transactions, listing every dropped row with a reason.

    Checks, in order (a row gets the first reason that applies, see :data:`REASONS`): malformed
    line, missing customer id, missing or unparseable date, missing or non-numeric amount
    (currency strings such as ``¥1,234.50``, ``￥88``, ``$1,000`` and ``(12.00)`` parse), date
    after ``observation_end`` (the whole end day is kept), zero amount, exact duplicate (all
    canonical columns equal; the first is kept).

    Refunds (negative amounts): ``refunds="net"`` nets each against the same customer's purchases
    of the same calendar day, largest purchase first; the refund row is then rejected as netted,
    a purchase brought to zero as "fully refunded", and a refund with no same-day purchase is
    rejected as such. ``refunds="reject"`` rejects every refund row.

    ``zero_amounts="keep"`` keeps zero-value orders (free items still count as purchases for the
    purchase models); ``duplicates="keep"`` keeps exact duplicates, for exports without order ids
    where two identical orders on one day can be real.

    Invariant: ``rows_in == len(transactions) + len(rejected)``.

    >>> res = clean_transactions(pd.DataFrame({"customer_id": ["a", "a", ""],
    ...     "order_date": ["2024-01-01", "2024-01-01", "2024-01-02"],
    ...     "amount": ["¥1,200.00", "-200", "5"]}))
    >>> res.transactions["amount"].tolist(), res.report["rows"].to_dict()
    ([1000.0], {'missing customer id': 1, 'refund netted into same-day purchase': 1})
    """
    for name, value, allowed in (("refunds", refunds, ("net", "reject")),
                                 ("zero_amounts", zero_amounts, ("reject", "keep")),
                                 ("duplicates", duplicates, ("reject", "keep"))):
        if value not in allowed:
            raise LTVError(f"{name} must be {' or '.join(map(repr, allowed))}, got {value!r}.")
    if not isinstance(df, pd.DataFrame):
        raise LTVError("clean_transactions takes a DataFrame (the output of read_transactions).")
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise LTVError(
            f"The data has no {', '.join(missing)} column; the columns are: {_list(df.columns)}. "
            "Read it with read_transactions, which maps the client's column names."
        )
    raw = df.reset_index(drop=True)
    n = len(raw)
    if SOURCE_ROW not in raw:
        raw[SOURCE_ROW] = np.arange(1, n + 1)
    reason = pd.Series(pd.NA, index=raw.index, dtype=object)

    def reject(mask, why):
        mask = np.asarray(mask, dtype=bool) & reason.isna().to_numpy()
        reason[mask] = why

    if READ_ERROR in raw:
        reject(raw[READ_ERROR].notna(), "malformed line")

    ids = _clean_ids(raw[CUSTOMER_ID])
    reject(ids.isna(), "missing customer id")

    dates, date_missing = _parse_dates(raw[ORDER_DATE], date_format, dayfirst)
    reject(date_missing, "missing date")
    reject(dates.isna(), "unparseable date")

    amounts, amount_missing = _parse_amounts(raw[AMOUNT])
    reject(amount_missing, "missing amount")
    reject(amounts.isna(), "non-numeric amount")

    if observation_end is not None:
        reject(dates >= _end_cut(observation_end), "date after observation end")
    if zero_amounts == "reject":
        reject(amounts == 0, "zero amount")

    typed = pd.DataFrame({CUSTOMER_ID: ids, ORDER_DATE: dates, AMOUNT: amounts})
    for col in OPTIONAL_COLUMNS:
        if col in raw:
            typed[col] = raw[col].to_numpy()
    if QUANTITY in typed:
        typed[QUANTITY] = pd.to_numeric(typed[QUANTITY], errors="coerce")
    for col in (ORDER_ID, CHANNEL):
        if col in typed:
            typed[col] = _clean_ids(typed[col])
    alive = reason.isna().to_numpy()
    dup = np.zeros(n, dtype=bool)
    dup[alive] = typed[alive].duplicated(keep="first").to_numpy()
    if duplicates == "reject":
        reject(dup, "exact duplicate")

    refunded = 0.0
    neg = (amounts < 0).to_numpy()
    if refunds == "reject":
        reject(neg, "refund")
    else:
        refunded = _net_refunds(typed, reason, reject, neg)

    keep = reason.isna().to_numpy()
    transactions = (typed[keep].sort_values([CUSTOMER_ID, ORDER_DATE, AMOUNT], kind="stable")
                    .reset_index(drop=True))
    rejected = raw[~keep].copy()
    rejected[REASON] = reason[~keep].astype("str")
    rejected = rejected.reset_index(drop=True)
    counts = rejected[REASON].value_counts()
    report = pd.DataFrame({"rows": [int(counts.get(r, 0)) for r in REASONS]}, index=list(REASONS))
    report = report[report["rows"] > 0]
    report.index.name = REASON
    report["share"] = report["rows"] / max(n, 1)
    if len(transactions) + len(rejected) != n:  # an internal guarantee, not a user error
        raise AssertionError("clean_transactions lost rows")
    return CleanResult(transactions, rejected, report, n, float(refunded),
                       dict(df.attrs.get("columns", {})))


def _as_text(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Stripped Arrow-backed strings (vectorized string ops) and the mask of missing cells.

    Cells of mixed object columns (Excel) that are whole-number floats lose their ``.0``, so
    ids stored as numbers read 1001, not 1001.0. Full-width forms (￥, １２３) are folded to
    ASCII with NFKC, only on the rows that have non-ASCII text.
    """
    s = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_float_dtype(s.dtype):
        whole = s.notna() & np.isfinite(s) & (s == np.floor(s))
        text = s.astype("str")
        text[whole] = s[whole].astype("int64").astype("str")
    elif s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        text = s.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else v,
                     na_action="ignore").astype("str")
    else:
        text = s.astype("str")
    text = text.astype(pd.StringDtype("pyarrow")).str.strip()
    wide = text.str.contains(r"[^\x00-\x7f]", regex=True).fillna(False).to_numpy(bool)
    if wide.any():
        text[wide] = text[wide].str.normalize("NFKC").str.strip()
    missing = (s.isna() | text.isna() | text.str.lower().isin(_NULL_TOKENS)).to_numpy(bool)
    return text, pd.Series(missing)


def _clean_ids(values: pd.Series) -> pd.Series:
    """Ids as stripped strings; blanks and null tokens (``""``, ``NULL``, ``n/a`` ...) missing."""
    text, missing = _as_text(values)
    return text.mask(missing.to_numpy()).astype("str")


def _parse_dates(values: pd.Series, date_format, dayfirst) -> tuple[pd.Series, pd.Series]:
    """Timestamps (naive, local wall time) and a mask of missing inputs; failures are NaT.

    Text is normalised first: Chinese 年/月/日 and 时/分/秒, slashes and dots become ISO
    separators. The format is inferred from the data (``date_format`` forces one); rows that do
    not fit it are tried once more with per-row parsing.
    """
    s = pd.Series(values).reset_index(drop=True)
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_localize(None).astype("datetime64[us]"), s.isna()
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s.astype("datetime64[us]"), s.isna()
    out = pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]")
    is_stamp = np.zeros(len(s), dtype=bool)
    if s.dtype == object and pd.api.types.infer_dtype(s, skipna=True) not in ("string", "empty"):
        is_stamp = s.map(lambda v: hasattr(v, "year")).to_numpy(bool)  # Excel date cells
        if is_stamp.any():
            out[is_stamp] = pd.to_datetime(s[is_stamp], errors="coerce").astype("datetime64[us]")
    text, missing = _as_text(s.where(~is_stamp))
    missing = missing & ~is_stamp
    todo = (~is_stamp & ~missing).to_numpy()
    if todo.any():
        norm = text[todo]
        for pattern, repl in ((r"[年月/.]", "-"), (r"[时分]", ":"), (r"[日秒T]", " "), (r"[ \t]+", " ")):
            norm = norm.str.replace(pattern, repl, regex=True)
        norm = norm.str.strip(" :-").astype(object)
        parsed = pd.to_datetime(norm, format=date_format, dayfirst=dayfirst, errors="coerce")
        retry = parsed.isna()
        if retry.any() and date_format is None:
            parsed[retry] = pd.to_datetime(norm[retry], format="mixed", dayfirst=dayfirst,
                                           errors="coerce")
        if getattr(parsed.dtype, "tz", None) is not None:
            parsed = parsed.dt.tz_localize(None)
        out[todo] = parsed.astype("datetime64[us]").to_numpy()
    return out, missing


_CURRENCY = r"(?i)(rmb|cny|usd|hkd|eur|gbp|jpy|元|人民币|[¥$€£])"


def _parse_amounts(values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Floats and a mask of missing inputs; non-numeric text becomes NaN.

    Currency symbols and codes, thousands separators and spaces are dropped; ``(12.00)`` is -12.
    """
    s = pd.Series(values).reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        out = s.astype("float64")
        return out.where(np.isfinite(out)), s.isna()
    text, missing = _as_text(s)
    negative = text.str.match(r"^\(.*\)$").fillna(False).to_numpy(bool)
    norm = text.str.replace(_CURRENCY, "", regex=True).str.replace(r"[, \t()]", "", regex=True)
    out = pd.to_numeric(norm, errors="coerce").astype("float64")
    out = out.where(~negative, -out.abs())
    return out.where(np.isfinite(out) & ~missing.to_numpy()), missing


def _end_cut(observation_end) -> pd.Timestamp:
    """First instant after the observation end: a date means its whole day."""
    try:
        end = pd.Timestamp(observation_end)
    except (ValueError, TypeError):
        raise LTVError(f"observation_end {observation_end!r} is not a date.") from None
    if end.tz is not None:
        end = end.tz_localize(None)
    return end + pd.Timedelta(days=1) if end == end.normalize() else end + pd.Timedelta(1, "us")


def _net_refunds(typed: pd.DataFrame, reason: pd.Series, reject, neg: np.ndarray) -> float:
    """Net refund rows into the same customer's same-day purchases; returns the amount netted."""
    alive = reason.isna().to_numpy()
    refund_rows = alive & neg
    if not refund_rows.any():
        return 0.0
    day = typed[ORDER_DATE].dt.normalize()
    key = pd.DataFrame({"c": typed[CUSTOMER_ID], "d": day})
    buys = alive & ~neg
    bought = pd.Series(np.where(buys, typed[AMOUNT], 0.0)).groupby([key["c"], key["d"]]).transform("sum")
    owed = pd.Series(np.where(refund_rows, -typed[AMOUNT], 0.0)).groupby([key["c"], key["d"]]).transform("sum")
    has_buy = (bought > 0).to_numpy()
    reject(refund_rows & ~has_buy, "refund without same-day purchase")
    reject(refund_rows & has_buy, "refund netted into same-day purchase")
    # Allocate each day's refunds to its purchases, largest first, never below zero.
    target = buys & (owed > 0).to_numpy()
    if not target.any():
        return 0.0
    part = pd.DataFrame({"c": key["c"][target], "d": key["d"][target],
                         "amt": typed[AMOUNT][target], "owed": owed[target]})
    part = part.sort_values(["c", "d", "amt"], ascending=[True, True, False], kind="stable")
    before = part.groupby(["c", "d"], sort=False)["amt"].cumsum() - part["amt"]
    cut = (part["owed"] - before).clip(lower=0).clip(upper=part["amt"])
    new_amount = (part["amt"] - cut).round(10)
    typed.loc[new_amount.index, AMOUNT] = new_amount
    zeroed = np.zeros(len(typed), dtype=bool)
    zeroed[new_amount.index[new_amount <= 0]] = True
    reject(zeroed, "fully refunded")
    return float(cut.sum())


def data_quality(result: CleanResult, language: str = "en") -> pd.DataFrame:
    """The data quality table a consultant reads first: one row per measure, ``value`` column.

    Rows read, kept and rejected (with one row per rejection reason), customers, date range,
    revenue, refunds netted, and which source column filled each role.
    """
    tx = result.transactions
    lab = lambda key: label(key, language)  # noqa: E731
    rows = [(lab("rows read"), result.rows_in), (lab("rows kept"), result.rows_kept),
            (lab("rows rejected"), len(result.rejected))]
    rows += [(f"{lab('rejected')}: {lab(r)}", int(n)) for r, n in result.report["rows"].items()]
    rows += [
        (lab("customers"), int(tx[CUSTOMER_ID].nunique())),
        (lab("first order"), tx[ORDER_DATE].min().date().isoformat() if len(tx) else "-"),
        (lab("last order"), tx[ORDER_DATE].max().date().isoformat() if len(tx) else "-"),
        (lab("revenue"), round(float(tx[AMOUNT].sum()), 2)),
        (lab("refunds netted"), round(result.refunded, 2)),
    ]
    rows += [(f"{lab('column')}: {role}", col) for role, col in result.columns.items()]
    shown = [f"{v:,}" if isinstance(v, int) else f"{v:,.2f}" if isinstance(v, float) else str(v)
             for _, v in rows]
    table = pd.DataFrame({lab("value"): shown}, index=[m for m, _ in rows])
    table.index.name = lab("measure")
    return table


def monthly_activity(transactions: pd.DataFrame) -> pd.DataFrame:
    """Per calendar month: ``new_customers`` (first purchase that month), ``orders``, ``revenue``,
    ``active_customers``. Indexed by ``month`` (month start); months without orders appear as 0.
    """
    tx = transactions
    month = tx[ORDER_DATE].dt.to_period("M")
    first = tx.groupby(CUSTOMER_ID, sort=False)[ORDER_DATE].transform("min").dt.to_period("M")
    out = pd.DataFrame({
        "new_customers": tx[CUSTOMER_ID].where(month == first).groupby(month).nunique(),
        "orders": month.value_counts(),
        "revenue": tx[AMOUNT].groupby(month).sum(),
        "active_customers": tx[CUSTOMER_ID].groupby(month).nunique(),
    })
    full = pd.period_range(month.min(), month.max(), freq="M")
    out = out.reindex(full, fill_value=0).fillna(0)
    out.index = full.to_timestamp()
    out.index.name = "month"
    return out.astype({"new_customers": "int64", "orders": "int64", "active_customers": "int64"})


def simple_ltv_estimate(transactions: pd.DataFrame, *, observation_end=None,
                        lifespan_years: float | None = None) -> pd.DataFrame:
    """The simple-formula LTV from the data: AOV x orders per customer per year x lifespan.

    - AOV = revenue / orders (rows);
    - orders per customer per year = orders / customer-years observed, each customer observed
      from the first purchase to ``observation_end`` (default: the last order);
    - lifespan = ``lifespan_years`` if given, else 1 / yearly churn, where yearly churn is the
      share of customers acquired at least a year before the end who bought nothing in the last
      365 days. Without a year of history the observed span is used instead, a lower bound.

    Returns a table indexed by measure with ``value`` and ``how it is computed``.
    """
    from ltv_helpers.formulas import simple_ltv

    tx = transactions
    if tx.empty:
        raise LTVError("There are no transactions to estimate LTV from.")
    end = tx[ORDER_DATE].max() if observation_end is None else _end_cut(observation_end)
    per_customer = tx.groupby(CUSTOMER_ID)[ORDER_DATE].agg(["min", "max"])
    year = pd.Timedelta(days=365.25)
    exposure = ((end - per_customer["min"]) / year).clip(lower=1 / 365.25)
    aov = tx[AMOUNT].sum() / len(tx)
    freq = len(tx) / exposure.sum()
    if lifespan_years is not None:
        lifespan, how = float(lifespan_years), "given by the consultant"
    else:
        old = per_customer[per_customer["min"] <= end - year]
        churn = float((old["max"] < end - year).mean()) if len(old) else 0.0
        if len(old) and churn > 0:
            lifespan = 1.0 / churn
            how = (f"1 / yearly churn; {churn:.1%} of the {len(old):,} customers acquired a year or "
                   "more before the end bought nothing in the last 365 days")
        else:
            lifespan = float((end - tx[ORDER_DATE].min()) / year)
            how = "observed span of the data (less than a year of history: a lower bound)"
    rows = [
        ("average order value", aov, "revenue / orders"),
        ("orders per customer per year", freq, "orders / customer-years observed since first purchase"),
        ("lifespan (years)", lifespan, how),
        ("simple LTV", float(simple_ltv(aov, freq, lifespan)), "AOV x frequency x lifespan"),
    ]
    return pd.DataFrame(rows, columns=["measure", "value", "how it is computed"]).set_index("measure")


# --------------------------------------------------------------------------------------------
# Several sources: stacking and OneID
# --------------------------------------------------------------------------------------------

def combine_sources(sources, id_map: pd.DataFrame | Mapping | None = None) -> pd.DataFrame:
    """Stack several sources into one table with a ``channel`` column and unified customer ids.

    ``sources`` is a mapping ``{channel: DataFrame}`` (or a list of DataFrames that already carry
    a ``channel`` column), each in canonical column names (the output of
    :func:`read_transactions`). ``id_map`` is the "OneID" table: a DataFrame with ``source_id``
    and ``customer_id`` columns, plus ``channel`` when the same raw id means different people in
    different channels; or a plain mapping ``{source_id: customer_id}``. Ids not in the map keep
    their own value. The raw id stays in ``source_customer_id`` for the audit trail, and
    ``source_row`` still points at the row of its own source.

    >>> web = pd.DataFrame({"customer_id": ["w1"], "order_date": ["2024-01-01"], "amount": [5]})
    >>> shop = pd.DataFrame({"customer_id": ["13800"], "order_date": ["2024-01-02"], "amount": [7]})
    >>> combine_sources({"web": web, "shop": shop}, {"w1": "13800"})["customer_id"].tolist()
    ['13800', '13800']
    """
    if isinstance(sources, Mapping):
        parts = []
        for name, frame in sources.items():
            part = frame.copy()
            part[CHANNEL] = str(name)
            parts.append(part)
    else:
        parts = [frame.copy() for frame in sources]
        if any(CHANNEL not in p for p in parts):
            raise LTVError("Pass sources as {channel_name: DataFrame} or give each a channel column.")
    if not parts:
        raise LTVError("combine_sources needs at least one source.")
    for i, part in enumerate(parts):
        missing = [c for c in REQUIRED_COLUMNS if c not in part]
        if missing:
            raise LTVError(f"Source {i + 1} has no {', '.join(missing)} column; its columns are: "
                           f"{_list(part.columns)}.")
        if SOURCE_ROW not in part:
            part[SOURCE_ROW] = np.arange(1, len(part) + 1)
        part[CUSTOMER_ID] = part[CUSTOMER_ID].astype("str").str.strip().where(part[CUSTOMER_ID].notna())
    out = pd.concat(parts, ignore_index=True)
    out["source_customer_id"] = out[CUSTOMER_ID]
    if id_map is None:
        return out
    table = _id_map_table(id_map)
    on = ["source_id", CHANNEL] if CHANNEL in table else ["source_id"]
    look = out[on[1:]].copy() if len(on) > 1 else pd.DataFrame(index=out.index)
    look["source_id"] = out[CUSTOMER_ID]
    merged = look.merge(table, on=on, how="left", validate="many_to_one")
    out[CUSTOMER_ID] = merged[CUSTOMER_ID].where(merged[CUSTOMER_ID].notna(), out[CUSTOMER_ID]).to_numpy()
    return out


def _id_map_table(id_map) -> pd.DataFrame:
    if isinstance(id_map, Mapping):
        table = pd.DataFrame({"source_id": list(id_map), CUSTOMER_ID: list(id_map.values())})
    elif isinstance(id_map, pd.DataFrame):
        missing = [c for c in ("source_id", CUSTOMER_ID) if c not in id_map]
        if missing:
            raise LTVError(f"id_map needs source_id and customer_id columns; it has: "
                           f"{_list(id_map.columns)}.")
        table = id_map[[c for c in ("source_id", CHANNEL, CUSTOMER_ID) if c in id_map]].copy()
    else:
        raise LTVError("id_map must be a DataFrame (source_id, [channel,] customer_id) or a dict.")
    for col in table.columns:
        table[col] = table[col].astype("str").str.strip()
    keys = [c for c in ("source_id", CHANNEL) if c in table]
    table = table.drop_duplicates()
    clash = table[table.duplicated(keys, keep=False)]
    if len(clash):
        first = clash.iloc[0]
        raise LTVError(f"id_map sends source id {first['source_id']!r} to more than one customer id "
                       f"({_list(clash[clash['source_id'] == first['source_id']][CUSTOMER_ID])}).")
    return table


# --------------------------------------------------------------------------------------------
# RFM summaries (lifetimes' definitions, computed in DuckDB)
# --------------------------------------------------------------------------------------------

#: Period index of a timestamp column ``{c}``, per pandas period frequency. Differences of these
#: indexes equal lifetimes' ``(period start - period start) / np.timedelta64(1, freq)``; weeks
#: are pandas' default W-SUN periods (Monday to Sunday).
_PERIOD_SQL = {
    "h": "CAST(floor(epoch({c}) / 3600) AS BIGINT)",
    "D": "date_diff('day', DATE '1970-01-01', CAST({c} AS DATE))",
    "W": "CAST(floor(date_diff('day', DATE '1970-01-05', CAST({c} AS DATE)) / 7) AS BIGINT)",
    "M": "(year({c}) * 12 + month({c}) - 1)",
    "Q": "(year({c}) * 4 + quarter({c}) - 1)",
    "Y": "year({c})",
}
_FREQ_ALIASES = {"H": "h", "d": "D", "w": "W", "ME": "M", "MS": "M", "m": "M", "QE": "Q",
                 "q": "Q", "YE": "Y", "A": "Y", "y": "Y"}


def _check_freq(freq: str, freq_multiplier) -> str:
    freq = _FREQ_ALIASES.get(freq, freq)
    if freq not in _PERIOD_SQL:
        raise LTVError(f"freq must be one of {', '.join(_PERIOD_SQL)}, got {freq!r}.")
    if not (isinstance(freq_multiplier, (int, float)) and freq_multiplier > 0):
        raise LTVError(f"freq_multiplier must be a positive number, got {freq_multiplier!r}.")
    return freq


class _Source:
    """A DuckDB view ``src`` over a transaction DataFrame or a Parquet file."""

    def __init__(self, transactions):
        self.con = duckdb.connect()
        if isinstance(transactions, (str, Path)):
            path = Path(transactions)
            if not path.is_file():
                raise LTVError(f"File not found: {path}.")
            quoted = str(path).replace("'", "''")
            self.con.execute(f"CREATE VIEW src AS SELECT * FROM read_parquet('{quoted}')")
        elif isinstance(transactions, pd.DataFrame):
            self.con.register("src", transactions)
        else:
            raise LTVError("transactions must be a DataFrame or the path of a Parquet file.")
        types = dict(self.con.execute("SELECT column_name, column_type FROM (DESCRIBE src)").fetchall())
        missing = [c for c in REQUIRED_COLUMNS if c not in types]
        if missing:
            raise LTVError(f"The transactions have no {', '.join(missing)} column; the columns are: "
                           f"{_list(types)}. Clean them with clean_transactions first.")
        if not (types[ORDER_DATE].startswith("TIMESTAMP") or types[ORDER_DATE] == "DATE"):
            raise LTVError(f"order_date is {types[ORDER_DATE]}, not a date; clean the data with "
                           "clean_transactions first.")

    def scalar(self, sql: str):
        return self.con.execute(sql).fetchone()[0]

    def period_of(self, when, freq: str) -> int:
        ts = pd.Timestamp(when)
        return int(self.scalar("SELECT " + _PERIOD_SQL[freq].format(c=f"TIMESTAMP '{ts}'")))

    def close(self):
        self.con.close()


#: Amounts are summed as exact decimals (to a millionth): parallel threads add floating-point
#: numbers in varying order, and a report rendered twice must give the same digits.
_EXACT_SUM = f"SUM(CAST({AMOUNT} AS DECIMAL(18, 6)))"


def _summary_sql(freq: str, where: str, end_period: int, mult: float) -> str:
    """Per-customer frequency, recency, T and monetary value, lifetimes' definitions.

    Rows in the same period are merged (their amounts summed); the first period is the first
    purchase; monetary value is the mean of the repeat periods' sums (0 without repeats).
    """
    per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
    return f"""
        WITH periods AS (
            SELECT {CUSTOMER_ID} AS cid, {per} AS per, {_EXACT_SUM} AS amt
            FROM src WHERE {where}
            GROUP BY ALL
        ), marked AS (
            SELECT cid, per, amt, per = MIN(per) OVER (PARTITION BY cid) AS is_first FROM periods
        )
        SELECT cid AS {CUSTOMER_ID},
               CAST(COUNT(*) - 1 AS DOUBLE) AS {FREQUENCY},
               (MAX(per) - MIN(per)) / {mult} AS {RECENCY},
               ({end_period} - MIN(per)) / {mult} AS {T},
               COALESCE(CAST(AVG(amt) FILTER (WHERE NOT is_first) AS DOUBLE), 0.0) AS {MONETARY_VALUE}
        FROM marked GROUP BY cid ORDER BY cid
    """


def rfm_summary(transactions, *, observation_end=None, freq: str = "D",
                freq_multiplier: float = 1) -> pd.DataFrame:
    """Per-customer ``frequency``, ``recency``, ``T``, ``monetary_value``, as lifetimes defines them.

    Same definitions as ``lifetimes.utils.summary_data_from_transaction_data`` (with a monetary
    column): timestamps are cut to periods of ``freq`` (``h``, ``D``, ``W``, ``M``, ``Q``,
    ``Y``; monthly works, unlike lifetimes on pandas 2+); purchases in the same period merge into
    one, amounts summed; rows in periods after ``observation_end``'s are dropped.

    - ``frequency`` = distinct purchase periods - 1 (repeat purchases);
    - ``recency`` = (last period - first period) / ``freq_multiplier``;
    - ``T`` = (observation end's period - first period) / ``freq_multiplier``;
    - ``monetary_value`` = mean of the repeat periods' summed amounts, 0 without repeats.

    ``freq="D", freq_multiplier=7`` gives weeks counted in exact days, as in the BG/NBD paper.
    ``observation_end`` defaults to the last transaction. ``transactions`` is a cleaned
    DataFrame or the path of a Parquet file with the canonical columns; a file is scanned by
    DuckDB and never loaded whole into pandas. The work runs in DuckDB (see
    ``benchmarks/bench_rfm.py`` for the speed against lifetimes). Amounts are summed as exact
    decimals with 6 places (up to 10^12 per order), so the result does not depend on how threads
    split the work: lifetimes' float sums differ from it by about 1e-13.

    Returns a DataFrame indexed by ``customer_id`` (sorted), float columns;
    ``attrs["unit_days"]`` holds the length of its time unit in days (7 for weeks).

    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-11", "2024-01-05"]),
    ...     "amount": [10.0, 5.0, 30.0, 8.0]})
    >>> rfm_summary(tx, observation_end="2024-01-31").loc["a"].tolist()
    [1.0, 10.0, 30.0, 30.0]
    """
    freq = _check_freq(freq, freq_multiplier)
    src = _Source(transactions)
    try:
        if observation_end is None:
            observation_end = src.scalar(f"SELECT MAX({ORDER_DATE}) FROM src")
            if observation_end is None:
                raise LTVError("There are no transactions to summarize.")
        end = src.period_of(_as_timestamp(observation_end, "observation_end"), freq)
        per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
        out = src.con.execute(_summary_sql(freq, f"{per} <= {end}", end, float(freq_multiplier))).df()
    finally:
        src.close()
    return _summary_frame(out, freq, freq_multiplier)


_PERIOD_DAYS = {"h": 1 / 24, "D": 1.0, "W": 7.0, "M": 365.25 / 12, "Q": 365.25 / 4, "Y": 365.25}


def _summary_frame(out: pd.DataFrame, freq: str | None = None, mult: float = 1) -> pd.DataFrame:
    out[CUSTOMER_ID] = out[CUSTOMER_ID].astype("str")
    out = out.set_index(CUSTOMER_ID).astype("float64")
    if freq is not None:
        # Length of one time unit of recency and T, for the models' horizons and discounting.
        out.attrs["unit_days"] = _PERIOD_DAYS[freq] * mult
    return out


def _as_timestamp(value, name: str) -> pd.Timestamp:
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise LTVError(f"{name} {value!r} is not a date.") from None
    if ts is pd.NaT:
        raise LTVError(f"{name} is missing.")
    return ts.tz_localize(None) if ts.tz is not None else ts


def calibration_holdout(transactions, *, calibration_end, observation_end, freq: str = "D",
                        freq_multiplier: float = 1) -> pd.DataFrame:
    """RFM summary of a calibration period and purchases in the holdout period that follows.

    Lifetimes' ``calibration_and_holdout_data`` definitions and column names:
    ``frequency_cal``, ``recency_cal``, ``T_cal``, ``monetary_value_cal`` are
    :func:`rfm_summary` of the transactions up to ``calibration_end``;
    ``frequency_holdout`` counts the distinct periods with purchases after ``calibration_end`` up
    to ``observation_end``; ``duration_holdout`` = (observation end's period - calibration end's
    period) / ``freq_multiplier``. Only customers seen in the calibration period appear.

    Two deliberate differences from lifetimes:

    - ``monetary_value_holdout`` is the mean of the holdout periods' summed amounts, like the
      calibration value, not the mean of raw rows (lifetimes#431);
    - a date given as an end includes that whole day (lifetimes compares raw timestamps with
      midnight, dropping purchases made later that day). On date-only data both agree.

    Works without a monetary column on pandas 3, where lifetimes' version fails.
    """
    freq = _check_freq(freq, freq_multiplier)
    cal_end = _as_timestamp(calibration_end, "calibration_end")
    obs_end = _as_timestamp(observation_end, "observation_end")
    if obs_end <= cal_end:
        raise LTVError(f"observation_end ({obs_end.date()}) must come after calibration_end "
                       f"({cal_end.date()}).")
    cal_cut, obs_cut = _end_cut(cal_end), _end_cut(obs_end)
    src = _Source(transactions)
    try:
        cal_p, obs_p = src.period_of(cal_end, freq), src.period_of(obs_end, freq)
        mult = float(freq_multiplier)
        cal = src.con.execute(_summary_sql(
            freq, f"{ORDER_DATE} < TIMESTAMP '{cal_cut}'", cal_p, mult)).df()
        per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
        hold = src.con.execute(f"""
            WITH periods AS (
                SELECT {CUSTOMER_ID} AS cid, {per} AS per, {_EXACT_SUM} AS amt FROM src
                WHERE {ORDER_DATE} >= TIMESTAMP '{cal_cut}' AND {ORDER_DATE} < TIMESTAMP '{obs_cut}'
                GROUP BY ALL
            )
            SELECT cid AS {CUSTOMER_ID}, CAST(COUNT(*) AS DOUBLE) AS frequency_holdout,
                   CAST(AVG(amt) AS DOUBLE) AS monetary_value_holdout
            FROM periods GROUP BY cid
        """).df()
    finally:
        src.close()
    if hold.empty:
        raise LTVError(f"No purchases fall between calibration_end ({cal_end.date()}) and "
                       f"observation_end ({obs_end.date()}); move calibration_end earlier.")
    if cal.empty:
        raise LTVError(f"No purchases fall on or before calibration_end ({cal_end.date()}).")
    cal = _summary_frame(cal)
    cal.columns = [f"{c}_cal" for c in cal.columns]
    hold = _summary_frame(hold)
    out = cal.join(hold, how="left").fillna(0.0)
    out["duration_holdout"] = (obs_p - cal_p) / mult
    out.attrs["unit_days"] = _PERIOD_DAYS[freq] * mult
    return out[["frequency_cal", "recency_cal", "T_cal", "monetary_value_cal",
                "frequency_holdout", "monetary_value_holdout", "duration_holdout"]]


def write_parquet(frame: pd.DataFrame, path) -> Path:
    """Write a table for the next notebook; the parent folder is created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=True)
    return path


def save_collection(result: CleanResult, output_dir, *, observation_end=None, client: str = "",
                    currency: str = "") -> pd.DataFrame:
    """Write the collection outputs the next notebooks read, in ``output_dir``.

    ``transactions.parquet`` (cleaned), ``rejected.parquet`` (every dropped row with its reason),
    ``rfm_summary.parquet`` (daily :func:`rfm_summary` at the observation end) and
    ``collection.json`` (client, currency, observation end, column mapping, row counts).
    Returns one row per file with its row count.
    """
    import json

    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tx = result.transactions
    if tx.empty:
        raise LTVError("No rows survived cleaning, so there is nothing to save; see the rejected rows.")
    end = _as_timestamp(observation_end, "observation_end") if observation_end is not None \
        else tx[ORDER_DATE].max().normalize()
    summary = rfm_summary(tx, observation_end=end, freq="D")
    rejected = result.rejected.copy()
    for col in rejected.columns:  # raw values of mixed types: store as text
        if rejected[col].dtype == object:
            rejected[col] = rejected[col].map(lambda v: None if v is None or v is pd.NA else str(v))
    files = {"transactions.parquet": tx, "rejected.parquet": rejected,
             "rfm_summary.parquet": summary}
    for name, frame in files.items():
        frame.to_parquet(out / name, index=(name == "rfm_summary.parquet"))
    meta = {"client": client, "currency": currency, "observation_end": end.date().isoformat(),
            "columns": result.columns, "rows_in": result.rows_in, "rows_kept": result.rows_kept,
            "rows_rejected": len(result.rejected)}
    (out / "collection.json").write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    return pd.DataFrame({"file": list(files) + ["collection.json"],
                         "rows": pd.array([len(f) for f in files.values()] + [None], dtype="Int64")}
                        ).set_index("file")


def collection_highlights(result: CleanResult, activity: pd.DataFrame, language: str = "en") -> str:
    """A few sentences a client can read about the collected data (Markdown)."""
    tx = result.transactions
    n_cust = tx[CUSTOMER_ID].nunique()
    orders = tx.groupby(CUSTOMER_ID).size()
    one_time = float((orders == 1).mean())
    peak = activity["new_customers"].idxmax()
    busiest = activity["revenue"].idxmax()
    kept = result.rows_kept / max(result.rows_in, 1)
    top = tx.groupby(CUSTOMER_ID)[AMOUNT].sum().sort_values(ascending=False)
    top20 = float(top.iloc[: max(1, int(np.ceil(len(top) * 0.2)))].sum() / top.sum())
    if language == "zh":
        lines = [
            f"- 共读取 {result.rows_in:,} 行，保留 {result.rows_kept:,} 行（{kept:.1%}），"
            f"其余各行均列明剔除原因。",
            f"- {n_cust:,} 位客户；{one_time:.0%} 的客户只购买过一次。",
            f"- 新客户最多的月份是 {peak:%Y-%m}（{activity['new_customers'].max():,} 位）；"
            f"销售额最高的月份是 {busiest:%Y-%m}。",
            f"- 消费最高的 20% 客户贡献了 {top20:.0%} 的销售额。",
        ]
    else:
        lines = [
            f"- {result.rows_in:,} rows read, {result.rows_kept:,} kept ({kept:.1%}); every other "
            "row is listed with the reason it was rejected.",
            f"- {n_cust:,} customers; {one_time:.0%} of them bought only once.",
            f"- Most new customers arrived in {peak:%B %Y} ({activity['new_customers'].max():,}); "
            f"revenue peaked in {busiest:%B %Y}.",
            f"- The top 20% of customers by spend bring {top20:.0%} of revenue.",
        ]
    return "\n".join(lines)


def customer_history(transactions: pd.DataFrame, *, observation_end=None) -> pd.DataFrame:
    """Per-customer history for segmentation: the daily RFM summary plus plain-money columns.

    Columns: lifetimes' ``frequency``, ``recency``, ``T``, ``monetary_value`` (days), and
    ``orders`` (rows kept), ``revenue`` (total spend, first purchase included), ``aov``
    (revenue / orders), ``first_order``, ``last_order``, ``days_since_last`` (``T - recency``:
    days from the last purchase day to the observation end) and ``tenure_days`` (``T``).
    Indexed by ``customer_id``.
    """
    tx = transactions
    if observation_end is None:
        observation_end = tx[ORDER_DATE].max()
    tx = tx[tx[ORDER_DATE] < _end_cut(observation_end)]
    summary = rfm_summary(tx, observation_end=observation_end, freq="D")
    per = tx.groupby(CUSTOMER_ID).agg(orders=(AMOUNT, "size"), revenue=(AMOUNT, "sum"),
                                      first_order=(ORDER_DATE, "min"), last_order=(ORDER_DATE, "max"))
    per.index = per.index.astype("str")
    out = summary.join(per, how="left")
    out["aov"] = out["revenue"] / out["orders"]
    out["days_since_last"] = out[T] - out[RECENCY]
    out["tenure_days"] = out[T]
    return out


def load_collection(input_dir) -> tuple[pd.DataFrame, dict]:
    """The cleaned transactions and metadata that ``01_collection`` wrote to ``input_dir``."""
    import json

    folder = Path(input_dir)
    tx_path, meta_path = folder / "transactions.parquet", folder / "collection.json"
    if not tx_path.is_file() or not meta_path.is_file():
        raise LTVError(f"{folder} has no collection outputs (transactions.parquet, collection.json); "
                       "run 01_collection with this folder as output_dir first.")
    return pd.read_parquet(tx_path), json.loads(meta_path.read_text(encoding="utf-8"))
