"""Closed-form LTV arithmetic (simple, net, margin, discounted, LTV/CAC), vectorized over scalars, arrays and Series.

Every function accepts numbers, numpy arrays or pandas Series (broadcast together) and returns
the same kind: a float for scalars, an array for arrays, a Series for Series.
"""

from __future__ import annotations

import numpy as np

from ltv_helpers.schema import LTVError


def _arr(value, name: str):
    arr = np.asarray(value, dtype="float64")
    if np.isnan(arr).any():
        raise LTVError(f"{name} contains missing values.")
    return arr


def _out(result, *inputs):
    """Return a Series when any input was one, a float for scalars, else the array."""
    for value in inputs:
        if hasattr(value, "index") and hasattr(value, "name"):
            return type(value)(np.asarray(result, dtype="float64"), index=value.index)
    result = np.asarray(result, dtype="float64")
    return float(result) if result.ndim == 0 else result


def _check(cond, message: str):
    if np.any(~np.asarray(cond)):
        raise LTVError(message)


def simple_ltv(aov, frequency, lifespan):
    """Simple LTV = average order value x purchase frequency x lifespan.

    ``frequency`` is orders per period and ``lifespan`` the number of periods, in the same unit.

    >>> simple_ltv(500, 4, 3)   # 500 per order, 4 orders a year, 3 years
    6000.0
    """
    a, f, s = _arr(aov, "aov"), _arr(frequency, "frequency"), _arr(lifespan, "lifespan")
    _check(a >= 0, "aov must not be negative.")
    _check(f >= 0, "frequency must not be negative.")
    _check(s >= 0, "lifespan must not be negative.")
    return _out(a * f * s, aov, frequency, lifespan)


def net_ltv(aov, frequency, lifespan, *, acquisition_cost=0.0, retention_cost=0.0):
    """LTV net of cost = AOV x frequency x lifespan - acquisition cost - retention cost x lifespan.

    ``retention_cost`` is the cost of keeping the customer per period.

    >>> net_ltv(500, 4, 3, acquisition_cost=800, retention_cost=100)   # 6000 - 800 - 300
    4900.0
    """
    cac, ret = _arr(acquisition_cost, "acquisition_cost"), _arr(retention_cost, "retention_cost")
    _check(cac >= 0, "acquisition_cost must not be negative.")
    _check(ret >= 0, "retention_cost must not be negative.")
    gross = np.asarray(simple_ltv(aov, frequency, lifespan))
    return _out(gross - cac - ret * _arr(lifespan, "lifespan"), aov, frequency, lifespan,
                acquisition_cost, retention_cost)


def margin_ltv(aov, frequency, lifespan, gross_margin):
    """LTV on margin = AOV x frequency x lifespan x gross margin (margin as a share, 0..1).

    >>> margin_ltv(500, 4, 3, 0.4)
    2400.0
    """
    m = _arr(gross_margin, "gross_margin")
    _check((m >= 0) & (m <= 1), "gross_margin must be a share between 0 and 1.")
    return _out(np.asarray(simple_ltv(aov, frequency, lifespan)) * m, aov, frequency, lifespan,
                gross_margin)


def _check_rates(retention, discount):
    r, d = _arr(retention, "retention"), _arr(discount, "discount")
    _check((r >= 0) & (r < 1), "retention must be in [0, 1): a share of customers kept per period.")
    _check(d >= 0, "discount must not be negative.")
    return r, d


def discounted_ltv(margin, retention, discount, periods):
    """Finite-horizon LTV: the sum of discounted, survival-weighted margins.

    LTV = sum over t = 1..periods of margin x retention^t / (1 + discount)^t, where ``margin``
    is the margin a customer brings per period while active, ``retention`` the share kept from
    one period to the next and ``discount`` the discount rate per period. As ``periods`` grows
    it tends to :func:`infinite_horizon_ltv`.

    >>> round(discounted_ltv(100, 0.8, 0.1, 3), 2)   # 100 (.8/1.1 + .64/1.21 + .512/1.331)
    163.99
    """
    m = _arr(margin, "margin")
    r, d = _check_rates(retention, discount)
    n = _arr(periods, "periods")
    _check((n >= 0) & (n == np.floor(n)), "periods must be a whole number of periods, 0 or more.")
    x = r / (1.0 + d)
    # Geometric series: sum_{t=1..n} x^t = x (1 - x^n) / (1 - x); x < 1 always here.
    total = m * x * (1.0 - x**n) / (1.0 - x)
    return _out(total, margin, retention, discount, periods)


def infinite_horizon_ltv(margin, retention, discount):
    """Infinite-horizon LTV = m x r / (1 + d - r).

    ``m`` margin per period, ``r`` retention per period (in [0, 1)), ``d`` discount rate per
    period.

    >>> infinite_horizon_ltv(100, 0.8, 0.1)   # 100 x .8 / .3
    266.6666666666667
    """
    m = _arr(margin, "margin")
    r, d = _check_rates(retention, discount)
    return _out(m * r / (1.0 + d - r), margin, retention, discount)


def ltv_cac_ratio(ltv, cac):
    """LTV / CAC; the usual health bar is 3 (three times the cost of winning the customer).

    >>> ltv_cac_ratio(6000, 2000)
    3.0
    """
    c = _arr(cac, "cac")
    _check(c > 0, "cac must be greater than zero.")
    return _out(_arr(ltv, "ltv") / c, ltv, cac)


def cac_payback_months(cac, monthly_margin):
    """Months of margin needed to earn back the acquisition cost = CAC / margin per month.

    >>> cac_payback_months(1200, 100)
    12.0
    """
    c, m = _arr(cac, "cac"), _arr(monthly_margin, "monthly_margin")
    _check(c > 0, "cac must be greater than zero.")
    _check(m > 0, "monthly_margin must be greater than zero: without margin CAC is never paid back.")
    return _out(c / m, cac, monthly_margin)


def retained_payback_months(cac, monthly_margin, monthly_retention, monthly_discount=0.0):
    """Payback that counts only the customers still there and discounts later months: the months
    ``n`` until ``sum_{k=1..n} margin x (retention / (1 + discount))^(k-1)`` reaches CAC (the
    first month's margin counted in full, as :func:`cac_payback_months` counts every month), as a
    fractional month; ``inf`` when the expected margin never adds up to CAC.

    With q = retention / (1 + discount) < 1 the sum is m (1 - q^n) / (1 - q), so
    n = log(1 - CAC (1 - q) / m) / log(q).

    >>> retained_payback_months(300, 50, 1.0)   # nobody leaves, no discounting: CAC / margin
    6.0
    >>> round(retained_payback_months(300, 50, 0.96, 0.008), 1)
    6.9
    """
    c, m = _arr(cac, "cac"), _arr(monthly_margin, "monthly_margin")
    r, d = _arr(monthly_retention, "monthly_retention"), _arr(monthly_discount, "monthly_discount")
    _check(c > 0, "cac must be greater than zero.")
    _check(m > 0, "monthly_margin must be greater than zero: without margin CAC is never paid back.")
    _check((r >= 0) & (r <= 1), "monthly_retention must be in [0, 1]: a share of customers kept per month.")
    _check(d >= 0, "monthly_discount must not be negative.")
    q = r / (1 + d)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = c * (1 - q) / m  # the part of the infinite sum's reach that CAC needs
        later = np.log1p(-np.minimum(share, 1)) / np.log(np.where(q > 0, q, 0.5))
        n = np.where(q >= 1, c / m, np.where(share >= 1, np.inf, later))
        n = np.where(q == 0, np.where(c <= m, c / m, np.inf), n)  # nobody stays: only the first month counts
    return _out(n, cac, monthly_margin, monthly_retention, monthly_discount)
