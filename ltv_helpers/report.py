"""Client reports: papermill runs of the notebooks into run folders, the one-page report
(``report.html`` with a summary page, contents and a footer stamp; ``report.pdf`` printed by
headless Chromium), screenshots, table formatting for clients, and customer pseudonyms."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import re
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING

from ltv_helpers.files import write_text
from ltv_helpers.schema import LTVError

if TYPE_CHECKING:  # pandas is imported where a table is made: the process running the notebooks needs none
    import pandas as pd

NOTEBOOKS_DIR = Path(__file__).resolve().parents[1] / "notebooks"
TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
#: The notebooks of a client report, in the order data flows through them.
PIPELINE = ("01_collection", "02_segmentation", "03_prediction", "04_evaluation")
#: Runs after the four stages (it quotes them all); its page opens the report.
SUMMARY_NOTEBOOK = "05_summary"
#: The sections of LTV operations, after the four stages, each only where it has something to show:
#: channels when the data have a channel column (and a forecast), the check of the last report when
#: the client's folder holds an earlier run.
CHANNELS_NOTEBOOK = "06_channels"
MONITORING_NOTEBOOK = "07_monitoring"
OPERATIONS = (CHANNELS_NOTEBOOK, MONITORING_NOTEBOOK)
#: The stages a run skips when the data allow no forecast (no repeat buyers, too little history):
#: the report then holds collection and segmentation, and says why there is no forecast.
FORECAST_NOTEBOOKS = ("03_prediction", "04_evaluation")
#: Cell tags removed from client HTML: set-up code, the parameters papermill records, and notes
#: for people running a notebook by hand (``notebook-only``).
HIDDEN_TAGS = {"setup", "parameters", "injected-parameters", "notebook-only"}
#: Narrative cells are written in both languages, tagged; export keeps the report's language.
LANGUAGE_TAG = "lang-{}"
#: A section heading tagged so (and the cells up to the next heading of its level or above) goes to
#: the report's technical appendix: method, parameters, diagnostics, data-quality detail.
APPENDIX_TAG = "appendix"
#: Run folders are named by their start time; ``latest`` points at the newest complete run.
RUN_NAME = "%Y-%m-%d_%H%M%S"
LATEST = "latest"
#: Longest a single notebook cell may run (seconds) before the run fails with a timeout.
CELL_TIMEOUT = 3600
#: Longest Chromium may take to print the report (seconds).
PDF_TIMEOUT = 300
#: Dependencies whose versions the report's footer records (all pinned in pyproject.toml).
STAMPED_PACKAGES = ("pandas", "numpy", "scipy", "lifetimes", "scikit-learn", "duckdb", "matplotlib",
                    "seaborn", "papermill", "nbconvert")


class ReportError(LTVError):
    """A notebook of a report run failed: ``notebook`` names it, the message is the one sentence."""

    def __init__(self, notebook: str, reason: str):
        super().__init__(f"{notebook}: {reason}")
        self.notebook, self.reason = notebook, reason


def stop_on_sigterm() -> None:
    """Make SIGTERM (``kill``, a scheduler stopping a job) stop this process the way Ctrl-C does,
    as a KeyboardInterrupt, so that its notebook kernel and Chromium are ended on the way out."""
    import signal

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def run_notebook(name: str, output_dir, parameters: dict | None = None, *, html: bool = False) -> Path:
    """Execute ``notebooks/<name>.ipynb`` with papermill into ``output_dir``; returns the executed
    notebook's path (with ``html=True``, the path of its own client HTML page).

    The executed notebook runs with ``output_dir`` as its parameter of the same name (and as
    ``input_dir`` unless given), so its Parquet outputs land beside the rendered report and the
    next notebook finds them. Parameters a notebook does not declare are not passed to it.

    Credentials never go in ``parameters`` (papermill records them in the output): a parameter
    carrying one (a password in a URL, ``password=``/``token=``...) is refused before anything is
    written. Secrets come from environment variables (``LTV_DB_PASSWORD``).
    """
    papermill = _papermill()

    from ltv_helpers.credentials import refuse_credentials

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
    if "output_dir" in declared:
        params["output_dir"] = str(output_dir)
    if "input_dir" in declared:  # in a report run each notebook reads what the one before wrote
        params.setdefault("input_dir", str(output_dir))
    executed = output_dir / f"{Path(name).name}.ipynb"
    # The kernel's own log stays quiet: ipykernel warns on every start that its local TCP channel
    # is not encrypted (it is bound to 127.0.0.1 and every message is signed with a key that only
    # this process and the kernel hold), and jupyter_client interrupts every kernel it shuts down,
    # which under load the kernel logs as an error. A failing cell still reaches the caller as the
    # notebook's error; a cell that runs longer than CELL_TIMEOUT fails instead of hanging a run.
    kernel = _SHARED_KERNEL.get() if source.parent == NOTEBOOKS_DIR else None
    if kernel is not None:
        kernel.fresh()
    papermill.execute_notebook(str(source), str(executed), parameters=params, cwd=str(source.parent),
                               kernel_name="python3", progress_bar=False, execution_timeout=CELL_TIMEOUT,
                               extra_arguments=["--IPKernelApp.log_level=CRITICAL"],
                               **({"km": kernel.manager} if kernel is not None else {}))
    if kernel is not None:
        kernel.stop_clients()
    return export_html(executed) if html else executed


#: What the shared kernel (:func:`shared_kernel`) holds when it has started, before any notebook:
#: the warning filters, environment, import path and working folder it is restored to.
_KERNEL_START = """
import os as _os, sys as _sys, warnings as _warnings
_sys._ltv_kernel_start = (list(_warnings.filters), dict(_os.environ), list(_sys.path), _os.getcwd())
"""

#: What a notebook may have left in the shared kernel, undone before the next one runs: its
#: variables, pandas' display options, Matplotlib's settings (back to the rc file's) and open
#: figures, the warning filters, environment variables (e.g. LTV_INTERFACE), import path and
#: working folder as the kernel started with them, the cell count; then its memory is collected
#: and handed back to the system (:func:`ltv_helpers.memory.release_memory`).
#: Imported modules stay: that is the saving. One ``%reset`` after the rest is undone, as each
#: makes two full collections of the kernel's objects (0.14 s each at 1M customers; five made
#: 2.7 s of a report's run).
_FRESH_KERNEL = """
import gc as _gc, os as _os, sys as _sys, warnings as _warnings
import matplotlib as _mpl, matplotlib.pyplot as _plt, pandas as _pd
_plt.close("all"); _mpl.rc_file_defaults()
with _warnings.catch_warnings():
    _warnings.simplefilter("ignore")
    _pd.reset_option("all")
_filters, _environ, _path, _cwd = _sys._ltv_kernel_start
_warnings.filters[:] = _filters; _warnings._filters_mutated()
_os.environ.clear(); _os.environ.update(_environ)
_sys.path[:] = _path; _os.chdir(_cwd)
del _gc.garbage[:]
get_ipython().run_line_magic("reset", "-f")  # every variable (these too), then one full collection
from ltv_helpers.memory import release_memory as _release_memory
_release_memory()  # what the allocators keep of the freed memory, back to the system
del _release_memory
get_ipython().execution_count = 1  # each executed notebook numbers its cells from 1
"""

#: :meth:`_Kernel.forecast_blocker`'s count, in the kernel: the blocker as a Python literal (None,
#: or its label key and values, all text); the next notebook's :data:`_FRESH_KERNEL` clears it.
_BLOCKER = """
from ltv_helpers.evaluation import collection_blocker as _collection_blocker
from ltv_helpers.memory import release_memory as _release_memory
_note = _collection_blocker({run!r}, calibration_end={calibration_end!r})
_ltv_blocker = None if _note is None else (_note.key, _note.values)
_release_memory()
"""

#: The kernel :func:`shared_kernel` opened in this thread (or task), if any: run_notebook uses it.
_SHARED_KERNEL = contextvars.ContextVar("ltv_shared_kernel", default=None)


class _Kernel:
    """One Jupyter kernel for several notebooks, started here as papermill would start it (the
    notebooks' folder, the same arguments; timeouts as usual) and left running between them;
    :meth:`fresh` clears what a notebook left before the next; :meth:`stop_clients` closes each
    notebook's connections."""

    def __init__(self):
        from jupyter_client.manager import AsyncKernelManager

        outer = self

        class Manager(AsyncKernelManager):
            def client(self, **kwargs):
                kc = super().client(**kwargs)
                outer.clients.append(kc)
                return kc

        self._manager_class = Manager
        self.manager, self.clients = Manager(kernel_name="python3"), []

    def _run(self, code: str, what: str, *, timeout: float = 60, value: str | None = None):
        """Run ``code`` in the kernel; the text of the expression ``value`` after it, if given. A
        kernel that dies meanwhile (killed for memory) is told within seconds, not at the timeout."""
        import queue
        import time

        from jupyter_core.utils import run_sync

        kc = self.manager.blocking_client()
        kc.start_channels()
        try:
            kc.wait_for_ready(timeout=60)
            asked = kc.execute(code, store_history=False, user_expressions={"value": value} if value else None)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    reply = kc.get_shell_msg(timeout=min(5.0, max(deadline - time.monotonic(), 0.1)))
                except queue.Empty:
                    if not run_sync(self.manager.is_alive)():
                        raise LTVError(f"The notebook kernel died {what} (killed, perhaps for lack of memory); "
                                       "run it again with more memory free.") from None
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"no reply in {timeout:g} s") from None
                    continue
                if reply.get("parent_header", {}).get("msg_id") == asked:
                    break
        except (RuntimeError, TimeoutError) as err:
            raise LTVError(f"The notebook kernel did not answer {what} ({err}).") from None
        finally:
            kc.stop_channels()
        if reply["content"]["status"] != "ok":
            if reply["content"].get("ename") == "LTVError":  # the user's error, its own sentence
                raise LTVError(reply["content"].get("evalue"))
            raise LTVError(f"The notebook kernel failed {what}: "
                           f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}.")
        if value:
            found = reply["content"].get("user_expressions", {}).get("value", {})
            if found.get("status") != "ok":
                raise LTVError(f"The notebook kernel failed {what}: {found.get('ename')}: {found.get('evalue')}.")
            return found["data"]["text/plain"]
        return None

    def forecast_blocker(self, run: Path, calibration_end):
        """:func:`ltv_helpers.evaluation.collection_blocker` of ``run``, counted in the kernel: the
        process that runs the notebooks does not import the models and DuckDB for it, nor hold the
        memory of the count (at 1M customers: 260 MB, then 525 MB resident beside the kernel)."""
        import ast

        from ltv_helpers.labels import Note

        self.fresh()  # what the notebook before left, gone first
        # The kernel works in the notebooks' folder: the run's path as an absolute one.
        code = _BLOCKER.format(run=str(Path(run).resolve()),
                               calibration_end=None if calibration_end is None else str(calibration_end))
        found = ast.literal_eval(self._run(code, "counting the customers", timeout=CELL_TIMEOUT, value="_ltv_blocker"))
        return None if found is None else Note(*found)

    def fresh(self) -> None:
        """Start the kernel (the first time) or clear it (:data:`_FRESH_KERNEL`); a kernel that has
        died (a cell killed it) is started again."""
        from jupyter_core.utils import run_sync

        if self.manager.has_kernel and not run_sync(self.manager.is_alive)():
            self.shutdown()  # its connections too; a manager that has shut down starts no kernel
            self.manager = self._manager_class(kernel_name="python3")
        if not self.manager.has_kernel:
            # As nbclient starts a notebook's kernel: in the notebooks' folder, history in memory.
            run_sync(self.manager.start_kernel)(cwd=str(NOTEBOOKS_DIR), extra_arguments=[
                "--IPKernelApp.log_level=CRITICAL", "--HistoryManager.hist_file=:memory:"])
            self._run(_KERNEL_START, "when it started")
            return
        self._run(_FRESH_KERNEL, "between two notebooks")

    def stop_clients(self) -> None:
        for kc in self.clients:
            kc.stop_channels()
        self.clients.clear()

    def shutdown(self) -> None:
        from jupyter_core.utils import run_sync

        self.stop_clients()
        if self.manager.has_kernel:
            try:
                run_sync(self.manager.shutdown_kernel)(now=True)
            except Exception:  # noqa: BLE001 - a kernel that will not stop is killed
                run_sync(self.manager._kill_kernel)()


@contextlib.contextmanager
def shared_kernel():
    """Within it, :func:`run_notebook` runs the package's notebooks in one kernel, cleared between
    them, instead of a kernel each: a report run is spared a kernel start and the imports per
    notebook (3 s each), and the collected transactions are read once
    (:func:`ltv_helpers.data.load_collection` keeps the last file it read). The kernel is ended on
    the way out, whatever ends the run (an error, Ctrl-C, SIGTERM)."""
    kernel = _Kernel()
    token = _SHARED_KERNEL.set(kernel)
    try:
        yield kernel
    finally:
        _SHARED_KERNEL.reset(token)
        kernel.shutdown()


#: What a computed output (a table, a sentence written from the data) may hold once it reaches
#: the report: plain text markup and tables, links within the page only, no script, frame, form,
#: image or event attribute. Anything else is escaped into visible text by nbconvert's bleach
#: sanitizer.
OUTPUT_TAGS = ["a", "abbr", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd", "div", "dl",
               "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "li", "ol", "p", "pre", "small",
               "span", "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"]


def _anchor_only(tag: str, name: str, value: str) -> bool:
    """Links in computed outputs may only point inside the page (``#...``)."""
    return name == "href" and value.startswith("#")


OUTPUT_ATTRIBUTES = {"*": ["class", "id", "title"], "td": ["colspan", "rowspan"], "th": ["colspan", "rowspan"],
                     "a": _anchor_only}
#: The report's Content-Security-Policy: no script, frame, plug-in, form or fetch of any kind;
#: images and fonts only from data: URIs (the embedded figures), styles only inline.
CONTENT_SECURITY_POLICY = ("default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'; "
                           "base-uri 'none'; form-action 'none'")


#: The kinds of rich output a client page keeps (the rest, e.g. JavaScript or SVG, is dropped).
_OUTPUT_KINDS = {"text/plain", "image/png", "text/html", "text/markdown"}


@functools.lru_cache(maxsize=1)
def _sanitizers():
    """Two bleach sanitizers (nbconvert's own preprocessor): for HTML outputs, where pandas
    tables bring their ``<style>`` block, and for Markdown outputs, where no style is allowed."""
    from nbconvert.preprocessors.sanitize import SanitizeHTML

    common = dict(attributes=OUTPUT_ATTRIBUTES, strip=False, strip_comments=True)
    return SanitizeHTML(tags=OUTPUT_TAGS + ["style"], **common), SanitizeHTML(tags=OUTPUT_TAGS, **common)


#: The kind of output a Jupyter widget shows as; its state goes to the notebook's metadata.
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _sanitize_outputs(outputs: list) -> list:
    """The outputs of one code cell, safe to put in a client's page: HTML and Markdown sanitized
    (unknown markup shown as text), any other kind of rich output (JavaScript, SVG, widgets)
    dropped; text stays text. A widget's output (a library's progress bar) is dropped whole: its
    text is the widget's code name ("HBox(children=...)"), nothing a client reads."""
    html_sanitizer, markdown_sanitizer = _sanitizers()
    outputs = [o for o in outputs if _WIDGET_VIEW not in o.get("data", {})]
    for output in outputs:
        data = output.get("data")
        if not data:
            continue
        for key in [k for k in data if k not in _OUTPUT_KINDS]:
            del data[key]
        if "text/html" in data:
            data.pop("text/markdown", None)
            data["text/html"] = html_sanitizer.sanitize_html_tags(data["text/html"])
        elif "text/markdown" in data:
            data["text/markdown"] = markdown_sanitizer.sanitize_html_tags(data["text/markdown"])
    return outputs


def _client_cells(nb, language: str):
    """The cells a client sees: no set-up or parameter cells, no narrative in the other language,
    no warnings printed to stderr, computed outputs sanitized (:func:`_sanitize_outputs`);
    figures get the section's heading as alternative text."""
    from ltv_helpers.labels import label

    other = {LANGUAGE_TAG.format(lang) for lang in ("en", "zh") if lang != language}
    cells, heading = [], ""
    for cell in nb.cells:
        tags = set(cell.get("metadata", {}).get("tags", []))
        if tags & (HIDDEN_TAGS | other):
            continue
        if cell.cell_type == "markdown":  # a client reads headings without the notebooks' numbers
            cell.source = _NUMBERED_HEADING.sub(r"\1", cell.source)
        found = re.search(r"^#+\s+(.*\S)", cell.source, re.M) if cell.cell_type == "markdown" else None
        if found:
            heading = found.group(1)
        if cell.cell_type == "code":
            cell.outputs = _sanitize_outputs(
                [o for o in cell.outputs if not (o.output_type == "stream" and o.name == "stderr")])
            for output in cell.outputs:  # a figure's alternative text: the section it illustrates
                if "image/png" in output.get("data", {}):
                    output.setdefault("metadata", {}).setdefault("image/png", {})["alt"] = \
                        label("Figure: {section}", language).format(section=heading)
        cells.append(cell)
    return cells


#: "# 01 · Data collection" and "## 3. When did customers arrive?": the numbers of the audit notebooks.
_NUMBERED_HEADING = re.compile(r"^(#{1,6}\s+)(?:\d+\s*·\s*|\d+\.\s+)", re.M)


def split_appendix(cells) -> tuple[list, list]:
    """The cells of one section for the report's body and for its technical appendix. A heading
    cell tagged ``appendix`` moves itself and every cell after it, up to the next heading of the
    same level or above, to the appendix; its headings go one level down there (under the
    section's own title in the appendix)."""
    body, appendix, moving_level = [], [], None
    for cell in cells:
        level = _heading_level(cell)
        if level is not None and (moving_level is None or level <= moving_level):
            tagged = APPENDIX_TAG in cell.get("metadata", {}).get("tags", [])
            moving_level = level if tagged and level > 1 else None  # a section's title stays in the body
        if moving_level is None:
            body.append(cell)
        else:
            if cell.cell_type == "markdown":
                cell.source = _outside_fences(cell.source, _demote)
            appendix.append(cell)
    return body, appendix


def _demote(text: str) -> str:
    """Markdown headings one level down (``## x`` becomes ``### x``)."""
    return re.sub(r"^(#{1,5})(\s)", r"#\1\2", text, flags=re.M)


#: A fenced code block of Markdown (its ``#`` lines are code, not headings).
_FENCE = r"^```.*?^```[^\n]*$"


def _outside_fences(text: str, change) -> str:
    """``change`` applied to the parts of Markdown ``text`` outside fenced code blocks."""
    parts = re.split(f"({_FENCE})", text, flags=re.M | re.S)
    return "".join(part if i % 2 else change(part) for i, part in enumerate(parts))


def _heading_level(cell) -> int | None:
    """The level of a markdown cell's first heading (``## x`` is 2; not a ``#`` line in fenced
    code), None when it has none."""
    if cell.cell_type != "markdown":
        return None
    plain = re.sub(_FENCE, "", cell.source, flags=re.M | re.S)
    found = re.search(r"^(#{1,6})\s+\S", plain, re.M)
    return len(found.group(1)) if found else None


def _exporter(language: str = "en"):
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="ltv_report", extra_template_basedirs=[str(TEMPLATES_DIR)],
                        exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True,
                        language_code=language)


def export_html(notebook_path, language: str = "en") -> Path:
    """Client HTML of one executed notebook: narrative and results, no code, no set-up cells."""
    import nbformat

    notebook_path = Path(notebook_path)
    nb = nbformat.read(notebook_path, as_version=4)
    nb.cells = _client_cells(nb, language)
    body, _ = _exporter(language).from_notebook_node(nb, resources={"ltv": {"csp": CONTENT_SECURITY_POLICY}})
    out = notebook_path.with_suffix(".html")
    write_text(out, check_client_html(body, out.name))
    return out


def _papermill():
    """papermill (and nbformat), imported without two optional extras nothing here uses:
    pyarrow's file systems (papermill's hdfs:// notebooks; 40 MB with NumPy in the process that
    runs the notebooks, which needs neither) and the IRI grammar jsonschema builds when
    rfc3987_syntax is installed (2 s at every start; no notebook schema checks IRIs). Both stay
    importable afterwards for whoever needs them."""
    import sys

    if "papermill" not in sys.modules:
        skipped = [name for name in ("pyarrow.fs", "rfc3987_syntax") if name not in sys.modules]
        sys.modules.update(dict.fromkeys(skipped))  # an import of them fails, and their users do without
        try:
            import nbformat  # noqa: F401 - through jsonschema, the grammar's user
            import papermill  # noqa: F401
        finally:
            for name in skipped:
                if sys.modules.get(name, True) is None:
                    del sys.modules[name]
    import papermill

    return papermill


def notebook_parameters() -> dict[str, set[str]]:
    """The parameters each report notebook declares (its ``parameters`` cell)."""
    papermill = _papermill()

    return {name: set(papermill.inspect_notebook(str(NOTEBOOKS_DIR / f"{name}.ipynb")))
            for name in PIPELINE + OPERATIONS + (SUMMARY_NOTEBOOK,)}


def report_parameters() -> set[str]:
    """Every parameter a report run takes: those the notebooks declare, less the folders the run
    sets itself (``input_dir``, ``output_dir``)."""
    return set().union(*notebook_parameters().values()) - {"input_dir", "output_dir"}


def check_parameters(parameters: dict) -> dict:
    """``parameters`` if every one is declared by a report notebook and none carries a credential
    (checked inside lists and mappings too); else :class:`LTVError` naming the parameter. Nothing
    undeclared is ever recorded (``run.json``, the executed notebooks) or shown (the footer)."""
    from ltv_helpers.credentials import refuse_credentials

    known = report_parameters()
    for key, value in parameters.items():
        if key not in known:
            raise LTVError(f"No report notebook has a parameter {key!r}; the parameters are: "
                           f"{', '.join(sorted(known))}.")
        refuse_credentials(value, f"parameter {key}")
    return parameters


def check_output(output) -> Path:
    """The client's report folder ``output``, if a run folder can be made in it: not a file, not
    a run folder or its ``latest`` link (runs go side by side in the client's folder)."""
    base = Path(output)
    absolute = base.resolve()
    inside = next((p for p in (absolute, *absolute.parents) if (p / "run.json").is_file()), None)
    if base.name == LATEST or inside is not None:
        run = inside or absolute
        raise LTVError(f"--output {output} is a run folder or inside one; give the client's folder that holds "
                       f"the runs ({run.parent}).")
    if base.exists() and not base.is_dir():
        raise LTVError(f"--output {output} is a file, not a folder; give the client's report folder.")
    link = base / LATEST
    if link.exists() and not link.is_symlink():
        raise LTVError(f"{link} is a folder, not the link to the newest run (a copied or unzipped report "
                       "folder?); move it away, or give another --output.")
    return base


def new_run_dir(output) -> Path:
    """A new, empty run folder ``<output>/<YYYY-MM-DD_HHMMSS>`` (a suffix when two runs start in
    the same second); an older run is never overwritten."""
    from datetime import datetime

    from ltv_helpers.files import write_error

    base = check_output(output)
    stamp = datetime.now().strftime(RUN_NAME)
    try:
        base.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            run = base / (stamp if n == 1 else f"{stamp}_{n}")
            try:
                run.mkdir()
            except FileExistsError:
                continue
            return run
    except OSError as err:
        raise write_error(base / stamp, err) from None
    raise LTVError(f"Could not make a new run folder in {base}.")


def point_latest(run_dir) -> Path:
    """Point ``<output>/latest`` at ``run_dir`` (a relative symbolic link, swapped atomically)."""
    import os

    run_dir = Path(run_dir)
    link = run_dir.parent / LATEST
    tmp = run_dir.parent / f".{LATEST}-{os.getpid()}"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    try:
        os.replace(tmp, link)
    except OSError as err:
        tmp.unlink()
        raise LTVError(f"Could not point {link} at {run_dir.name}: {err.strerror}.") from None
    return link


def versions() -> dict:
    """Versions of the toolkit and of the key pinned dependencies, for the report's stamp."""
    from importlib.metadata import PackageNotFoundError, version

    import ltv_helpers

    out = {"ltv-toolkit": ltv_helpers.__version__}
    for name in STAMPED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def render_report(output, parameters: dict | None = None, *, pdf: bool = True, progress=None) -> Path:
    """Render one client's report into a new run folder under ``output``; returns its ``report.html``.

    Runs the four stage notebooks in order (each reads what the one before wrote), the sections
    of LTV operations that apply (:func:`_operations`: the channels, and the check of the client's
    last report, whose run the parameters then record as ``baseline_dir``), then the summary
    notebook, into ``<output>/<YYYY-MM-DD_HHMMSS>/``; when the collected data allow no
    forecast (:func:`ltv_helpers.evaluation.forecast_blocker`), prediction and evaluation are
    skipped and the summary says why. Assembles ``report.html`` (summary
    page, contents, the four sections, a footer stamp) and prints ``report.pdf`` from it with
    headless Chromium when it is installed. ``<output>/latest`` then points at the run; a failed
    run keeps its folder (for the executed notebooks) but ``latest`` stays on the last good one.
    ``progress(notebook)`` is called as each notebook starts. A failing notebook raises
    :class:`ReportError` naming it, with the notebook's own error in one sentence.
    """
    import contextlib
    import time
    from datetime import datetime

    from ltv_helpers.schema import BUNDLED
    from ltv_helpers.files import write_json
    from ltv_helpers.monitoring import check_client_folder

    parameters = check_parameters(dict(parameters or {}))  # before the run folder exists
    source = parameters.get("source")
    if isinstance(source, str) and "://" not in source and source not in BUNDLED:
        parameters["source"] = str(Path(source).resolve())  # the notebooks run in notebooks/
    for key in ("cac", "baseline_dir"):
        if isinstance(parameters.get(key), str) and parameters[key] != "auto":
            parameters[key] = str(Path(parameters[key]).resolve())
    if parameters.get("cac") is not None:
        from ltv_helpers.channels import read_costs

        read_costs(parameters["cac"])  # a cost table that cannot be read stops the run before it starts
    check_client_folder(check_output(output), parameters.get("client"))
    language = parameters.get("language", "en")
    run = new_run_dir(output)
    started = time.time()
    # run.json says "running" until every file of the run is written, so a run that died midway
    # never looks finished; a failed or stopped run says so.
    stamp = {"status": "running", "started": datetime.now().astimezone().isoformat(timespec="seconds"),
             "parameters": parameters, "versions": versions()}
    write_json(run / "run.json", stamp)
    try:
        html = _render_run(run, parameters, stamp, started, language, pdf, progress)
    except BaseException as err:
        # The run's own record says how it ended: "failed" with the reason, or "stopped".
        stopped = isinstance(err, KeyboardInterrupt)
        stamp.update(status="stopped" if stopped else "failed", reason=None if stopped else str(err))
        with contextlib.suppress(Exception):
            write_json(run / "run.json", stamp)
        raise
    stamp["status"] = "complete"
    write_json(run / "run.json", stamp)
    point_latest(run)  # only once every file is whole
    return html


def _render_run(run: Path, parameters: dict, stamp: dict, started: float, language: str, pdf: bool,
                progress) -> Path:
    """The notebooks, report.html and report.pdf of one run (see :func:`render_report`)."""
    import time

    from ltv_helpers.files import write_json

    with shared_kernel():
        _run_notebooks(run, parameters, stamp, progress)
    stamp["seconds"] = round(time.time() - started, 1)
    write_json(run / "run.json", stamp)  # the footer quotes the notebooks' time
    html = assemble_report(run, language)
    if pdf:
        if progress is not None:
            progress("report.pdf")
        print_pdf(html)
    return html


def _run_notebooks(run: Path, parameters: dict, stamp: dict, progress=None) -> None:
    """The notebooks of one run, in order (see :func:`render_report`)."""
    _papermill()
    from papermill.exceptions import PapermillExecutionError

    from ltv_helpers.files import write_json

    blocker, operations = None, set()
    for name in PIPELINE + OPERATIONS + (SUMMARY_NOTEBOOK,):
        if (blocker is not None and name in FORECAST_NOTEBOOKS) or (name in OPERATIONS and name not in operations):
            continue
        if progress is not None:
            progress(name)
        try:
            run_notebook(name, run, parameters)
        except PapermillExecutionError as err:
            # The notebook's own error (e.g. an LTVError naming a missing column), in one sentence.
            reason = str(err.evalue).strip().splitlines()[0] if str(err.evalue).strip() else ""
            # A user error (LTVError) is its own sentence; anything else keeps its type.
            raise ReportError(name, reason if err.ename == "LTVError" and reason
                              else f"{err.ename}: {reason}".rstrip(": ")) from None
        if name == PIPELINE[0]:
            blocker = _forecast_blocker(run, parameters)
            stamp["forecast"] = blocker is None
            if blocker is not None:
                stamp["no_forecast"] = str(blocker)
            operations = _operations(run, parameters, forecast=blocker is None)
            write_json(run / "run.json", stamp)  # the baseline chosen, before the notebooks that use it


def _operations(run: Path, parameters: dict, *, forecast: bool) -> set[str]:
    """The LTV-operations notebooks this run adds (:data:`OPERATIONS`), once its data are
    collected: the channels when the data have a channel column (an acquisition-cost table without
    one is refused) and a forecast; the check of the last report when the client's folder holds an
    earlier run of the same client, currency and columns (another is refused in one sentence) and
    ``baseline_dir`` is not None. The baseline chosen is recorded in ``parameters``."""
    import json

    from ltv_helpers.monitoring import check_baseline, find_baseline
    from ltv_helpers.schema import CHANNEL

    meta = json.loads((run / "collection.json").read_text(encoding="utf-8"))
    out = set()
    has_channel = CHANNEL in meta.get("columns", {})
    if parameters.get("cac") is not None and not has_channel:
        raise LTVError("An acquisition-cost table was given (--cac) but the data have no channel column to match it "
                       "with; pass --channel <column name>.")
    if has_channel and forecast:
        out.add(CHANNELS_NOTEBOOK)
    given = parameters.get("baseline_dir", "auto")
    baseline = find_baseline(run.parent, observation_end=meta["observation_end"]) if given == "auto" else given
    if baseline is not None:
        check_baseline(baseline, meta, folder=run.parent)
        parameters["baseline_dir"] = str(Path(baseline).resolve())  # the notebooks run in notebooks/
        out.add(MONITORING_NOTEBOOK)
    elif given == "auto":
        parameters.pop("baseline_dir", None)  # nothing to check; --no-baseline stays recorded
    return out


def _forecast_blocker(run: Path, parameters: dict):
    """Why the collected data of ``run`` allow no forecast (a Note), or None: counted in the shared
    kernel when there is one (:meth:`_Kernel.forecast_blocker`), else here."""
    kernel = _SHARED_KERNEL.get()
    if kernel is not None:
        return kernel.forecast_blocker(run, parameters.get("calibration_end"))
    from ltv_helpers.evaluation import collection_blocker

    return collection_blocker(run, calibration_end=parameters.get("calibration_end"))


def _anchor_headings(cells, prefix: str) -> list[tuple[int, str, str]]:
    """Give each markdown heading (levels 1 and 2) an anchor; returns (level, anchor, text)."""
    toc = []
    for cell in cells:
        if cell.cell_type != "markdown":
            continue
        lines = cell.source.splitlines()
        for i, line in enumerate(lines):
            m = re.match(r"^(#{1,2})\s+(.*\S)", line)
            if m:
                anchor = f"{prefix}-{len(toc)}"
                toc.append((len(m.group(1)), anchor, m.group(2).replace("**", "")))
                lines[i] = f'<a id="{anchor}"></a>\n\n{line}'
        cell.source = "\n".join(lines)
    return toc


def footer(run_dir, stamp: dict, language: str = "en") -> dict:
    """The report's stamp from the run's ``run.json`` (``stamp``) and ``collection.json``: toolkit
    and dependency versions, parameters (never a secret: they were refused before the run), the
    input's SHA-256 and the run time."""
    import json

    from ltv_helpers.labels import RUN_STAMP, label

    run_dir = Path(run_dir)
    meta = json.loads((run_dir / "collection.json").read_text(encoding="utf-8"))
    known = report_parameters()
    params = {k: v for k, v in stamp["parameters"].items() if k in known}
    source = params.get("source")
    if isinstance(source, str) and "://" not in source:
        params["source"] = Path(source).name  # the file, not the consultant's folders
    elif isinstance(source, str):
        params["source"] = _database_name(source)
    for key in ("cac", "baseline_dir"):  # the file and the run, not the consultant's folders
        if isinstance(params.get(key), str):
            params[key] = Path(params[key]).name
    return {
        "title": label("How this report was made", language),
        "rows": [
            (label("run", language), label(RUN_STAMP, language).format(
                folder=run_dir.name, started=stamp["started"], seconds=f"{stamp.get('seconds', 0):,.0f}")),
            (label("input data (SHA-256)", language), meta.get("input_sha256") or "–"),
            (label("parameters", language), ", ".join(f"{k} = {v}" for k, v in params.items()) or "–"),
            (label("versions", language), ", ".join(f"{k} {v}" for k, v in stamp["versions"].items())),
        ],
    }


def _database_name(url: str) -> str:
    """A database URL as a client may read it: its kind and database, no user or host."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return url.split("://", 1)[0] + " database"
    return f"{parsed.get_backend_name()} database {parsed.database or ''}".strip()


def assemble_report(run_dir, language: str = "en") -> Path:
    """Join the executed notebooks of a run into one self-contained ``report.html``: the summary
    page, a table of contents, the four sections and the footer stamp. Figures are embedded, no
    script or style is fetched from the network, no code and no parameters are shown."""
    import json

    import nbformat

    from ltv_helpers.labels import APPENDIX_INTRO, glossary_markdown, label

    run_dir = Path(run_dir)
    summary = nbformat.read(run_dir / f"{SUMMARY_NOTEBOOK}.ipynb", as_version=4)
    cells = _client_cells(summary, language)
    sections, appendix, toc, appendix_toc = [], [], [], []
    for i, name in enumerate(PIPELINE + OPERATIONS, start=1):
        if not (run_dir / f"{name}.ipynb").is_file():
            continue  # a run whose data allow no forecast, a section with nothing to show
        nb = nbformat.read(run_dir / f"{name}.ipynb", as_version=4)
        body, extra = split_appendix(_client_cells(nb, language))
        section_toc = _anchor_headings(body, f"s{i}")
        toc += section_toc
        sections.append(nbformat.v4.new_markdown_cell('<div class="ltv-page-break"></div>'))
        sections += body
        if extra:
            title = next((text for level, _, text in section_toc if level == 1), "")
            part = [nbformat.v4.new_markdown_cell(f"## {title}")] + extra
            appendix_toc += [(level, anchor, text) for level, anchor, text in _anchor_headings(part, f"a{i}")
                             if level == 2]
            appendix += part
    if appendix:
        forecast = all((run_dir / f"{name}.ipynb").is_file() for name in FORECAST_NOTEBOOKS)
        glossary = [nbformat.v4.new_markdown_cell(f"## {label('Glossary', language)}\n\n"
                                                  + glossary_markdown(language, forecast))]
        appendix_toc += [(level, anchor, text) for level, anchor, text in _anchor_headings(glossary, "glossary")]
        appendix += glossary
        appendix_toc.insert(0, (1, "appendix", label("Technical appendix", language)))
        title = label("Technical appendix", language)
        opening = f'<div class="ltv-page-break"></div>\n\n<a id="appendix"></a>\n\n# {title}'
        appendix.insert(0, nbformat.v4.new_markdown_cell(f"{opening}\n\n{label(APPENDIX_INTRO, language)}"))
    contents = ['<div class="ltv-page-break"></div>', "", f"## {label('Contents', language)}", ""]
    contents += [("" if level == 1 else "    ") + f"- [{text}](#{anchor})"
                 for level, anchor, text in toc + appendix_toc]
    cells.append(nbformat.v4.new_markdown_cell("\n".join(contents)))
    summary.cells = cells + sections + appendix
    # Widgets' state (nbconvert writes it into the page as a <script>) is dropped with their outputs.
    summary.metadata.pop("widgets", None)
    stamp = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    params = stamp["parameters"]
    summary.metadata["title"] = params.get("title") or label("{client}: customer lifetime value", language).format(
        client=params.get("client", ""))
    body, _ = _exporter(language).from_notebook_node(
        summary, resources={"ltv": {"footer": footer(run_dir, stamp, language), "csp": CONTENT_SECURITY_POLICY}})
    out = run_dir / "report.html"
    write_text(out, check_client_html(body, out.name))
    return out


#: Elements a client page never holds: they run code, embed or fetch other documents, or send data.
_ACTIVE_ELEMENTS = {"script", "iframe", "frame", "frameset", "object", "embed", "applet", "base", "form",
                    "input", "button", "textarea", "select", "link", "audio", "video", "source", "track",
                    "portal", "svg", "math", "noscript", "template"}
_URL_ATTRIBUTES = {"src", "href", "srcset", "data", "action", "formaction", "poster", "background",
                   "xlink:href", "ping", "cite", "longdesc", "usemap", "manifest"}


def check_client_html(text: str, name: str = "report.html") -> str:
    """``text`` if it is a safe client page, else :class:`LTVError` (a defect: the page is never
    written). Safe: no element that runs, embeds, fetches or submits (script, iframe, object,
    form, link, svg ...), no event attribute (``onerror=``), no ``<meta>`` but the charset,
    viewport and the Content-Security-Policy, no URL but ``data:image/...`` and ``#anchors``, no
    ``url(...)`` or ``@import`` in styles except ``data:`` images. This is the last line after the
    escaping and the sanitizer: whatever the data or the operator typed, the page cannot act."""
    from html.parser import HTMLParser

    problems: list[str] = []

    def url_ok(value: str) -> bool:
        value = value.strip().lower()
        return value.startswith("#") or value.startswith("data:image/")

    def style_ok(css: str) -> bool:
        css = css.lower()
        return "@import" not in css and "expression(" not in css and all(
            u.strip(" '\"").startswith("data:") for u in re.findall(r"url\(([^)]*)\)", css))

    class Checker(HTMLParser):
        in_style = False

        def handle_starttag(self, tag, attrs):
            if tag in _ACTIVE_ELEMENTS:
                problems.append(f"a <{tag}> element")
            if tag == "meta":
                names = {k: (v or "").lower() for k, v in attrs}
                if not ("charset" in names or names.get("name") == "viewport"
                        or names.get("http-equiv") == "content-security-policy"):
                    problems.append("a <meta> element that is not the charset, viewport or policy")
            for key, value in attrs:
                if key.startswith("on"):
                    problems.append(f"an event attribute {key}=")
                elif key in _URL_ATTRIBUTES and not url_ok(value or ""):
                    problems.append(f"a {key}= address outside the page")
                elif key == "style" and not style_ok(value or ""):
                    problems.append("a style attribute that loads something")
            self.in_style = tag == "style"

        def handle_endtag(self, tag):
            self.in_style = False

        def handle_data(self, data):
            if self.in_style and not style_ok(data):
                problems.append("a style sheet that loads something")

    checker = Checker(convert_charrefs=True)
    checker.feed(text)
    checker.close()
    if problems:
        raise LTVError(f"{name} was not written: it would hold {problems[0]}, which a client page must not "
                       "(a defect of the toolkit: please report it with the run folder).")
    return text


def chromium() -> str | None:
    """The headless Chromium to print and screenshot with: ``$LTV_CHROMIUM``, else ``chromium``
    (Debian's package), ``chromium-browser`` or ``google-chrome`` on the PATH."""
    import os
    import shutil

    for name in (os.environ.get("LTV_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def chromium_flags() -> list[str]:
    """Flags every headless Chromium start needs here: no sandbox when run as root (Chromium
    refuses to start with one there), and no /dev/shm (tiny in containers, where pages crash)."""
    import os

    root = hasattr(os, "geteuid") and os.geteuid() == 0
    return ["--disable-dev-shm-usage", *(["--no-sandbox"] if root else [])]


def run_chromium(*args: str, timeout: float = 180):
    """Run headless Chromium with ``args``; returns the finished process (text output). A
    throw-away profile, so parallel runs do not share one."""
    import subprocess
    import tempfile

    binary = chromium()
    if binary is None:
        raise LTVError("Headless Chromium is not installed (Debian: apt-get install chromium).")
    # No extension, sync or background network service starts. Scripts are off through the
    # pages' Content-Security-Policy (Chromium's scriptEnabled=false setting stops it printing).
    flags = ["--headless", "--disable-gpu", "--no-first-run", "--hide-scrollbars", "--disable-extensions",
             "--disable-sync", "--disable-background-networking", *chromium_flags()]
    with tempfile.TemporaryDirectory(prefix="ltv-chromium-") as profile:
        # Its own process group, so that a timeout, an interrupt or any error ends the browser
        # and every helper process it started: none is left to finish a file later.
        try:
            proc = subprocess.Popen([binary, *flags, f"--user-data-dir={profile}", *args], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, start_new_session=True)
        except OSError as err:
            raise LTVError(f"Headless Chromium ({binary}) could not be started: {err.strerror}.") from None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LTVError(f"Headless Chromium did not finish within {timeout:g} seconds and was stopped.") from None
        finally:
            _end_group(proc)  # on any exit, and helpers that outlived the browser
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _end_group(proc) -> None:
    """Kill the process group of ``proc`` (started with a new session) and reap ``proc``."""
    import os
    import signal

    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def print_pdf(html) -> Path | None:
    """Print ``report.html`` to ``report.pdf`` beside it with headless Chromium; without Chromium,
    say so in one line and return None (the HTML is the report)."""
    html = Path(html).resolve()
    if chromium() is None:
        print(f"report.pdf not written: headless Chromium is not installed (Debian: apt-get install "
              f"chromium); the report is {html}")
        return None
    from ltv_helpers.files import atomic_path

    out = html.with_suffix(".pdf")
    with atomic_path(out) as part:  # a PDF that is not whole never takes the name report.pdf
        proc = run_chromium("--no-pdf-header-footer", f"--print-to-pdf={part}", html.as_uri(),
                            timeout=PDF_TIMEOUT)
        if proc.returncode != 0 or not part.is_file():
            last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
            raise LTVError(f"Chromium could not print {html.name} to PDF: {last}")
        if not pdf_pages(part):
            raise LTVError(f"Chromium's PDF of {html.name} is incomplete (no page, or cut short: is the disk "
                           "full?); report.pdf was not written.")
    return out


def pdf_pages(path) -> int:
    """The number of pages of a whole PDF file, 0 when it is not one: it must start with the PDF
    header, end with the end-of-file marker after its cross-reference offset, and hold pages."""
    data = Path(path).read_bytes()
    tail = data[-64:].rstrip()
    if not data.startswith(b"%PDF-") or not tail.endswith(b"%%EOF") or b"startxref" not in data[-1024:]:
        return 0
    return len(re.findall(rb"/Type\s*/Page(?![s\w])", data))


def screenshots(html, out_dir=None, *, width: int = 1280) -> list[Path]:
    """PNG pictures of a rendered report for a person to look at: the summary page, one per
    section (``00_summary.png``, ``01_collection.png`` ...) and the technical appendix
    (``05_appendix.png``), in ``out_dir`` (default:
    ``screenshots/`` beside the report). Uses Playwright (a dev dependency) driving the installed
    Chromium; raises if the page logs a console error or fails to load a resource."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise LTVError("Screenshots need Playwright: install the dev dependencies (make setup).") from None
    html = Path(html).resolve()
    out = Path(out_dir) if out_dir else html.parent / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    if chromium() is None:
        raise LTVError("Headless Chromium is not installed (Debian: apt-get install chromium).")
    problems, files = [], []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium(), args=chromium_flags())
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("requestfailed", lambda r: problems.append(f"could not load {r.url}"))
        page.goto(html.as_uri(), wait_until="load")
        tops = page.evaluate("""() => {
            const y = (el) => el.getBoundingClientRect().top + window.scrollY;
            const marks = [...document.querySelectorAll('a[id^="s"][id$="-0"], a#appendix')].map(y);
            const foot = document.querySelector('footer');
            return [0, ...marks, foot ? y(foot) + foot.offsetHeight : document.body.scrollHeight];
        }""")
        sections = [name for name in PIPELINE + OPERATIONS if (html.parent / f"{name}.ipynb").is_file()]
        names = (["00_summary", *sections, f"{len(sections) + 1:02d}_appendix"])[:len(tops) - 1]
        for name, top, bottom in zip(names, tops, tops[1:]):
            path = out / f"{name}.png"
            page.screenshot(path=str(path), full_page=True,
                            clip={"x": 0, "y": top, "width": width, "height": max(1, bottom - top)})
            files.append(path)
        browser.close()
    if problems:
        raise LTVError(f"{html.name} logged {len(problems)} problem(s) in Chromium, first: {problems[0]}")
    return files


def pdf_text(path, pdftotext: str = "pdftotext") -> str:
    """The text of a PDF as laid out on its pages (pages separated by form feeds), by poppler's
    ``pdftotext``."""
    import subprocess

    return subprocess.run([pdftotext, "-layout", str(path), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout


def page_pictures(pdf, out_dir, *, name: str = "report", language: str = "en", dpi: int = 70) -> list[Path]:
    """PNGs of three printed pages of a report, as a client sees them on paper: the summary
    (page 1), the first section's first page (found by its title in ``report.html`` beside the
    PDF) and the first page of the technical appendix (none without one): ``<name>-summary.png``,
    ``<name>-section.png``, ``<name>-appendix.png``. Uses poppler's ``pdftotext`` (to find the
    pages) and ``pdftoppm``."""
    import shutil
    import subprocess

    from ltv_helpers.labels import label

    tools = {tool: shutil.which(tool) for tool in ("pdftotext", "pdftoppm")}
    if None in tools.values():
        raise LTVError("Page pictures need poppler's pdftotext and pdftoppm (Debian: apt-get install poppler-utils).")
    pdf, out = Path(pdf), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    text = pdf_text(pdf, tools["pdftotext"]).split("\f")

    def first_page(title: str):
        return next((i + 1 for i, page in enumerate(text) if page.strip().startswith(title)), None)

    # The first section's title: the report's second level-1 heading (the first is its own title).
    html = pdf.with_suffix(".html")
    titles = re.findall(r"<h1[^>]*>(.*?)</h1>", html.read_text(encoding="utf-8"), re.S) if html.is_file() else []
    section = re.sub(r'<a class="anchor-link".*?</a>|<[^>]+>', "", titles[1], flags=re.S).strip() if titles[1:] else ""
    pages = {"summary": 1, "section": (first_page(section) if section else None) or 3,
             "appendix": first_page(label("Technical appendix", language))}
    files = []
    for part, number in pages.items():
        if number is None or number > len(text):
            continue
        target = out / f"{name}-{part}"
        subprocess.run([tools["pdftoppm"], "-png", "-r", str(dpi), "-f", str(number), "-l", str(number),
                        "-singlefile", str(pdf), str(target)], check=True, timeout=120, capture_output=True)
        files.append(target.with_suffix(".png"))
    return files


#: Columns holding a fraction shown as a percentage (besides every "share" column).
SHARE_COLUMNS = {"p_alive", "retention", "margin"}
#: Columns holding money (shown with separators and the currency in the header).
MONEY_COLUMNS = {"revenue", "clv", "clv_low", "clv_high", "expected_spend", "expected_revenue",
                 "expected revenue", "revenue_low", "revenue_high", "average order value",
                 "average predicted CLV", "ml_expected_revenue", "spend_mae", "monetary_value",
                 "simple LTV", "aov", "ltv", "ltv_after", "gain", "cost", "net_value",
                 # LTV operations: the check of the last report, the channels
                 "predicted_revenue", "actual_revenue", "value_at_stake", "clv_now", "predicted_value",
                 "predicted_value_low", "predicted_value_high", "new_customer_value", "value_30d", "value_90d",
                 "value_180d", "value_365d", "spend", "cac"}


def styled(table, language: str = "en", currency: str | None = None, *, decimals: int = 2):
    """A table formatted for a client: human column and index labels in ``language``, shares as
    percentages, errors in % with a sign, money and counts with thousands separators (the
    currency in the money columns' headers).

    Formats follow the raw (or Chinese) column names (``share``/``capture``/``precision``/
    :data:`SHARE_COLUMNS`: a fraction shown as %; ``change``: a signed %; ``..._pct``: already a
    percentage; :data:`MONEY_COLUMNS`:
    whole units when a column reaches 10,000), then every label goes through
    :func:`ltv_helpers.labels.label`. Missing values show as "–".
    """
    import pandas as pd

    from ltv_helpers.labels import label

    formats, names = {}, {}
    money_names = MONEY_COLUMNS | {label(m, "zh") for m in MONEY_COLUMNS}  # tables built in Chinese too
    for col in table.columns:
        name = str(col)
        text = label(name, language)
        money = name in money_names
        if money and currency:
            text = f"{text} ({currency})" if language == "en" else f"{text}（{currency}）"
        names[col] = text
        if not pd.api.types.is_numeric_dtype(table[col]):
            continue
        lower = name.lower()
        if name == "change":
            formats[text] = "{:+.0%}"
        elif any(word in lower for word in ("share", "capture", "precision", "占比")) or name in SHARE_COLUMNS:
            formats[text] = "{:.1%}"
        elif lower.endswith("_pct"):
            formats[text] = "{:+.1f}%"
        elif pd.api.types.is_integer_dtype(table[col]) or (not money and _whole(table[col])):
            formats[text] = "{:,.0f}"  # counts as integers, also when a missing value made them floats
        elif money and table[col].abs().max() >= 10_000:  # large sums read better in whole units
            formats[text] = "{:,.0f}"
        else:
            formats[text] = f"{{:,.{decimals}f}}"
    shown = table.rename(columns=names)
    from ltv_helpers.segments import group_name

    shown = shown.rename(index=lambda v: (label(v, language) if label(v, language) != v else group_name(v, language))
                         if isinstance(v, str) else v)
    shown.index.names = [html_escape(label(str(n), language)) if n is not None else None for n in shown.index.names]
    if shown.columns.name is not None:
        shown.columns.name = html_escape(label(str(shown.columns.name), language))
    elif shown.index.nlevels == 1 and shown.columns.nlevels == 1 and shown.index.name is not None:
        # The index's name in the header row's corner, not on a row of its own.
        shown.columns.name, shown.index.name = shown.index.name, None
    # Numbers right-aligned under right-aligned headers, text (actions, names) to the left.
    align = [{"selector": f"th.col_heading.col{j}, td.col{j}",
              "props": "text-align: right" if _numbers(table[col]) else "text-align: left"}
             for j, col in enumerate(table.columns)]
    align.append({"selector": "th.row_heading, th.index_name, th.blank", "props": "text-align: left"})
    # Labels and values come from the client's data (column headers, ids) and the operator
    # (currency): every cell, header and index label is HTML-escaped.
    return (shown.style.format(formats, na_rep="–", escape="html")
            .format_index(escape="html", axis=0).format_index(escape="html", axis=1)
            .set_table_styles(align))


#: A number, percentage or date written out (12,313; +1.9%; 1998-06-30).
_NUMBER_TEXT = re.compile(r"[+\-–]?[\d,.]+%?|\d{4}-\d{2}-\d{2}")


def _numbers(values: pd.Series) -> bool:
    """Whether a column holds numbers: numeric, or text that is mostly numbers already formatted
    (a table of measures such as the data-quality table)."""
    import pandas as pd

    if pd.api.types.is_numeric_dtype(values):
        return True
    text = values.dropna().astype(str)
    return len(text) > 0 and text.map(lambda v: bool(_NUMBER_TEXT.fullmatch(v.strip()))).mean() >= 0.5


def _whole(values: pd.Series) -> bool:
    """Whether a float column holds whole numbers only (counts that a missing value made floats)."""
    import numpy as np
    import pandas as pd

    if not pd.api.types.is_float_dtype(values):
        return False
    finite = values[np.isfinite(values)]
    return len(finite) > 0 and bool((finite == np.round(finite)).all()) and bool((finite.abs() >= 1).any())


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
    import contextlib
    import hashlib
    import os
    import secrets
    import tempfile

    if os.environ.get(PSEUDONYM_KEY_ENV):
        return os.environ[PSEUDONYM_KEY_ENV].encode("utf-8")
    if not client:
        raise LTVError("Pseudonyms need a client name (for its key) or the LTV_PSEUDONYM_KEY environment variable.")
    # A readable file name, plus a hash of the exact name so "a/b" and "a_b" get different keys.
    safe = re.sub(r"[^\w.-]+", "_", client).strip("._")[:60] or "client"
    path = pseudonym_key_dir() / f"{safe}-{hashlib.sha256(client.encode('utf-8')).hexdigest()[:8]}.key"
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Made once, atomically: the key is written whole to a private temporary file, then linked
        # to its name, which fails if another run (or a parallel worker) got there first; either
        # way every run then reads the one complete key.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32) + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            except OSError:  # a file system without hard links: first to rename wins the race
                if not path.exists():
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
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

    import pandas as pd

    if key is None:
        key = pseudonym_key(client or "")
    secret = key.encode("utf-8") if isinstance(key, str) else bytes(key)
    if not secret:
        raise LTVError("The pseudonym key is empty; set LTV_PSEUDONYM_KEY to a secret or pass client=.")
    values = pd.Series(ids).astype(str)
    return values.map(lambda v: "C-" + hmac.new(secret, v.encode("utf-8"), hashlib.sha256).hexdigest()[:12])
