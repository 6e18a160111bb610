"""Papermill runs of the notebooks and their HTML export for clients."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ltv_helpers.schema import LTVError

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
#: The notebooks of a client report, in the order data flows through them.
PIPELINE = ("01_collection", "02_segmentation", "03_prediction", "04_evaluation")
#: Cell tags removed from client HTML: set-up code and the parameters papermill records.
HIDDEN_TAGS = {"setup", "parameters", "injected-parameters"}


def run_notebook(name: str, output_dir, parameters: dict | None = None, *, html: bool = True) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with papermill into ``output_dir``; returns the HTML path
    (or the executed notebook's path with ``html=False``).

    The executed notebook runs with ``output_dir`` as its parameter of the same name (and as
    ``input_dir`` unless given), so its Parquet outputs land beside the rendered report and the
    next notebook finds them. Parameters a notebook does not declare are not passed to it. Credentials never go in ``parameters``
    (papermill records them in the output): they come from environment variables.
    """
    import papermill

    source = NOTEBOOKS_DIR / f"{name}.ipynb"
    if not source.is_file():
        raise LTVError(f"No notebook {name!r} in {NOTEBOOKS_DIR}; the notebooks are: "
                       f"{', '.join(p.stem for p in sorted(NOTEBOOKS_DIR.glob('*.ipynb')))}.")
    output_dir = Path(output_dir).resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    declared = papermill.inspect_notebook(str(source))
    params = {k: v for k, v in (parameters or {}).items() if k in declared}
    params["output_dir"] = str(output_dir)
    if "input_dir" in declared:  # in a report run each notebook reads what the one before wrote
        params.setdefault("input_dir", str(output_dir))
    executed = output_dir / f"{name}.ipynb"
    papermill.execute_notebook(str(source), str(executed), parameters=params,
                               cwd=str(NOTEBOOKS_DIR), kernel_name="python3", progress_bar=False)
    return export_html(executed) if html else executed


def export_html(notebook_path) -> Path:
    """Client HTML of an executed notebook: narrative and results, no code, no set-up cells."""
    import nbformat
    from nbconvert import HTMLExporter
    from nbconvert.preprocessors import TagRemovePreprocessor

    notebook_path = Path(notebook_path)
    nb = nbformat.read(notebook_path, as_version=4)
    remover = TagRemovePreprocessor(remove_cell_tags=HIDDEN_TAGS, enabled=True)
    nb, resources = remover.preprocess(nb, {})
    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(nb, resources=resources)
    out = notebook_path.with_suffix(".html")
    out.write_text(body, encoding="utf-8")
    return out


def render_report(output_dir, parameters: dict | None = None, notebooks=PIPELINE) -> list[Path]:
    """Run the report's notebooks in order into one folder; returns the HTML pages."""
    return [run_notebook(name, output_dir, parameters) for name in notebooks]


def styled(table):
    """A table formatted for reading: shares as percentages, money and counts with separators."""
    formats = {}
    for col in table.columns:
        name = str(col).lower()
        if not pd.api.types.is_numeric_dtype(table[col]):
            continue
        if "share" in name or "占比" in name:
            formats[col] = "{:.1%}"
        elif pd.api.types.is_integer_dtype(table[col]):
            formats[col] = "{:,}"
        else:
            formats[col] = "{:,.2f}"
    return table.style.format(formats).set_properties(**{"text-align": "left"})


def pseudonymize(ids, key: str | None = None) -> pd.Series:
    """Stable pseudonyms for customer ids in client-facing reports: ``C-`` + 8 hex digits of
    SHA-256(key + id). ``key`` defaults to the ``LTV_PSEUDONYM_KEY`` environment variable; keep
    it secret and the pseudonyms cannot be traced back, reuse it and the same customer keeps the
    same pseudonym across reports."""
    import hashlib
    import os

    key = key if key is not None else os.environ.get("LTV_PSEUDONYM_KEY", "")
    values = pd.Series(ids).astype(str)
    return values.map(lambda v: "C-" + hashlib.sha256((key + "\x00" + v).encode("utf-8")).hexdigest()[:8])
