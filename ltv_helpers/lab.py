"""JupyterLab in one language.

Every narrative cell of the notebooks is written twice, English and Chinese, tagged ``lang-en`` /
``lang-zh`` (the report keeps one). A consultant works in one language, so ``ltv lab --language zh``
starts JupyterLab with :class:`OneLanguageContentsManager`: on the way to the browser it folds the
other language's cells (JupyterLab's standard ``jupyter.source_hidden``, shown as a one-line
placeholder) and sets the parameters cell's ``language`` to the chosen one; on the way back to disk
it undoes exactly that. The notebook on disk stays the single two-language source, byte for byte
(unless the user edits it, of course).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from traitlets import Enum

from ltv_helpers import LTVError

LANGUAGES = ("en", "zh")
#: Cell metadata key recording what the lab changed, so that saving undoes that and nothing else.
MARK = "ltv-lab"
_LANGUAGE_LINE = re.compile(r'^language = "(?P<lang>[a-z]+)"', re.MULTILINE)


def _check(language: str) -> str:
    if language not in LANGUAGES:
        raise LTVError(f"language must be one of {', '.join(LANGUAGES)}, not {language!r}.")
    return language


def one_language(nb, language: str):
    """The notebook as the lab shows it (in place, returned): cells tagged with another language
    folded, the parameters cell's ``language = "..."`` set to ``language``."""
    _check(language)
    other = {f"lang-{lang}" for lang in LANGUAGES if lang != language}
    for cell in nb.cells:
        tags = set(cell.metadata.get("tags", ()))
        mark = {}
        if tags & other:
            jupyter = cell.metadata.setdefault("jupyter", {})
            if not jupyter.get("source_hidden"):
                jupyter["source_hidden"] = True
                mark["folded"] = True
        if "parameters" in tags and cell.cell_type == "code":
            found = _LANGUAGE_LINE.search(cell.source)
            if found and found["lang"] != language:
                cell.source = cell.source[:found.start("lang")] + language + cell.source[found.end("lang"):]
                mark["language"] = [found["lang"], language]  # what the file said, what the lab shows
        if mark:
            cell.metadata[MARK] = mark
    return nb


def both_languages(nb, language: str):
    """The inverse of :func:`one_language` (in place, returned): what the lab folded is unfolded,
    the parameters cell's language goes back to what the file said, if the user left it as shown."""
    _check(language)
    for cell in nb.cells:
        mark = cell.metadata.pop(MARK, None)
        if not mark:
            continue
        jupyter = cell.metadata.get("jupyter", {})
        if mark.get("folded") and jupyter.get("source_hidden"):
            del jupyter["source_hidden"]
            if not jupyter:
                del cell.metadata["jupyter"]
        if "language" in mark:
            original, shown = mark["language"]
            found = _LANGUAGE_LINE.search(cell.source)
            if found and found["lang"] == shown:  # left as the lab showed it (whatever the lab shows now)
                cell.source = cell.source[:found.start("lang")] + original + cell.source[found.end("lang"):]
    return nb


class OneLanguageContentsManager(AsyncLargeFileManager):
    """Serves the notebooks with one language shown and saves them with both (see the module)."""

    language = Enum(list(LANGUAGES), default_value="en", config=True,
                    help="the narrative language shown; the other one is folded")

    # Changed after the signature check on reading and before signing on saving, so that trust
    # is judged on the file's own form.
    async def _notebook_model(self, path, content=True, require_hash=False):
        model = await super()._notebook_model(path, content=content, require_hash=require_hash)
        if content:
            one_language(model["content"], self.language)
        return model

    async def save(self, model, path=""):
        if model.get("type") == "notebook" and "content" in model:
            model = {**model, "content": both_languages(nbformat.from_dict(model["content"]), self.language)}
        return await super().save(model, path)


def command(language: str, notebook_dir, port: int | None = None, extra=()) -> list[str]:
    """The ``jupyter lab`` command line that shows ``notebook_dir`` in ``language``."""
    _check(language)
    folder = Path(notebook_dir)
    if not folder.is_dir():
        raise LTVError(f"{folder} is not a folder of notebooks.")
    cmd = [sys.executable, "-m", "jupyter", "lab", f"--notebook-dir={folder}", "--no-browser",
           "--ServerApp.ip=127.0.0.1",
           "--ServerApp.contents_manager_class=ltv_helpers.lab.OneLanguageContentsManager",
           f"--OneLanguageContentsManager.language={language}"]
    if port:
        cmd.append(f"--ServerApp.port={port}")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    return cmd + list(extra)


def run(language: str, notebook_dir, port: int | None = None) -> int:
    """Start JupyterLab (until Ctrl-C) and return its exit status."""
    cmd = command(language, notebook_dir, port)
    print(f"JupyterLab on {notebook_dir}, narrative in {'Chinese' if language == 'zh' else 'English'} "
          "(the other language folded; files keep both). Open the http://127.0.0.1 URL below; Ctrl-C stops.",
          flush=True)
    import signal

    server = subprocess.Popen(cmd)
    try:
        return server.wait()
    except KeyboardInterrupt:
        # Ctrl-C (or a SIGTERM, which the ltv command turns into one): a second interrupt is
        # JupyterLab's own clean shutdown (kernels stopped, runtime files removed), without its
        # "Shutdown this Jupyter server (y/[n])?" question; killed only if it does not end.
        server.send_signal(signal.SIGINT)
        try:
            return server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.terminate()
            try:
                return server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                return server.wait()
