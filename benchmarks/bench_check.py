"""`ltv check` against DuckDB's floor on a large CSV export, time and peak memory, in one run.

Usage: python benchmarks/bench_check.py [--lines 5000000] [--repeats 1] [--keep FILE]

A synthetic export (``synthetic_transactions``: customer id, timestamp, amount as text, about 3
lines per customer, 1% dirty lines) is written as CSV once. Then, each in a fresh process, with its
peak memory (the process's maximum resident set) and wall time:

- the floor: DuckDB ``read_csv`` of the file and a group-by per customer (lines, first and last
  date, revenue), the least any reader of this file has to do;
- ours: ``ltv check FILE --json`` (read, type every value, reject every unusable line with its
  reason, orders, refunds, the quality table).

Prints both and the ratios ours / floor (issue 18's targets: time within 3x, memory within 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = """
import duckdb, json, sys
con = duckdb.connect()
rows = con.sql(f\"\"\"
    SELECT customer_id, count(*) AS lines, min(order_date) AS first, max(order_date) AS last,
           sum(TRY_CAST(amount AS DOUBLE)) AS revenue
    FROM read_csv('{sys.argv[1]}', header = true, all_varchar = true)
    GROUP BY customer_id\"\"\").fetchall()
print(json.dumps({"customers": len(rows)}))
"""
OURS = """
import sys
from ltv_helpers.cli import main
sys.exit(main(["check", sys.argv[1], "--json"]))
"""
#: Appended to each child: its own peak resident memory, on stderr, as it exits.
PEAK = """
import atexit, resource, sys
atexit.register(lambda: print("peak_kib", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))
"""


def _timed(code: str, path: Path) -> tuple[float, int, str]:
    """Wall seconds, peak resident bytes and stdout of ``code`` run in a fresh Python."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEAK + code, str(path)], capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    peak = int(done.stderr.rsplit("peak_kib", 1)[1].split()[0]) * 1024
    return seconds, peak, done.stdout


def write_export(path: Path, lines: int) -> int:
    import numpy as np

    from ltv_helpers.datasets import synthetic_transactions

    customers = max(1, lines // 3)
    tx = synthetic_transactions(customers, seed=11, dirty=0.01, alpha=25.0)
    tx = tx.iloc[: lines].copy()
    tx["order_date"] = tx["order_date"].astype(str)
    tx["amount"] = tx["amount"].astype(str)
    rng = np.random.default_rng(1)
    tx = tx.iloc[rng.permutation(len(tx))]  # exports are in time order, not customer order
    tx.to_csv(path, index=False)
    return len(tx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=5_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--keep", help="write the export here (and reuse it if it exists)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "export.csv"
        if not path.is_file():
            written = write_export(path, args.lines)
        else:
            written = sum(1 for _ in path.open("rb")) - 1
        print(f"{os.cpu_count()} cores; export: {written:,} lines, {path.stat().st_size / 2**20:,.0f} MiB")
        floor = min((_timed(FLOOR, path) for _ in range(args.repeats)), key=lambda r: r[0])
        ours = min((_timed(OURS, path) for _ in range(args.repeats)), key=lambda r: r[0])
        report = json.loads(ours[2])
        assert report["rows_in"] == written == report["rows_kept"] + report["rows_rejected"]
        print(f"DuckDB read_csv + group-by (floor): {floor[0]:7.1f} s  {floor[1] / 2**20:7,.0f} MiB peak")
        print(f"ltv check --json (ours):            {ours[0]:7.1f} s  {ours[1] / 2**20:7,.0f} MiB peak")
        print(f"ratio ours / floor: time {ours[0] / floor[0]:.1f}x (target 3x), "
              f"memory {ours[1] / floor[1]:.1f}x (target 2x)")
        print(f"ours: {report['rows_kept']:,} lines kept, {report['rows_rejected']:,} rejected, "
              f"{report['customers']:,} customers")


if __name__ == "__main__":
    main()
