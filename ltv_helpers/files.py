"""Writing files so that a fault never leaves a complete-looking wrong one: every output is
written to a temporary name in its folder and renamed into place only once it is whole, and a
write that fails (a full disk, a read-only folder) is one sentence naming the file.

CSV files meant for a CRM or a spreadsheet also have their formula cells neutralised
(:func:`neutralise_formulas`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
from pathlib import Path

from ltv_helpers.schema import LTVError

#: Leading characters that make Excel, LibreOffice or Google Sheets read a cell as a formula
#: (OWASP, "CSV Injection"); such text cells get a leading apostrophe.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def write_error(path, err: OSError) -> LTVError:
    """One sentence for a failed write of ``path``."""
    path = Path(path)
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        why = "the disk is full; free some space and run again"
    elif err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        why = "the folder cannot be written to; choose another --output or fix its permissions"
    else:
        why = err.strerror or type(err).__name__
    return LTVError(f"Could not write {path.name} in {path.parent}: {why}.")


@contextlib.contextmanager
def atomic_path(path):
    """A temporary path beside ``path`` to write to (its folder is made if missing); renamed onto
    ``path`` when the block ends without an error, removed otherwise. An ``OSError`` writing it
    becomes one sentence (:func:`write_error`).

    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> with atomic_path(folder / "a.txt") as part:
    ...     _ = part.write_text("whole")
    >>> [p.name for p in folder.iterdir()], (folder / "a.txt").read_text()
    (['a.txt'], 'whole')
    """
    path = Path(path)
    part = path.with_name(f".{path.name}.{os.getpid()}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield part
        with open(part, "rb+") as fh:  # on the disk before it counts
            os.fsync(fh.fileno())
        os.replace(part, path)
    except OSError as err:
        # Only a failure to write this file is a write error; another (a program that cannot
        # start, a source that cannot be read) keeps its own message.
        if err.filename not in (None, str(part), str(path), str(path.parent)):
            raise
        raise write_error(path, err) from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            part.unlink()


def write_text(path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_path(path) as part:
        part.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path, value) -> Path:
    """Write ``value`` as indented JSON (non-ASCII kept, dates as text) to ``path`` atomically."""
    return write_text(path, json.dumps(value, ensure_ascii=False, indent=2, default=str) + "\n")


def write_parquet(frame, path, **kwargs) -> Path:
    """``frame.to_parquet(path, **kwargs)``, atomically."""
    with atomic_path(path) as part:
        frame.to_parquet(part, **kwargs)
    return Path(path)


def neutralise_formulas(frame):
    """A copy of ``frame`` in which every text cell (and text index label) that a spreadsheet
    would read as a formula, one starting with ``= + - @``, a tab or a carriage return, starts
    with an apostrophe instead (``=HYPERLINK(...)`` becomes ``'=HYPERLINK(...)``), as OWASP
    advises; so does a text id such as ``+8613800138000``. Numbers stay numbers, also when a
    text column holds some.

    >>> import pandas as pd
    >>> neutralise_formulas(pd.DataFrame({"id": ["=1+1", "a-1"], "n": [-1, 2]}))["id"].tolist()
    ["'=1+1", 'a-1']
    """
    import pandas as pd

    def fix(values):
        text = values.astype("string")
        risky = text.str.startswith(FORMULA_START).fillna(False).astype(bool)
        if risky.any() and values.dtype == object:  # a number kept in a text column (-5) is a number
            risky[risky] = values[risky].map(lambda v: isinstance(v, str)).astype(bool)
        return values.where(~risky, "'" + text) if risky.any() else values

    out = frame.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.CategoricalDtype):
            out[col] = fix(out[col].astype("object"))
        elif pd.api.types.is_object_dtype(out[col]) or pd.api.types.is_string_dtype(out[col]):
            out[col] = fix(out[col])
    names = list(out.index.names)
    if isinstance(out.index, pd.MultiIndex) or not pd.api.types.is_numeric_dtype(out.index):
        levels = [out.index.get_level_values(i) for i in range(out.index.nlevels)]
        arrays = [level if pd.api.types.is_numeric_dtype(level)
                  else fix(pd.Series(level, dtype="object")).to_numpy() for level in levels]
        out.index = (pd.MultiIndex.from_arrays(arrays, names=names) if len(arrays) > 1
                     else pd.Index(arrays[0], name=names[0]))
    return out


def write_csv(frame, path, **kwargs) -> Path:
    """``frame`` as CSV for a CRM or a spreadsheet (UTF-8 with a byte-order mark, so Excel reads
    Chinese text), formula cells neutralised (:func:`neutralise_formulas`), written atomically.

    A frame of text and whole numbers only (a customer-to-segment list) is written by DuckDB,
    4.6 times faster than pandas (1.3 s for 1M customers' segments): the same bytes, except that
    DuckDB quotes a cell that is empty text (``""``, where a missing one stays empty), holds a
    carriage return, or holds ``#``, which pandas leaves bare. Other frames (floats, dates), or
    ``kwargs`` for pandas, go through pandas' ``to_csv``."""
    safe = neutralise_formulas(frame)
    with atomic_path(path) as part:
        if kwargs or not _text_and_integers(safe):
            safe.to_csv(part, encoding="utf-8-sig", **kwargs)
        else:
            _duckdb_csv(safe, part)
    return Path(path)


def _text_and_integers(frame) -> bool:
    """Whether every column and the index of ``frame`` (one level, named) is text or whole numbers
    (numpy integers; text columns all strings, missing cells aside): what DuckDB writes as pandas does."""
    import pandas as pd

    if isinstance(frame.index, pd.MultiIndex) or frame.index.name is None or frame.index.name in frame.columns:
        return False
    for values in (frame.index, *(frame[c] for c in frame.columns)):
        dtype = values.dtype
        if pd.api.types.is_integer_dtype(dtype) and not pd.api.types.is_extension_array_dtype(dtype):
            continue
        if pd.api.types.is_string_dtype(dtype) and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            continue
        return False
    return not frame.columns.duplicated().any() and all(isinstance(c, str) for c in frame.columns)


def _duckdb_csv(frame, part: Path) -> None:
    """``frame`` (index first) as CSV with a byte-order mark in ``part``: DuckDB writes the rows to
    a second temporary file beside it, copied in after the mark. A failed write is an ``OSError``."""
    import shutil

    import duckdb

    from ltv_helpers.data.engines import connect

    rows = part.with_name(part.name + ".rows")
    try:
        con = connect()
        try:
            con.register("frame_rows", frame.reset_index())
            target = str(rows).replace("'", "''")
            con.execute(f"COPY frame_rows TO '{target}' (HEADER, DELIMITER ',', QUOTE '\"')")
        except duckdb.IOException as err:
            full = "no space left" in str(err).lower() or "disk quota" in str(err).lower()
            raise OSError(errno.ENOSPC if full else errno.EIO, str(err).splitlines()[0], str(part)) from None
        finally:
            con.close()
        with open(part, "wb") as out, open(rows, "rb") as src:
            out.write(b"\xef\xbb\xbf")
            shutil.copyfileobj(src, out, 1 << 20)
    finally:
        with contextlib.suppress(FileNotFoundError):
            rows.unlink()
