"""`ltv check` against DuckDB's floor on a large CSV export, time and peak memory, in one run.

Usage: python benchmarks/bench_check.py [--lines 5000000] [--repeats 3] [--keep FILE]

A synthetic export (``synthetic_transactions``: customer id, timestamp, amount as text, about 3
lines per customer, 1% dirty lines) is written as CSV once. Then, each in a fresh process, with its
peak memory (the process's maximum resident set) and wall time:

- the floor: DuckDB ``read_csv`` of the file and a group-by per customer (lines, first and last
  date, revenue), the least any reader of this file has to do;
- ours: ``ltv check FILE --json`` (read, type every value, reject every unusable line with its
  reason, orders, refunds, the quality table).

The two run in turn ``--repeats`` times, so a busy moment on the machine hits both; prints the
median and range of each, the median of the paired ratios ours / floor and the ratio of the peaks
(issue 18's targets: time within 3x, memory within 2x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
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
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keep", help="write the export here (and reuse it if it exists)")
    parser.add_argument("--write", help=argparse.SUPPRESS)  # the child that writes the export
    args = parser.parse_args()
    if args.write:
        write_export(Path(args.write), args.lines)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep) if args.keep else Path(tmp) / "export.csv"
        if not path.is_file():
            # In a child: a process's peak memory starts from its parent's, so the parent stays small.
            subprocess.run([sys.executable, __file__, "--write", str(path), "--lines", str(args.lines)], check=True)
        written = sum(1 for _ in path.open("rb")) - 1
        print(f"{os.cpu_count()} cores; export: {written:,} lines, {path.stat().st_size / 2**20:,.0f} MiB")
        floors, ours = [], []
        for _ in range(args.repeats):  # interleaved, so that a busy moment hits both sides
            floors.append(_timed(FLOOR, path))
            ours.append(_timed(OURS, path))
        report = json.loads(ours[0][2])
        assert report["rows_in"] == written == report["rows_kept"] + report["rows_rejected"]
        sides = (("DuckDB read_csv + group-by (floor):", floors), ("ltv check --json (ours):           ", ours))
        for name, runs in sides:
            times = sorted(r[0] for r in runs)
            print(f"{name} {statistics.median(times):7.1f} s median ({times[0]:.1f}-{times[-1]:.1f})"
                  f"  {max(r[1] for r in runs) / 2**20:7,.0f} MiB peak")
        ratio = statistics.median(o[0] / f[0] for f, o in zip(floors, ours))
        memory = max(r[1] for r in ours) / max(r[1] for r in floors)
        print(f"ratio ours / floor (median of {args.repeats} paired runs): time {ratio:.1f}x (target 3x), "
              f"memory {memory:.1f}x (target 2x)")
        print(f"ours: {report['rows_kept']:,} lines kept, {report['rows_rejected']:,} rejected, "
              f"{report['customers']:,} customers")


if __name__ == "__main__":
    main()
