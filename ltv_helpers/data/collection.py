"""What the collection notebook shows and hands on: the data quality table, monthly activity, the
simple LTV estimate, highlights, and the files the next notebooks read.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers import files
from ltv_helpers.data.clean import CleanResult
from ltv_helpers.data.parse import _as_timestamp, _end_cut
from ltv_helpers.data.summary import rfm_summary
from ltv_helpers.labels import LIFESPAN_FROM_CHURN, label, md_escape
from ltv_helpers.schema import AMOUNT, CUSTOMER_ID, ORDER_DATE, LTVError

def data_quality(result: CleanResult, language: str = "en") -> pd.DataFrame:
    """The data quality table a consultant reads first: one row per measure, ``value`` column.

    Lines read and kept, orders kept (an order-line export merges lines into orders; otherwise
    each line is an order), lines rejected with one row per rejection reason, lines kept that
    deserve a look (zero amounts, exact duplicates without an order id), customers, date
    range, revenue, refunds netted, and which source column filled each role.
    """
    tx = result.transactions
    lab = lambda key: label(key, language)  # noqa: E731
    rows = [(lab("lines read"), result.rows_in), (lab("lines kept"), result.rows_kept),
            (lab("orders kept"), result.orders), (lab("lines rejected"), len(result.rejected))]
    rows += [(f"{lab('rejected')}: {lab(r)}", int(n)) for r, n in result.report["rows"].items()]
    rows += [(f"{lab('kept')}: {lab(flag)}", int(n)) for flag, n in result.kept_flags.items()]
    rows += [
        (lab("customers"), int(tx[CUSTOMER_ID].nunique())),
        (lab("first order"), tx[ORDER_DATE].min().date().isoformat() if len(tx) else "-"),
        (lab("last order"), tx[ORDER_DATE].max().date().isoformat() if len(tx) else "-"),
        (lab("revenue"), round(float(tx[AMOUNT].sum()), 2)),
        (lab("refunds netted"), round(result.refunded, 2)),
    ]
    rows += [(f"{lab('column')}: {lab(role)}", col) for role, col in result.columns.items()]
    shown = [f"{v:,}" if isinstance(v, int) else f"{v:,.2f}" if isinstance(v, float) else str(v)
             for _, v in rows]
    table = pd.DataFrame({lab("value"): shown}, index=[m for m, _ in rows])
    table.index.name = lab("measure")
    return table


def monthly_activity(transactions: pd.DataFrame) -> pd.DataFrame:
    """Per calendar month: ``new_customers`` (first purchase that month), ``orders``, ``revenue``,
    ``active_customers``. Indexed by ``month`` (month start); months without orders appear as 0.

    The customers are counted on integer codes (each customer's first month, and the distinct
    (month, customer) pairs), not by pandas' distinct counts of text ids per month (1.7 s for
    2.85M orders); the same counts (tested against them).
    """
    tx = transactions
    month = tx[ORDER_DATE].dt.to_period("M")
    full = pd.period_range(month.min(), month.max(), freq="M")
    at = month.array.asi8 - full[0].ordinal  # 0 = the first month
    codes, ids = pd.factorize(tx[CUSTOMER_ID])
    known = codes >= 0  # an order without an id belongs to no customer
    first = np.full(len(ids), len(full) - 1, dtype=np.int64)  # every id has an order: its month is lower or this
    np.minimum.at(first, codes[known], at[known])
    pairs = np.sort(at[known] * len(ids) + codes[known])  # distinct (month, customer): sorted, each once
    pairs = pairs[np.r_[True, pairs[1:] != pairs[:-1]]] if len(pairs) else pairs  # (np.unique: 1.9 s)
    out = pd.DataFrame({
        "new_customers": np.bincount(first, minlength=len(full)),
        "orders": np.bincount(at, minlength=len(full)),
        "revenue": tx[AMOUNT].groupby(month).sum().reindex(full, fill_value=0).fillna(0).to_numpy(),
        "active_customers": np.bincount(pairs // max(len(ids), 1), minlength=len(full)),
    }, index=full.to_timestamp())
    out.index.name = "month"
    return out.astype({"new_customers": "int64", "orders": "int64", "active_customers": "int64"})


def simple_ltv_estimate(transactions: pd.DataFrame, *, observation_end=None,
                        lifespan_years: float | None = None, language: str = "en") -> pd.DataFrame:
    """The simple-formula LTV from the data: AOV x orders per customer per year x lifespan.

    - AOV = revenue / orders (rows);
    - orders per customer per year = orders / customer-years observed, each customer observed
      from the first purchase to ``observation_end`` (default: the last order);
    - lifespan = ``lifespan_years`` if given, else 1 / yearly churn, where yearly churn is the
      share of customers acquired at least a year before the end who bought nothing in the last
      365 days. Without a year of history the observed span is used instead, a lower bound.

    Returns a table indexed by measure with ``value`` and ``how it is computed`` (the
    explanations in ``language``; the measure names stay the keys of :func:`label`).
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
        lifespan, how = float(lifespan_years), label("given by the consultant", language)
    else:
        old = per_customer[per_customer["min"] <= end - year]
        churn = float((old["max"] < end - year).mean()) if len(old) else 0.0
        if len(old) and churn > 0:
            lifespan = 1.0 / churn
            how = label(LIFESPAN_FROM_CHURN, language).format(churn=f"{churn:.1%}", customers=f"{len(old):,}")
        else:
            lifespan = float((end - tx[ORDER_DATE].min()) / year)
            how = label("observed span of the data (less than a year of history: a lower bound)", language)
    rows = [
        ("average order value", aov, label("revenue / orders", language)),
        ("orders per customer per year", freq,
         label("orders / customer-years observed since first purchase", language)),
        ("lifespan (years)", lifespan, how),
        ("simple LTV", float(simple_ltv(aov, freq, lifespan)), label("AOV x frequency x lifespan", language)),
    ]
    return pd.DataFrame(rows, columns=["measure", "value", "how it is computed"]).set_index("measure")


def write_parquet(frame: pd.DataFrame, path) -> Path:
    """Write a table for the next notebook; the parent folder is created."""
    return files.write_parquet(frame, path, index=True)


def save_collection(result: CleanResult, output_dir, *, observation_end=None, client: str = "",
                    currency: str = "", engine: str = "duckdb") -> pd.DataFrame:
    """Write the collection outputs the next notebooks read, in ``output_dir``.

    ``transactions.parquet`` (cleaned), ``rejected.parquet`` (every dropped row with its reason),
    ``rfm_summary.parquet`` (daily :func:`rfm_summary` at the observation end, computed by
    ``engine``: ``"duckdb"`` here, ``"spark"`` on the Spark session or ``$LTV_SPARK_MASTER``) and
    ``collection.json`` (client, currency, observation end, column mapping, row counts, the
    input's SHA-256, the engine of the summary).
    Returns one row per file with its row count.
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    tx = result.transactions
    if tx.empty:
        raise LTVError("No rows survived cleaning, so there is nothing to save; see the rejected rows.")
    end = _as_timestamp(observation_end, "observation_end") if observation_end is not None \
        else tx[ORDER_DATE].max().normalize()
    summary = rfm_summary(tx, observation_end=end, freq="D", engine=engine)
    rejected = result.rejected.copy()
    for col in rejected.columns:  # raw values of mixed types: store as text
        if rejected[col].dtype == object:
            rejected[col] = rejected[col].map(lambda v: None if v is None or v is pd.NA else str(v))
    outputs = {"transactions.parquet": tx, "rejected.parquet": rejected,
               "rfm_summary.parquet": summary}
    for name, frame in outputs.items():
        files.write_parquet(frame, out / name, index=(name == "rfm_summary.parquet"))
    # Read back and kept for load_collection: the forecast blocker counted after this notebook and
    # the next notebooks then share one frame and its prepared orders (OrderDays: 1 s at 1M customers).
    _remember(out / "transactions.parquet", pd.read_parquet(out / "transactions.parquet"))
    meta = {"client": client, "currency": currency, "observation_end": end.date().isoformat(),
            "columns": result.columns, "rows_in": result.rows_in, "rows_kept": result.rows_kept,
            "orders": result.orders, "rows_rejected": len(result.rejected),
            "warnings": list(result.warnings), "input_sha256": result.input_sha256,
            "summary_engine": engine}
    files.write_json(out / "collection.json", meta)
    return pd.DataFrame({"file": list(outputs) + ["collection.json"],
                         "rows": pd.array([len(f) for f in outputs.values()] + [None], dtype="Int64")}
                        ).set_index("file")


def collection_notes(result: CleanResult, language: str = "en", part: str = "all") -> str:
    """The cleaning's warnings (assumptions it made) as Markdown notes, or '' when there are none;
    ``part="facts"`` leaves out which option to pass (the client's report), ``"advice"`` gives
    only that (for the consultant), as :meth:`ltv_helpers.labels.Note.text`."""
    texts = [note.text(language, part) for note in result.notes]
    return "\n\n".join(f"**{label('Note', language)}:** {md_escape(text)}" for text in texts if text)


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
            f"- 共读取 {result.rows_in:,} 行，保留 {result.rows_kept:,} 行（{kept:.1%}），合计 "
            f"{result.orders:,} 笔订单；其余各行均列明剔除原因。",
            f"- {n_cust:,} 位客户；{one_time:.0%} 的客户只购买过一次。",
            f"- 新客户最多的月份是 {peak:%Y-%m}（{activity['new_customers'].max():,} 位）；"
            f"销售额最高的月份是 {busiest:%Y-%m}。",
            f"- 消费最高的 20% 客户贡献了 {top20:.0%} 的销售额。",
        ]
    else:
        lines = [
            f"- {result.rows_in:,} lines read, {result.rows_kept:,} kept ({kept:.1%}) as "
            f"{result.orders:,} orders; every other line is listed with the reason it was rejected.",
            f"- {n_cust:,} customers; {one_time:.0%} of them bought only once.",
            f"- Most new customers arrived in {peak:%B %Y} ({activity['new_customers'].max():,}); "
            f"revenue peaked in {busiest:%B %Y}.",
            f"- The top 20% of customers by spend bring {top20:.0%} of revenue.",
        ]
    return "\n".join(lines)


def load_collection(input_dir) -> tuple[pd.DataFrame, dict]:
    """The cleaned transactions and metadata that ``01_collection`` wrote to ``input_dir``."""
    folder = Path(input_dir)
    tx_path, meta_path = folder / "transactions.parquet", folder / "collection.json"
    if not tx_path.is_file() or not meta_path.is_file():
        raise LTVError(f"{folder} has no collection outputs (transactions.parquet, collection.json); "
                       "run 01_collection with this folder as output_dir first.")
    # The file read last is kept: the notebooks of a report run share one kernel and each reads
    # the run's transactions (2.8 s at 1M customers). The file's identity (inode, size, time) is
    # the key, so a file written again is read again; each caller gets its own frame (with
    # pandas' copy-on-write, nothing one changes reaches the kept one or another caller's).
    last = _LAST_READ  # one read of the global: another thread may replace it, never change it
    frame = last[1] if last is not None and last[0] == _file_key(tx_path) else None
    if frame is None:
        frame = _remember(tx_path, pd.read_parquet(tx_path))
    return frame.copy(deep=False), json.loads(meta_path.read_text(encoding="utf-8"))


def _file_key(path: Path) -> tuple:
    stat = path.stat()
    return str(path.resolve()), stat.st_ino, stat.st_size, stat.st_mtime_ns


def collection_kept(path) -> pd.DataFrame | None:
    """The transactions :func:`load_collection` keeps of the file at ``path`` as it is now, or
    None (not read in this process, or written again since)."""
    last, path = _LAST_READ, Path(path)
    return last[1] if last is not None and path.is_file() and last[0] == _file_key(path) else None


def _remember(path: Path, frame: pd.DataFrame) -> pd.DataFrame:
    """Keep ``frame`` as what :func:`load_collection` reads from ``path`` (as it is now)."""
    global _LAST_READ
    _LAST_READ = (_file_key(path), frame)
    return frame


#: The transactions file :func:`load_collection` read last: (its identity, its frame).
_LAST_READ: tuple | None = None
