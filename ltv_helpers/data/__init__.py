"""Collection: read a client's export, map its columns, clean it with an audit trail, summarize RFM.

Data flows ``read_transactions`` -> ``clean_transactions`` -> ``rfm_summary`` /
``calibration_holdout``. Every input line ends either in an order of
``CleanResult.transactions`` or in ``CleanResult.rejected`` with a reason: lines in = kept +
rejected. One module a step:

- :mod:`~ltv_helpers.data.read`: column detection, file/database readers, credential checks;
- :mod:`~ltv_helpers.data.parse`: text, ids, dates (day/month order from the data), amounts;
- :mod:`~ltv_helpers.data.clean`: rejection reasons, order lines to orders, refunds;
- :mod:`~ltv_helpers.data.combine`: channels and the OneID id map;
- :mod:`~ltv_helpers.data.summary`: RFM and calibration/holdout summaries (DuckDB), histories;
- :mod:`~ltv_helpers.data.collection`: the collection notebook's tables and hand-over files.
"""

from ltv_helpers.data.clean import EARLIEST_DATE, REASONS, CleanResult, clean_transactions
from ltv_helpers.data.collection import (
    collection_highlights,
    collection_notes,
    data_quality,
    load_collection,
    monthly_activity,
    save_collection,
    simple_ltv_estimate,
    write_parquet,
)
from ltv_helpers.data.combine import combine_sources
from ltv_helpers.data.parse import YEAR_PIVOT, date_order, parse_dates
from ltv_helpers.data.read import (
    COLUMN_CANDIDATES,
    DEFAULT_DRIVERS,
    detect_columns,
    read_transactions,
    refuse_credentials,
)
from ltv_helpers.data.summary import calibration_holdout, customer_history, retention_table, rfm_summary

__all__ = [
    "COLUMN_CANDIDATES", "DEFAULT_DRIVERS", "EARLIEST_DATE", "REASONS", "YEAR_PIVOT", "CleanResult",
    "calibration_holdout", "clean_transactions", "collection_highlights", "collection_notes", "combine_sources",
    "customer_history", "data_quality", "date_order", "detect_columns", "load_collection",
    "monthly_activity", "parse_dates", "read_transactions", "refuse_credentials", "retention_table", "rfm_summary",
    "save_collection", "simple_ltv_estimate", "write_parquet",
]
