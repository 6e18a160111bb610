"""Scores for every customer where the summary lives: in this process in batches (DuckDB reads the
Parquet), or on Spark with a pandas UDF, so a hundred million scores never pass through one
Python process.

Every path calls the same :meth:`ltv_helpers.models.LTVModel.predict` on a batch of summary rows.
A customer's prediction depends only on the model's parameters and the customer's own row, so
the scores are identical however the rows are split into batches or partitions (tested).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pandas as pd

from ltv_helpers.data.engines import (
    ENGINES,
    _first_line,
    connect,
    _quiet_pyspark,
    is_spark_frame,
    parquet_pattern,
    spark_frame,
    spark_session,
)
from ltv_helpers.models import (
    LTVModel,
    check_prediction_options,
    load_model,
    model_from_dict,
    purchase_rows,
)
from ltv_helpers.schema import CUSTOMER_ID, CUSTOMERS, LTVError

#: Columns of a score table, after ``customer_id`` (and ``customers`` for a compressed summary).
SCORE_COLUMNS = ["expected_purchases", "p_alive", "expected_spend", "clv"]
#: Rows per batch when DuckDB streams a Parquet summary through the model.
BATCH_ROWS = 500_000


def _score_frame(model: LTVModel, frame: pd.DataFrame, options: dict) -> pd.DataFrame:
    """Scores of one batch of summary rows, with the batch's ``customer_id`` / ``customers``."""
    frame = purchase_rows(frame)  # a compressed summary's spend rows are not customers to score
    keep = [c for c in (CUSTOMER_ID, CUSTOMERS) if c in frame]
    pred = model.predict(frame.reset_index(drop=True), **options)
    out = pd.concat([frame[keep].reset_index(drop=True), pred], axis=1)
    if CUSTOMER_ID in out:
        out[CUSTOMER_ID] = out[CUSTOMER_ID].astype("str")
    return out


def score(model, summary, *, horizon: float, gross_margin: float = 1.0, annual_discount_rate: float = 0.0,
          engine: str | None = None, output=None, table: str | None = None, spark=None,
          batch_rows: int = BATCH_ROWS):
    """``expected_purchases``, ``p_alive``, ``expected_spend`` and ``clv`` over ``horizon`` (the
    model's time unit) for every row of ``summary``, as :meth:`LTVModel.predict` defines them.

    ``model``: a fitted :class:`LTVModel` or the path of one saved with ``LTVModel.save`` /
    ``ltv fit``. ``summary``:

    - a pandas DataFrame (from ``rfm_summary``): scored here, returned indexed like it;
    - a Parquet file, folder or glob (``engine="duckdb"``, the default): DuckDB streams it in
      batches of ``batch_rows`` through the model and, with ``output``, the scores go straight
      to a Parquet file (memory stays flat however many customers); without, a DataFrame;
    - a Spark DataFrame, a table name or a Parquet path (``engine="spark"``): scored in Spark's
      workers by a pandas UDF (``mapInPandas``) calling the same code, written to ``output``
      (Parquet folder) or to the Spark table ``table``; without either, the Spark DataFrame is
      returned, nothing computed yet.

    The summary needs ``frequency``, ``recency``, ``T`` (``n`` for a model of opportunities,
    BG/BB) and ``monetary_value``, or their ``_cal`` forms; ``customer_id`` and a compressed
    summary's ``customers`` are carried over.
    """
    if not isinstance(model, LTVModel):
        model = load_model(model)
    options = {"horizon": horizon, "gross_margin": gross_margin, "annual_discount_rate": annual_discount_rate}
    if engine is None:
        engine = "spark" if is_spark_frame(summary) or spark is not None else "duckdb"
    if engine not in ENGINES:
        raise LTVError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    if engine == "spark":
        return _score_spark(model, summary, options, output=output, table=table, spark=spark)
    if table is not None:
        raise LTVError("table= writes a Spark table; use engine='spark', or output= for a Parquet file.")
    if isinstance(summary, pd.DataFrame):
        summary = purchase_rows(summary)
        out = model.predict(summary, **options)
        if CUSTOMERS in summary:
            out.insert(0, CUSTOMERS, summary[CUSTOMERS].to_numpy())
        if output is not None:
            from ltv_helpers.files import write_parquet

            return write_parquet(out, output)
        return out
    return _score_duckdb(model, summary, options, output, batch_rows)


def _score_duckdb(model: LTVModel, source, options: dict, output, batch_rows: int):
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    if not isinstance(source, (str, Path)):
        raise LTVError(f"summary must be a DataFrame or a Parquet path, got {type(source).__name__}.")
    from ltv_helpers.files import atomic_path

    pattern = parquet_pattern(source)
    frames, writer = [], None
    # The scores go to a temporary file, renamed to ``output`` only when every batch is written:
    # a stopped or failed run leaves no partial file that looks whole.
    target = contextlib.nullcontext() if output is None else atomic_path(output)
    with connect() as con, target as part:
        try:
            reader = con.sql(f"SELECT * FROM read_parquet('{pattern.replace(chr(39), chr(39) * 2)}')"
                             ).to_arrow_reader(batch_rows)
        except duckdb.Error as exc:
            raise LTVError(f"The summary cannot be read as Parquet: {_first_line(exc)}") from None
        try:
            for batch in reader:
                scored = _score_frame(model, batch.to_pandas(), options)
                if output is None:
                    frames.append(scored)
                    continue
                arrow = pa.Table.from_pandas(scored, preserve_index=False)
                if writer is None:
                    writer = pq.ParquetWriter(str(part), arrow.schema)
                writer.write_table(arrow)
        finally:
            if writer is not None:
                writer.close()
        if output is not None and writer is None:
            raise LTVError(f"The summary {source} has no rows to score.")
    if output is None:
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=SCORE_COLUMNS)
    return Path(output)


def _score_spark(model: LTVModel, summary, options: dict, *, output, table, spark):
    from pyspark.sql import types as st

    spark = spark or spark_session()
    _quiet_pyspark()
    frame = spark_frame(spark, summary, "summary")
    names = set(frame.columns)
    fields = []
    if CUSTOMER_ID in names:
        fields.append(st.StructField(CUSTOMER_ID, st.StringType()))
    if CUSTOMERS in names:
        fields.append(st.StructField(CUSTOMERS, st.LongType()))
    fields += [st.StructField(c, st.DoubleType()) for c in SCORE_COLUMNS]
    spec = model.to_dict()  # plain values travel to the workers; the model is rebuilt there

    def score_batches(batches):
        worker_model = model_from_dict(spec)
        for batch in batches:
            out = _score_frame(worker_model, batch, options)
            if CUSTOMERS in out:
                out[CUSTOMERS] = out[CUSTOMERS].astype("int64")
            yield out

    check_prediction_options(**options)
    scored = frame.mapInPandas(score_batches, st.StructType(fields))
    if output is None and table is None:
        return scored
    try:
        if table is not None:
            scored.write.mode("overwrite").saveAsTable(table)
        if output is not None:
            scored.write.mode("overwrite").parquet(str(output))
    except Exception as exc:  # noqa: BLE001 - a worker's error arrives wrapped in the JVM's
        reason = next((line for line in str(exc).splitlines() if "LTVError" in line), _first_line(exc))
        raise LTVError(f"Scoring on Spark failed: {reason.strip()}") from None
    return Path(output) if output is not None else table
