"""What raising order value, purchase frequency, retention or margin is worth, per group of customers,
against what the campaign costs.

:func:`lever_baseline` measures each group's economics from its history: average order value
(AOV), orders per customer per year, yearly retention and the gross margin, and values a customer
with the advanced formula of :mod:`ltv_helpers.formulas`, this year's margin plus the discounted,
retention-weighted years after it:

    LTV = m + m r / (1 + d - r) = m (1 + d) / (1 + d - r),   m = AOV x orders per year x margin.

:func:`what_if` moves one lever at a time by a given share (retention 5% means r x 1.05, capped
below 1) and sets the gain per customer against the campaign's cost per customer.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ltv_helpers.formulas import infinite_horizon_ltv
from ltv_helpers.schema import LTVError

#: The levers, as columns of the baseline they move.
LEVERS = {"order value": "aov", "frequency": "orders_per_year", "retention": "retention", "margin": "margin"}
#: Retention is capped here when a lever raises it (a share kept can never reach 1).
MAX_RETENTION = 0.99


def ltv(aov, orders_per_year, retention, margin, annual_discount_rate):
    """Yearly margin now plus the discounted, retention-weighted years after it:
    ``m (1 + d) / (1 + d - r)`` with ``m = aov x orders_per_year x margin``.

    >>> float(ltv(500, 4, 0.6, 0.3, 0.1))   # m = 600: 600 + 600 x .6 / .5
    1320.0
    """
    m = np.asarray(aov, dtype=float) * np.asarray(orders_per_year, dtype=float) * np.asarray(margin, dtype=float)
    return m + infinite_horizon_ltv(m, retention, annual_discount_rate)


def lever_baseline(history: pd.DataFrame, groups: pd.Series, *, gross_margin: float,
                   annual_discount_rate: float = 0.1, retention=None) -> pd.DataFrame:
    """Each group's economics from ``history`` (:func:`ltv_helpers.data.customer_history`).

    Per group: ``customers``, ``aov`` (revenue / orders), ``orders_per_year`` (orders / customer-years
    observed since each first purchase), ``retention``, ``margin`` and ``ltv`` (:func:`ltv`).

    ``retention`` is a yearly share kept: one number, a mapping group -> share, or None to
    measure it on the whole base (the share of customers who first bought at least a year before
    the end and bought again in its last 365 days). The default is one rate for every group on
    purpose: value tiers and lifecycle stages are partly defined by recent activity, so a retention
    measured within each of them would be circular (the "high value" tier is recent by
    definition). Pass per-group rates from a retention model (e.g. :func:`ltv_helpers.models.fit_sbg`)
    when you have one.
    """
    needed = {"orders", "revenue", "tenure_days", "days_since_last"}
    if not needed <= set(history.columns):
        raise LTVError(f"history needs {', '.join(sorted(needed))}; build it with data.customer_history.")
    if not 0 < gross_margin <= 1:
        raise LTVError(f"gross_margin must be a share in (0, 1], got {gross_margin}.")
    groups = groups.reindex(history.index)
    if groups.isna().any():
        raise LTVError("groups must give a group for every customer of the history.")
    frame = history.assign(group=groups.astype(str).to_numpy(),
                           years=np.maximum(history["tenure_days"], 1) / 365.25)
    by = frame.groupby("group", sort=False)
    table = pd.DataFrame({
        "customers": by.size(),
        "aov": by["revenue"].sum() / by["orders"].sum(),
        "orders_per_year": by["orders"].sum() / by["years"].sum(),
        "margin": float(gross_margin),
    })
    if isinstance(groups.dtype, pd.CategoricalDtype):
        table = table.reindex([str(c) for c in groups.cat.categories if str(c) in table.index])
    if retention is None:
        old = history["tenure_days"] >= 365
        if not old.any():
            raise LTVError("No customer has a year of history, so retention cannot be measured; pass retention=.")
        retention = float((old & (history["days_since_last"] < 365)).sum() / old.sum())
    rates = pd.Series(retention, index=table.index) if np.isscalar(retention) else \
        pd.Series(retention).reindex(table.index)
    if rates.isna().any() or not ((rates >= 0) & (rates < 1)).all():
        raise LTVError("retention must give every group a yearly share in [0, 1).")
    table.insert(3, "retention", rates.clip(upper=MAX_RETENTION).astype(float))
    table["ltv"] = ltv(table["aov"], table["orders_per_year"], table["retention"], table["margin"],
                       annual_discount_rate)
    table.index.name = "group"
    table.attrs["annual_discount_rate"] = annual_discount_rate
    return table


def what_if(baseline: pd.DataFrame, changes: dict, *, cost_per_customer, annual_discount_rate: float | None = None
            ) -> pd.DataFrame:
    """The worth of each lever for each group: one row per (group, lever).

    ``changes`` maps levers (``"order value"``, ``"frequency"``, ``"retention"``, ``"margin"``) to
    relative changes (0.1: +10%); ``cost_per_customer`` is the campaign's cost per customer (one
    number, or one per lever). Columns: ``change``, ``ltv`` (baseline), ``ltv_after``, ``gain``
    (per customer), ``cost``, ``return`` (gain / cost: above 1 the campaign pays), ``customers``,
    ``net_value`` ((gain - cost) x customers).
    """
    unknown = [k for k in changes if k not in LEVERS]
    if unknown:
        raise LTVError(f"Unknown lever {unknown[0]!r}; the levers are: {', '.join(LEVERS)}.")
    d = baseline.attrs.get("annual_discount_rate", 0.1) if annual_discount_rate is None else annual_discount_rate
    costs = cost_per_customer if isinstance(cost_per_customer, dict) else {k: cost_per_customer for k in changes}
    rows = []
    for lever, change in changes.items():
        moved = baseline.copy()
        column = LEVERS[lever]
        moved[column] = moved[column] * (1 + change)
        if column in ("retention", "margin"):
            moved[column] = moved[column].clip(upper=MAX_RETENTION if column == "retention" else 1.0)
        after = ltv(moved["aov"], moved["orders_per_year"], moved["retention"], moved["margin"], d)
        cost = float(costs.get(lever, 0.0))
        gain = after - baseline["ltv"]
        rows.append(pd.DataFrame({
            "lever": lever, "change": change, "ltv": baseline["ltv"], "ltv_after": after, "gain": gain,
            "cost": cost, "return": gain / cost if cost > 0 else np.inf,
            "customers": baseline["customers"], "net_value": (gain - cost) * baseline["customers"],
        }, index=baseline.index))
    out = pd.concat(rows).set_index("lever", append=True)
    return out
