"""BG/NBD fit + prediction speed: plain lifetimes vs ltv_helpers.models, same data, one run.

Usage: python benchmarks/bench_fit.py [--customers 100000 1000000] [--units days weeks]

For each size, synthetic transactions (``synthetic_transactions``) are summarized once with
``rfm_summary`` (daily, and in whole weeks). Then, on the same summary:

- lifetimes: ``BetaGeoFitter().fit`` on every customer row, then
  ``conditional_expected_number_of_purchases_up_to_time`` and ``conditional_probability_alive``;
- ours: ``models.fit(..., spend=None)`` (distinct rows with weights, the fast likelihood) and
  ``LTVModel.predict`` (expected purchases, P(alive), CLV over the same horizon).

It checks that the parameters agree to 1e-4 relative and the predictions to 1e-6, and prints
the times and the ratio lifetimes / ours.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np

warnings.simplefilter("ignore")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--units", nargs="+", default=["days", "weeks"], choices=["days", "weeks"])
    args = parser.parse_args()

    from lifetimes import BetaGeoFitter

    from ltv_helpers import models
    from ltv_helpers.data import rfm_summary
    from ltv_helpers.datasets import synthetic_transactions

    print(f"machine: {os.cpu_count()} cores")
    for n in args.customers:
        tx = synthetic_transactions(n, seed=7)
        for unit in args.units:
            freq = "D" if unit == "days" else "W"
            summary = rfm_summary(tx, observation_end="2024-12-31", freq=freq)
            horizon = 365 if unit == "days" else 52
            f, r, t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))

            start = time.perf_counter()
            plain = BetaGeoFitter().fit(f, r, t)
            fit_lt = time.perf_counter() - start
            start = time.perf_counter()
            ref_purchases = plain.conditional_expected_number_of_purchases_up_to_time(horizon, f, r, t)
            ref_alive = plain.conditional_probability_alive(f, r, t)
            pred_lt = time.perf_counter() - start

            start = time.perf_counter()
            ours = models.fit(summary, model="bgnbd", spend=None)
            fit_ours = time.perf_counter() - start
            start = time.perf_counter()
            pred = ours.predict(summary, horizon=horizon)
            pred_ours = time.perf_counter() - start

            rel = max(abs(ours.params[k] / v - 1) for k, v in plain.params_.items())
            same_pred = (np.allclose(pred["expected_purchases"], ref_purchases, rtol=1e-6, atol=1e-9)
                         and np.allclose(pred["p_alive"], ref_alive, rtol=1e-6, atol=1e-9))
            total_lt, total_ours = fit_lt + pred_lt, fit_ours + pred_ours
            print(f"\n{n:,} customers, {unit}: {ours.n_distinct:,} distinct rows "
                  f"({n / ours.n_distinct:.1f}x compression)")
            print(f"  lifetimes  fit {fit_lt:6.2f} s  predict {pred_lt:5.2f} s  total {total_lt:6.2f} s")
            print(f"  ours       fit {fit_ours:6.2f} s  predict {pred_ours:5.2f} s  total {total_ours:6.2f} s")
            print(f"  parameters: max relative difference {rel:.1e} (<= 1e-4: {rel <= 1e-4}); "
                  f"predictions equal (1e-6): {same_pred}")
            print(f"  ratio lifetimes / ours: {total_lt / total_ours:.1f}x faster")
        del tx


if __name__ == "__main__":
    main()
