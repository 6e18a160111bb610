"""Pareto/NBD predictions and forecast intervals at a million customers: our closed forms against
lifetimes' per-time functions, on the same fitted model and data, in one run.

Usage: python benchmarks/bench_pareto.py [--customers 1000000] [--draws 100] [--reference-draws 20]
                                         [--world cdnow|dense]

A synthetic client (``synthetic_transactions``, daily ``rfm_summary``) gets a Pareto/NBD +
Gamma-Gamma fit. ``--world cdnow`` (default) buys at CDNOW's rates (the BG/NBD parameters of the
CDNOW paper in days, about 3 orders per customer, as issue 25's client); ``dense`` is the
generator's default world (about 17 orders per customer, most histories distinct). Then, each way:

- ``predict(horizon=365, annual_discount_rate=0.1)``: expected purchases per monthly step (12),
  P(alive), CLV;
- ``intervals(draws=...)``: the prediction repeated for every parameter draw (the report's 90%
  intervals, ``models.intervals``).

"ours" is the toolkit (the customer's likelihood once per distinct history, only a term of T and t
per time: ``models._pareto_purchase_terms``); "lifetimes" is the same code with lifetimes'
``conditional_expected_number_of_purchases_up_to_time`` called once per time, which recomputes
the likelihood (two hypergeometric functions per customer) at every step, as the toolkit did
before. lifetimes' intervals run ``--reference-draws`` draws (minutes otherwise) and are scaled
to ``--draws``; the printed per-draw times and ratio are measured. The predictions must agree to
1e-9 relative.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np


#: CDNOW's BG/NBD purchase parameters (Fader, Hardie and Lee 2005) in days, and the Gamma-Gamma
#: spend parameters of their 2013 note (as benchmarks/bench_scale.py).
CDNOW_RATES = {"r": 0.243, "alpha": 30.9, "a": 0.793, "b": 2.426, "p": 6.25, "q": 3.74, "gamma": 15.44}


def _lifetimes_terms(model, rows, times, alive=None):
    """The old Pareto/NBD path: lifetimes' function once per time (``alive`` unused: lifetimes
    computes the likelihood again at every step)."""
    from ltv_helpers.models.base import history_columns

    x, recency, T_ = history_columns(rows)
    with np.errstate(all="ignore"):
        numerator = np.vstack([np.asarray(model.fitter.conditional_expected_number_of_purchases_up_to_time(
            t, x, recency, T_), dtype=float) for t in np.atleast_1d(np.asarray(times, dtype=float))])
    return numerator, np.arange(len(rows)), np.ones(len(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--world", choices=["cdnow", "dense"], default="cdnow")
    parser.add_argument("--reference-draws", type=int, default=20, help="at least 20 (models.intervals)")
    args = parser.parse_args()

    from ltv_helpers import data, models
    from ltv_helpers.datasets import synthetic_transactions

    warnings.simplefilter("ignore")
    started = time.perf_counter()
    rates = CDNOW_RATES if args.world == "cdnow" else {}
    tx = synthetic_transactions(args.customers, seed=7, **rates)
    summary = data.rfm_summary(tx, observation_end=tx.attrs["true_params"]["observation_end"])
    fitted = models.fit(summary, model="pareto_nbd")
    print(f"{args.customers:,} customers, {len(tx):,} orders; data and fit in {time.perf_counter() - started:.1f} s; "
          f"distinct histories: {len(summary[['frequency', 'recency', 'T']].drop_duplicates()):,}")

    def run(draws: int):
        t0 = time.perf_counter()
        pred = fitted.predict(summary, horizon=365, annual_discount_rate=0.1)
        t1 = time.perf_counter()
        totals = models.intervals(fitted, summary, horizon=365, annual_discount_rate=0.1, draws=draws)
        return pred, totals, t1 - t0, time.perf_counter() - t1

    ours = run(args.draws)
    print(f"ours: predict {ours[2]:.2f} s, intervals with {args.draws} draws {ours[3]:.2f} s", flush=True)
    # The model's own module calls it (patching the package's name alone changed nothing).
    from ltv_helpers.models import pareto_nbd

    own_terms = pareto_nbd._pareto_purchase_terms
    pareto_nbd._pareto_purchase_terms = _lifetimes_terms
    try:
        ref = run(args.reference_draws)
    finally:
        pareto_nbd._pareto_purchase_terms = own_terms
    worst = float(np.max(np.abs(ours[0]["clv"] - ref[0]["clv"]) / np.maximum(ref[0]["clv"].abs(), 1e-12)))
    assert worst < 1e-9, worst
    per_draw = (ours[3] / args.draws, ref[3] / args.reference_draws)
    print(f"{'':28}{'ours':>10}{'lifetimes':>12}{'ratio':>8}")
    print(f"{'predict (12 monthly steps)':28}{ours[2]:>9.2f}s{ref[2]:>11.2f}s{ref[2] / ours[2]:>7.1f}x")
    print(f"{'intervals, per draw':28}{per_draw[0]:>9.3f}s{per_draw[1]:>11.3f}s{per_draw[1] / per_draw[0]:>7.1f}x")
    total_ref = ref[2] + per_draw[1] * args.draws
    print(f"{f'predict + {args.draws} draws':28}{ours[2] + ours[3]:>9.1f}s{total_ref:>11.1f}s"
          f"{total_ref / (ours[2] + ours[3]):>7.1f}x   (lifetimes: {args.reference_draws} draws measured, scaled)")
    print(f"largest relative CLV difference: {worst:.1e}")


if __name__ == "__main__":
    main()
