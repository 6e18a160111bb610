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
    Chinese text), formula cells neutralised (:func:`neutralise_formulas`), written atomically."""
    with atomic_path(path) as part:
        neutralise_formulas(frame).to_csv(part, encoding="utf-8-sig", **kwargs)
    return Path(path)
