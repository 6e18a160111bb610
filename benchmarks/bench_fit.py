"""Fit and CLV speed: plain lifetimes vs ltv_helpers.models, on the same data, in one run.

Usage: python benchmarks/bench_fit.py [--customers 100000 1000000] [--pareto 100000] [--repeats 3] [--load 0]
                                      [--write]

For each size, synthetic transactions (``synthetic_transactions``: a BG/NBD + Gamma-Gamma world)
are summarized once with ``rfm_summary`` (daily). Then, on the same summary:

1. the full CLV pipeline. lifetimes: ``BetaGeoFitter().fit`` on every customer row,
   ``GammaGammaFitter().fit`` on every repeat buyer (tol 1e-6: its default stops on "precision
   loss" at this size), expected purchases and P(alive) over 365 days, expected spend, and
   ``customer_lifetime_value`` (12 months, 1% a month). Ours: ``models.fit(summary)`` (BG/NBD and
   Gamma-Gamma), ``LTVModel.predict`` (purchases and P(alive) over 365 days, spend) and
   ``models.lifetimes_clv`` (the same 12-month CLV as lifetimes, its convention, compared);
2. BG/NBD fit + prediction alone;
3. each purchase model's fit: MBG/NBD, and Pareto/NBD (lifetimes' only at the ``--pareto`` sizes:
   it does not finish in 300 s at 1M customers);
4. BG/BB on a discrete world of the same size (``synthetic_opportunities``, 30 opportunities):
   lifetimes' ``BetaGeoBetaBinomFitter`` on the distinct (frequency, recency, n) rows with their
   counts as weights (its documented use) and its expected purchases over the next 30
   opportunities, against ``models.fit(summary, model="bgbb")`` on the per-customer summary and
   ``predict`` (parameters to 1e-4: lifetimes' likelihood adds 1e-15 to a sum). With 52
   opportunities (a year of weekly renewals) lifetimes' fit does not converge (its sum of Beta
   functions underflows to NaN): ours alone, and whether lifetimes failed.

Parameters must agree to 1e-6 relative (Pareto/NBD: 2e-4, where lifetimes' Nelder-Mead stops) and
the CLV under lifetimes' convention to 1e-6. Each step runs ``--repeats`` times per side and
the median run is reported (single runs vary by 20-40% here, and a first call pays for touching
fresh memory). Peak memory is the highest resident size of this process during the step, above
what it held before (sampled every 10 ms). ``--load N`` runs N numpy-busy processes (matrix
products, BLAS on every core: two other clients of a batch) during all the timings, beside both
sides alike; issue 25's target is a pipeline ratio of at least 10x with ``--load 2`` as well as
quiet. ``--write`` keeps the table in benchmarks/results.md.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np

warnings.simplefilter("ignore")


class _Peak:
    """Wall time and peak extra resident memory of a block."""

    def __enter__(self):
        import gc

        import psutil

        gc.collect()  # garbage of the step before (lifetimes' autograd graphs) is not this step's cost

        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.start = time.perf_counter()
        return self

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, self.proc.memory_info().rss)
            time.sleep(0.01)

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start
        self.running = False
        self.thread.join()
        self.mb = (self.peak - self.base) / 2**20


def _measure(step, repeats: int):
    """Run ``step()`` ``repeats`` times; the run with the median time (its time and peak memory)
    and the last result. Both sides are measured alike, so the first call's costs (fresh memory
    touched for the first time, lazy imports) count once in three, not as the whole measure."""
    runs = []
    for _ in range(repeats):
        with _Peak() as peak:
            result = step()
        runs.append(peak)
    runs.sort(key=lambda r: r.seconds)
    return runs[len(runs) // 2], result


def _lifetimes_pipeline(summary):
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    f, r, t, m = (summary[c] for c in ("frequency", "recency", "T", "monetary_value"))
    bg = BetaGeoFitter().fit(f.to_numpy(), r.to_numpy(), t.to_numpy())
    repeat = (f > 0) & (m > 0)
    gg = GammaGammaFitter().fit(f[repeat], m[repeat], tol=1e-6)
    purchases = bg.conditional_expected_number_of_purchases_up_to_time(365, f, r, t)
    alive = bg.conditional_probability_alive(f, r, t)
    spend = gg.conditional_expected_average_profit(f, m)
    clv = gg.customer_lifetime_value(bg, f, r, t, m, time=12, discount_rate=0.01, freq="D")
    return bg, gg, purchases, alive, spend, clv


def _our_pipeline(summary):
    from ltv_helpers import models

    fitted = models.fit(summary, model="bgnbd")
    pred = fitted.predict(summary, horizon=365)  # purchases, P(alive), spend
    clv = models.lifetimes_clv(fitted, summary, time=12, discount_rate=0.01, freq="D")  # lifetimes' convention
    return fitted, pred, clv


def _rel(ours: dict, theirs) -> float:
    names = {"v": "gamma"}
    return max(abs(ours[names.get(k, k)] / v - 1) for k, v in theirs.items())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--pareto", type=int, nargs="*", default=[100_000],
                        help="sizes at which Pareto/NBD is fitted (lifetimes: minutes)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per step and side; the median is kept")
    parser.add_argument("--load", type=int, default=0, help="numpy-busy processes running during the timings")
    parser.add_argument("--write", action="store_true", help="write the table to benchmarks/results.md")
    args = parser.parse_args()
    import subprocess
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_busy import BUSY

    hogs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(args.load)]
    try:
        _run(args)
    finally:
        for hog in hogs:
            hog.kill()


def _run(args) -> None:
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter, ParetoNBDFitter

    from ltv_helpers import models
    from ltv_helpers.data import rfm_summary
    from ltv_helpers.datasets import synthetic_transactions

    rows = []
    print(f"machine: {os.cpu_count()} cores; {args.load} numpy-busy processes beside both sides")
    for n in args.customers:
        tx = synthetic_transactions(n, seed=7)
        summary = rfm_summary(tx, observation_end="2024-12-31", freq="D")
        del tx
        f, r, t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
        distinct = len(summary[["frequency", "recency", "T"]].drop_duplicates())
        print(f"\n{n:,} customers, daily summary, {distinct:,} distinct (frequency, recency, T) rows")

        k = args.repeats
        lt, (bg, gg, purchases, alive, spend, clv_lt) = _measure(lambda: _lifetimes_pipeline(summary), k)
        us, (fitted, pred, clv_us) = _measure(lambda: _our_pipeline(summary), k)
        same = (_rel(fitted.params, bg.params_) <= 1e-6 and _rel(fitted.spend_model.params, gg.params_) <= 1e-6
                and np.allclose(pred["expected_purchases"], purchases, rtol=1e-6)
                and np.allclose(pred["p_alive"], alive, rtol=1e-6)
                and np.allclose(clv_us, clv_lt, rtol=1e-6, atol=1e-9))
        rows.append((n, "BG/NBD + Gamma-Gamma + 12-month CLV", lt, us, same))

        def lifetimes_bgnbd():
            plain = BetaGeoFitter().fit(f, r, t)
            plain.conditional_expected_number_of_purchases_up_to_time(365, f, r, t)
            plain.conditional_probability_alive(f, r, t)
            return plain

        def our_bgnbd():
            ours = models.fit(summary, model="bgnbd", spend=None)
            ours.predict(summary, horizon=365)
            return ours

        lt, plain = _measure(lifetimes_bgnbd, k)
        us, ours = _measure(our_bgnbd, k)
        rows.append((n, "BG/NBD fit + prediction", lt, us, _rel(ours.params, plain.params_) <= 1e-6))

        lt, plain = _measure(lambda: ModifiedBetaGeoFitter().fit(f, r, t), k)
        us, ours = _measure(lambda: models.fit(summary, model="mbgnbd", spend=None), k)
        rows.append((n, "MBG/NBD fit", lt, us, _rel(ours.params, plain.params_) <= 1e-6))

        us, ours = _measure(lambda: models.fit(summary, model="pareto_nbd", spend=None), k)
        if n in args.pareto:  # lifetimes' Nelder-Mead takes half a minute at 100k: measured once
            lt, plain = _measure(lambda: ParetoNBDFitter().fit(f, r, t, initial_params=np.ones(4)), 1)
            rows.append((n, "Pareto/NBD fit", lt, us, _rel(ours.params, plain.params_) <= 2e-4))
        else:  # lifetimes does not finish in 300 s at 1M customers: ours alone
            rows.append((n, "Pareto/NBD fit (lifetimes not run)", None, us, True))
        rows.extend(_bgbb_rows(n, k))
        for row in rows[-6:]:
            if row[0] == n:
                _print(row)

    table = _table(rows)
    print("\n" + table)
    if args.write:
        path = Path(__file__).with_name("results.md")
        path.write_text("# Fit and CLV speed (benchmarks/bench_fit.py)\n\n"
                        f"Measured {time.strftime('%Y-%m-%d')} on a {os.cpu_count()}-core machine"
                        + (f" with {args.load} numpy-busy processes running" if args.load else "")
                        + "; each step the "
                        f"median of {args.repeats} runs per side (lifetimes' Pareto/NBD: one run).\n\n"
                        + table + "\n", encoding="utf-8")
        print(f"written to {path}")


def _bgbb_rows(n: int, k: int) -> list[tuple]:
    """Step 4: BG/BB, lifetimes against ours, on worlds of n customers and 30 and 52 opportunities."""
    from lifetimes import BetaGeoBetaBinomFitter
    from lifetimes.utils import ConvergenceError

    from ltv_helpers import models
    from ltv_helpers.datasets import synthetic_opportunities

    out = []
    for opportunities in (30, 52):
        world = synthetic_opportunities(n, opportunities=opportunities, seed=11)

        def lifetimes_bgbb():
            rows = world.groupby(["frequency", "recency", "n"]).size().rename("weights").reset_index()
            fitter = BetaGeoBetaBinomFitter().fit(rows["frequency"], rows["recency"], rows["n"],
                                                  weights=rows["weights"])
            fitter.conditional_expected_number_of_purchases_up_to_time(opportunities, world["frequency"],
                                                                       world["recency"], world["n"])
            return fitter

        def our_bgbb():
            ours = models.fit(world, model="bgbb", spend=None)
            ours.predict(world, horizon=opportunities)
            return ours

        us, ours = _measure(our_bgbb, k)
        step = f"BG/BB fit + prediction ({opportunities} opportunities)"
        try:
            lt, plain = _measure(lifetimes_bgbb, k)
        except ConvergenceError:
            out.append((n, f"{step}; lifetimes does not converge", None, us, True))
            continue
        out.append((n, step, lt, us, _rel(ours.params, plain.params_) <= 1e-4))
    return out


def _print(row) -> None:
    n, step, lt, us, same = row
    if lt is None:
        print(f"  {step}: ours {us.seconds:6.2f} s ({us.mb:,.0f} MB)")
        return
    print(f"  {step}: lifetimes {lt.seconds:6.2f} s ({lt.mb:,.0f} MB), ours {us.seconds:6.2f} s "
          f"({us.mb:,.0f} MB), {lt.seconds / us.seconds:4.1f}x, same results: {same}")


def _table(rows) -> str:
    lines = ["| customers | step | lifetimes | ours | ratio | peak memory lifetimes / ours | same results |",
             "|---|---|---|---|---|---|---|"]
    for n, step, lt, us, same in rows:
        if lt is None:
            lines.append(f"| {n:,} | {step} | - | {us.seconds:.2f} s | - | - / {us.mb:,.0f} MB | - |")
            continue
        lines.append(f"| {n:,} | {step} | {lt.seconds:.2f} s | {us.seconds:.2f} s | {lt.seconds / us.seconds:.1f}x "
                     f"| {lt.mb:,.0f} / {us.mb:,.0f} MB | {'yes' if same else 'NO'} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
