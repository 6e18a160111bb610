"""Names shared by every module: the canonical columns and the project's error type."""

CUSTOMER_ID = "customer_id"
ORDER_DATE = "order_date"
AMOUNT = "amount"
ORDER_ID = "order_id"
CHANNEL = "channel"
QUANTITY = "quantity"
#: Price of one item on an order line; with ``quantity`` it gives the line's amount.
UNIT_PRICE = "unit_price"
#: Number of source lines merged into one order (order-line exports).
LINES = "lines"

#: Columns every cleaned transaction table has, in this order.
REQUIRED_COLUMNS = (CUSTOMER_ID, ORDER_DATE, AMOUNT)
#: Columns a transaction table may also carry.
OPTIONAL_COLUMNS = (ORDER_ID, CHANNEL, QUANTITY)

#: Extra columns of a rejected-rows table.
REASON = "reason"
SOURCE_ROW = "source_row"
#: Set by the CSV reader on lines that could not be split into fields.
READ_ERROR = "read_error"
#: Set by the reader: a hash of all source columns of the row (also those the toolkit drops),
#: so "exact duplicate" means every source column equal without keeping personal fields.
ROW_KEY = "row_key"

#: RFM summary columns, lifetimes' names.
FREQUENCY = "frequency"
RECENCY = "recency"
T = "T"
MONETARY_VALUE = "monetary_value"
SUMMARY_COLUMNS = (FREQUENCY, RECENCY, T, MONETARY_VALUE)
#: In a compressed summary (one row per distinct summary row): how many customers share the row.
CUSTOMERS = "customers"
#: In a compressed summary: "purchases" rows (distinct histories) or "spend" rows (distinct spends).
PART = "part"

#: Name of the bundled data sets accepted wherever a source is expected (``ltv_helpers.datasets``
#: loads them; the flag: the sample). Here, so a report can check its source without pandas.
BUNDLED = {"cdnow": False, "cdnow_sample": True}

#: Input limits (``limits=`` raises them): a file beyond one is refused at once, in one sentence
#: naming the limit, before pandas or openpyxl spend minutes and gigabytes on it.
LIMITS = {"max_columns": 2_000, "max_line_bytes": 8 * 1024 ** 2, "max_unzipped_bytes": 4 * 1024 ** 3,
          "max_cells": 100_000_000}
#: What each limit counts (the command line's help).
LIMIT_HELP = {"max_columns": "the columns of a CSV header", "max_line_bytes": "the bytes of one CSV line",
              "max_unzipped_bytes": "an Excel workbook's size decompressed (bytes)",
              "max_cells": "the rows x columns of an Excel sheet or a Parquet file"}


class LTVError(ValueError):
    """A problem with the user's input, told in one sentence that says what to do."""
