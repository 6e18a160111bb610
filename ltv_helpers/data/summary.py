"""Per-customer summaries in lifetimes' definitions (RFM, calibration/holdout), computed in DuckDB
on a DataFrame or straight from a Parquet file, and the customer history the notebooks use.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from ltv_helpers.data.parse import _as_timestamp, _end_cut
from ltv_helpers.data.read import _list
from ltv_helpers.schema import (
    AMOUNT,
    CUSTOMER_ID,
    FREQUENCY,
    MONETARY_VALUE,
    ORDER_DATE,
    RECENCY,
    REQUIRED_COLUMNS,
    T,
    LTVError,
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
