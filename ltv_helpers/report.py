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
    next notebook finds them. Parameters a notebook does not declare are not passed to it.

    Credentials never go in ``parameters`` (papermill records them in the output): a parameter
    carrying one (a password in a URL, ``password=``/``token=``...) is refused before anything is
    written. Secrets come from environment variables (``LTV_DB_PASSWORD``).
    """
    import papermill

    from ltv_helpers.data import refuse_credentials

    for key, value in (parameters or {}).items():
        refuse_credentials(value, f"parameter {key}")
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


#: Environment variables: the pseudonym key (all clients), and the folder of per-client keys.
PSEUDONYM_KEY_ENV = "LTV_PSEUDONYM_KEY"
KEY_DIR_ENV = "LTV_KEY_DIR"


def pseudonym_key_dir() -> Path:
    """Folder of the per-client pseudonym keys: ``$LTV_KEY_DIR``, else
    ``$XDG_DATA_HOME/ltv-toolkit/pseudonym-keys`` (``~/.local/share/ltv-toolkit/pseudonym-keys``).
    It is outside every report folder, so a key never travels with a client's report."""
    import os

    if os.environ.get(KEY_DIR_ENV):
        return Path(os.environ[KEY_DIR_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "ltv-toolkit" / "pseudonym-keys"


def pseudonym_key(client: str) -> bytes:
    """The client's secret pseudonym key: ``LTV_PSEUDONYM_KEY`` when set, else a random 256-bit key
    made on first use and kept in :func:`pseudonym_key_dir` (file readable by its owner only)."""
    import hashlib
    import os
    import re
    import secrets

    if os.environ.get(PSEUDONYM_KEY_ENV):
        return os.environ[PSEUDONYM_KEY_ENV].encode("utf-8")
    if not client:
        raise LTVError("Pseudonyms need a client name (for its key) or the LTV_PSEUDONYM_KEY environment variable.")
    # A readable file name, plus a hash of the exact name so "a/b" and "a_b" get different keys.
    safe = re.sub(r"[^\w.-]+", "_", client).strip("._")[:60] or "client"
    path = pseudonym_key_dir() / f"{safe}-{hashlib.sha256(client.encode('utf-8')).hexdigest()[:8]}.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    try:  # made once, atomically: a second run (or a parallel worker) reads the same key
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32) + "\n")
    key = path.read_text(encoding="utf-8").strip()
    if not key:
        raise LTVError(f"The pseudonym key file {path} is empty; delete it to make a new key.")
    return key.encode("utf-8")


def pseudonymize(ids, key: str | bytes | None = None, *, client: str | None = None) -> pd.Series:
    """Stable pseudonyms for customer ids in client-facing reports.

    ``C-`` + the first 12 hex digits of HMAC-SHA256(key, id). The key is ``key`` when given, else
    :func:`pseudonym_key` of ``client`` (``LTV_PSEUDONYM_KEY``, or the client's random key kept
    outside the report folder). Without the key a pseudonym cannot be traced back by trying ids;
    with the same key the same customer keeps the same pseudonym across runs.

    >>> pseudonymize(["00042"], "secret").iloc[0]
    'C-50865458626e'
    """
    import hashlib
    import hmac

    if key is None:
        key = pseudonym_key(client or "")
    secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not secret:
        raise LTVError("The pseudonym key is empty; set LTV_PSEUDONYM_KEY to a secret or pass client=.")
    values = pd.Series(ids).astype(str)
    return values.map(lambda v: "C-" + hmac.new(secret, v.encode("utf-8"), hashlib.sha256).hexdigest()[:12])
