"""Input checks and row compression: the summary's columns, its distinct histories and their counts."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ltv_helpers.schema import (
    CUSTOMERS,
    FREQUENCY,
    MONETARY_VALUE,
    PART,
    RECENCY,
    LTVError,
    T,
)


def _summary_columns(summary: pd.DataFrame, time_column: str = T) -> pd.DataFrame:
    """frequency, recency, T (and monetary_value) from a summary or a calibration summary, and
    ``customers`` (the weight of each row) from a compressed one (``rfm_summary(compress=True)``).
    ``time_column``: the summary's column that plays T's part, named T in the result (``n``, the
    transaction opportunities, for a discrete-time model)."""
    if not isinstance(summary, pd.DataFrame):
        raise LTVError("summary must be a DataFrame (the output of rfm_summary or calibration_holdout).")
    if time_column != T:
        if time_column not in summary:
            raise LTVError(f"The summary has no {time_column} column (the transaction opportunities of each "
                           f"customer); it has: {', '.join(map(str, summary.columns))}.")
        summary = summary.drop(columns=[c for c in (T, f"{T}_cal") if c in summary]).rename(columns={time_column: T})
    cols = [FREQUENCY, RECENCY, T, MONETARY_VALUE]
    if all(f"{c}_cal" in summary for c in cols[:3]):
        out = summary[[f"{c}_cal" for c in cols if f"{c}_cal" in summary]].copy()
        out.columns = [c[:-4] for c in out.columns]
    else:
        missing = [c for c in cols[:3] if c not in summary]
        if missing:
            raise LTVError(f"The summary has no {', '.join(missing)} column; it has: "
                           f"{', '.join(map(str, summary.columns))}. Use rfm_summary's output.")
        out = summary[[c for c in cols if c in summary]].copy()
    out = out.astype("float64")
    if CUSTOMERS in summary:  # a compressed summary: each row stands for that many customers
        counts = summary[CUSTOMERS].to_numpy(dtype=float)
        if not (np.isfinite(counts).all() and (counts > 0).all() and (counts == np.round(counts)).all()):
            raise LTVError("customers must be a whole number of customers, 1 or more, on every row.")
        out[CUSTOMERS] = counts
    if out.isna().any().any() or not np.isfinite(out.to_numpy()).all():
        raise LTVError("The summary has missing or infinite values; rebuild it with rfm_summary.")
    if (out[FREQUENCY] < 0).any() or (out[FREQUENCY] != np.round(out[FREQUENCY])).any():
        raise LTVError("frequency must be a whole number of repeat purchases, 0 or more.")
    if (out[RECENCY] < 0).any():
        raise LTVError("recency must not be negative.")
    over = out[RECENCY] - out[T]
    if (over > 0).any():
        # Rounding (e.g. a summary stored with 2 decimals) can put recency a hair above T.
        if (over > 1e-6 * np.maximum(out[T], 1) + 0.01).any():
            bad = over.idxmax()
            raise LTVError(f"Customer {bad!r} has recency {out.loc[bad, RECENCY]} > {time_column} "
                           f"{out.loc[bad, T]}: the summary is inconsistent.")
        warnings.warn(f"recency was above T by rounding for {(over > 0).sum()} customers; "
                      "it was set to T.", stacklevel=3)
        out[RECENCY] = np.minimum(out[RECENCY], out[T])
    return out


def check_prediction_options(horizon: float, gross_margin: float, annual_discount_rate: float) -> None:
    """:meth:`LTVModel.predict`'s options, checked up front (also before a Spark job starts)."""
    if not np.isfinite(horizon) or horizon <= 0:
        raise LTVError(f"horizon must be a positive number of time units, got {horizon}.")
    if not 0 <= gross_margin <= 1:
        raise LTVError(f"gross_margin must be a share between 0 and 1, got {gross_margin}.")
    if annual_discount_rate < 0:
        raise LTVError(f"annual_discount_rate must not be negative, got {annual_discount_rate}.")


def _parts(summary: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The purchase rows and the spend rows of a compressed summary (``rfm_summary(compress=True)``,
    column ``part``); any other summary is its own purchase rows, with no separate spend rows."""
    if not isinstance(summary, pd.DataFrame) or PART not in summary:
        return summary, None
    parts = summary[PART].astype("str")
    unknown = sorted(set(parts) - {"purchases", "spend"})
    if unknown:
        raise LTVError(f"part must be 'purchases' or 'spend', got {unknown[0]!r}: rebuild the summary with "
                       "rfm_summary(compress=True).")
    purchases = summary[parts == "purchases"].drop(columns=PART)
    purchases.attrs = dict(summary.attrs)
    return purchases, summary[parts == "spend"].drop(columns=PART)


def _prepare(summary: pd.DataFrame, time_column: str = T) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """A summary's columns (monetary value 0 when absent), its distinct (frequency, recency, T)
    rows and each customer's row: what predictions are computed on (``time_column``: as in
    :func:`_summary_columns`)."""
    data = _summary_columns(summary, time_column)
    if MONETARY_VALUE not in data:
        data[MONETARY_VALUE] = 0.0
        data.attrs["no_monetary_value"] = True
    rows, _, inverse = compress(data, [FREQUENCY, RECENCY, T])
    return data, rows, inverse


def purchase_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The rows predictions are made for: a compressed summary's purchase part, else all rows."""
    return _parts(summary)[0]


def _spend_columns(rows: pd.DataFrame) -> pd.DataFrame:
    """frequency, monetary_value and customers of a compressed summary's spend rows, checked."""
    names = [FREQUENCY, MONETARY_VALUE, CUSTOMERS]
    if f"{FREQUENCY}_cal" in rows:
        rows = rows.rename(columns={f"{FREQUENCY}_cal": FREQUENCY, f"{MONETARY_VALUE}_cal": MONETARY_VALUE})
    missing = [c for c in names if c not in rows]
    if missing:
        raise LTVError(f"The spend rows have no {', '.join(missing)} column; rebuild the summary with "
                       "rfm_summary(compress=True).")
    out = rows[names].astype("float64")
    if not np.isfinite(out.to_numpy()).all() or (out[CUSTOMERS] <= 0).any():
        raise LTVError("The spend rows have missing values or counts below 1; rebuild the summary with "
                       "rfm_summary(compress=True).")
    return out


def _time_unit(summary: pd.DataFrame, unit_days: float | None) -> float:
    if unit_days is not None:
        if unit_days <= 0:
            raise LTVError(f"unit_days must be positive, got {unit_days}.")
        return float(unit_days)
    return float(summary.attrs.get("unit_days", 1.0))


def _distinct_values(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Codes and distinct values of an array. Whole numbers from 0 up to four times the array's
    length (frequencies, days or weeks of a large summary) through a table indexed by value
    (distinct values ascending; about twice as fast as hashing at 1M values); anything else by hashing (in
    order of appearance; no sort)."""
    values = np.asarray(values, dtype=float)
    if len(values) and values.min() >= 0 and values.max() < 4 * len(values) + 1000 \
            and (values == np.floor(values)).all():
        whole = values.astype(np.int64)
        present = np.bincount(whole) > 0
        return (np.cumsum(present) - 1)[whole], np.flatnonzero(present).astype(float)
    codes, uniques = pd.factorize(values)
    return codes, np.asarray(uniques, dtype=float)


def _row_codes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """One code per distinct combination of ``columns``, numbered in order of appearance. Columns of
    whole non-negative numbers (daily or weekly summaries) are packed into one integer and
    hashed; anything else goes through a pandas group-by."""
    arrays = [frame[c].to_numpy(dtype=float) for c in columns]
    whole = all(len(a) == 0 or (np.isfinite(a).all() and a.min() >= 0 and (a == np.floor(a)).all())
                for a in arrays)
    sizes = [int(a.max()) + 1 if len(a) else 1 for a in arrays]
    if whole and float(np.prod(sizes, dtype=float)) < 2**62:
        key = np.zeros(len(frame), dtype=np.int64)
        for a, size in zip(arrays, sizes):
            key = key * size + a.astype(np.int64)
        return pd.factorize(key)[0]
    return frame.groupby(columns, sort=False).ngroup().to_numpy()


def compress(frame: pd.DataFrame, columns: list[str]) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Distinct rows of ``frame[columns]``, their counts (customers: a compressed summary's rows
    count ``customers`` times), and each original row's distinct row.

    ``unique.iloc[inverse]`` rebuilds ``frame[columns]`` row by row.
    """
    codes = _row_codes(frame, columns)
    unique = frame[columns].iloc[_first_rows(codes)].reset_index(drop=True)
    return unique, np.bincount(codes, weights=_weights(frame)), codes


def _weights(frame: pd.DataFrame) -> np.ndarray:
    """Customers per row: the ``customers`` column of a compressed summary, else 1."""
    return frame[CUSTOMERS].to_numpy(dtype=float) if CUSTOMERS in frame else np.ones(len(frame))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, q: float) -> float:
    """The ``q`` quantile of values repeated ``weights`` times (the lower one, no interpolation)."""
    order = np.argsort(values, kind="stable")
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, q * cum[-1])])


def _first_rows(codes: np.ndarray) -> np.ndarray:
    """Row of the first occurrence of each code 0, 1, 2 ... of codes numbered in order of
    appearance (``pd.factorize``, ``groupby(sort=False).ngroup()``): a code is new where the
    running maximum rises (linear time; ``np.unique`` would sort)."""
    if len(codes) == 0:
        return np.array([], dtype=int)
    running = np.maximum.accumulate(codes)
    return np.flatnonzero(np.r_[True, running[1:] > running[:-1]])
