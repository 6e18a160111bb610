import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# Pseudonym keys made by tests (and by the notebooks nbval runs) go to a throw-away folder,
# not the user's ~/.local/share.
os.environ["LTV_KEY_DIR"] = tempfile.mkdtemp(prefix="ltv-test-keys-")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ltv_helpers.datasets import load_cdnow  # noqa: E402


@pytest.fixture(scope="session")
def cdnow():
    return load_cdnow()


@pytest.fixture(scope="session")
def cdnow_sample():
    return load_cdnow(sample=True)


@pytest.fixture
def tiny():
    """Hand-checkable transactions: a buys 3 days (two rows on day 1), b once."""
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "a", "b"],
        "order_date": pd.to_datetime(["2024-01-01", "2024-01-01 18:00", "2024-01-11",
                                      "2024-01-21", "2024-01-05"], format="mixed"),
        "amount": [10.0, 5.0, 30.0, 20.0, 8.0],
    })
