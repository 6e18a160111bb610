"""Summaries at scale: DuckDB and Spark (local) on transaction logs of 1M, 5M and 20M customers.

Usage: python benchmarks/bench_scale.py [--customers 1000000 5000000 20000000] [--engines duckdb spark]
                                        [--data DIR] [--write]

For each size, a synthetic log (``synthetic_transactions`` with CDNOW-like rates: about 2.5
orders per customer) is written once as a folder of Parquet files, one per million customers,
so that generating it never holds the whole log in memory. Each engine then runs in a fresh
subprocess, twice over the log:

- the per-customer daily RFM summary written to Parquet by the engine (``rfm_summary(...,
  output=)``: nothing per customer passes through Python);
- the compressed weekly summary (calendar weeks) returned to Python (``compress=True``): what a
  model fit needs.

Printed per size and engine: seconds for each, rows per second, the peak memory of the Python
process (its high-water mark, VmHWM; Spark's JVM is a separate process and not counted) and the rows of the
compressed summary. The last table gives seconds per million rows at each size: constant means
cost grows linearly with rows. ``--write`` keeps the tables in ``benchmarks/results_scale.md``.
The compressed summaries of both engines are checked equal (1e-9).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 1_000_000
#: CDNOW-like purchase and spend parameters, in days (the published weekly BG/NBD fit, alpha x 7).
RATES = {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "gamma": 15.44}
END = "2024-12-31"


def make_log(customers: int, folder: Path) -> int:
    """Write the log as Parquet files of CHUNK customers each; returns the number of rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ltv_helpers.datasets import synthetic_transactions

    folder.mkdir(parents=True, exist_ok=True)
    done = folder / "_rows.json"
    if done.is_file():
        return json.loads(done.read_text())["rows"]
    rows = 0
    for k in range((customers + CHUNK - 1) // CHUNK):
        n = min(CHUNK, customers - k * CHUNK)
        tx = synthetic_transactions(n, seed=1000 + k, **RATES)
        tx["customer_id"] = f"{k:03d}-" + tx["customer_id"]
        pq.write_table(pa.Table.from_pandas(tx, preserve_index=False), folder / f"part-{k:03d}.parquet")
        rows += len(tx)
    done.write_text(json.dumps({"rows": rows}))
    return rows


def child(engine: str, data: str, out: str) -> None:
    """One engine on one log: both summaries, seconds and peak memory, as JSON in ``out``."""
    from ltv_helpers.data import rfm_summary

    # A child starts with its parent's peak (fork, exec): reset the kernel's high-water mark.
    Path("/proc/self/clear_refs").write_text("5")
    spark = None
    start_seconds = 0.0
    if engine == "spark":
        from ltv_helpers.data.engines import spark_session

        t0 = time.perf_counter()
        spark = spark_session("local[*]")
        spark.range(1).count()
        start_seconds = time.perf_counter() - t0
    work = Path(out).with_suffix("")
    t0 = time.perf_counter()
    rfm_summary(data, observation_end=END, engine=engine, spark=spark, output=work / "summary.parquet")
    per_customer = time.perf_counter() - t0
    t0 = time.perf_counter()
    packed = rfm_summary(data, observation_end=END, freq="W", compress=True, engine=engine, spark=spark)
    compressed = time.perf_counter() - t0
    packed.to_parquet(work / "compressed.parquet")
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    peak = int(status.split()[0]) / 1024  # kB -> MB
    Path(out).write_text(json.dumps({"per_customer": per_customer, "compressed": compressed,
                                     "spark_start": start_seconds, "peak_mb": peak,
                                     "purchase_rows": int((packed["part"] == "purchases").sum()),
                                     "spend_rows": int((packed["part"] == "spend").sum()),
                                     "customers": int(packed.loc[packed["part"] == "purchases", "customers"].sum())}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1_000_000, 5_000_000, 20_000_000])
    parser.add_argument("--engines", nargs="+", default=["duckdb", "spark"], choices=["duckdb", "spark"])
    parser.add_argument("--data", help="folder for the logs (kept between runs; default: a temporary folder)")
    parser.add_argument("--write", action="store_true", help="write benchmarks/results_scale.md")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    import numpy as np
    import pandas as pd

    base = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="ltv-scale-"))
    results = []
    for customers in args.customers:
        folder = base / f"log_{customers}"
        t0 = time.perf_counter()
        rows = make_log(customers, folder)
        size_mb = sum(f.stat().st_size for f in folder.glob("*.parquet")) / 2**20
        print(f"{customers:,} customers: {rows:,} rows, {size_mb:,.0f} MB of Parquet "
              f"(ready in {time.perf_counter() - t0:.0f} s)", flush=True)
        packed = {}
        for engine in args.engines:
            out = base / f"result_{customers}_{engine}.json"
            subprocess.run([sys.executable, __file__, "--child", engine, str(folder), str(out)], check=True)
            res = json.loads(out.read_text())
            packed[engine] = pd.read_parquet(out.with_suffix("") / "compressed.parquet")
            assert res["customers"] == customers, (engine, res["customers"], customers)
            results.append({"customers": customers, "rows": rows, "engine": engine, **res})
            print(f"  {engine:6s} per-customer summary to Parquet {res['per_customer']:7.1f} s "
                  f"({rows / res['per_customer'] / 1e6:5.2f} M rows/s), compressed weekly summary "
                  f"{res['compressed']:6.1f} s -> {res['purchase_rows']:,} + {res['spend_rows']:,} rows; Python peak "
                  f"{res['peak_mb']:,.0f} MB"
                  + (f"; Spark start {res['spark_start']:.0f} s" if engine == "spark" else ""),
                  flush=True)
        if len(packed) == 2:
            a, b = packed["duckdb"], packed["spark"]
            num = [c for c in a.columns if c != "part"]
            assert len(a) == len(b) and (a["part"] == b["part"]).all(), "engines differ"
            same = np.allclose(a[num].to_numpy(), b[num].to_numpy(), rtol=1e-9, atol=0, equal_nan=True)
            assert same, "engines differ"
            print("  duckdb and spark compressed summaries equal (1e-9)")
    table = pd.DataFrame(results)
    table["s_per_M_rows"] = table["per_customer"] / (table["rows"] / 1e6)
    table["compressed_s_per_M_rows"] = table["compressed"] / (table["rows"] / 1e6)
    shown = table[["customers", "rows", "engine", "per_customer", "compressed", "s_per_M_rows",
                   "compressed_s_per_M_rows", "peak_mb", "purchase_rows", "spend_rows"]]
    print()
    print(shown.to_string(index=False, float_format=lambda v: f"{v:,.2f}"))
    if args.write:
        md = ["# Summaries at scale (`benchmarks/bench_scale.py`)", "",
              "One run on this machine (2 cores, 24 GiB): synthetic logs with CDNOW-like rates, Spark "
              "`local[*]`; seconds exclude Spark's start-up. Per-customer: daily RFM summary written "
              "to Parquet by the engine. Compressed: summary in calendar weeks returned to Python "
              "(`compress=True`: distinct histories + distinct repeat-buyer spends to 6 significant "
              "digits). Peak: the Python process.", "",
              "| customers | rows | engine | per-customer s | compressed s | s per M rows (per-customer) "
              "| s per M rows (compressed) | Python peak MB | compressed: purchase rows | spend rows |",
              "|" + "---|" * 10]
        for r in shown.itertuples(index=False):
            md.append(f"| {r.customers:,} | {r.rows:,} | {r.engine} | {r.per_customer:.1f} | {r.compressed:.1f} "
                      f"| {r.s_per_M_rows:.2f} | {r.compressed_s_per_M_rows:.2f} | {r.peak_mb:,.0f} "
                      f"| {r.purchase_rows:,} | {r.spend_rows:,} |")
        path = Path(__file__).with_name("results_scale.md")
        path.write_text("\n".join(md) + "\n", encoding="utf-8")
        print(f"\nwritten: {path}")


if __name__ == "__main__":
    main()
