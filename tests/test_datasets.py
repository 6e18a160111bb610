import pandas as pd

from ltv_helpers.datasets import synthetic_transactions


def test_cdnow_master_matches_published_counts(cdnow):
    assert len(cdnow) == 69_659
    assert cdnow["customer_id"].nunique() == 23_570
    assert list(cdnow.columns) == ["customer_id", "order_date", "amount", "quantity"]
    assert cdnow["order_date"].min() == pd.Timestamp("1997-01-01")
    assert cdnow["order_date"].max() == pd.Timestamp("1998-06-30")
    # Every customer's first purchase is in Q1 1997.
    assert cdnow.groupby("customer_id")["order_date"].min().max() < pd.Timestamp("1997-04-01")


def test_cdnow_sample(cdnow_sample):
    assert cdnow_sample["customer_id"].nunique() == 2_357
    assert pd.api.types.is_string_dtype(cdnow_sample["customer_id"])
    assert cdnow_sample["amount"].dtype == "float64"


def test_synthetic_is_seeded_and_plausible():
    a = synthetic_transactions(2000, seed=3)
    b = synthetic_transactions(2000, seed=3)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(synthetic_transactions(2000, seed=4))
    assert a["customer_id"].nunique() == 2000
    assert (a["amount"] > 0).all()
    end = pd.Timestamp(a.attrs["true_params"]["observation_end"])
    assert a["order_date"].max() < end
    first = a.groupby("customer_id")["order_date"].min()
    assert first.max() < pd.Timestamp("2024-01-01")  # acquisition in the first 365 days
    # Gamma-Gamma mean spend per order is p * gamma / (q - 1) in expectation.
    p, q, g = 6.25, 3.74, 15.44
    assert abs(a["amount"].mean() / (p * g / (q - 1)) - 1) < 0.15


def test_synthetic_repeat_rate_follows_the_model():
    # With no dropout (a tiny, b huge) repeat purchases in the window follow NBD:
    # E[repeats] = r / alpha * window.
    df = synthetic_transactions(20_000, seed=1, r=1.0, alpha=20.0, a=1e-3, b=1e6)
    start = pd.Timestamp("2023-01-01")
    first = (df.groupby("customer_id")["order_date"].min() - start).dt.total_seconds() / 86400
    window = 730 - first
    repeats = df.groupby("customer_id").size() - 1
    assert abs(repeats.mean() / (window * 1.0 / 20.0).mean() - 1) < 0.03


def test_synthetic_dirty_rows_are_raw_strings():
    df = synthetic_transactions(500, seed=2, dirty=0.1)
    assert df["amount"].map(type).eq(str).all()
    assert df["order_date"].isin(["not a date", "2024-13-45", "??"]).any()
    assert (df["customer_id"].isna() | df["customer_id"].astype(str).str.strip().eq("")).any()
    assert df["amount"].str.startswith("-").any()
