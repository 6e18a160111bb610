"""Acquisition channels and their economics: which channel brought each customer, what the
customers of each channel and acquisition cohort are worth (realised N-day value, predicted
value with intervals), and against an acquisition-cost table, LTV/CAC and payback.

The channel of a customer is the channel of their first order (the transactions' ``channel``
column). Realised N-day value is what Chinese CDPs show: revenue from the first order up to N
days after it, per customer, for the cohorts old enough to have had all N days.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers.schema import AMOUNT, CHANNEL, CUSTOMER_ID, ORDER_DATE, LTVError

#: The days after a first purchase that realised value curves are read at.
VALUE_DAYS = (30, 90, 180, 365)
#: Acquisition-cost table columns: one row per channel and month; spend and/or new customers.
COST_COLUMNS = ("channel", "month", "spend", "new_customers")


def _orders(transactions: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The orders (ids as text, the day of each order, amounts) and, per customer, the day of the
    first order and its channel: what every function here reads, made once."""
    if CHANNEL not in transactions:
        raise LTVError(f"The transactions have no {CHANNEL} column to take acquisition channels from; pass "
                       "--channel <column name>, or combine the channels' exports.")
    tx = pd.DataFrame({CUSTOMER_ID: transactions[CUSTOMER_ID].astype("str").to_numpy(),
                       "day": transactions[ORDER_DATE].dt.normalize().to_numpy(),
                       AMOUNT: transactions[AMOUNT].to_numpy(dtype=float)})
    # The first order's row (on a tie, the first row of that time in the table).
    first = transactions.assign(**{CUSTOMER_ID: tx[CUSTOMER_ID].to_numpy()}).sort_values(
        [CUSTOMER_ID, ORDER_DATE], kind="stable").drop_duplicates(CUSTOMER_ID)
    channel = first[CHANNEL].astype("str")
    channel = channel.where(first[CHANNEL].notna() & (channel.str.strip() != ""), "unknown")
    customers = pd.DataFrame({"first": first[ORDER_DATE].dt.normalize().to_numpy(), CHANNEL: channel.to_numpy()},
                             index=pd.Index(first[CUSTOMER_ID].to_numpy(), name=CUSTOMER_ID))
    tx["age"] = (tx["day"] - tx[CUSTOMER_ID].map(customers["first"])).dt.days.to_numpy()
    return tx, customers


def acquisition_channels(transactions: pd.DataFrame) -> pd.Series:
    """Each customer's acquisition channel: the channel of their first order (on a tie, the first
    row of that time in the table; "unknown" where it has none). Indexed by customer id (as text,
    as summaries are)."""
    return _orders(transactions)[1][CHANNEL]


def value_curves(transactions: pd.DataFrame, *, observation_end, days=VALUE_DAYS, cohort: str = "M") -> pd.DataFrame:
    """Realised value per customer N days after the first purchase, per channel and acquisition
    cohort (``cohort``: "M" months, "Q" quarters): one row per (channel, cohort) with
    ``customers`` and ``value_<N>d`` (revenue from the first order through day N, per customer;
    NaN for a cohort whose youngest customer has not had N days by ``observation_end``)."""
    return _curves(*_orders(transactions), observation_end, days, cohort)


def _curves(tx: pd.DataFrame, customers: pd.DataFrame, observation_end, days, cohort: str) -> pd.DataFrame:
    if cohort not in ("M", "Q"):
        raise LTVError(f"cohort must be 'M' (months) or 'Q' (quarters), got {cohort!r}.")
    end = pd.Timestamp(observation_end).normalize()
    keys = [CHANNEL, "cohort"]
    customers = customers.assign(cohort=customers["first"].dt.to_period(cohort).astype("str"))
    out = customers.groupby(keys).agg(customers=("first", "size"), youngest=("first", "max"))
    for n in days:
        revenue = tx[AMOUNT].where(tx["age"] <= n, 0.0).groupby(tx[CUSTOMER_ID]).sum()
        per = customers[keys].assign(v=revenue).groupby(keys)["v"].sum()
        mature = out["youngest"] + pd.Timedelta(days=n) <= end
        out[f"value_{n}d"] = (per / out["customers"]).where(mature)
    return out.drop(columns="youngest")


def read_costs(source) -> pd.DataFrame:
    """An acquisition-cost table from a CSV or YAML file (or a DataFrame): ``channel``, ``month``
    (YYYY-MM) and ``spend`` and/or ``new_customers``, one row per channel and month. A YAML file
    is a list of such mappings. Every problem is one sentence."""
    if isinstance(source, pd.DataFrame):
        table = source.copy()
    else:
        path = Path(source)
        if not path.is_file():
            raise LTVError(f"The acquisition-cost file {path.name} was not found.")
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            try:
                rows = yaml.safe_load(path.read_text(encoding="utf-8"))
            except yaml.YAMLError as exc:
                raise LTVError(f"{path.name} is not YAML: {str(exc).splitlines()[0]}") from None
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise LTVError(f"{path.name} must be a list of channel, month, spend / new_customers entries.")
            table = pd.DataFrame(rows)
        else:
            table = pd.read_csv(path, dtype={"channel": "str", "month": "str"})
    missing = [c for c in ("channel", "month") if c not in table]
    if missing or not ({"spend", "new_customers"} & set(table.columns)):
        raise LTVError(f"The acquisition-cost table needs channel, month and spend and/or new_customers; it has: "
                       f"{', '.join(map(str, table.columns))}.")
    table["channel"] = table["channel"].astype("str")
    months = pd.to_datetime(table["month"].astype("str"), format="%Y-%m", errors="coerce")
    if months.isna().any():
        bad = table.loc[months.isna(), "month"].iloc[0]
        raise LTVError(f"month must be YYYY-MM in the acquisition-cost table, got {bad!r}.")
    table["month"] = months.dt.to_period("M").astype("str")
    for column in ("spend", "new_customers"):
        if column in table:
            given = table[column].notna() & (table[column].astype("str").str.strip() != "")  # a blank cell: not given
            values = pd.to_numeric(table[column].where(given), errors="coerce")
            if (given & values.isna()).any() or (values < 0).any():
                raise LTVError(f"{column} must be a number, 0 or more, where the acquisition-cost table gives it.")
            table[column] = values.astype("float64")
        else:
            table[column] = np.nan
    if (table["spend"].isna() & table["new_customers"].isna()).any():
        row = table[table["spend"].isna() & table["new_customers"].isna()].iloc[0]
        raise LTVError(f"The acquisition-cost table gives neither spend nor new_customers for {row['channel']} "
                       f"{row['month']}.")
    if table.duplicated(["channel", "month"]).any():
        row = table[table.duplicated(["channel", "month"])].iloc[0]
        raise LTVError(f"The acquisition-cost table has {row['channel']} {row['month']} twice.")
    return table[list(COST_COLUMNS)].reset_index(drop=True)


def acquisition_groups(transactions: pd.DataFrame, cohort: str | None = None) -> pd.Series:
    """Each customer's acquisition group: their channel, or with ``cohort`` ("M" or "Q") their
    (channel, acquisition month or quarter) pair, as a code ("0", "1", ...; ``attrs["pairs"]``
    maps each to its pair), so that any channel name can be part of a group of
    :func:`ltv_helpers.models.intervals`."""
    _, customers = _orders(transactions)
    return _groups(customers, cohort)


def _groups(customers: pd.DataFrame, cohort: str | None) -> pd.Series:
    if cohort is None:
        return customers[CHANNEL].rename("group")
    if cohort not in ("M", "Q"):
        raise LTVError(f"cohort must be 'M' (months) or 'Q' (quarters), got {cohort!r}.")
    pairs = pd.MultiIndex.from_arrays([customers[CHANNEL].to_numpy(),
                                       customers["first"].dt.to_period(cohort).astype("str").to_numpy()],
                                      names=[CHANNEL, "cohort"])
    codes, uniques = pd.factorize(pairs, sort=True)
    out = pd.Series(codes.astype("str"), index=customers.index, name="group")
    out.attrs["pairs"] = {str(k): pair for k, pair in enumerate(uniques)}
    return out


def channel_economics(transactions: pd.DataFrame, predictions: pd.DataFrame, *, observation_end,
                      costs: pd.DataFrame | None = None, intervals: pd.DataFrame | None = None,
                      cohort: str | None = None, gross_margin: float = 1.0) -> pd.DataFrame:
    """Per acquisition channel (with ``cohort`` "M" or "Q": per channel and acquisition month or
    quarter, a (channel, cohort) index): ``customers``, realised ``value_365d`` per customer (mature
    cohorts), predicted ``predicted_value`` per customer (mean of ``predictions["clv"]``), and
    with ``intervals`` (:func:`ltv_helpers.models.intervals` grouped by :func:`acquisition_groups`
    of the same ``cohort``) its ``_low`` / ``_high``; with ``costs`` (:func:`read_costs`):
    ``spend``, ``cac`` (spend per new customer: the table's new customers, else the customers the
    data show acquired in those months), ``ltv_cac`` (historical 365-day value x ``gross_margin``
    + predicted value, over CAC; the predictions' CLV carries the same margin) and its interval,
    and ``payback_months`` (the months of realised value x ``gross_margin`` per customer that add
    up to CAC, a fraction read linearly within the month; NaN when the first year does not)."""
    if not 0 < gross_margin <= 1:
        raise LTVError(f"gross_margin must be a share in (0, 1], got {gross_margin}.")
    return _economics(*_orders(transactions), predictions, observation_end, costs, intervals, cohort, gross_margin)


def _economics(tx: pd.DataFrame, customers: pd.DataFrame, predictions: pd.DataFrame, observation_end, costs,
               intervals, cohort: str | None, gross_margin: float = 1.0) -> pd.DataFrame:
    group = _groups(customers, cohort)
    pred = predictions.copy()
    pred.index = pred.index.astype("str")
    key = group.reindex(pred.index)
    known = key.notna()
    out = pd.DataFrame({"customers": key[known].value_counts().sort_index()})
    out.index.name = "group"
    # Realised first-year value: per customer of a cohort whose youngest member has had the year.
    mature = _curves(tx, customers, observation_end, (365,), "M" if cohort is None else cohort)
    mature = mature.dropna(subset=["value_365d"])
    if cohort is None:
        weights = mature["customers"]
        out["value_365d"] = ((mature["value_365d"] * weights).groupby(level=CHANNEL).sum()
                             / weights.groupby(level=CHANNEL).sum()).reindex(out.index)
    else:
        code = {pair: k for k, pair in group.attrs["pairs"].items()}
        out["value_365d"] = pd.Series(mature["value_365d"].to_numpy(),
                                      index=[code[pair] for pair in mature.index]).reindex(out.index)
    out["predicted_value"] = pred["clv"][known].groupby(key[known]).mean().reindex(out.index)
    if intervals is not None:
        _check_intervals(intervals, out, cohort)
        rows = intervals.reindex(out.index)
        out["predicted_value_low"] = rows["clv_low"] / out["customers"]
        out["predicted_value_high"] = rows["clv_high"] / out["customers"]
    if costs is not None:
        table = read_costs(costs)
        months = table.assign(period=pd.PeriodIndex(table["month"], freq="M").asfreq(cohort or "M").astype("str"))
        by = ["channel"] if cohort is None else ["channel", "period"]
        acquired = pd.DataFrame({"channel": customers[CHANNEL].to_numpy(),
                                 "month": customers["first"].dt.to_period("M").astype("str").to_numpy(),
                                 "group": group.to_numpy()})
        seen = acquired.merge(months[["channel", "month", "period"]], on=["channel", "month"])
        if cohort is None:
            spend, counted = (table.groupby("channel")[c].sum(min_count=1) for c in ("spend", "new_customers"))
            seen = seen.groupby("channel").size()
        else:
            code = {pair: k for k, pair in group.attrs["pairs"].items()}
            label = lambda frame: [code.get(pair) for pair in frame.index]  # noqa: E731
            spend, counted = (months.groupby(by)[c].sum(min_count=1) for c in ("spend", "new_customers"))
            spend.index, counted.index = label(spend), label(counted)
            spend, counted = spend[spend.index.notna()], counted[counted.index.notna()]
            seen = seen.groupby("group").size()
        new = counted.where(counted.notna(), seen.reindex(counted.index).astype(float))
        out["spend"] = spend.reindex(out.index)
        out["cac"] = (out["spend"] / new.reindex(out.index)).replace([np.inf], np.nan)
        # On margin, as the predicted CLV. A group without a first year seen (value_365d NaN) has no
        # LTV/CAC or payback: counting its realised value as 0 would make young cohorts look worse.
        history = out["value_365d"] * gross_margin
        out["ltv_cac"] = (history + out["predicted_value"]) / out["cac"]
        if intervals is not None:
            out["ltv_cac_low"] = (history + out["predicted_value_low"]) / out["cac"]
            out["ltv_cac_high"] = (history + out["predicted_value_high"]) / out["cac"]
        # Payback on the customers of the same mature cohorts as value_365d, not on every customer
        # past a year (a half-mature cohort would be read from its earliest customers only).
        period = customers["first"].dt.to_period("M" if cohort is None else cohort).astype("str")
        in_mature = pd.MultiIndex.from_arrays([customers[CHANNEL].to_numpy(), period.to_numpy()]).isin(mature.index)
        out["payback_months"] = _payback(tx, customers[in_mature], group, out["cac"] / gross_margin)
    if cohort is None:
        out.index.name = CHANNEL
        return out
    out.index = pd.MultiIndex.from_tuples([group.attrs["pairs"][k] for k in out.index], names=[CHANNEL, "cohort"])
    return out.sort_index()


def _check_intervals(intervals: pd.DataFrame, out: pd.DataFrame, cohort: str | None) -> None:
    """``intervals`` must be grouped as ``out`` is (by :func:`acquisition_groups` of the same
    ``cohort``): every group there, with the same predicted CLV, else one sentence."""
    what = "channel" if cohort is None else f"acquisition_groups(transactions, cohort={cohort!r})"
    missing = out.index.difference(intervals.index)
    same = (len(missing) == 0 and "clv" in intervals
            and np.allclose(intervals["clv"].reindex(out.index).to_numpy(dtype=float),
                            (out["predicted_value"] * out["customers"]).to_numpy(dtype=float),
                            rtol=1e-6, atol=1e-6, equal_nan=True))
    if not same:
        raise LTVError(f"The intervals are not grouped by {what}, as the economics are: make them with "
                       "models.intervals(..., groups=acquisition_groups(transactions, cohort=...)) of the same cohort.")


def _payback(tx: pd.DataFrame, customers: pd.DataFrame, group: pd.Series, cac: pd.Series) -> pd.Series:
    """Months of realised value per customer of ``customers`` (those of cohorts with a full first
    year observed) until CAC, per group of ``cac``'s index (NaN for a group without such customers
    or whose first year does not add up to its CAC)."""
    old = customers.index
    group = group.reindex(old)
    tx = tx[tx[CUSTOMER_ID].isin(old) & (tx["age"] <= 365)]  # the first year only
    month = (tx["age"] // 30.4375).clip(upper=11)  # day 365 is month 12's
    per = tx[AMOUNT].groupby([tx[CUSTOMER_ID].map(group), month]).sum().unstack(fill_value=0.0)
    per = per.reindex(columns=range(12), fill_value=0.0)
    cumulative = per.cumsum(axis=1).div(group.value_counts().reindex(per.index), axis=0)
    out = {}
    for name, target in cac.items():
        if name not in cumulative.index or not np.isfinite(target):
            out[name] = np.nan
            continue
        curve = np.r_[0.0, cumulative.loc[name].to_numpy()]  # value by the end of month 0, 1, ..., 12
        reached = np.flatnonzero(curve >= target)
        if not len(reached):
            out[name] = np.nan
            continue
        k = reached[0]  # within month k, linearly (a fractional month, as formulas.retained_payback_months)
        out[name] = float(k - 1 + (target - curve[k - 1]) / (curve[k] - curve[k - 1])) if k else 0.0
    return pd.Series(out).reindex(cac.index)


#: Where channel tables and the new customers' value land in a run folder (notebook 06).
CHANNELS_FILE = "channels.parquet"
CURVES_FILE = "value_curves.parquet"


def new_customer_values(forecast, history: pd.DataFrame, channel: pd.Series, *, horizon: float,
                        gross_margin: float, annual_discount_rate: float) -> tuple[pd.Series, str | None]:
    """The value over ``horizon`` (the model's time units) of a customer who has just made a first
    purchase, per channel: from the forecast's model refitted with the channel as a covariate
    (:func:`ltv_helpers.models.fit` with ``covariates``), so each channel has its own purchase and
    dropout rates. When that fit is not possible (a model without covariates, a channel too small to
    estimate), the forecast model's one value for all channels and the reason."""
    from ltv_helpers import models

    fitted = forecast.model
    values = dict(gross_margin=gross_margin, annual_discount_rate=annual_discount_rate)
    names = sorted(channel.unique())
    reason = None
    if len(names) > 1:
        try:
            covariate = models.fit(history.assign(**{CHANNEL: channel.to_numpy()}), model=fitted.model,
                                   covariates=[CHANNEL], unit_days=fitted.unit_days)
            table = covariate.new_customer_value(horizon=horizon, **values)
            by_level = {str(i).split("=", 1)[-1]: v for i, v in table["clv"].items()}
            return pd.Series(by_level).reindex(names), None
        except LTVError as exc:
            reason = str(exc)
    one = float(fitted.new_customer_value(horizon=horizon, **values)["clv"])
    return pd.Series(one, index=names), reason


def channel_report(transactions: pd.DataFrame, forecast, *, observation_end, costs=None, draws: int = 100,
                   cohort: str = "M") -> tuple[pd.DataFrame, pd.DataFrame, str | None]:
    """The channel section of a report run from its collected transactions and its forecast
    (:func:`ltv_helpers.models.load_forecast`): :func:`channel_economics` with the forecast's
    intervals by channel (its own model error) and the value of a new customer per channel
    (:func:`new_customer_values`); per channel and acquisition ``cohort``, the :func:`value_curves`
    with the same economics (``channel_economics(..., cohort=cohort)``); and why the new
    customers' value is one for all channels (None when it is per channel)."""
    from ltv_helpers import models
    from ltv_helpers.data import customer_history

    facts = forecast.facts
    fitted = forecast.model
    horizon_days = int(facts["horizon_months"]) * 365.25 / 12
    values = dict(gross_margin=float(facts["gross_margin"]), annual_discount_rate=float(facts["annual_discount_rate"]))
    tx, customers = _orders(transactions)
    history = customer_history(transactions, observation_end=observation_end)
    history.index = history.index.astype("str")
    history = history[history.index.isin(customers.index)]
    horizon = horizon_days / fitted.unit_days
    tables = []
    for by in (None, cohort):  # per channel, then per channel and acquisition cohort
        group = _groups(customers, by).reindex(history.index)
        totals = models.intervals(fitted, history, horizon=horizon, groups=group, draws=draws,
                                  model_error=forecast.model_error, **values)
        tables.append(_economics(tx, customers, forecast.predictions, observation_end, costs, totals, by,
                                 values["gross_margin"]))
    table, by_cohort = tables
    channel = customers[CHANNEL].reindex(history.index)
    new, reason = new_customer_values(forecast, history, channel, horizon=horizon, **values)
    table.insert(table.columns.get_loc("predicted_value_high") + 1, "new_customer_value", new.reindex(table.index))
    curves = _curves(tx, customers, observation_end, VALUE_DAYS, cohort)
    return table, curves.join(by_cohort.drop(columns=["customers", "value_365d"])), reason


def clear_gap(table: pd.DataFrame) -> dict | None:
    """The channel whose LTV/CAC is clearly below every other's (its interval's top under each
    other channel's interval's bottom), with its numbers and the others'; None when none is."""
    need = {"ltv_cac", "ltv_cac_low", "ltv_cac_high"}
    if not need <= set(table.columns):
        return None
    rows = table.dropna(subset=sorted(need))
    if len(rows) < 2:
        return None
    low = rows["ltv_cac"].idxmin()
    others = rows.drop(index=low)
    if not (rows.loc[low, "ltv_cac_high"] < others["ltv_cac_low"]).all():
        return None
    return {"channel": str(low), "ratio": float(rows.loc[low, "ltv_cac"]),
            "low": float(rows.loc[low, "ltv_cac_low"]), "high": float(rows.loc[low, "ltv_cac_high"]),
            "others": {str(k): float(v) for k, v in others["ltv_cac"].items()}}


def channel_markdown(table: pd.DataFrame, one_value: str | None, *, observation_end, months: int,
                     language: str = "en") -> str:
    """What the channel table shows, in sentences (Markdown)."""
    from ltv_helpers.labels import (CHANNEL_COST_MONTHS, CHANNEL_COSTS, CHANNEL_NO_COSTS, CHANNEL_NOTE,
                                    NEW_VALUE_NOTE, NEW_VALUE_ONE, label, markdown)

    end = str(pd.Timestamp(observation_end).date())
    parts = [markdown(CHANNEL_NOTE, language, end=end, months=months)]
    parts.append(markdown(NEW_VALUE_NOTE, language, months=months) if one_value is None
                 else markdown(NEW_VALUE_ONE, language, reason=one_value.rstrip(".")) + ".")
    if "spend" in table:
        parts.append(markdown(CHANNEL_COSTS, language))
        unpriced = [label(str(c), language) for c in table.index[table["spend"].isna()]]
        if unpriced:
            parts.append(markdown(CHANNEL_COST_MONTHS, language, channels=", ".join(unpriced)))
    else:
        parts.append(label(CHANNEL_NO_COSTS, language))
    return " ".join(parts)


def channel_table(table: pd.DataFrame) -> pd.DataFrame:
    """:func:`channel_report`'s table as a client reads it: best channel first (by LTV/CAC where
    costs were given, else by predicted value), each interval as one column of text."""
    def span(low: pd.Series, high: pd.Series, decimals: int) -> pd.Series:
        text = low.map(f"{{:,.{decimals}f}}".format) + "–" + high.map(f"{{:,.{decimals}f}}".format)
        return text.where(low.notna() & high.notna(), "–")

    out = table[["customers", "value_365d", "predicted_value"]].copy()
    if "predicted_value_low" in table:
        out["predicted value, 90% interval"] = span(table["predicted_value_low"], table["predicted_value_high"], 0)
    out["new_customer_value"] = table["new_customer_value"]
    if "cac" in table:
        out[["spend", "cac", "ltv_cac"]] = table[["spend", "cac", "ltv_cac"]]
        if "ltv_cac_low" in table:
            out["LTV/CAC, 90% interval"] = span(table["ltv_cac_low"], table["ltv_cac_high"], 1)
        out["payback_months"] = table["payback_months"]
    key = "ltv_cac" if "ltv_cac" in out and out["ltv_cac"].notna().any() else "predicted_value"
    return out.sort_values(key, ascending=False, kind="stable")


def cohort_table(cohorts: pd.DataFrame) -> pd.DataFrame:
    """:func:`channel_report`'s per-cohort table as the appendix shows it: the value curves, the
    predicted value and, with costs, CAC, LTV/CAC and payback (the intervals stay in the file)."""
    keep = ["customers", *[f"value_{n}d" for n in VALUE_DAYS], "predicted_value", "cac", "ltv_cac", "payback_months"]
    return cohorts[[c for c in keep if c in cohorts]]
