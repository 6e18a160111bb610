"""JupyterLab in one language: what the browser gets, and that saving leaves the file as it was."""
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request

import nbformat
import pytest

from ltv_helpers import LTVError, lab
from ltv_helpers.report import NOTEBOOKS_DIR

NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("**/*.ipynb"))


def _shown(nb, language):
    """The narrative cells a reader sees unfolded."""
    return [c for c in nb.cells if any(t.startswith("lang-") for t in c.metadata.get("tags", ()))
            and not c.metadata.get("jupyter", {}).get("source_hidden")]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
@pytest.mark.parametrize("language", lab.LANGUAGES)
def test_one_language_shows_one_and_round_trips(path, language):
    text = path.read_text(encoding="utf-8")
    nb = lab.one_language(nbformat.reads(text, as_version=4), language)
    shown = _shown(nb, language)
    assert shown and all(f"lang-{language}" in c.metadata["tags"] for c in shown)
    params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", ()))
    assert f'language = "{language}"' in params.source
    # What the lab sends back is written exactly as the file was.
    back = nbformat.writes(lab.both_languages(nbformat.from_dict(json.loads(json.dumps(nb))), language))
    assert back + ("" if back.endswith("\n") else "\n") == text       # as nbformat.write saves it


def test_the_users_own_folds_and_edits_are_kept():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("en", metadata={"tags": ["lang-en"]}),
                nbformat.v4.new_markdown_cell("zh folded by its author",
                                              metadata={"tags": ["lang-zh"], "jupyter": {"source_hidden": True}}),
                nbformat.v4.new_markdown_cell("zh", metadata={"tags": ["lang-zh"]}),
                nbformat.v4.new_code_cell('language = "en"  # "en" or "zh"\nbins = 5',
                                          metadata={"tags": ["parameters"]})]
    lab.one_language(nb, "en")
    assert [c.metadata.get("jupyter", {}).get("source_hidden", False) for c in nb.cells[:3]] == [False, True, True]
    assert lab.MARK not in nb.cells[1].metadata and lab.MARK not in nb.cells[3].metadata
    lab.both_languages(nb, "en")
    assert nb.cells[1].metadata["jupyter"] == {"source_hidden": True}        # the author's fold stays
    assert "jupyter" not in nb.cells[2].metadata
    # A user who chose another language in the lab keeps that choice on disk.
    nb2 = lab.one_language(nbformat.from_dict(json.loads(json.dumps(nb))), "zh")
    assert nb2.cells[3].source.startswith('language = "zh"')
    nb2.cells[3].source = nb2.cells[3].source.replace('"zh"', '"en"', 1).replace("bins = 5", "bins = 4")
    lab.both_languages(nb2, "zh")
    assert nb2.cells[3].source == 'language = "en"  # "en" or "zh"\nbins = 4'


def test_a_lab_restarted_in_the_other_language_still_saves_the_files_language():
    """Opened in Chinese, saved by a lab that now shows English: the file keeps its own "en"."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('language = "en"\nbins = 5', metadata={"tags": ["parameters"]})]
    shown = lab.one_language(nb, "zh")
    assert shown.cells[0].source.startswith('language = "zh"')
    back = lab.both_languages(nbformat.from_dict(json.loads(json.dumps(shown))), "en")
    assert back.cells[0].source == 'language = "en"\nbins = 5' and lab.MARK not in back.cells[0].metadata


def test_bad_language_and_folder_fail_in_one_sentence(tmp_path):
    with pytest.raises(LTVError, match="language must be one of en, zh, not 'fr'"):
        lab.one_language(nbformat.v4.new_notebook(), "fr")
    with pytest.raises(LTVError, match="is not a folder of notebooks"):
        lab.command("en", tmp_path / "missing")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_jupyterlab_serves_one_language_and_saves_both(tmp_path):
    """The command `ltv lab` runs, against its REST API: GET shows Chinese, PUT keeps the file."""
    source = NOTEBOOKS_DIR / "02_segmentation.ipynb"
    shutil.copy(source, tmp_path / source.name)
    token, port = secrets.token_hex(16), _free_port()
    cmd = lab.command("zh", tmp_path, port=port, extra=[f"--IdentityProvider.token={token}"])
    env = {**os.environ, **{f"JUPYTER_{d}_DIR": str(tmp_path / d.lower()) for d in ("CONFIG", "RUNTIME", "DATA")}}
    log = open(tmp_path / "lab.log", "w")
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/api/contents/{source.name}"
    headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as r:
                    model = json.load(r)
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: {(tmp_path / 'lab.log').read_text()[-2000:]}")
                time.sleep(0.5)
        nb = nbformat.from_dict(model["content"])
        assert {t for c in _shown(nb, "zh") for t in c.metadata["tags"] if t.startswith("lang-")} == {"lang-zh"}
        params = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", ()))
        assert 'language = "zh"' in params.source
        body = json.dumps({"type": "notebook", "format": "json", "content": model["content"]}).encode()
        put = urllib.request.Request(url, data=body, method="PUT", headers=headers)
        with urllib.request.urlopen(put, timeout=30) as r:
            assert r.status == 200
        assert (tmp_path / source.name).read_text(encoding="utf-8") == source.read_text(encoding="utf-8")
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
