"""Where the per-customer summaries run: DuckDB in this process, or Apache Spark where the data lives.

The summaries are written once, as SQL in DuckDB's dialect (:mod:`ltv_helpers.data.summary`);
an engine runs that text on its source. DuckDB runs it as written; Spark runs the same text
translated by sqlglot into Spark SQL, so there is one definition, not two hand-kept copies, and
the tests check that both give the same numbers on CDNOW.

Sources:

- ``"duckdb"``: a pandas DataFrame, a Parquet file, a folder of Parquet files or a glob
  (``"orders/*.parquet"``), or a DuckDB database file with ``table=``;
- ``"spark"``: a Spark DataFrame, a table name on the Spark session, a Parquet file or folder
  (also ``hdfs://``, ``s3a://`` ... paths the cluster reads), or a pandas DataFrame (sent to Spark).

``columns`` maps the canonical names to the source's own (``{"customer_id": "buyer_id",
"order_date": "paid_at", "amount": "gmv"}``), so a warehouse table is read as it is.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
import warnings
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from ltv_helpers.schema import (
    AMOUNT,
    CUSTOMER_ID,
    ORDER_DATE,
    REQUIRED_COLUMNS,
    LTVError,
)

ENGINES = ("duckdb", "spark")
#: Environment variable with the Spark master URL (``spark://host:7077``, ``yarn``, ``k8s://...``);
#: default ``local[*]``, every core of this machine.
SPARK_MASTER_ENV = "LTV_SPARK_MASTER"
#: The warning PySpark 4.3 prints on pandas 3 (which the toolkit pins; the calls used here work).
_PANDAS_WARNING = "PySpark does not yet fully support pandas"
#: Name of the metadata entry (Parquet key-value metadata, or ``_ltv.json`` in a Spark folder)
#: that says what a summary file holds: its kind, time unit, observation end, compressed or not.
META_KEY = "ltv"
SPARK_META_FILE = "_ltv.json"


def _quiet_pyspark() -> None:
    warnings.filterwarnings("ignore", message=_PANDAS_WARNING, category=FutureWarning)
    # pandas 3 deprecates astype(copy=False), which PySpark's Arrow conversion still passes.
    warnings.filterwarnings("ignore", message="The copy keyword is deprecated", module="pyspark")


def spark_session(master: str | None = None):
    """The active Spark session, or a new one on ``master`` (default: ``$LTV_SPARK_MASTER``,
    else ``local[*]``) with what the toolkit relies on: UTC session time zone (dates are cut to
    days the same way everywhere), Arrow transfers, no web UI, quiet logs.

    Needs PySpark (a pinned dependency) and Java 17 or 21 (``openjdk-17-jre-headless`` on Debian).
    """
    _quiet_pyspark()
    try:
        from pyspark.sql import SparkSession
    except ImportError:  # pragma: no cover - pyspark is a dependency
        raise LTVError("The Spark engine needs PySpark; install the toolkit with its dependencies.") from None
    active = SparkSession.getActiveSession()
    if active is not None and master is None:
        return active
    url = master or os.environ.get(SPARK_MASTER_ENV) or "local[*]"
    if url.startswith("local"):
        # Workers are this interpreter (same packages), on loopback (no "hostname resolves" warning).
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYTHONWARNINGS", f"ignore:{_PANDAS_WARNING}:FutureWarning")
    log_conf = Path(__file__).resolve().parent.parent / "templates" / "spark" / "log4j2.properties"
    builder = (SparkSession.builder.master(url).appName("ltv-toolkit")
               .config("spark.sql.session.timeZone", "UTC")
               .config("spark.sql.execution.arrow.pyspark.enabled", "true")
               .config("spark.ui.enabled", "false")
               .config("spark.ui.showConsoleProgress", "false")
               .config("spark.executorEnv.PYTHONWARNINGS", f"ignore:{_PANDAS_WARNING}:FutureWarning")
               .config("spark.driver.extraJavaOptions", f"-Dlog4j.configurationFile=file:{log_conf}"))
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # noqa: BLE001 - the JVM's failure reasons are many; one sentence
        raise LTVError(f"Spark could not start ({_first_line(exc)}); it needs Java 17 or 21 "
                       "(sudo apt-get install openjdk-17-jre-headless) or a reachable master URL.") from None
    session.sparkContext.setLogLevel("ERROR")
    return session


def _first_line(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


def is_spark_frame(obj) -> bool:
    module = type(obj).__module__
    return module.startswith("pyspark.sql") and type(obj).__name__ == "DataFrame"


def _sql_quote(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


_MAP_HINT = ("Map them to the source's names (columns= in Python; --customer-id, --date, --amount on the "
             "command line), or clean the export with clean_transactions first.")


def connect(database: str = ":memory:", *, read_only: bool = False, config: dict | None = None):
    """``duckdb.connect`` without DuckDB's progress bar, the only way this package opens DuckDB.
    In a notebook kernel DuckDB draws its bar as a Jupyter widget for any query longer than 2 s,
    and the widget's state reached the notebook's metadata: a 1M-customer report on a busy machine
    was refused for the <script> it would have held. ``lock_configuration`` in ``config`` is set
    after the bar is turned off (a locked connection cannot turn it off)."""
    config = dict(config or {})
    lock = config.pop("lock_configuration", False)
    con = duckdb.connect(database, read_only=read_only, config=config)
    try:
        con.execute("SET enable_progress_bar = false")
        if lock:
            con.execute("SET lock_configuration = true")
    except Exception:
        con.close()
        raise
    return con


def on_frames(sql: str, **frames: pd.DataFrame) -> dict:
    """Run ``sql`` in a fresh in-memory DuckDB over DataFrames registered under their keyword
    names (``on_frames("SELECT ... FROM t", t=frame)``); the result's columns as NumPy arrays
    (masked where NULL). For work DuckDB does in parallel at many times pandas' speed: hashing,
    sorting, casting, counting."""
    with connect() as con:
        for name, frame in frames.items():
            con.register(name, frame)
        table = con.sql(sql).to_arrow_table()  # through Arrow: several times fetchnumpy's speed
    return {name: _as_numpy(table[name]) for name in table.column_names}


def _as_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as a NumPy array, masked where NULL (as DuckDB's ``fetchnumpy`` gives it)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if array.null_count == 0:
        return array.to_numpy(zero_copy_only=False)
    kind = array.type
    text = pa.types.is_string(kind) or pa.types.is_large_string(kind)
    fill = "" if text else False if pa.types.is_boolean(kind) else 0
    values = array.fill_null(pa.scalar(fill, type=array.type)).to_numpy(zero_copy_only=False)
    return np.ma.masked_array(values, mask=array.is_null().to_numpy(zero_copy_only=False))


def parquet_pattern(source) -> str:
    """What DuckDB's ``read_parquet`` reads for a Parquet file, a glob, or a folder (every
    ``.parquet`` file below it, e.g. Spark's part files); a missing path fails in one sentence."""
    text = str(source)
    if any(ch in text for ch in "*?["):
        return text
    path = Path(text)
    if path.is_dir():
        return str(path / "**" / "*.parquet")
    if not path.is_file():
        raise LTVError(f"File not found: {path}.")
    return text


def _mapping(columns: dict | None) -> dict[str, str]:
    mapping = {c: c for c in REQUIRED_COLUMNS}
    for role, name in (columns or {}).items():
        if role not in mapping:
            raise LTVError(f"columns maps {role!r}, which is not one of {', '.join(REQUIRED_COLUMNS)}.")
        if name:
            mapping[role] = str(name)
    return mapping


class Engine:
    """A source registered as the view ``src`` on an engine; runs the summaries' SQL on it."""

    name = ""

    def query(self, sql: str) -> pd.DataFrame:
        raise NotImplementedError

    def write(self, sql: str, path, meta: dict) -> Path:
        raise NotImplementedError

    def scalar(self, sql: str):
        return self.query(sql).iloc[0, 0]

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _check_types(self, types: dict[str, str]) -> None:
        """``types``: canonical role -> the engine's type name (lower case) of the mapped column."""
        kind = types[ORDER_DATE]
        if not (kind.startswith("timestamp") or kind == "date"):
            raise LTVError(f"{ORDER_DATE} is {kind}, not a date; clean the data with clean_transactions "
                           "(or `ltv check`) first, or map a date column with columns=.")
        if not any(kind_ in types[AMOUNT] for kind_ in ("int", "decimal", "double", "float", "real", "numeric")):
            raise LTVError(f"{AMOUNT} is {types[AMOUNT]}, not a number; clean the data with clean_transactions first.")


class DuckDBEngine(Engine):
    """DuckDB in this process: a DataFrame, Parquet file(s), or a table of a DuckDB file."""

    name = "duckdb"

    def __init__(self, source, *, columns: dict | None = None, table: str | None = None):
        # Results that need an order say so (ORDER BY); the rest may stream out in any order,
        # which lets DuckDB write large results without holding them.
        self.con = connect(config={"preserve_insertion_order": False})
        try:
            relation = self._relation(source, table)
            self._register(relation, _mapping(columns))
        except Exception:
            self.con.close()
            raise

    def _relation(self, source, table: str | None) -> str:
        if isinstance(source, pd.DataFrame):
            self.con.register("raw_frame", source)
            return "raw_frame"
        if not isinstance(source, (str, Path)):
            raise LTVError("transactions must be a DataFrame, a Parquet file, folder or glob, or a DuckDB "
                           f"file with table=; got {type(source).__name__}.")
        text = str(source)
        path = Path(text)
        if path.suffix.lower() in (".duckdb", ".db"):
            if not path.is_file():
                raise LTVError(f"File not found: {path}.")
            self.con.execute(f"ATTACH {_sql_quote(path)} AS client (READ_ONLY)")
            tables = [r[0] for r in self.con.execute(
                "SELECT table_name FROM duckdb_tables() WHERE database_name = 'client' "
                "UNION ALL SELECT view_name FROM duckdb_views() WHERE database_name = 'client'").fetchall()]
            if table is None or table not in tables:
                what = "needs table=" if table is None else f"has no table {table!r}"
                raise LTVError(f"The DuckDB file {path.name} {what}; its tables are: {', '.join(tables) or 'none'}.")
            return f"client.{_ident(table)}"
        return f"read_parquet({_sql_quote(parquet_pattern(text))})"

    def _register(self, relation: str, mapping: dict[str, str]) -> None:
        try:
            described = self.con.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        except duckdb.Error as exc:
            raise LTVError(f"The source cannot be read as Parquet: {_first_line(exc)}") from None
        types = {name: kind.lower() for name, kind, *_ in described}
        missing = [role for role, name in mapping.items() if name not in types]
        if missing:
            raise LTVError(f"The transactions have no {', '.join(mapping[m] for m in missing)} column; the "
                           f"columns are: {', '.join(types)}. {_MAP_HINT}")
        self._check_types({role: types[name] for role, name in mapping.items()})
        select = ", ".join(f"{_ident(name)} AS {role}" for role, name in mapping.items())
        self.con.execute(f"CREATE TEMP VIEW src AS SELECT {select} FROM {relation}")

    def query(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).df()

    def write(self, sql: str, path, meta: dict) -> Path:
        from ltv_helpers.files import atomic_path

        path = Path(path)
        kv = json.dumps(meta, ensure_ascii=False)
        with atomic_path(path) as part:  # a stopped COPY never leaves a file under the name
            self.con.execute(f"COPY ({sql}) TO {_sql_quote(part)} "
                             f"(FORMAT parquet, KV_METADATA {{{META_KEY}: {_sql_quote(kv)}}})")
        return path

    def close(self) -> None:
        self.con.close()


class SparkEngine(Engine):
    """Spark: the summaries' SQL translated to Spark SQL and run where the data is."""

    name = "spark"

    def __init__(self, source, *, columns: dict | None = None, spark=None):
        from pyspark.sql import functions as F

        self.spark = spark or spark_session()
        frame = spark_frame(self.spark, source)
        mapping = _mapping(columns)
        fields = {f.name: f.dataType.simpleString().lower() for f in frame.schema.fields}
        missing = [role for role, name in mapping.items() if name not in fields]
        if missing:
            raise LTVError(f"The transactions have no {', '.join(mapping[m] for m in missing)} column; the "
                           f"columns are: {', '.join(fields)}. {_MAP_HINT}")
        self._check_types({role: fields[name] for role, name in mapping.items()})
        # A view name of its own: several summaries may run on one session at the same time.
        self.view = f"ltv_src_{uuid.uuid4().hex[:12]}"
        frame.select(*[F.col(f"`{name}`").alias(role) for role, name in mapping.items()]
                     ).createOrReplaceTempView(self.view)

    def translate(self, sql: str) -> str:
        import sqlglot
        from sqlglot import exp

        tree = sqlglot.parse_one(sql, read="duckdb")
        tree = tree.transform(lambda node: exp.to_table(self.view)
                              if isinstance(node, exp.Table) and node.name == "src" else node)
        return tree.sql(dialect="spark")

    def frame(self, sql: str):
        """The Spark DataFrame of a summary query (nothing is computed yet)."""
        return self.spark.sql(self.translate(sql))

    def query(self, sql: str) -> pd.DataFrame:
        _quiet_pyspark()
        return self.frame(sql).toPandas()

    def write(self, sql: str, path, meta: dict) -> Path:
        target = str(path)
        self.frame(sql).write.mode("overwrite").parquet(target)
        if "://" not in target:  # a local folder: say what it holds next to the part files
            (Path(target) / SPARK_META_FILE).write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        return Path(target)

    def close(self) -> None:
        self.spark.catalog.dropTempView(self.view)


def spark_frame(spark, source, what: str = "transactions"):
    """A Spark DataFrame for ``source``: itself, a pandas DataFrame sent to Spark (a
    ``customer_id`` index becomes a column), Parquet on a path Spark reads, or a table name."""
    if is_spark_frame(source):
        return source
    if isinstance(source, pd.DataFrame):
        _quiet_pyspark()
        return spark.createDataFrame(source.reset_index() if source.index.name == CUSTOMER_ID else source)
    if not isinstance(source, (str, Path)):
        raise LTVError(f"{what} must be a Spark DataFrame, a table name, a Parquet path or a pandas DataFrame; "
                       f"got {type(source).__name__}.")
    text = str(source)
    if "://" in text or Path(text).exists() or any(ch in text for ch in "*?["):
        try:
            return spark.read.parquet(text)
        except Exception as exc:  # noqa: BLE001 - the JVM's reasons are many; one sentence
            raise LTVError(f"Spark cannot read {text} as Parquet: {_first_line(exc)}") from None
    if Path(text).suffix.lower() == ".parquet":
        raise LTVError(f"File not found: {text}.")
    if not spark.catalog.tableExists(text):
        raise LTVError(f"There is no table {text!r} on the Spark session (and no file of that name).")
    return spark.table(text)


def open_engine(transactions, engine: str | None = None, *, columns: dict | None = None,
                table: str | None = None, spark=None) -> Engine:
    """The engine for ``transactions``: ``engine`` if given, else Spark for a Spark DataFrame and
    DuckDB for everything else."""
    if engine is None:
        engine = "spark" if is_spark_frame(transactions) or spark is not None else "duckdb"
    if engine not in ENGINES:
        raise LTVError(f"engine must be one of {', '.join(ENGINES)}, got {engine!r}.")
    if engine == "duckdb":
        if is_spark_frame(transactions):
            raise LTVError("A Spark DataFrame runs on engine='spark'.")
        return DuckDBEngine(transactions, columns=columns, table=table)
    if table is not None:
        raise LTVError("table= names a table of a DuckDB file; on Spark pass the table name as the source.")
    return SparkEngine(transactions, columns=columns, spark=spark)


def summary_meta(path) -> dict:
    """What a summary file written by ``rfm_summary(..., output=)`` / ``ltv summary`` holds ({}
    for a Parquet file without it): kind, freq, freq_multiplier, unit_days, observation_end, ..."""
    path = Path(path)
    if path.is_dir():
        side = path / SPARK_META_FILE
        return json.loads(side.read_text(encoding="utf-8")) if side.is_file() else {}
    import pyarrow.parquet as pq

    try:
        meta = pq.read_schema(path).metadata or {}
    except (OSError, ValueError) as exc:
        raise LTVError(f"{path} is not a Parquet file: {_first_line(exc)}") from None
    raw = meta.get(META_KEY.encode())
    return json.loads(raw.decode("utf-8")) if raw else {}


__all__ = ["ENGINES", "DuckDBEngine", "Engine", "SparkEngine", "open_engine", "spark_session", "summary_meta"]
