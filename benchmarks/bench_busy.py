"""Fits on a busy machine: BLAS on one thread (what ``models.fit`` does) against BLAS on every core.

Usage: python benchmarks/bench_busy.py [--customers 100000] [--repeats 5] [--busy 2]

On one synthetic summary (``synthetic_transactions``, daily ``rfm_summary``), the BG/NBD +
Gamma-Gamma fit runs ``--repeats`` times each way, in turn: ``models.fit`` (one BLAS thread, by
``models.one_blas_thread``) and the same function unwrapped (``models.fit.__wrapped__``: NumPy's
default BLAS threads, one per core). First on a quiet machine, then beside ``--busy`` processes
that keep BLAS busy on all cores (matrix products, as other clients of a batch would), the case
of issue 25. Prints the median seconds of each and the ratio; the fitted parameters must agree
to 1e-6 relative.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

BUSY = """
import os, numpy as np
parent = os.getppid()
a = np.random.default_rng(0).random((1500, 1500))
while os.getppid() == parent:  # ends when the benchmark that started it is gone, however it ended
    a @ a
"""


def _timed(fit, summary) -> tuple[float, dict]:
    started = time.perf_counter()
    model = fit(summary)
    return time.perf_counter() - started, model.params


def _run(summary, repeats: int) -> dict:
    from ltv_helpers import models

    ways = {"one BLAS thread (models.fit)": models.fit, "BLAS on every core": models.fit.__wrapped__}
    times = {name: [] for name in ways}
    params = {}
    for _ in range(repeats):
        for name, fit in ways.items():  # in turn, so that a busy moment hits both
            seconds, params[name] = _timed(fit, summary)
            times[name].append(seconds)
    first, second = params.values()
    assert all(abs(first[k] - second[k]) <= 1e-6 * abs(first[k]) for k in first), params
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--busy", type=int, default=2, help="NumPy-busy processes beside the fits")
    args = parser.parse_args()

    from ltv_helpers.data import rfm_summary
    from ltv_helpers.datasets import synthetic_transactions
    from ltv_helpers import models

    tx = synthetic_transactions(args.customers, seed=3)
    summary = rfm_summary(tx, observation_end=tx["order_date"].max())
    models.fit(summary)  # warm up (imports, first touch of memory)
    print(f"BG/NBD + Gamma-Gamma fit, {args.customers:,} customers, median of {args.repeats}")
    for label, busy in (("quiet", 0), (f"beside {args.busy} NumPy-busy processes", args.busy)):
        helpers = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
        try:
            time.sleep(1.0 if busy else 0.0)
            result = _run(summary, args.repeats)
        finally:
            for proc in helpers:
                proc.kill()
                proc.wait()
        one, every = result.values()
        print(f"{label}: one BLAS thread {one:.3f} s, BLAS on every core {every:.3f} s, ratio {every / one:.1f}x")


if __name__ == "__main__":
    main()
