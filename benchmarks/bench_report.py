"""Client report speed: the CDNOW demo report, and a batch of synthetic clients with 1 and N workers.

Usage: python benchmarks/bench_report.py [--clients 8] [--customers 3000] [--workers 2] [--skip-demo]
       python benchmarks/bench_report.py --million [--sizes 10000 100000 1000000] [--busy 0]

1. The full demo report (`ltv demo`: four stage notebooks and the summary on CDNOW master,
   report.html and report.pdf), timed end to end. Target: under 90 s on a 2-core machine.
2. ``--clients`` synthetic clients (BG/NBD + Gamma-Gamma worlds of ``--customers`` customers,
   one seed each, written as CSV exports) rendered by ``batch.run_clients`` with 1 worker, then
   with ``--workers`` workers, in one run. Prints both times and the speed-up (target: 1.7x with
   2 workers on 2 cores) and checks that both runs rendered every client and give the same
   numbers (prediction.json).
3. ``--million``: one synthetic client at CDNOW's purchase rates (``--sizes``, default 10k, 100k
   and 1M customers; 1M is about 2.85M order rows) written as a CSV export; at each size, in one
   run, lifetimes' bare pipeline on the same file (``read_csv``, ``summary_data_from_transaction_data``,
   ``BetaGeoFitter``, ``GammaGammaFitter`` (tol 1e-6) and the 12-month ``customer_lifetime_value``)
   and ``ltv report --no-pdf`` (all five notebooks: three models backtested, intervals, figures), each
   in its own process. Prints both times, the ratio (target: at most 3x at 1M), the report's peak
   memory (the sum of its processes' resident memory, sampled every 50 ms; target under 1.2 GB),
   each notebook's time, and the growth from the smallest size to the largest. ``--busy N`` runs N
   numpy-busy processes (BLAS on every core) beside both sides. lifetimes' time is taken inside its
   process, after Python started and imported it; the report's is the command's whole run, kernels
   included (the ratio favours lifetimes).
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


LIFETIMES_PIPELINE = """
import sys, time, warnings
warnings.simplefilter("ignore")
import pandas as pd
from lifetimes import BetaGeoFitter, GammaGammaFitter
from lifetimes.utils import summary_data_from_transaction_data
started = time.perf_counter()
tx = pd.read_csv(sys.argv[1], parse_dates=["order_date"])
s = summary_data_from_transaction_data(tx, "customer_id", "order_date", monetary_value_col="amount",
                                       observation_period_end=sys.argv[2], freq="D")
bg = BetaGeoFitter().fit(s["frequency"], s["recency"], s["T"])
repeat = s[(s["frequency"] > 0) & (s["monetary_value"] > 0)]
gg = GammaGammaFitter().fit(repeat["frequency"], repeat["monetary_value"], tol=1e-6)
clv = gg.customer_lifetime_value(bg, s["frequency"], s["recency"], s["T"], s["monetary_value"],
                                 time=12, discount_rate=0.01, freq="D")
print(time.perf_counter() - started, float(clv.sum()))
"""


def _tree_peak(proc) -> tuple[float, float, dict]:
    """Wait for ``proc``; the peak of the summed resident memory of it and its descendants, the
    largest single process's, in MB (sampled every 50 ms), and each process's peak by command."""
    import psutil

    root = psutil.Process(proc.pid)
    total = single = 0
    each: dict = {}
    while proc.poll() is None:
        try:
            procs = [root, *root.children(recursive=True)]
            # A child forked and not yet exec'd (scikit-learn runs `lscpu` to count cores) shares
            # its parent's pages and has its command line: counting it would count them twice.
            pids = {p.pid: p for p in procs}
            procs = [p for p in procs if not (p.ppid() in pids and p.cmdline() == pids[p.ppid()].cmdline())]
            rss = [p.memory_info().rss for p in procs]
            for p, r in zip(procs, rss):
                key = (p.pid, " ".join(p.cmdline()[1:])[-80:])
                each[key] = max(each.get(key, 0), r)
            total, single = max(total, sum(rss)), max(single, max(rss))
        except psutil.Error:  # a process ended between listing and reading
            pass
        finally:
            time.sleep(0.05)
    return total / 2**20, single / 2**20, {k: v / 2**20 for k, v in each.items()}


def _notebook_times(run: Path) -> dict:
    """Per notebook: its time and its three slowest cells (seconds, first line)."""
    import nbformat

    out = {}
    for path in sorted(run.glob("0*.ipynb")):
        nb = nbformat.read(path, 4)
        cells = sorted(((c.metadata.get("papermill", {}).get("duration") or 0.0, c.source.splitlines()[0][:50])
                        for c in nb.cells if c.cell_type == "code" and c.source), reverse=True)
        out[path.stem] = (nb.metadata.get("papermill", {}).get("duration") or 0.0, cells[:3])
    return out


def _million(root: Path, sizes: list[int], busy: int) -> None:
    import subprocess

    import pandas as pd

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_busy import BUSY
    from bench_pareto import CDNOW_RATES

    from ltv_helpers.datasets import synthetic_transactions

    ltv = Path(sys.executable).with_name("ltv")
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    rows = []
    try:
        for n in sizes:
            tx = synthetic_transactions(n, seed=7, **CDNOW_RATES)
            end = str(pd.Timestamp(tx.attrs["true_params"]["observation_end"]).date())
            path = root / f"client_{n}.csv"
            tx.to_csv(path, index=False)
            orders = len(tx)
            del tx
            ref = subprocess.run([sys.executable, "-c", LIFETIMES_PIPELINE, str(path), end],
                                 capture_output=True, text=True, check=True, timeout=3600)
            lifetimes_s = float(ref.stdout.split()[0])
            started = time.perf_counter()
            log = root / f"report_{n}.log"  # a file, not a pipe: a full pipe would stop the report
            with open(log, "w") as err:
                proc = subprocess.Popen([str(ltv), "report", str(path), "--client", f"synthetic {n}",
                                         "--output", str(root / f"report_{n}"), "--no-pdf",
                                         "-p", f"observation_end={end}"], stdout=subprocess.DEVNULL, stderr=err)
                try:
                    total_mb, single_mb, each = _tree_peak(proc)
                finally:
                    if proc.poll() is None:  # interrupted: the report does not run on alone
                        proc.kill()
            seconds = time.perf_counter() - started
            if proc.returncode:  # the run folder is kept for a look (the temporary folder is not)
                import shutil

                kept = Path(tempfile.mkdtemp(prefix="bench-report-failed-"))
                shutil.copytree(root / f"report_{n}", kept / f"report_{n}", symlinks=True)
                sys.exit(f"ltv report failed at {n:,} customers (its run folder: {kept}): {log.read_text()[-2000:]}")
            books = _notebook_times(root / f"report_{n}" / "latest")
            rows.append((n, orders, lifetimes_s, seconds, total_mb, single_mb))
            print(f"{n:,} customers ({orders:,} orders): lifetimes' pipeline {lifetimes_s:.1f} s, "
                  f"ltv report --no-pdf {seconds:.1f} s ({seconds / lifetimes_s:.1f}x), peak memory "
                  f"{total_mb:,.0f} MB in all ({single_mb:,.0f} MB the largest process)", flush=True)
            for name, (secs, cells) in books.items():
                print(f"   {name} {secs:.1f} s; slowest cells: "
                      + "; ".join(f"{d:.1f} s {line!r}" for d, line in cells), flush=True)
            # Kernels start one per notebook, in order: the n-th kernel seen ran the n-th notebook.
            kernels = sorted(pid for pid, cmd in each if "ipykernel" in cmd or "HistoryManager" in cmd)
            names = dict(zip(kernels, books))
            print("   peak memory per process: " + "; ".join(
                f"{names.get(pid, 'ltv report' if cmd.startswith('report') else cmd)} {mb:,.0f} MB"
                for (pid, cmd), mb in sorted(each.items())), flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    print("\n| customers | orders | lifetimes' pipeline | ltv report --no-pdf | ratio | peak memory (all / largest) |")
    print("|---|---|---|---|---|---|")
    for n, orders, lt, ours, total_mb, single_mb in rows:
        print(f"| {n:,} | {orders:,} | {lt:.1f} s | {ours:.1f} s | {ours / lt:.1f}x "
              f"| {total_mb:,.0f} / {single_mb:,.0f} MB |")
    if len(rows) > 1:
        (n0, _, lt0, us0, *_), (n1, _, lt1, us1, *_) = rows[0], rows[-1]
        print(f"growth {n0:,} -> {n1:,} customers: report x{us1 / us0:.1f}, lifetimes x{lt1 / lt0:.1f}")
    n, _, lt, ours, total_mb, _ = rows[-1]
    print(f"at {n:,}: ratio {ours / lt:.1f}x (target at most 3x: {'met' if ours <= 3 * lt else 'MISSED'}), "
          f"peak {total_mb:,.0f} MB (target under 1,200 MB: {'met' if total_mb < 1200 else 'MISSED'})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-demo", action="store_true")
    parser.add_argument("--million", action="store_true", help="the large client against lifetimes' pipeline")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--busy", type=int, default=0, help="numpy-busy processes beside both sides")
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-report-") as tmp:
        root = Path(tmp)
        if args.million:
            _million(root, args.sizes, args.busy)
            return
        if not args.skip_demo:
            demo = _demo(root)
            print(f"  target under 90 s: {'met' if demo < 90 else 'MISSED'}")
        serial, parallel = _batch(root, args.clients, args.customers, args.workers)
        speedup = serial / parallel
        print(f"speed-up with {args.workers} workers: {speedup:.2f}x "
              f"(target 1.7x: {'met' if speedup >= 1.7 else 'MISSED'})")


if __name__ == "__main__":
    main()
