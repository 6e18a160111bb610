"""Client report speed: the CDNOW demo report, and a batch of synthetic clients with 1 and N workers.

Usage: python benchmarks/bench_report.py [--clients 8] [--customers 3000] [--workers 2] [--skip-demo]

1. The full demo report (`ltv demo`: four stage notebooks and the summary on CDNOW master,
   report.html and report.pdf), timed end to end. Target: under 90 s on a 2-core machine.
2. ``--clients`` synthetic clients (BG/NBD + Gamma-Gamma worlds of ``--customers`` customers,
   one seed each, written as CSV exports) rendered by ``batch.run_clients`` with 1 worker, then
   with ``--workers`` workers, in one run. Prints both times and the speed-up (target: 1.7x with
   2 workers on 2 cores) and checks that both runs rendered every client and give the same
   numbers (prediction.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path


def _demo(root: Path) -> float:
    from ltv_helpers.report import render_report

    started = time.perf_counter()
    html = render_report(root / "demo", {"client": "demo"})
    seconds = time.perf_counter() - started
    print(f"demo report (CDNOW master, HTML + PDF): {seconds:.1f} s  -> {html}")
    return seconds


def _batch(root: Path, clients: int, customers: int, workers: int) -> tuple[float, float]:
    from ltv_helpers.batch import ClientJob, run_clients
    from ltv_helpers.datasets import synthetic_transactions

    exports = root / "exports"
    exports.mkdir()
    for i in range(clients):
        synthetic_transactions(customers, seed=100 + i).to_csv(exports / f"client{i}.csv", index=False)

    def jobs(tag: str) -> list[ClientJob]:
        return [ClientJob(f"client{i}", root / tag / f"client{i}",
                          {"client": f"client{i}", "source": str(exports / f"client{i}.csv"), "draws": 50})
                for i in range(clients)]

    times, totals = {}, {}
    for n in (1, workers):
        started = time.perf_counter()
        results = run_clients(jobs(f"w{n}"), workers=n, stream=open(os.devnull, "w"))
        times[n] = time.perf_counter() - started
        failed = [r for r in results if r.status != "ok"]
        if failed:
            sys.exit(f"{len(failed)} clients failed with {n} worker(s): {failed[0].reason}")
        totals[n] = [json.loads((Path(r.report).parent / "prediction.json").read_text())["total_clv"]
                     for r in results]
        print(f"{clients} clients x {customers:,} customers, {n} worker(s): {times[n]:.1f} s")
    if totals[1] != totals[workers]:
        sys.exit("the parallel run gave other numbers than the serial one")
    return times[1], times[workers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-demo", action="store_true")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        if not args.skip_demo:
            demo = _demo(root)
            print(f"  target under 90 s: {'met' if demo < 90 else 'MISSED'}")
        serial, parallel = _batch(root, args.clients, args.customers, args.workers)
        speedup = serial / parallel
        print(f"speed-up with {args.workers} workers: {speedup:.2f}x "
              f"(target 1.7x: {'met' if speedup >= 1.7 else 'MISSED'})")


if __name__ == "__main__":
    main()
