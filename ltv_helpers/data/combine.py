"""Several sources in one table: stacking channels and the OneID customer-id map."""

from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd

from ltv_helpers.data.read import _list
from ltv_helpers.schema import CHANNEL, CUSTOMER_ID, REQUIRED_COLUMNS, SOURCE_ROW, LTVError

def combine_sources(sources, id_map: pd.DataFrame | Mapping | None = None) -> pd.DataFrame:
    """Stack several sources into one table with a ``channel`` column and unified customer ids.

    ``sources`` is a mapping ``{channel: DataFrame}`` (or a list of DataFrames that already carry
    a ``channel`` column), each in canonical column names (the output of
    :func:`read_transactions`). ``id_map`` is the "OneID" table: a DataFrame with ``source_id``
    and ``customer_id`` columns, plus ``channel`` when the same raw id means different people in
    different channels; or a plain mapping ``{source_id: customer_id}``. Ids not in the map keep
    their own value. The raw id stays in ``source_customer_id`` for the audit trail, and
    ``source_row`` still points at the row of its own source.

    >>> web = pd.DataFrame({"customer_id": ["w1"], "order_date": ["2024-01-01"], "amount": [5]})
    >>> shop = pd.DataFrame({"customer_id": ["13800"], "order_date": ["2024-01-02"], "amount": [7]})
    >>> combine_sources({"web": web, "shop": shop}, {"w1": "13800"})["customer_id"].tolist()
    ['13800', '13800']
    """
    if isinstance(sources, Mapping):
        parts = []
        for name, frame in sources.items():
            part = frame.copy()
            part[CHANNEL] = str(name)
            parts.append(part)
    else:
        parts = [frame.copy() for frame in sources]
        if any(CHANNEL not in p for p in parts):
            raise LTVError("Pass sources as {channel_name: DataFrame} or give each a channel column.")
    if not parts:
        raise LTVError("combine_sources needs at least one source.")
    for i, part in enumerate(parts):
        missing = [c for c in REQUIRED_COLUMNS if c not in part]
        if missing:
            raise LTVError(f"Source {i + 1} has no {', '.join(missing)} column; its columns are: "
                           f"{_list(part.columns)}.")
        if SOURCE_ROW not in part:
            part[SOURCE_ROW] = np.arange(1, len(part) + 1)
        part[CUSTOMER_ID] = part[CUSTOMER_ID].astype("str").str.strip().where(part[CUSTOMER_ID].notna())
    out = pd.concat(parts, ignore_index=True)
    out["source_customer_id"] = out[CUSTOMER_ID]
    if id_map is None:
        return out
    table = _id_map_table(id_map)
    on = ["source_id", CHANNEL] if CHANNEL in table else ["source_id"]
    look = out[on[1:]].copy() if len(on) > 1 else pd.DataFrame(index=out.index)
    look["source_id"] = out[CUSTOMER_ID]
    merged = look.merge(table, on=on, how="left", validate="many_to_one")
    out[CUSTOMER_ID] = merged[CUSTOMER_ID].where(merged[CUSTOMER_ID].notna(), out[CUSTOMER_ID]).to_numpy()
    return out


def _id_map_table(id_map) -> pd.DataFrame:
    if isinstance(id_map, Mapping):
        table = pd.DataFrame({"source_id": list(id_map), CUSTOMER_ID: list(id_map.values())})
    elif isinstance(id_map, pd.DataFrame):
        missing = [c for c in ("source_id", CUSTOMER_ID) if c not in id_map]
        if missing:
            raise LTVError(f"id_map needs source_id and customer_id columns; it has: "
                           f"{_list(id_map.columns)}.")
        table = id_map[[c for c in ("source_id", CHANNEL, CUSTOMER_ID) if c in id_map]].copy()
    else:
        raise LTVError("id_map must be a DataFrame (source_id, [channel,] customer_id) or a dict.")
    for col in table.columns:
        table[col] = table[col].astype("str").str.strip()
    keys = [c for c in ("source_id", CHANNEL) if c in table]
    table = table.drop_duplicates()
    clash = table[table.duplicated(keys, keep=False)]
    if len(clash):
        first = clash.iloc[0]
        raise LTVError(f"id_map sends source id {first['source_id']!r} to more than one customer id "
                       f"({_list(clash[clash['source_id'] == first['source_id']][CUSTOMER_ID])}).")
    return table

