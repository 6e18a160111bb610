"""The set-up contract: pins agree everywhere, and each lifetimes trap is handled on purpose."""

import json
import os
import re
import tomllib
import warnings
from pathlib import Path

import pytest
import scipy
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[=<>!~ ;\[]", req, maxsplit=1)[0].strip().lower().replace("_", "-")


def _pyproject_deps() -> list[str]:
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return meta["dependencies"] + meta["optional-dependencies"]["dev"]


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = sorted(d for d in pip_section if not d.startswith("-"))
    assert listed == sorted(_pyproject_deps())
    assert "python=3.11" in env["dependencies"]


def test_every_dependency_is_pinned_and_in_the_constraints_file():
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[_name(name)] = version
    for req in _pyproject_deps():
        assert "==" in req, f"{req} is not pinned"
        name, version = req.split("==")
        assert pins.get(_name(name)) == version, f"constraints.txt disagrees on {name}"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme


def test_the_code_passes_ruff():
    """pyproject's ruff configuration, on the package, tests, benchmarks and notebooks."""
    import subprocess
    import sys

    ruff = Path(sys.executable).with_name("ruff")
    done = subprocess.run([str(ruff), "check", "--no-cache", "--output-format", "concise", str(ROOT)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stdout[-3000:]


def test_notebooks_are_stored_without_outputs_and_with_parameters():
    import nbformat

    for path in sorted((ROOT / "notebooks").rglob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert not any(c.outputs for c in code), f"{path.name} has outputs"
        assert any("parameters" in c.metadata.get("tags", []) for c in code), path.name
        assert not any("def " in c.source for c in code), f"{path.name} defines functions"


# ----------------------------------------------------------------- lifetimes traps

def test_scipy_is_below_the_version_that_breaks_pareto_nbd():
    major, minor = (int(x) for x in scipy.__version__.split(".")[:2])
    assert (major, minor) < (1, 16)


def test_cdnow_files_are_found_without_lifetimes_datasets_module():
    import sys

    from ltv_helpers.datasets import lifetimes_data_file

    assert lifetimes_data_file("CDNOW_master.txt").is_file()
    # Our loader never imports lifetimes.datasets (it needs pkg_resources).
    assert "lifetimes.datasets" not in sys.modules


def test_package_never_calls_the_broken_lifetimes_utilities():
    broken = ("calibration_and_holdout_data", "calculate_alive_path", "plot_history_alive",
              "plot_expected_repeat_purchases", "beta_geometric_nbd_model_transactional_data")
    for path in (ROOT / "ltv_helpers").glob("*.py"):
        text = path.read_text()
        for name in broken:
            assert not re.search(rf"\b{name}\(", text), f"{path.name} calls {name}"
        assert not re.search(r"^\s*(import|from) lifetimes[.]datasets", text, re.M), path.name


def test_lifetimes_still_fails_where_we_replaced_it(cdnow_sample):
    """If lifetimes starts working again these replacements can be reconsidered."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from lifetimes.utils import summary_data_from_transaction_data

    with pytest.raises(ValueError):
        summary_data_from_transaction_data(cdnow_sample, "customer_id", "order_date", freq="M")


def test_papermill_reads_every_parameter_of_every_notebook():
    """papermill silently drops a parameter whose line it cannot parse (e.g. an '=' in the
    comment); then `ltv report -p name=...` would not reach the notebook."""
    import ast

    import nbformat
    import papermill

    for path in sorted((ROOT / "notebooks").rglob("[0-9]*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        assigned = [t.id for node in ast.parse(cell.source).body if isinstance(node, ast.Assign)
                    for t in node.targets]
        assert list(papermill.inspect_notebook(str(path))) == assigned, path.name


def test_every_stage_notebook_ends_with_a_next_step_in_both_languages():
    for path in sorted((ROOT / "notebooks").glob("0*.ipynb")):
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        last = cells[-2:]
        assert [set(c["metadata"]["tags"]) >= {"next-step", "notebook-only"} for c in last] == [True, True], path.name
        text = "".join(last[0]["source"])
        assert "### Next step" in text and (".ipynb" in text or "lessons/" in text), path.name


def test_make_lab_serves_the_notebooks_with_the_project_kernel(tmp_path):
    """`make lab` is `ltv lab` (JupyterLab on notebooks/, one language shown); the server lists the
    notebooks and lessons and offers the kernel `make setup` registers."""
    import secrets
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    kernels = subprocess.run([sys.executable, "-m", "jupyter", "kernelspec", "list", "--json"],
                             capture_output=True, text=True, check=True)
    specs = json.loads(kernels.stdout)["kernelspecs"]
    assert specs["ltv-toolkit"]["spec"]["display_name"] == "LTV toolkit (Python 3.11)"
    from ltv_helpers import lab as one_language

    assert "lab:" in (ROOT / "Makefile").read_text() and "$(BIN)/ltv lab --language" in (ROOT / "Makefile").read_text()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token = secrets.token_hex(16)
    command = one_language.command("en", ROOT / "notebooks", port=port,
                                   extra=[f"--IdentityProvider.token={token}", f"--ServerApp.runtime_dir={tmp_path}"])
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env={**os.environ, "HOME": str(tmp_path)})
    try:
        def get(path):
            url = f"http://127.0.0.1:{port}{path}?token={token}"
            return json.loads(urllib.request.urlopen(url, timeout=5).read())
        for _ in range(120):
            try:
                contents = get("/api/contents")
                break
            except OSError:
                time.sleep(0.5)
        else:
            raise AssertionError("JupyterLab did not start within a minute")
        names = {item["name"] for item in contents["content"]}
        assert {"01_collection.ipynb", "05_summary.ipynb", "lessons"} <= names
        assert "ltv-toolkit" in get("/api/kernelspecs")["kernelspecs"]
        lab = urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token={token}", timeout=10).read()
        assert b"JupyterLab" in lab
    finally:
        server.terminate()
        server.wait(timeout=30)
