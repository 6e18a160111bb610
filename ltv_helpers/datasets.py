"""Bundled real data (CDNOW and the donations, from the files lifetimes ships) and seeded synthetic worlds."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd

from ltv_helpers.schema import AMOUNT, CUSTOMER_ID, ORDER_DATE, QUANTITY, LTVError


def lifetimes_data_file(name: str) -> Path:
    """Path of a data file shipped inside the installed ``lifetimes`` package.

    ``import lifetimes.datasets`` needs ``pkg_resources`` (gone in setuptools 82+), so the file
    is located from the package's import spec instead, without importing that module.
    """
    spec = importlib.util.find_spec("lifetimes")
    if spec is None or not spec.submodule_search_locations:
        raise LTVError("The lifetimes package is not installed; run `make setup` to install it.")
    path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / name
    if not path.is_file():
        raise LTVError(f"lifetimes does not ship {name!r}; reinstall lifetimes==0.11.3.")
    return path


def load_cdnow(sample: bool = False) -> pd.DataFrame:
    """The real CDNOW transactions (first purchases in Q1 1997, observed to 30 June 1998).

    ``sample=False`` reads ``CDNOW_master.txt`` (23,570 customers, 69,659 rows);
    ``sample=True`` reads ``CDNOW_sample.txt``, the 1-in-10 sample of 2,357 customers used in
    the BG/NBD paper, with the sample's own customer ids (the ``ID`` of lifetimes'
    ``cdnow_customers_summary.csv``).

    Returns the canonical schema: ``customer_id`` (string, as in the file), ``order_date``
    (datetime64), ``amount`` (float, US dollars) plus ``quantity`` (number of CDs).

    >>> load_cdnow(sample=True).shape
    (6919, 4)
    """
    if sample:
        names = ["master_id", CUSTOMER_ID, ORDER_DATE, QUANTITY, AMOUNT]
        path = lifetimes_data_file("CDNOW_sample.txt")
        raw = pd.read_csv(path, sep=r"\s+", header=None, names=names, dtype=str)
    else:
        names = [CUSTOMER_ID, ORDER_DATE, QUANTITY, AMOUNT]
        path = lifetimes_data_file("CDNOW_master.txt")
        raw = pd.read_csv(path, sep=r"\s+", header=None, names=names, skiprows=1, dtype=str)
    return pd.DataFrame(
        {
            CUSTOMER_ID: raw[CUSTOMER_ID].astype("str"),
            ORDER_DATE: pd.to_datetime(raw[ORDER_DATE], format="%Y%m%d"),
            AMOUNT: raw[AMOUNT].astype("float64"),
            QUANTITY: raw[QUANTITY].astype("int64"),
        }
    )


def load_donations() -> pd.DataFrame:
    """The donations data of Fader, Hardie and Shang (2010) that lifetimes ships, as a BG/BB
    summary: 11,104 donors of 1995 and the 6 yearly opportunities after it, one row per history
    (22 rows): ``frequency`` (years with a donation), ``recency`` (the last such year), ``n`` (6)
    and ``customers`` (the donors with that history). Fit with ``fit(summary, model="bgbb")``."""
    raw = pd.read_csv(lifetimes_data_file("donations.csv"))
    out = pd.DataFrame({"frequency": raw["frequency"].astype("int64"), "recency": raw["recency"].astype("int64"),
                        "n": raw["periods"].astype("int64"), "customers": raw["weights"].astype("int64")})
    out.attrs["unit_days"] = 365.25  # an opportunity a year
    return out


def synthetic_transactions(
    n_customers: int,
    *,
    seed: int,
    r: float = 0.75,
    alpha: float = 10.0,
    a: float = 0.6,
    b: float = 6.0,
    p: float = 6.25,
    q: float = 3.74,
    gamma: float = 15.44,
    start: str = "2023-01-01",
    acquisition_days: int = 365,
    observation_days: int = 730,
    dirty: float = 0.0,
) -> pd.DataFrame:
    """Transactions simulated from a BG/NBD purchase process with Gamma-Gamma spend.

    Time is in days. Each customer makes a first purchase at a uniform time within the first
    ``acquisition_days`` after ``start``; repeat purchases follow a Poisson process with rate
    ``lambda ~ Gamma(r, scale=1/alpha)`` per day; after each repeat purchase the customer drops out
    with probability ``p_drop ~ Beta(a, b)`` (BG/NBD: no dropout at the first purchase). Every
    purchase's amount is ``Gamma(p, scale=1/nu)`` with ``nu ~ Gamma(q, scale=1/gamma)``
    (Gamma-Gamma). Observation ends ``observation_days`` after ``start``. The parameters passed are
    the truth a fit should recover (in days); they are also kept in ``df.attrs["true_params"]``.

    ``dirty`` > 0 adds that share of dirty rows (in equal parts: exact duplicates, refunds of a
    same-day purchase, blank customer ids, unparseable dates, non-numeric amounts); the date and
    amount columns then hold strings, as a raw export would.

    Vectorized: 1M customers (about 20M rows with the defaults) take a few seconds.

    >>> df = synthetic_transactions(1000, seed=1)
    >>> sorted(df.columns)
    ['amount', 'customer_id', 'order_date']
    """
    if n_customers < 1:
        raise LTVError(f"n_customers must be at least 1, got {n_customers}.")
    if not 0 <= dirty < 1:
        raise LTVError(f"dirty must be a share in [0, 1), got {dirty}.")
    if observation_days <= acquisition_days:
        raise LTVError("observation_days must be longer than acquisition_days.")
    rng = np.random.default_rng(seed)
    n = int(n_customers)
    first = rng.uniform(0.0, acquisition_days, n)
    window = observation_days - first
    lam = rng.gamma(r, 1.0 / alpha, n)
    p_drop = rng.beta(a, b, n)
    # Repeat purchases a customer makes before dropping out (>= 1: dropout follows a purchase)
    # and the Poisson arrivals the window allows; the customer shows the smaller of the two.
    lifetime_purchases = rng.geometric(np.clip(p_drop, 1e-12, 1.0))
    arrivals = rng.poisson(lam * window)
    repeats = np.minimum(lifetime_purchases, arrivals)
    # The first m of n uniform order statistics on (0, window): cumulated exponential spacings
    # divided by the sum of all n + 1 spacings (the unseen rest drawn as one gamma variate).
    total = int(repeats.sum())
    owner = np.repeat(np.arange(n), repeats)
    spacings = rng.exponential(1.0, total)
    csum = np.cumsum(spacings)
    starts = np.concatenate(([0], np.cumsum(repeats)[:-1]))
    offset = np.concatenate(([0.0], csum))[starts]
    within = csum - np.repeat(offset, repeats)
    seen_sum = np.zeros(n)
    has = repeats > 0
    seen_sum[has] = within[np.cumsum(repeats)[has] - 1]
    rest = rng.gamma(np.maximum(arrivals - repeats + 1, 1), 1.0)
    times = first[owner] + window[owner] * within / (seen_sum + rest)[owner]

    # Rows grouped by customer, first purchase then repeats in time order: no sort needed.
    rows = 1 + repeats
    row_start = np.concatenate(([0], np.cumsum(rows)[:-1]))
    cust = np.repeat(np.arange(n), rows)
    when = np.empty(cust.size)
    is_first = np.zeros(cust.size, dtype=bool)
    is_first[row_start] = True
    when[is_first] = first
    when[~is_first] = times
    nu = rng.gamma(q, 1.0 / gamma, n)
    spend = rng.gamma(p, 1.0, cust.size) / nu[cust]
    ids = "C" + pd.Series(np.arange(n)).astype("str").str.zfill(len(str(n - 1)))
    seconds = np.floor(when * 86400).astype("int64").astype("timedelta64[s]")
    df = pd.DataFrame(
        {
            CUSTOMER_ID: ids.take(cust).reset_index(drop=True),
            ORDER_DATE: (np.datetime64(pd.Timestamp(start).date(), "s") + seconds).astype("datetime64[us]"),
            AMOUNT: np.round(spend, 2),
        }
    )
    if dirty > 0:
        df = _add_dirty_rows(df, dirty, rng)
    df.attrs["true_params"] = {
        "r": r, "alpha": alpha, "a": a, "b": b, "p": p, "q": q, "gamma": gamma,
        "time_unit": "days", "observation_end": str(pd.Timestamp(start) + pd.Timedelta(days=observation_days)),
    }
    return df


#: Three acquisition channels of known quality (BG/NBD purchase and dropout parameters, in days):
#: "store" customers buy most often and stay longest, "tmall" buy as often with more dropout,
#: "ads" buy least.
CHANNEL_QUALITY = {"store": {"alpha": 6.0, "a": 0.6, "b": 6.0}, "tmall": {"alpha": 6.0, "a": 1.0, "b": 3.0},
                   "ads": {"alpha": 20.0, "a": 1.0, "b": 3.0}}


def synthetic_channels(n_per_channel: int = 3_000, *, seed: int = 40, costs_per_customer: float | None = 40.0):
    """A world of three acquisition channels of known quality (:data:`CHANNEL_QUALITY`): order
    lines with a ``channel`` column (ids ``<channel>-<n>``; one later order in seven is made in an
    "app" channel, so only the first order tells the acquisition channel), and the acquisition-cost
    table that goes with it (channel, month, spend, new_customers; ``costs_per_customer`` per new
    customer, None: no table). Returns (transactions, costs)."""
    parts = []
    for i, (channel, params) in enumerate(CHANNEL_QUALITY.items()):
        tx = synthetic_transactions(n_per_channel, seed=seed + i, **params)
        tx[CUSTOMER_ID] = channel + "-" + tx[CUSTOMER_ID].astype(str)
        tx["channel"] = channel
        parts.append(tx)
    tx = pd.concat(parts, ignore_index=True)
    later = tx.groupby(CUSTOMER_ID).cumcount() > 0
    tx.loc[later & (tx.index % 7 == 0), "channel"] = "app"
    if costs_per_customer is None:
        return tx, None
    first = tx.sort_values(ORDER_DATE, kind="stable").drop_duplicates(CUSTOMER_ID)
    costs = (first.assign(month=first[ORDER_DATE].dt.to_period("M").astype(str))
             .groupby(["channel", "month"]).size().rename("new_customers").reset_index())
    costs["spend"] = costs_per_customer * costs["new_customers"]
    return tx, costs


def synthetic_opportunities(n_customers: int, *, opportunities: int, seed: int, alpha: float = 1.2,
                            beta: float = 0.75, gamma: float = 0.66, delta: float = 2.8,
                            unit_days: float = 7.0) -> pd.DataFrame:
    """A BG/BB world (Fader, Hardie and Shang 2010): each customer buys at each of ``opportunities``
    opportunities with a probability p ~ Beta(alpha, beta) while alive, and dies before each with a
    probability theta ~ Beta(gamma, delta) (defaults: near the donations fit). One row per customer:
    ``frequency``, ``recency`` (the last opportunity with a purchase, 0 without) and ``n``; the
    parameters in ``attrs["true_params"]``, the days an opportunity lasts in ``attrs["unit_days"]``
    (default a week)."""
    rng = np.random.default_rng(seed)
    p = rng.beta(alpha, beta, n_customers)
    theta = rng.beta(gamma, delta, n_customers)
    # Alive at opportunity k (1..n) when the first death comes after it: alive for min(n, Geometric - 1).
    alive_for = np.minimum(rng.geometric(theta) - 1, opportunities)
    buys = rng.random((n_customers, opportunities)) < p[:, None]
    buys &= np.arange(1, opportunities + 1)[None, :] <= alive_for[:, None]
    frequency = buys.sum(axis=1)
    last = np.where(frequency > 0, opportunities - np.argmax(buys[:, ::-1], axis=1), 0)
    out = pd.DataFrame({"frequency": frequency.astype("int64"), "recency": last.astype("int64"),
                        "n": np.full(n_customers, opportunities, dtype="int64")},
                       index=pd.Index([f"C{i:07d}" for i in range(n_customers)], name="customer_id"))
    out.attrs["true_params"] = {"alpha": alpha, "beta": beta, "gamma": gamma, "delta": delta}
    out.attrs["unit_days"] = float(unit_days)
    return out


def synthetic_subscriptions(
    n_customers: int,
    *,
    seed: int,
    alpha: float = 0.7,
    beta: float = 1.2,
    cohorts: int = 12,
    months: int = 24,
    price: float = 29.9,
    start: str = "2023-01-01",
) -> pd.DataFrame:
    """Monthly subscription payments simulated from the sBG model (Fader and Hardie 2007).

    Each customer joins in one of the first ``cohorts`` months after ``start`` (uniformly), pays
    ``price`` on the same day of every month while subscribed, and after each payment leaves with
    probability ``theta ~ Beta(alpha, beta)`` of their own. Observation ends ``months`` months after
    ``start``. The parameters are the truth a fit of :func:`ltv_helpers.models.fit_sbg` to
    :func:`ltv_helpers.data.retention_table` should recover (``df.attrs["true_params"]``).

    >>> tx = synthetic_subscriptions(100, seed=1)
    >>> sorted(tx.columns)
    ['amount', 'customer_id', 'order_date']
    """
    if n_customers < 1 or cohorts < 1 or months <= cohorts:
        raise LTVError("synthetic_subscriptions needs customers, and more months than cohorts.")
    rng = np.random.default_rng(seed)
    cohort = rng.integers(0, cohorts, n_customers)
    day = rng.integers(0, 28, n_customers)
    theta = rng.beta(alpha, beta, n_customers)
    payments = np.minimum(rng.geometric(np.clip(theta, 1e-12, 1.0)), months - cohort)
    cust = np.repeat(np.arange(n_customers), payments)
    k = np.arange(cust.size) - np.repeat(np.cumsum(payments) - payments, payments)  # payment number
    month = (pd.Timestamp(start).to_period("M") + 0).ordinal + cohort[cust] + k
    dates = pd.PeriodIndex.from_ordinals(month, freq="M").to_timestamp() + pd.to_timedelta(day[cust], unit="D")
    ids = "S" + pd.Series(np.arange(n_customers)).astype("str").str.zfill(len(str(n_customers - 1)))
    df = pd.DataFrame({CUSTOMER_ID: ids.take(cust).reset_index(drop=True), ORDER_DATE: dates.to_numpy(),
                       AMOUNT: float(price)})
    df.attrs["true_params"] = {"alpha": alpha, "beta": beta, "period": "M",
                               "observation_end": str((pd.Timestamp(start) + pd.DateOffset(months=months)
                                                       - pd.Timedelta(days=1)).date())}
    return df


def _add_dirty_rows(df: pd.DataFrame, share: float, rng: np.random.Generator) -> pd.DataFrame:
    """Append the dirty rows a real export has; dates and amounts become strings."""
    k = max(1, int(len(df) * share / 5))
    pick = lambda: df.iloc[rng.integers(0, len(df), k)].copy()  # noqa: E731
    dupes = pick()
    refunds = pick()
    refunds[AMOUNT] = -np.round(refunds[AMOUNT] * rng.uniform(0.1, 1.0, k), 2)
    blank_ids = pick()
    blank_ids[CUSTOMER_ID] = rng.choice(["", " ", None], k)
    out = pd.concat([df, dupes, refunds, blank_ids], ignore_index=True)
    out[ORDER_DATE] = out[ORDER_DATE].dt.strftime("%Y-%m-%d %H:%M:%S").astype(object)
    out[AMOUNT] = out[AMOUNT].map("{:.2f}".format).astype(object)
    bad_dates = pick()
    bad_dates[ORDER_DATE] = rng.choice(["not a date", "2024-13-45", "??"], k)
    bad_dates[AMOUNT] = bad_dates[AMOUNT].map("{:.2f}".format)
    bad_amounts = pick()
    bad_amounts[ORDER_DATE] = bad_amounts[ORDER_DATE].dt.strftime("%Y-%m-%d %H:%M:%S")
    bad_amounts[AMOUNT] = rng.choice(["n/a", "abc", "--"], k)
    out = pd.concat([out, bad_dates, bad_amounts], ignore_index=True)
    return out.iloc[rng.permutation(len(out))].reset_index(drop=True)
