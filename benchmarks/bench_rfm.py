"""RFM summary speed: lifetimes vs ltv_helpers.rfm_summary, with DuckDB and polars as the floor.

Usage: python benchmarks/bench_rfm.py [--customers 100000 1000000] [--repeats 1]

For each size, synthetic transactions (``synthetic_transactions``, daily timestamps) are written
to Parquet once; each method then runs in a fresh subprocess that loads the data, runs the summary
and reports its seconds and its peak memory above what the loaded data already took (the
ru_maxrss high-water mark minus the RSS before the operation). The outputs are compared with
lifetimes' to 1e-9 and the ratio lifetimes / ours is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

METHODS = {
    "lifetimes": "lifetimes summary_data_from_transaction_data (pandas DataFrame)",
    "ours_df": "ltv_helpers.rfm_summary (pandas DataFrame)",
    "ours_parquet": "ltv_helpers.rfm_summary (Parquet path, never loaded into pandas)",
    "duckdb_floor": "DuckDB SQL group-by on the Parquet file (count/min/max/avg only)",
    "polars_floor": "polars, same definitions, in memory",
}


def run_one(method: str, data: str, out: str) -> None:
    """Child process: load, time one method, write result and stats."""
    import pandas as pd

    end = "2024-12-31"
    needs_pandas = method in ("lifetimes", "ours_df")
    if needs_pandas:
        tx = pd.read_parquet(data)
    elif method == "polars_floor":
        import polars as pl

        tx = pl.read_parquet(data)
    before = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    if method == "lifetimes":
        from lifetimes.utils import summary_data_from_transaction_data

        res = summary_data_from_transaction_data(
            tx, "customer_id", "order_date", "amount", observation_period_end=end, freq="D")
    elif method == "ours_df":
        from ltv_helpers.data import rfm_summary

        res = rfm_summary(tx, observation_end=end, freq="D")
    elif method == "ours_parquet":
        from ltv_helpers.data import rfm_summary

        res = rfm_summary(data, observation_end=end, freq="D")
    elif method == "duckdb_floor":
        import duckdb

        res = duckdb.sql(
            f"SELECT customer_id, count(DISTINCT CAST(order_date AS DATE)) - 1 AS frequency, "
            f"min(order_date) AS first, max(order_date) AS last, avg(amount) AS m "
            f"FROM read_parquet('{data}') GROUP BY customer_id").df()
    else:
        import polars as pl

        per = (tx.with_columns(pl.col("order_date").dt.date().alias("d"))
               .group_by(["customer_id", "d"]).agg(pl.col("amount").sum()))
        res = (per.with_columns((pl.col("d") == pl.col("d").min().over("customer_id")).alias("first"))
               .group_by("customer_id").agg(
                   (pl.len() - 1).alias("frequency"),
                   (pl.col("d").max() - pl.col("d").min()).dt.total_days().alias("recency"),
                   (pl.lit(pd.Timestamp(end).date()) - pl.col("d").min()).dt.total_days().alias("T"),
                   pl.col("amount").filter(~pl.col("first")).mean().fill_null(0).alias("monetary_value"))
               .to_pandas().set_index("customer_id"))
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if method in ("lifetimes", "ours_df", "ours_parquet", "polars_floor"):
        res = res.copy()
        res.index = res.index.astype(str)
        res.sort_index().astype("float64").to_parquet(out)
    json.dump({"seconds": seconds, "peak_bytes": max(peak - before, 0), "rows_out": len(res)},
              open(out + ".json", "w"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--repeats", type=int, default=1, help="runs per method; the median is shown")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_one(*args.child)
        return

    import pandas as pd

    from ltv_helpers.datasets import synthetic_transactions

    print(f"machine: {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB")
    with tempfile.TemporaryDirectory() as tmp:
        for n in args.customers:
            tx = synthetic_transactions(n, seed=7)
            tx = tx[tx["order_date"] < "2025-01-01"]
            data = str(Path(tmp) / f"tx_{n}.parquet")
            tx.to_parquet(data, index=False)
            print(f"\n{n:,} customers, {len(tx):,} rows (daily periods)")
            del tx
            stats = {}
            for method in METHODS:
                runs = []
                for _ in range(args.repeats):
                    out = str(Path(tmp) / f"{method}.parquet")
                    subprocess.run([sys.executable, __file__, "--child", method, data, out], check=True)
                    runs.append(json.load(open(out + ".json")))
                runs.sort(key=lambda r: r["seconds"])
                stats[method] = runs[len(runs) // 2]
                print(f"  {method:13s} {stats[method]['seconds']:7.2f} s  "
                      f"peak +{stats[method]['peak_bytes'] / 2**30:5.2f} GiB   {METHODS[method]}")
            ref = pd.read_parquet(str(Path(tmp) / "lifetimes.parquet"))
            for method in ("ours_df", "ours_parquet", "polars_floor"):
                got = pd.read_parquet(str(Path(tmp) / f"{method}.parquet"))
                same = got.index.equals(ref.index) and bool(
                    ((got[ref.columns] - ref).abs() <= 1e-9 * (1 + ref.abs())).all().all())
                print(f"  {method:13s} equal to lifetimes (1e-9): {same}")
            lt = stats["lifetimes"]
            for method in ("ours_df", "ours_parquet"):
                ours = stats[method]
                print(f"  ratio lifetimes / {method}: {lt['seconds'] / ours['seconds']:.1f}x faster, "
                      f"peak memory {ours['peak_bytes'] / max(lt['peak_bytes'], 1):.2f} of lifetimes'")


if __name__ == "__main__":
    main()
