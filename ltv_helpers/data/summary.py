"""Per-customer summaries in lifetimes' definitions (RFM, calibration/holdout), one SQL definition run
by DuckDB (DataFrames, Parquet, DuckDB files) or Spark (:mod:`ltv_helpers.data.engines`), and the
customer history and retention tables the notebooks use.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ltv_helpers.data.engines import (
    META_KEY,
    connect,
    open_engine,
    parquet_pattern,
    summary_meta,
)
from ltv_helpers.data.parse import _as_timestamp, _end_cut, frame_key
from ltv_helpers.schema import (
    AMOUNT,
    CUSTOMER_ID,
    CUSTOMERS,
    FREQUENCY,
    MONETARY_VALUE,
    ORDER_DATE,
    PART,
    RECENCY,
    LTVError,
    T,
)

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


def period_of(when, freq: str) -> int:
    """Period index (as ``_PERIOD_SQL`` numbers them) of one timestamp: DuckDB evaluates the same
    expression the summaries use, whatever engine runs them."""
    ts = pd.Timestamp(when)
    with connect() as con:
        return int(con.execute("SELECT " + _PERIOD_SQL[freq].format(c=f"TIMESTAMP '{ts}'")).fetchone()[0])


#: Amounts are summed as exact decimals (to a millionth): parallel threads add floating-point
#: numbers in varying order, and a report rendered twice must give the same digits.
_EXACT_SUM = f"SUM(CAST({AMOUNT} AS DECIMAL(18, 6)))"


def _double(value: float) -> str:
    """A number as a DOUBLE literal: Spark reads ``7.0`` as a DECIMAL and would round divisions by it."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _summary_ctes(name: str, freq: str, where: str, end_period: int, mult: float) -> str:
    """CTEs ending in ``name``: per-customer frequency, recency, T and monetary value, lifetimes'
    definitions, on the transactions of view ``src`` that pass ``where``.

    Rows in the same period are merged (their amounts summed); the first period is the first
    purchase; monetary value is the mean of the repeat periods' sums (0 without repeats): the
    exact decimal total less the first period's (``MIN_BY``: one grouping pass, no window), turned
    into a double and divided by the count, so every engine gives the same bits.
    Written in DuckDB's SQL; :class:`~ltv_helpers.data.engines.SparkEngine` runs it translated.
    """
    per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
    return f"""
        {name}_periods AS (
            SELECT {CUSTOMER_ID} AS cid, {per} AS per, {_EXACT_SUM} AS amt
            FROM src WHERE {where}
            GROUP BY ALL
        ), {name} AS (
            SELECT cid AS {CUSTOMER_ID},
                   CAST(COUNT(*) - 1 AS DOUBLE) AS {FREQUENCY},
                   (MAX(per) - MIN(per)) / {_double(mult)} AS {RECENCY},
                   ({end_period} - MIN(per)) / {_double(mult)} AS {T},
                   CASE WHEN COUNT(*) > 1
                        THEN CAST(SUM(amt) - MIN_BY(amt, per) AS DOUBLE) / (COUNT(*) - 1)
                        ELSE 0.0 END AS {MONETARY_VALUE}
            FROM {name}_periods GROUP BY cid
        )"""


#: Significant digits an average spend keeps in a compressed summary's spend rows (a relative
#: change of at most 5e-6; amounts in cents below 10,000 stay exact).
SPEND_DIGITS = 6


def _exact_sum(column: str) -> str:
    """A deterministic sum of a DOUBLE column (as a decimal: the same digits in any engine or order)."""
    return f"CAST(SUM(CAST({column} AS DECIMAL(38, 12))) AS DOUBLE)"


def _compressed_sql(ctes: str, table: str, keys: list[str], money: list[str], spend_digits) -> str:
    """The two parts of a compressed summary of ``table`` (see :func:`rfm_summary`).

    ``part = 'purchases'``: the distinct ``keys`` rows with ``customers`` (their count), and for
    each ``money`` column its mean over those customers and ``<money>_sum``. ``part = 'spend'``:
    the distinct (frequency, average spend) pairs of the repeat buyers (``keys[0]``,
    ``money[0]``), the spend rounded to ``spend_digits`` significant digits, with their counts and
    exact sums; the other keys are NULL.
    """
    if spend_digits is not None and (not isinstance(spend_digits, int) or spend_digits < 1):
        raise LTVError(f"spend_digits must be a whole number of significant digits (1 or more) or None, "
                       f"got {spend_digits!r}.")
    count = f"COUNT(*) AS {CUSTOMERS}"
    sums = [f"{_exact_sum(m)} AS {m}_sum" for m in money]
    means = {m: f"{_exact_sum(m)} / COUNT(*) AS {m}" for m in money}
    purchases = ", ".join([f"'purchases' AS {PART}"] + keys + [means[m] for m in money] + [count] + sums)
    f, m = keys[0], money[0]
    spend = m
    if spend_digits is not None:
        # Rounded to significant digits with a whole-number ROUND (every SQL has it), scaling by an
        # exact power of ten (10^k, k >= 0, is exact in binary) in one correctly rounded operation,
        # so that every engine rounds the same bits, ties included.
        k = f"({spend_digits - 1} - CAST(FLOOR(LOG10({m})) AS INTEGER))"
        spend = (f"CASE WHEN {k} >= 0 THEN ROUND({m} * POWER(10.0, {k})) / POWER(10.0, {k}) "
                 f"ELSE ROUND({m} / POWER(10.0, -{k})) * POWER(10.0, -{k}) END")
    nulls = [f"CAST(NULL AS DOUBLE) AS {key}" for key in keys[1:]]
    spend_cols = [f"'spend' AS {PART}", f] + nulls + [f"{spend} AS {m}"] + \
        [f"CAST(NULL AS DOUBLE) AS {x}" for x in money[1:]] + [count] + \
        [f"{_exact_sum(m)} AS {m}_sum"] + [f"CAST(NULL AS DOUBLE) AS {x}_sum" for x in money[1:]]
    key_positions = ", ".join(str(i + 2) for i in range(len(keys)))
    spend_groups = f"2, {len(keys) + 2}"
    return (f"WITH {ctes} SELECT {purchases} FROM {table} GROUP BY {key_positions} "
            f"UNION ALL SELECT {', '.join(spend_cols)} FROM {table} WHERE {f} > 0 AND {m} > 0 "
            f"GROUP BY {spend_groups} ORDER BY 1, {', '.join(str(i + 2) for i in range(len(keys) + 1))}")


def _run(engine, sql: str, output, meta: dict, freq: str, mult: float):
    """The summary as a DataFrame, or written to ``output`` (Parquet): a per-customer summary by
    the engine, where it runs (on Spark, a path the cluster writes to); a compressed one, small by
    design, comes back and is written here (a file on this machine, for ``ltv fit``)."""
    if output is not None and not meta["compressed"]:
        return engine.write(sql, output, {**meta, "engine": engine.name})
    if not meta["compressed"]:
        return _summary_frame(engine.query(sql), freq, mult)
    out = _compressed_frame(engine.query(sql), freq, mult)
    if output is None:
        return out
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(out, preserve_index=False)
    kv = json.dumps({**meta, "engine": engine.name}, ensure_ascii=False)
    from ltv_helpers.files import atomic_path

    path = Path(output)
    with atomic_path(path) as part:
        pq.write_table(table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY.encode(): kv.encode()}),
                       part)
    return path


def rfm_summary(transactions, *, observation_end=None, freq: str = "D", freq_multiplier: float = 1,
                compress: bool = False, spend_digits: int | None = SPEND_DIGITS, engine: str | None = None,
                columns: dict | None = None, table: str | None = None, spark=None, output=None):
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
    ``observation_end`` defaults to the last transaction. Amounts are summed as exact decimals
    with 6 places (up to 10^12 per order), so the result does not depend on how threads split the
    work: lifetimes' float sums differ from it by about 1e-13.

    Where it runs (:mod:`ltv_helpers.data.engines`): ``transactions`` is a cleaned DataFrame, a
    Parquet file, folder or glob, or a DuckDB file with ``table=`` (DuckDB, the default; a file
    is scanned, never loaded whole into pandas), or a Spark DataFrame or table name
    (``engine="spark"``; Spark DataFrames choose it themselves). ``columns`` maps the canonical
    names to the source's (``{"customer_id": "buyer_id", ...}``). The same SQL runs on both.

    ``compress=True`` returns what the models need in far fewer rows, in two parts (column
    ``part``), each row with ``customers`` (how many customers it stands for):

    - ``"purchases"``: the distinct ``(frequency, recency, T)`` rows, with ``monetary_value`` the
      mean average spend of their customers and ``monetary_value_sum`` its exact total. The purchase
      models need nothing else, and because the Gamma-Gamma expected spend is linear in the
      average spend, per-row predictions times ``customers`` add up to the base's exact totals;
    - ``"spend"``: the distinct ``(frequency, monetary_value)`` pairs of the repeat buyers, what
      the Gamma-Gamma fit needs; ``monetary_value`` rounded to ``spend_digits`` significant
      digits (default 6: at most 5e-6 relative; None keeps it exact, one row per distinct
      value). ``recency`` and ``T`` are empty.

    :func:`ltv_helpers.models.fit` takes it as it is (same fit, tested); ``LTVModel.predict``
    scores its purchase rows. A log of billions of rows comes back as the few hundred thousand
    rows of its distinct histories (weekly periods: fewer still) plus its distinct spends, which
    grow with the repeat buyers where spends rarely repeat (fewer ``spend_digits``: fewer rows).

    ``output``: a Parquet path, returned instead of a DataFrame. A per-customer summary is written
    by the engine (Spark: a folder of part files, on any path the cluster writes to), so it never
    passes through this process; a compressed one comes back (it is small) and is written here.
    The file says what it holds (:func:`~ltv_helpers.data.engines.summary_meta`).

    Returns a DataFrame indexed by ``customer_id`` (sorted), float columns (``compress``: a
    plain index, rows sorted); ``attrs["unit_days"]`` holds the length of its time unit in days.

    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b"],
    ...     "order_date": pd.to_datetime(["2024-01-01", "2024-01-01", "2024-01-11", "2024-01-05"]),
    ...     "amount": [10.0, 5.0, 30.0, 8.0]})
    >>> rfm_summary(tx, observation_end="2024-01-31").loc["a"].tolist()
    [1.0, 10.0, 30.0, 30.0]
    """
    freq = _check_freq(freq, freq_multiplier)
    mult = float(freq_multiplier)
    with open_engine(transactions, engine, columns=columns, table=table, spark=spark) as eng:
        if observation_end is None:
            observation_end = eng.scalar(f"SELECT MAX({ORDER_DATE}) FROM src")
            if observation_end is None or pd.isna(observation_end):
                raise LTVError("There are no transactions to summarize.")
        obs = _as_timestamp(observation_end, "observation_end")
        end = period_of(obs, freq)
        per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
        ctes = _summary_ctes("summary", freq, f"{per} <= {end}", end, mult)
        if compress:
            sql = _compressed_sql(ctes, "summary", [FREQUENCY, RECENCY, T], [MONETARY_VALUE], spend_digits)
        else:
            sql = f"WITH {ctes} SELECT * FROM summary" + ("" if output is not None else f" ORDER BY {CUSTOMER_ID}")
        meta = {"kind": "rfm_summary", "compressed": bool(compress), "freq": freq, "freq_multiplier": mult,
                "unit_days": _PERIOD_DAYS[freq] * mult, "observation_end": obs.isoformat(),
                "spend_digits": spend_digits if compress else None}
        return _run(eng, sql, output, meta, freq, mult)


_PERIOD_DAYS = {"h": 1 / 24, "D": 1.0, "W": 7.0, "M": 365.25 / 12, "Q": 365.25 / 4, "Y": 365.25}


def _summary_frame(out: pd.DataFrame, freq: str | None = None, mult: float = 1) -> pd.DataFrame:
    out[CUSTOMER_ID] = out[CUSTOMER_ID].astype("str")
    out = out.set_index(CUSTOMER_ID).astype("float64")
    if freq is not None:
        # Length of one time unit of recency and T, for the models' horizons and discounting.
        out.attrs["unit_days"] = _PERIOD_DAYS[freq] * mult
    return out


def _compressed_frame(out: pd.DataFrame, freq: str | None, mult: float) -> pd.DataFrame:
    kinds = {CUSTOMERS: "int64", PART: "str"}
    out = out.astype({c: kinds.get(c, "float64") for c in out.columns})
    if freq is not None:
        out.attrs["unit_days"] = _PERIOD_DAYS[freq] * mult
    out.attrs["compressed"] = True
    return out


CAL_COLUMNS = ["frequency_cal", "recency_cal", "T_cal", "monetary_value_cal",
               "frequency_holdout", "monetary_value_holdout", "duration_holdout"]


def calibration_holdout(transactions, *, calibration_end, observation_end, freq: str = "D",
                        freq_multiplier: float = 1, compress: bool = False,
                        spend_digits: int | None = SPEND_DIGITS,
                        engine: str | None = None, columns: dict | None = None, table: str | None = None,
                        spark=None, output=None):
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

    Works without a monetary column on pandas 3, where lifetimes' version fails. Sources,
    ``engine``, ``columns``, ``table``, ``output`` as in :func:`rfm_summary`. ``compress=True``:
    the purchase part's rows are the distinct (``frequency_cal``, ``recency_cal``, ``T_cal``,
    ``frequency_holdout``, ``duration_holdout``) rows, with the mean and ``_sum`` of both
    monetary values; the spend part as in :func:`rfm_summary`, on the calibration columns.
    """
    freq = _check_freq(freq, freq_multiplier)
    cal_end = _as_timestamp(calibration_end, "calibration_end")
    obs_end = _as_timestamp(observation_end, "observation_end")
    if obs_end <= cal_end:
        raise LTVError(f"observation_end ({obs_end.date()}) must come after calibration_end "
                       f"({cal_end.date()}).")
    cal_cut, obs_cut = _end_cut(cal_end), _end_cut(obs_end)
    cal_p, obs_p = period_of(cal_end, freq), period_of(obs_end, freq)
    mult = float(freq_multiplier)
    per = _PERIOD_SQL[freq].format(c=ORDER_DATE)
    ctes = _summary_ctes("cal", freq, f"{ORDER_DATE} < TIMESTAMP '{cal_cut}'", cal_p, mult) + f""",
        hold_periods AS (
            SELECT {CUSTOMER_ID} AS cid, {per} AS per, {_EXACT_SUM} AS amt FROM src
            WHERE {ORDER_DATE} >= TIMESTAMP '{cal_cut}' AND {ORDER_DATE} < TIMESTAMP '{obs_cut}'
            GROUP BY ALL
        ), hold AS (
            SELECT cid, CAST(COUNT(*) AS DOUBLE) AS n, CAST(SUM(amt) AS DOUBLE) / COUNT(*) AS m
            FROM hold_periods GROUP BY cid
        ), joined AS (
            SELECT cal.{CUSTOMER_ID}, cal.{FREQUENCY} AS frequency_cal, cal.{RECENCY} AS recency_cal,
                   cal.{T} AS T_cal, cal.{MONETARY_VALUE} AS monetary_value_cal,
                   COALESCE(hold.n, 0.0) AS frequency_holdout, COALESCE(hold.m, 0.0) AS monetary_value_holdout,
                   ({obs_p} - {cal_p}) / {_double(mult)} AS duration_holdout
            FROM cal LEFT JOIN hold ON cal.{CUSTOMER_ID} = hold.cid
        )"""
    with open_engine(transactions, engine, columns=columns, table=table, spark=spark) as eng:
        counts = eng.query(f"""
            SELECT COUNT(*) FILTER (WHERE {ORDER_DATE} < TIMESTAMP '{cal_cut}') AS cal,
                   COUNT(*) FILTER (WHERE {ORDER_DATE} >= TIMESTAMP '{cal_cut}'
                                    AND {ORDER_DATE} < TIMESTAMP '{obs_cut}') AS hold FROM src""")
        if int(counts["hold"].iloc[0]) == 0:
            raise LTVError(f"No purchases fall between calibration_end ({cal_end.date()}) and "
                           f"observation_end ({obs_end.date()}); move calibration_end earlier.")
        if int(counts["cal"].iloc[0]) == 0:
            raise LTVError(f"No purchases fall on or before calibration_end ({cal_end.date()}).")
        if compress:
            keys = ["frequency_cal", "recency_cal", "T_cal", "frequency_holdout", "duration_holdout"]
            sql = _compressed_sql(ctes, "joined", keys, ["monetary_value_cal", "monetary_value_holdout"],
                                  spend_digits)
        else:
            sql = (f"WITH {ctes} SELECT {CUSTOMER_ID}, {', '.join(CAL_COLUMNS)} FROM joined"
                   + ("" if output is not None else f" ORDER BY {CUSTOMER_ID}"))
        meta = {"kind": "calibration_holdout", "compressed": bool(compress), "freq": freq,
                "freq_multiplier": mult, "unit_days": _PERIOD_DAYS[freq] * mult,
                "calibration_end": cal_end.isoformat(), "observation_end": obs_end.isoformat(),
                "spend_digits": spend_digits if compress else None}
        return _run(eng, sql, output, meta, freq, mult)


def buyer_counts(tx: pd.DataFrame) -> tuple[int, int]:
    """Customers, and those who bought on two days or more (repeat buyers, as the models count
    purchases), in one pass over transactions sorted by customer and date (as
    :func:`~ltv_helpers.data.clean_transactions` returns them; others are sorted first)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(tx) == 0:
        return 0, 0
    ids = pa.array(tx["customer_id"].astype("str").array)
    if not pc.all(pc.less_equal(ids[:-1], ids[1:])).as_py():  # not in customer order: put it so
        tx = tx.sort_values(["customer_id", "order_date"], kind="stable")
        ids = pa.array(tx["customer_id"].astype("str").array)
    new_customer = np.r_[True, pc.not_equal(ids[1:], ids[:-1]).to_numpy(zero_copy_only=False)]
    day = tx["order_date"].to_numpy().astype("datetime64[D]")
    new_day = new_customer | np.r_[True, day[1:] != day[:-1]]
    days = np.bincount(np.cumsum(new_customer) - 1, weights=new_day)
    return len(days), int((days > 1).sum())


def _millionths(amount: np.ndarray) -> np.ndarray:
    """Amounts as whole millionths, as the summaries' ``DECIMAL(18, 6)`` holds them (DuckDB's own
    cast, which rounds halves away from zero): sums of them are exact."""
    if not np.isfinite(amount).all() or (np.abs(amount) >= 1e12).any():
        raise LTVError("Amounts must be finite numbers below 1,000,000,000,000; clean the transactions first.")
    with connect() as con:
        con.register("amounts", pd.DataFrame({"x": amount}))
        # Rounded as DECIMAL(18, 6), then scaled in 38 digits (in 18, amounts from 9,223,372
        # would overflow the multiplication).
        out = con.execute("SELECT CAST(CAST(CAST(x AS DECIMAL(18, 6)) AS DECIMAL(38, 6)) * 1000000 AS BIGINT) AS m "
                          "FROM amounts").fetchnumpy()
    return np.asarray(out["m"], dtype=np.int64)


def _as_double(micros: np.ndarray) -> np.ndarray:
    """Exact sums of whole millionths as the SQL summaries turn their ``DECIMAL(38, 6)`` sums into
    a DOUBLE (DuckDB's cast): divided by a million up to 2**53 (exact in a double), and beyond it
    the whole part plus the fraction's share. The same bits as DuckDB's cast (tested across
    magnitudes), so that a summary made in numpy equals the query's."""
    micros = np.asarray(micros, dtype=np.int64)
    out = micros / 1e6
    big = np.abs(micros) > 2**53
    if big.any():
        v = micros[big]
        whole = np.sign(v) * (np.abs(v) // 10**6)
        out[big] = whole.astype(float) + (v - whole * 10**6).astype(float) / 1e6
    return out


def id_hashes(ids) -> np.ndarray:
    """The hash of each customer id (as text) that samples of customers are drawn by: pandas'
    ``hash_array``, the same in every run and on every machine."""
    return pd.util.hash_array(np.asarray(ids, dtype=object), categorize=False)


def lowest_hashes(hashed: np.ndarray, most: int) -> np.ndarray:
    """The positions of the ``most`` lowest of ``hashed``, in their order (``most`` <= its length)."""
    return np.sort(np.argpartition(hashed, most - 1)[:most])


def _instant_after(when, name: str) -> np.datetime64:
    """The first instant after ``when`` taken as an end (a date: its whole day), in microseconds:
    what the prepared orders' times are compared with."""
    return np.datetime64(_end_cut(_as_timestamp(when, name)).to_datetime64(), "us")


def _breaks(codes: np.ndarray, periods: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each customer's rows start and where each (customer, period)'s rows start, as masks
    over rows in customer, period order (``codes`` and ``periods`` not empty)."""
    new_customer = np.r_[True, codes[1:] != codes[:-1]]
    return new_customer, new_customer | np.r_[True, periods[1:] != periods[:-1]]


class OrderDays:
    """One client's orders prepared once for everything summarized of them per customer: customer
    ids as sorted codes, days as numbers, amounts as whole millionths. :meth:`calibration_holdout`
    (a backtest's many cut-offs) and :meth:`history` (:func:`customer_history` at any end) are then
    a pass of numpy over the rows (0.1-0.3 s at 2.85M orders, against 1-2 s for a query and
    hundreds of MB of DuckDB's hash tables), equal to the queries on the same DataFrame (tested):
    the same periods, the same exact decimal sums (to a millionth) and the customers in the same
    order. Days (``D``) and weeks (``W``) only; other periods go to :func:`calibration_holdout`.
    Orders without a date are in no period (as in the queries); an order without a customer id or
    an amount is refused.
    """

    FREQS = ("D", "W")

    def __init__(self, transactions: pd.DataFrame):
        for col in (CUSTOMER_ID, ORDER_DATE, AMOUNT):
            if col not in transactions:
                raise LTVError(f"The transactions have no {col} column; they have: "
                               f"{', '.join(map(str, transactions.columns))}.")
        import pyarrow as pa
        import pyarrow.compute as pc

        self.transactions = transactions
        column = transactions[CUSTOMER_ID]
        numeric = pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column)
        codes, ids = pd.factorize(column if numeric else column.astype("str"))  # hashing; the ids sorted below
        if (codes < 0).any():
            raise LTVError(f"{int((codes < 0).sum()):,} orders have no customer id; clean the transactions first "
                           "(clean_transactions rejects them).")
        if len(ids) >= 2**31:
            raise LTVError(f"{len(ids):,} customers are more than one summary holds; summarize them in parts.")
        # The order the query returns customers in: numbers by value, text by its characters
        # (Arrow's sort of the ids as they are, without a million Python strings).
        text = None if numeric else pa.array(ids.array)
        by_id = (np.argsort(np.asarray(ids), kind="stable") if numeric else pc.sort_indices(text).to_numpy())
        rank = np.empty(len(by_id), dtype=np.int32)
        rank[by_id] = np.arange(len(by_id), dtype=np.int32)
        codes = rank[codes]
        dates = transactions[ORDER_DATE]
        # Times in their own unit (first and last orders are given as they are), else microseconds.
        if getattr(dates.dtype, "tz", None) is not None:
            raise LTVError("The order dates carry a time zone; give them as local times without one "
                           "(clean_transactions does).")
        own = isinstance(dates.dtype, np.dtype) and dates.dtype.kind == "M"
        when = dates.to_numpy() if own else dates.to_numpy(dtype="datetime64[us]")
        self.date_dtype = dates.dtype if own else when.dtype
        dated = ~np.isnat(when)
        if not dated.all():  # in no period: the queries' comparisons leave them out
            codes, when = codes[dated], when[dated]
        days = when.astype("datetime64[D]").astype(np.int64)
        if len(days) and (days.min() < -(2**31) or days.max() >= 2**31):
            raise LTVError("Order dates must fall within a few million years of today.")
        days = days.astype(np.int32)
        same = codes[1:] == codes[:-1]
        ordered = len(codes) < 2 or bool(((codes[1:] > codes[:-1]) | (same & (days[1:] >= days[:-1]))).all())
        # One sort on (customer, day) as one number (a tenth of a lexsort's time).
        order = (np.arange(len(codes)) if ordered else
                 np.argsort(codes.astype(np.int64) * 2**32 + (days.astype(np.int64) + 2**31), kind="stable"))
        self.ids = (pd.Index(np.asarray(ids)[by_id], name=CUSTOMER_ID).astype("str") if numeric else
                    pd.Index(pd.array(text.take(pa.array(by_id)), dtype=pd.StringDtype("pyarrow", na_value=np.nan)),
                             name=CUSTOMER_ID).astype("str"))
        self.codes, self.days, self.when = codes[order], days[order], when[order]
        # Each prepared order's row in the transactions (a slice when they are the same rows).
        kept = slice(None) if dated.all() else np.flatnonzero(dated)
        self.positions = kept if ordered else np.arange(len(dated))[kept][order]
        amount = transactions[AMOUNT].to_numpy(dtype=float)
        self.micros = _millionths((amount if dated.all() else amount[dated])[order])
        starts = self.customer_starts
        if len(starts) and np.add.reduceat(np.abs(self.micros).astype(float), starts).max() >= 9.2e18:
            raise LTVError("A customer's amounts add up to more than exact sums to a millionth hold "
                           "(9,200,000,000,000); clean the transactions first.")

    @functools.cached_property
    def customer_starts(self) -> np.ndarray:
        """The position of each customer's first prepared order."""
        return np.flatnonzero(np.r_[True, self.codes[1:] != self.codes[:-1]]) if len(self.codes) else self.codes[:0]

    @functools.cached_property
    def id_hashes(self) -> np.ndarray:
        """Each customer id's hash (pandas' ``hash_array`` of the ids as text objects), in the order
        of :attr:`ids`: what a sample of the customers whose ids hash lowest is drawn by."""
        return id_hashes(self.ids)

    def calibration_holdout(self, *, calibration_end, observation_end, freq: str = "D",
                            freq_multiplier: float = 1, most: int | None = None) -> pd.DataFrame:
        """:func:`calibration_holdout` of the prepared orders (per customer, not compressed).
        ``most``: only the ``most`` customers whose ids hash lowest (:attr:`id_hashes`), in their
        order, when more had bought by ``calibration_end``: the rows
        ``ltv_helpers.evaluation._some_customers`` keeps of the whole summary (tested), without
        hashing the ids again for every summary."""
        freq = _check_freq(freq, freq_multiplier)
        if freq not in self.FREQS:
            out = calibration_holdout(self.transactions, calibration_end=calibration_end,
                                      observation_end=observation_end, freq=freq, freq_multiplier=freq_multiplier)
            if most is not None and len(out) > most:
                out = out.iloc[lowest_hashes(id_hashes(out.index), most)]
            return out
        cal_end = _as_timestamp(calibration_end, "calibration_end")
        obs_end = _as_timestamp(observation_end, "observation_end")
        if obs_end <= cal_end:
            raise LTVError(f"observation_end ({obs_end.date()}) must come after calibration_end "
                           f"({cal_end.date()}).")
        cal_cut, obs_cut = _instant_after(cal_end, "calibration_end"), _instant_after(obs_end, "observation_end")
        cal_p, obs_p = period_of(cal_end, freq), period_of(obs_end, freq)
        mult = float(freq_multiplier)
        cal = self.when < cal_cut
        hold = ~cal & (self.when < obs_cut)
        if not hold.any():
            raise LTVError(f"No purchases fall between calibration_end ({cal_end.date()}) and "
                           f"observation_end ({obs_end.date()}); move calibration_end earlier.")
        if not cal.any():
            raise LTVError(f"No purchases fall on or before calibration_end ({cal_end.date()}).")
        periods = self.period_numbers(freq)
        n = len(self.ids)

        def per_period(mask):
            """Each (customer, period)'s customer, period and summed millionths (rows are sorted)."""
            c, per, amt = self.codes[mask], periods[mask], self.micros[mask]
            if not len(c):
                return c, per, amt
            starts = np.flatnonzero(_breaks(c, per)[1])
            return c[starts], per[starts], np.add.reduceat(amt, starts)

        c, per, amt = per_period(cal)
        starts = np.flatnonzero(np.r_[True, c[1:] != c[:-1]])  # each customer's first period
        ends = np.r_[starts[1:], len(c)] - 1
        keep = c[starts]  # the customers seen by the calibration end, in id order
        repeats = np.diff(np.r_[starts, len(c)]) - 1
        first, last = per[starts], per[ends]
        repeat_total = np.add.reduceat(amt, starts) - amt[starts]  # exact: whole millionths
        hc, _, hamt = per_period(hold)
        h_starts = np.flatnonzero(np.r_[True, hc[1:] != hc[:-1]])
        h_count, h_total = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        h_count[hc[h_starts]] = np.diff(np.r_[h_starts, len(hc)])
        h_total[hc[h_starts]] = np.add.reduceat(hamt, h_starts)
        if most is not None and len(keep) > most:  # the customers whose ids hash lowest, in id order
            chosen = lowest_hashes(self.id_hashes[keep], most)
            keep, repeats, first, last, repeat_total = (a[chosen] for a in (keep, repeats, first, last, repeat_total))
        h_count, h_total = h_count[keep], h_total[keep]
        # One block of the columns, the frame's own (see :meth:`history`).
        block = np.empty((len(CAL_COLUMNS), len(keep)))
        with np.errstate(invalid="ignore", divide="ignore"):
            for row, values in zip(block, (
                    repeats, (last - first) / mult, (cal_p - first) / mult,
                    np.where(repeats > 0, _as_double(repeat_total) / np.maximum(repeats, 1), 0.0),
                    h_count, np.where(h_count > 0, _as_double(h_total) / np.maximum(h_count, 1), 0.0),
                    (obs_p - cal_p) / mult)):
                row[:] = values
        out = pd.DataFrame(block.T, index=self.ids[keep], columns=CAL_COLUMNS, copy=False)
        out.attrs["unit_days"] = _PERIOD_DAYS[freq] * mult
        return out

    def history(self, observation_end) -> pd.DataFrame:
        """:func:`customer_history` of the prepared orders up to ``observation_end`` (a date: that
        whole day; a time of day: up to it, T still counted to the end of its day)."""
        obs = _as_timestamp(observation_end, "observation_end")
        upto = self.when < _instant_after(obs, "observation_end")
        whole = bool(upto.all())
        c, d, m, w = (a if whole else a[upto] for a in (self.codes, self.days, self.micros, self.when))
        stamps = w.view(np.int64)
        if len(c):
            new_customer, new_day = _breaks(c, d)
            rows = np.flatnonzero(new_customer)  # each customer's first row (rows are in customer, day order)
            day_starts = np.flatnonzero(new_day)
            firsts = np.flatnonzero(new_customer[day_starts])  # each customer's first day among the days
            days = np.diff(np.r_[firsts, len(day_starts)])
            first, last = d[rows], d[np.r_[rows[1:], len(c)] - 1]
            total = np.add.reduceat(m, rows)
            repeat_total = total - np.add.reduceat(m, day_starts)[firsts]  # less the first day's
            first_stamp, last_stamp = np.minimum.reduceat(stamps, rows), np.maximum.reduceat(stamps, rows)
        else:  # no orders by then: no customers
            rows = days = first = last = total = repeat_total = first_stamp = last_stamp = np.zeros(0, dtype=np.int64)
        end = period_of(obs, "D")
        orders = np.diff(np.r_[rows, len(c)]).astype(np.int64)
        index = self.ids[c[rows]]
        del c, d, m, w, stamps  # the rows up to the end: not needed past here
        # The float columns written one by one into one block that becomes the frame's own (a
        # frame of separate arrays is copied into one: 90 MB more at its peak at 1M customers).
        block = np.empty((8, len(rows)))
        frequency, recency, tenure, money, revenue, aov, silence, tenure_days = block
        np.subtract(days, 1, out=frequency, casting="unsafe")
        np.subtract(last, first, out=recency, casting="unsafe")
        np.subtract(end, first.astype(np.int64), out=tenure, casting="unsafe")
        with np.errstate(invalid="ignore", divide="ignore"):
            money[:] = np.where(frequency > 0, _as_double(repeat_total) / np.maximum(frequency, 1), 0.0)
        revenue[:] = _as_double(total)
        np.divide(revenue, orders, out=aov)
        np.subtract(tenure, recency, out=silence)
        tenure_days[:] = tenure
        out = pd.DataFrame(block.T, index=index, columns=[FREQUENCY, RECENCY, T, MONETARY_VALUE, "revenue", "aov",
                                                            "days_since_last", "tenure_days"], copy=False)
        out.insert(4, "orders", orders)
        out.insert(6, "first_order", pd.array(first_stamp.view(self.when.dtype)).astype(self.date_dtype))
        out.insert(7, "last_order", pd.array(last_stamp.view(self.when.dtype)).astype(self.date_dtype))
        out.attrs["unit_days"] = _PERIOD_DAYS["D"]
        return out

    def period_numbers(self, freq: str, rows=slice(None)) -> np.ndarray:
        """The ``freq`` period of each order of ``rows``, numbered as :data:`_PERIOD_SQL` numbers
        them (tested against the query for every frequency)."""
        days = self.days[rows]
        if freq == "D":
            return days
        if freq == "W":
            return np.floor_divide(days - 4, 7)  # weeks from Monday 1970-01-05
        if freq == "h":
            return self.when[rows].astype("datetime64[h]").astype(np.int64)
        months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) + 1970 * 12
        return {"M": months, "Q": np.floor_divide(months, 3), "Y": np.floor_divide(months, 12)}[freq]

    def repeat_counts(self, customers: pd.Index, observation_end, *, unit: str, freq: str):
        """The tracking chart's counts for ``customers`` (ids among :attr:`ids`), orders up to
        ``observation_end``: repeat purchases (``unit`` periods, D or W, after each customer's
        first) per ``freq`` period that holds the first order of each, as a Series over every
        period with a purchase (0 where all were first ones); and the customers per first
        purchase day (two arrays, the days in order)."""
        from ltv_helpers.data.parse import id_positions

        at = id_positions(customers, self.ids)
        member = np.zeros(len(self.ids), dtype=bool)
        member[at[at >= 0]] = True
        rows = np.flatnonzero(member[self.codes] & (self.when < _instant_after(observation_end, "observation_end")))
        if not len(rows):
            return pd.Series(dtype=float), np.zeros(0, dtype=np.int64), np.zeros(0)
        c, d = self.codes[rows], self.period_numbers(unit, rows)
        new_customer, new_group = _breaks(c, d)
        groups = np.flatnonzero(new_group)  # (customer, unit period)s
        period = np.minimum.reduceat(self.period_numbers(freq, rows), groups)
        lo = int(period.min())
        repeats = np.bincount(period - lo, weights=~new_customer[groups])
        seen = np.bincount(period - lo) > 0
        first_days, counts = np.unique(self.days[rows[new_customer]].astype(np.int64), return_counts=True)
        return (pd.Series(repeats[seen], index=np.flatnonzero(seen) + lo), first_days, counts.astype(float))

    def buyer_counts(self, before=None) -> tuple[int, int]:
        """:func:`buyer_counts` of the prepared orders before ``before`` (a time; None: all of them):
        customers, and those who bought on two days or more."""
        keep = slice(None) if before is None else self.when < np.datetime64(pd.Timestamp(before).to_datetime64())
        c, d = self.codes[keep], self.days[keep]
        if not len(c):
            return 0, 0
        new_customer, new_day = _breaks(c, d)
        days = np.diff(np.r_[np.flatnonzero(new_customer[new_day]), int(new_day.sum())])  # each one's days
        return len(days), int((days > 1).sum())

    @functools.cached_property
    def first_orders(self) -> np.ndarray:
        """Each customer's first order time, in the order of :attr:`ids` (NaT: no dated order)."""
        out = np.full(len(self.ids), np.iinfo(np.int64).min, dtype=np.int64)  # NaT
        starts = self.customer_starts
        if len(starts):
            out[self.codes[starts]] = np.minimum.reduceat(self.when.view(np.int64), starts)
        return out.view(self.when.dtype)

    def rows_of(self, customers: np.ndarray) -> np.ndarray:
        """Whether each row of the transactions (in their order) is an order of one of
        ``customers`` (a mask over :attr:`ids`); undated orders are nobody's here."""
        out = np.zeros(len(self.transactions), dtype=bool)
        out[self.positions] = customers[self.codes]
        return out

    def window(self, start, end) -> tuple[pd.Series, pd.Series]:
        """Per customer with orders after ``start`` up to ``end`` (each as an end: a date means its
        whole day, so a date ``start`` counts from the next day; a time of day, from the next
        instant): purchases, counted as the models count them (distinct purchase days), and spend
        (an exact sum, as the summaries' are). Indexed by customer id, in the ids' order."""
        lo, hi = _instant_after(start, "start"), _instant_after(end, "end")
        inside = (self.when >= lo) & (self.when < hi)
        c, d, m = self.codes[inside], self.days[inside], self.micros[inside]
        if len(c):
            new_customer, new_day = _breaks(c, d)
            rows = np.flatnonzero(new_customer)
            purchases = np.add.reduceat(new_day.astype(np.int64), rows)
            spend = _as_double(np.add.reduceat(m, rows))
        else:
            rows = purchases = spend = np.zeros(0, dtype=np.int64)
        index = self.ids[c[rows]]
        return (pd.Series(purchases, index=index, name="purchases"),
                pd.Series(spend.astype(float), index=index, name="spend"))


def load_summary(path, *, compress: bool = False, spend_digits: int | None = SPEND_DIGITS) -> pd.DataFrame:
    """A summary written by ``rfm_summary``/``calibration_holdout`` with ``output=`` (``ltv
    summary``), as a DataFrame with its time unit in ``attrs["unit_days"]``.

    ``compress=True`` compresses a per-customer file as ``rfm_summary(compress=True)`` would
    while DuckDB reads it (what :func:`ltv_helpers.models.fit` needs: the same fit, tested, from
    a fraction of the rows); an already compressed file is read as it is.
    """
    meta = summary_meta(path)
    pattern = parquet_pattern(path).replace("'", "''")
    with connect() as con:
        try:
            names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pattern}')").fetchall()]
        except duckdb.Error as exc:
            raise LTVError(f"{path} cannot be read as Parquet ({str(exc).splitlines()[0]}).") from None
        if "frequency_cal" in names:
            keys = ["frequency_cal", "recency_cal", "T_cal", "frequency_holdout", "duration_holdout"]
            money = ["monetary_value_cal", "monetary_value_holdout"]
        else:
            keys, money = [FREQUENCY, RECENCY, T], [MONETARY_VALUE]
        missing = [c for c in keys + money if c not in names]
        if missing:
            raise LTVError(f"{path} is not a summary: it has no {', '.join(missing)} column; its columns are: "
                           f"{', '.join(names)}. Write one with `ltv summary`.")
        if PART in names or not compress:
            out = con.execute(f"SELECT * FROM read_parquet('{pattern}')").df()
        else:  # the same compression rfm_summary(compress=True) makes, on the summary's rows
            ctes = f"file_rows AS (SELECT * FROM read_parquet('{pattern}'))"
            out = con.execute(_compressed_sql(ctes, "file_rows", keys, money, spend_digits)).df()
            out = _compressed_frame(out, None, 1)
    if CUSTOMER_ID in out:
        out = out.set_index(CUSTOMER_ID)
        out.index = out.index.astype("str")
    if "unit_days" in meta:
        out.attrs["unit_days"] = float(meta["unit_days"])
    return out


def describe_summary_file(path) -> str:
    """One line on a summary file: what it is, rows, customers, time unit (``ltv summary`` prints it)."""
    meta = summary_meta(path)
    pattern = parquet_pattern(path).replace("'", "''")
    with connect() as con:
        names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pattern}')").fetchall()]
        total = f"SUM({CUSTOMERS})" if CUSTOMERS in names else "COUNT(*)"
        rows, customers = con.execute(f"SELECT COUNT(*), {total} FROM read_parquet('{pattern}')").fetchone()
    kind = meta.get("kind", "summary").replace("_", " ")
    unit = meta.get("unit_days")
    return (f"{path}: {kind}{' (compressed)' if meta.get('compressed') else ''}, {rows:,} rows for "
            f"{int(customers or 0):,} customers" + (f", time unit {unit:g} days" if unit else "")
            + (f", engine {meta['engine']}" if meta.get("engine") else ""))


def customer_history(transactions: pd.DataFrame, *, observation_end=None) -> pd.DataFrame:
    """Per-customer history for segmentation: the daily RFM summary plus plain-money columns.

    Columns: lifetimes' ``frequency``, ``recency``, ``T``, ``monetary_value`` (days), and
    ``orders`` (rows kept), ``revenue`` (total spend, first purchase included; a float, summed
    exactly to a millionth as the monetary value is), ``aov``
    (revenue / orders), ``first_order``, ``last_order``, ``days_since_last`` (``T - recency``:
    days from the last purchase day to the observation end) and ``tenure_days`` (``T``).
    Indexed by ``customer_id``, in the order of the ids (numbers by value, text by its characters).

    Made from the transactions' :class:`OrderDays`, prepared once for the same transactions (the
    frame :func:`load_collection` hands every notebook of a report's kernel) and shared with the
    backtests: a history at any end is then a pass of numpy (0.3 s at 1M customers; 1.9 s and
    +480 MB as a query), equal to the SQL summary's definitions (tested against
    :func:`rfm_summary` and pandas' group-by). Cleaned transactions are expected: an order
    without a customer id or an amount, dates with a time zone, or a customer whose amounts add
    up past 9,200,000,000,000 are refused in one sentence; undated orders are left out.
    """
    tx = transactions
    if observation_end is None:
        observation_end = tx[ORDER_DATE].max()
    return order_days(tx).history(observation_end)


class _Shared:
    """What is computed once for one set of transactions and shared by those given the same frame:
    their :class:`OrderDays`, and the evaluations' fingerprint of them and each model's result at
    each earlier cut-off of a model error (the same cut-off recurs: a cell run again, a forecast a
    step of the model error later, stability cut-offs when the history is long). ``held``: the
    transactions' columns, kept so that their memory is neither freed nor, with pandas'
    copy-on-write, changed while this is kept."""

    def __init__(self, held: tuple):
        self.held = held
        self.orders: OrderDays | None = None
        self.fingerprint: str | None = None
        self.origins: dict = {}


#: The transactions :func:`shared` saw last, the latest first: up to two (their columns' keys,
#: their :class:`_Shared`). The notebooks of a report run share one kernel and the frame
#: :func:`~ltv_helpers.data.load_collection` read (their columns are the same memory): 02's
#: history, 03's backtest and forecast, 04's reuse, 05's history; a second one (the stability
#: check's sample of customers) does not push it out.
_LAST_SHARED: tuple | None = None


def shared(transactions: pd.DataFrame) -> _Shared:
    """The :class:`_Shared` of ``transactions``: one kept when its customer id, order date and
    amount columns are the same memory as those it was made for (a copy, a filter or a change gives
    other memory, hence a new one), else a new one, kept first (the older of two kept let go)."""
    global _LAST_SHARED
    key, arrays = frame_key(transactions, (CUSTOMER_ID, ORDER_DATE, AMOUNT))
    if key is None:
        return _Shared(())  # shared with no one
    kept = _LAST_SHARED or ()  # one read of the global: another thread may replace it, never change it
    found = next((entry for entry in kept if entry[0] == key), None)
    if found is not None:
        _LAST_SHARED = (found, *(entry for entry in kept if entry is not found))
        return found[1]
    made = _Shared(([transactions[c] for c in (CUSTOMER_ID, ORDER_DATE, AMOUNT)], arrays))
    _LAST_SHARED = ((key, made), *kept[:1])
    return made


def order_days(transactions: pd.DataFrame) -> OrderDays:
    """The :class:`OrderDays` of ``transactions``, prepared once for the same frame (:func:`shared`)."""
    kept = shared(transactions)
    if kept.orders is None:
        kept.orders = OrderDays(transactions)
    return kept.orders


def retention_table(transactions: pd.DataFrame, *, period: str = "M", observation_end=None) -> pd.DataFrame:
    """Cohort x period counts of active customers, for memberships and subscriptions (the input of
    :func:`ltv_helpers.models.fit_sbg`).

    A customer's cohort is the period (``"M"`` months, ``"Q"``, ``"Y"``, ``"W"``) of their first
    transaction; they count as active in period ``k`` of their cohort (``k = 0`` the first) while
    they have a transaction in period ``k`` or later, i.e. until they stop renewing. Column ``k``
    is NaN where a cohort has not been observed ``k`` periods yet. Only whole periods count: the
    period holding ``observation_end`` (default: the last transaction) is left out unless the end
    is its last day, since renewals later in that period have not happened yet.

    >>> tx = pd.DataFrame({"customer_id": ["a", "a", "a", "b", "c", "c"],
    ...     "order_date": pd.to_datetime(["2024-01-05", "2024-02-05", "2024-03-05", "2024-01-20",
    ...                                   "2024-02-10", "2024-03-10"]), "amount": 9.9})
    >>> retention_table(tx, observation_end="2024-03-31")  # doctest: +NORMALIZE_WHITESPACE
    period     0    1    2
    cohort
    2024-01  2.0  1.0  1.0
    2024-02  1.0  1.0  NaN
    """
    if period not in ("W", "M", "Q", "Y"):
        raise LTVError(f"period must be one of W, M, Q, Y, got {period!r}.")
    tx = transactions
    if tx.empty:
        raise LTVError("There are no transactions to build a retention table from.")
    end = tx[ORDER_DATE].max() if observation_end is None else _as_timestamp(observation_end, "observation_end")
    tx = tx[tx[ORDER_DATE] < _end_cut(end)]
    ordinal = pd.Series(tx[ORDER_DATE].dt.to_period(period).array.asi8, index=tx.index)  # periods since 1970
    per = ordinal.groupby(tx[CUSTOMER_ID].to_numpy()).agg(["min", "max"])
    last_whole = pd.Period(end, period)
    if (end.normalize() + pd.Timedelta(days=1)).to_period(period) == last_whole:
        last_whole = last_whole - 1  # the end is not the period's last day
    per = per[per["min"] <= last_whole.ordinal]
    if per.empty:
        raise LTVError(f"No cohort has a whole {period!r} period of data before {end.date()}.")
    seen = (last_whole.ordinal - per["min"]).to_numpy()  # the cohort's last observed period
    stay = np.minimum(per["max"] - per["min"], seen)  # last period with a transaction
    cohort = pd.PeriodIndex.from_ordinals(per["min"].to_numpy(), freq=period).astype(str)
    width = int(seen.max()) + 1
    counts = pd.crosstab(cohort, stay.to_numpy()).reindex(columns=range(width), fill_value=0)
    active = counts.iloc[:, ::-1].cumsum(axis=1).iloc[:, ::-1].astype(float)  # still there at k or later
    horizon = pd.Series(seen, index=cohort).groupby(level=0).first().reindex(active.index)
    active = active.where(np.arange(width)[None, :] <= horizon.to_numpy()[:, None])
    active.index.name, active.columns.name = "cohort", "period"
    return active
