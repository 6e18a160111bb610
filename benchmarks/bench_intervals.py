"""Do the forecast intervals cover what they claim? Coverage in synthetic worlds where the model is
true, and on CDNOW master at three cut-offs.

Usage: python benchmarks/bench_intervals.py [--worlds 60] [--customers 3000] [--model bgnbd] [--no-cdnow]

Each world is ``synthetic_transactions`` (a BG/NBD purchase process with Gamma-Gamma spend, its own
seed, first purchases over one year, two years observed) with the daily purchase rate drawn per
world. ``evaluation.backtest`` fits the model on the first 16 months and predicts the last 8, and
its ``predicted_low`` / ``predicted_high`` (the 90% interval from calibration data only:
parameters, customers and the model error measured at earlier cut-offs) are checked against the
actual total. Printed: the share of worlds whose actual total falls inside (it should lie between
85% and 95%), the same for the interval without the model-error part (what the model alone
believes), and the median half-width. The worlds are not exactly the model: the summary counts
purchase days, so two purchases on one day count once (about 1-3% of purchases here), which the
model-error part is there to absorb.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd

from ltv_helpers import evaluation as ev
from ltv_helpers import models as mdl
from ltv_helpers.datasets import load_cdnow, synthetic_transactions


def world(seed: int, customers: int, model: str) -> dict:
    rng = np.random.default_rng(seed)
    alpha = float(rng.uniform(15, 60))  # mean rate r / alpha: one purchase every 20 to 80 days
    tx = synthetic_transactions(customers, seed=seed, alpha=alpha)
    start = pd.Timestamp("2023-01-01")
    res = ev.backtest(tx, calibration_end=start + pd.Timedelta(days=486),
                      observation_end=start + pd.Timedelta(days=730), models=(model,), baselines=False)
    row = res.metrics.loc[model]
    m = res.fitted[model]
    params, customers_var = ev._noise_variances(m, res.summary, res.duration)
    lo0, hi0 = mdl.combined_interval(row["predicted"], parameters=params["purchases"],
                                     customers=customers_var["purchases"], model_error=0.0)
    return {"alpha": alpha, "predicted": row["predicted"], "actual": row["actual"],
            "inside": row["predicted_low"] <= row["actual"] <= row["predicted_high"],
            "inside_without_model_error": lo0 <= row["actual"] <= hi0,
            "half_width": (row["predicted_high"] - row["predicted_low"]) / 2 / row["predicted"],
            "cutoffs": res.model_errors[model].cutoffs}


def cdnow() -> pd.DataFrame:
    tx = load_cdnow()
    rows = []
    for cut in ("1997-09-30", "1997-12-31", "1998-03-31"):
        res = ev.backtest(tx, calibration_end=cut, observation_end="1998-06-30", models=("bgnbd", "mbgnbd"),
                          baselines=False)
        for name in res.fitted:
            r = res.metrics.loc[name]
            rows.append({"cutoff": cut, "model": name, "predicted": round(r["predicted"]),
                         "low": round(r["predicted_low"]), "high": round(r["predicted_high"]),
                         "actual": round(r["actual"]),
                         "half_width": f"{(r['predicted_high'] - r['predicted_low']) / 2 / r['predicted']:.1%}",
                         "inside": r["predicted_low"] <= r["actual"] <= r["predicted_high"]})
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, default=60)
    parser.add_argument("--customers", type=int, default=3000)
    parser.add_argument("--model", default="bgnbd", choices=["bgnbd"])
    parser.add_argument("--no-cdnow", action="store_true")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    started = time.perf_counter()
    table = pd.DataFrame([world(1000 + s, args.customers, args.model) for s in range(args.worlds)])
    n = len(table)
    print(f"{n} synthetic worlds ({args.customers:,} customers each, {mdl.PURCHASE_MODELS[args.model]} true), "
          f"90% intervals, {time.perf_counter() - started:.0f} s")
    print(f"  actual inside the interval:                     {table['inside'].mean():.0%} "
          f"(target 85% to 95%; binomial sd at {n} worlds: {np.sqrt(0.09 / n):.0%})")
    print(f"  inside without the model-error part:            {table['inside_without_model_error'].mean():.0%}")
    print(f"  median half-width: {table['half_width'].median():.1%}; cut-offs per world: "
          f"{table['cutoffs'].min()} to {table['cutoffs'].max()}")
    if not args.no_cdnow:
        print("\nCDNOW master, holdout to 1998-06-30 (calibration data only):")
        print(cdnow().to_string(index=False))


if __name__ == "__main__":
    main()
