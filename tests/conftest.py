import os
import tempfile

os.environ.setdefault("MPLBACKEND", "Agg")
# Pseudonym keys made by tests (and by the notebooks nbval runs) go to a throw-away folder,
# not the user's ~/.local/share.
os.environ["LTV_KEY_DIR"] = tempfile.mkdtemp(prefix="ltv-test-keys-")

import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ltv_helpers.datasets import load_cdnow  # noqa: E402

#: The slow parts by what they need (pyproject's markers): a test using one of these fixtures is
#: marked so; the modules that render notebooks or reports, and nbval's cells, are "notebooks".
#: `make test-fast` runs the rest.
SLOW_FIXTURES = {"postgres": "postgres", "spark": "spark", "chromium_path": "chromium"}
NOTEBOOK_MODULES = {"test_report.py", "test_lessons.py", "test_deliverable.py", "test_batch.py", "test_lab.py",
                    "test_operations.py"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, mark in SLOW_FIXTURES.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(mark)
        if item.path.suffix == ".ipynb" or item.path.name in NOTEBOOK_MODULES:
            item.add_marker("notebooks")


@pytest.fixture(scope="session")
def cdnow():
    return load_cdnow()


@pytest.fixture(scope="session")
def monitored_demo(tmp_path_factory):
    """The demo client (the bundled CDNOW) reported to 1998-03-31 in Chinese and then to the data's
    end, 1998-06-30, in English, into one client folder, as a consultant does month after month
    (the language is the reader's; the client is the same): the first run's folder and the second
    run's report.html (each with report.pdf where Chromium is installed). The deliverable's tests
    read both reports; the monitoring tests compare the two runs."""
    from ltv_helpers.report import chromium, render_report

    folder = tmp_path_factory.mktemp("demo")
    pdf = chromium() is not None
    first = render_report(folder, {"client": "demo", "language": "zh", "observation_end": "1998-03-31"},
                          pdf=pdf).parent
    return first, render_report(folder, {"client": "demo", "language": "en"}, pdf=pdf)


@pytest.fixture(scope="session")
def cdnow_sample():
    return load_cdnow(sample=True)


@pytest.fixture
def tiny():
    """Hand-checkable transactions: a buys 3 days (two rows on day 1), b once."""
    return pd.DataFrame({
        "customer_id": ["a", "a", "a", "a", "b"],
        "order_date": pd.to_datetime(["2024-01-01", "2024-01-01 18:00", "2024-01-11",
                                      "2024-01-21", "2024-01-05"], format="mixed"),
        "amount": [10.0, 5.0, 30.0, 20.0, 8.0],
    })


# --------------------------------------------------------------------------- PostgreSQL server

def _postgres_bin():
    import glob
    import shutil
    from pathlib import Path

    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").is_file() and Path(folder, "pg_ctl").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server in a temporary folder (initdb + pg_ctl from Debian's postgresql),
    listening on 127.0.0.1 with password (SCRAM) authentication. Yields host, port and the
    superuser's password; stopped and deleted at the end of the session."""
    import pwd
    import secrets
    import shutil
    import socket
    import subprocess

    bindir = _postgres_bin()
    if bindir is None:
        message = "PostgreSQL (initdb, pg_ctl) is not installed; Debian: apt-get install postgresql"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    root = tempfile.mkdtemp(prefix="ltv-pg-")
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.fail("running as root, but there is no postgres user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    password = secrets.token_urlsafe(16)
    pwfile = os.path.join(root, "pw")
    with open(pwfile, "w") as fh:
        fh.write(password + "\n")
    if run_as:
        os.chown(pwfile, user.pw_uid, user.pw_gid)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data_dir = os.path.join(root, "data")
    subprocess.run(run_as + [str(bindir / "initdb"), "-D", data_dir, "-U", "postgres", "-E", "UTF8",
                             "--locale=C", "-A", "scram-sha-256", f"--pwfile={pwfile}"],
                   check=True, capture_output=True)
    os.remove(pwfile)
    subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", data_dir, "-l", os.path.join(root, "log"), "-w",
                             "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"],
                   check=True, capture_output=True)
    try:
        yield {"host": "127.0.0.1", "port": port, "password": password}
    finally:
        subprocess.run(run_as + [str(bindir / "pg_ctl"), "-D", data_dir, "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# --------------------------------------------------------------------------- headless Chromium

@pytest.fixture(scope="session")
def chromium_path():
    """Debian's headless Chromium (for the PDF and the browser checks of the report). Skipped on a
    developer machine without it; under CI (CI=true) a missing Chromium fails: `.ci/run`
    installs it."""
    from ltv_helpers.report import chromium

    found = chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing: .ci/run should have installed Debian's chromium package.")
        pytest.skip("headless Chromium is not installed (apt-get install chromium)")
    return found


# --------------------------------------------------------------------------- Spark (local)

@pytest.fixture(scope="session")
def spark():
    """A local Spark session (2 cores) for the engine tests; Java 17 comes from Debian's
    openjdk-17-jre-headless (.ci/run installs it). Stopped at the end of the session."""
    import shutil

    if shutil.which("java") is None:
        message = "Java is not installed; Spark needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)"
        if os.environ.get("CI"):
            pytest.fail(message + " (.ci/run installs it)")
        pytest.skip(message)
    from ltv_helpers.data.engines import spark_session

    session = spark_session("local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def pdftotext():
    """poppler's pdftotext (Debian: poppler-utils), to read what a printed report says."""
    import shutil

    found = shutil.which("pdftotext")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("pdftotext is missing: .ci/run should have installed Debian's poppler-utils.")
        pytest.skip("pdftotext is not installed (apt-get install poppler-utils)")
    return found


def pdf_text(pdftotext, path) -> str:
    """The text of a PDF as laid out on its pages (pages separated by form feeds)."""
    from ltv_helpers.report import pdf_text as read

    return read(path, pdftotext)


@pytest.fixture(autouse=True)
def _fresh_caches(monkeypatch):
    """Each test starts without what an earlier one left in the package's one-entry caches (the
    transactions' shared OrderDays and cut-offs, Pareto/NBD's prepared rows): a test that changes a
    model must not leave rows that change another's results."""
    from ltv_helpers.data import summary
    from ltv_helpers.models import pareto_nbd

    monkeypatch.setattr(summary, "_LAST_SHARED", None)
    monkeypatch.setattr(pareto_nbd, "_LAST_ROWS", None)
