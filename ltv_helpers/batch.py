"""Many clients' reports in one run: ``ltv report --config clients.yaml [--workers N]``.

The file (see ``reports/clients.example.yaml``)::

    output: reports            # each client gets its own folder here: reports/<client>/<run>/
    clients:
      acme:
        source: exports/acme_orders.csv
        columns: {customer_id: 会员ID, order_date: 支付时间, amount: 实付金额}
        currency: CNY
        language: zh

(``cac:`` an acquisition-cost table; ``baseline: false`` no check of the client's last report)
is validated whole before anything runs; then the clients are rendered in parallel worker
processes, a client that fails does not stop the others, and the run ends with a table of every
client's status, seconds, report and (for a failure) the notebook and the reason.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ltv_helpers.options import OPTIONS
from ltv_helpers.schema import LIMITS, LTVError

#: Keys of a client's entry and the notebook parameter each one sets (``columns`` is a mapping):
#: every reading and cleaning option of ``ltv check`` (:data:`ltv_helpers.options.OPTIONS`), the
#: input ``limits``, and the report's own settings.
CLIENT_KEYS = {
    "source": "source", **{o.yaml: o.parameter for o in OPTIONS if not o.is_column}, "limits": "limits",
    "horizon_months": "horizon_months", "gross_margin": "gross_margin",
    "annual_discount_rate": "annual_discount_rate", "currency": "currency", "language": "language",
    "title": "title", "cac": "cac", "baseline": "baseline_dir", "columns": None, "parameters": None,
}
_CHOICES = {o.yaml: o.choices for o in OPTIONS if o.choices and o.python != "dayfirst"}
#: Roles of ``columns:`` and the collection notebook's parameter for each.
COLUMN_ROLES = {o.yaml.split(".", 1)[1]: o.parameter for o in OPTIONS if o.is_column}
TOP_KEYS = ("output", "clients")
#: A client's name is its folder name: letters (any script), digits, ``.``, ``_`` and ``-``.
CLIENT_NAME = re.compile(r"^[\w][\w.-]*$")
#: The steps of one client's run, for the progress bar.
STEPS = ("01_collection", "02_segmentation", "03_prediction", "04_evaluation", "06_channels", "07_monitoring",
         "05_summary", "report.pdf")  # a step a client skips is counted when it finishes


@dataclass(frozen=True)
class ClientJob:
    """One client of a config: its name, its report folder and the notebook parameters."""

    name: str
    output: Path
    parameters: dict


@dataclass
class ClientResult:
    """How one client's run ended."""

    client: str
    status: str  # "ok" or "failed"
    seconds: float
    report: str = ""
    notebook: str = ""
    reason: str = ""


def _text(client: str, key: str, value) -> None:
    if not isinstance(value, str):
        raise LTVError(f"Client {client!r}: {key} must be text, got {value!r}.")


def _client_parameters(name: str, entry) -> dict:
    """The notebook parameters of one client's entry, every key and value checked."""
    from ltv_helpers.credentials import refuse_credentials

    if not isinstance(entry, dict):
        raise LTVError(f"Client {name!r} must be a mapping of settings (source: ..., currency: ...), got {entry!r}.")
    unknown = [k for k in entry if k not in CLIENT_KEYS]
    if unknown:
        raise LTVError(f"Client {name!r} has an unknown key {unknown[0]!r}; the keys are: {', '.join(CLIENT_KEYS)}.")
    if "source" not in entry or entry["source"] in (None, ""):
        raise LTVError(f"Client {name!r} lacks the key 'source' (a file or a database URL without password).")
    params = {"client": name}
    for key, value in entry.items():
        if value is None:
            continue
        if key in ("source", "query", "encoding", "sheet", "date_format", "currency", "title", "cac"):
            _text(name, key, value)
        elif key == "baseline":  # false: no check of the last report; a run folder: that run
            if value is False:
                params["baseline_dir"] = None
                continue
            _text(name, key, value)
        elif key == "observation_end":
            if isinstance(value, (dt.date, dt.datetime)):
                value = value.isoformat()[:10]
            if not isinstance(value, str) or not re.match(r"^\d{4}-\d{2}-\d{2}$", value):
                raise LTVError(f"Client {name!r}: observation_end must be a date YYYY-MM-DD, got {value!r}.")
        elif key == "horizon_months":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise LTVError(f"Client {name!r}: horizon_months must be a whole number of months (1 or more), "
                               f"got {value!r}.")
        elif key in ("gross_margin", "annual_discount_rate"):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise LTVError(f"Client {name!r}: {key} must be a share between 0 and 1 (0.35 for 35%), got {value!r}.")
        elif key in _CHOICES:
            if value not in _CHOICES[key]:
                raise LTVError(f"Client {name!r}: {key} must be one of {', '.join(map(str, _CHOICES[key]))}, "
                               f"got {value!r}.")
        elif key == "limits":
            if not isinstance(value, dict) or any(k not in LIMITS for k in value) \
                    or any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in value.values()):
                raise LTVError(f"Client {name!r}: limits must map {', '.join(LIMITS)} to whole numbers, "
                               f"got {value!r}.")
        elif key == "dayfirst":
            if not isinstance(value, bool):
                raise LTVError(f"Client {name!r}: dayfirst must be true or false, got {value!r}.")
        elif key == "language":
            if value not in ("en", "zh"):
                raise LTVError(f"Client {name!r}: language must be en or zh, got {value!r}.")
        elif key == "columns":
            if not isinstance(value, dict):
                raise LTVError(f"Client {name!r}: columns must map roles to column names, e.g. "
                               "{customer_id: 会员ID}.")
            bad = [role for role in value if role not in COLUMN_ROLES]
            if bad:
                raise LTVError(f"Client {name!r} has an unknown column role {bad[0]!r}; the roles are: "
                               f"{', '.join(COLUMN_ROLES)}.")
            params.update({COLUMN_ROLES[role]: str(col) for role, col in value.items() if col is not None})
            continue
        elif key == "parameters":
            if not isinstance(value, dict):
                raise LTVError(f"Client {name!r}: parameters must map notebook parameters to values.")
            params.update(value)
            continue
        params[CLIENT_KEYS[key]] = value
    for key, value in params.items():
        refuse_credentials(value, f"client {name!r}: {key}")
    return params


#: A clients file may use anchors and aliases (shared settings), but its expansion is capped:
#: a few hundred bytes of nested aliases can otherwise stand for billions of values.
MAX_YAML_NODES = 100_000
#: Largest clients file read (bytes).
MAX_CONFIG_BYTES = 1_000_000


def _yaml_loader(path: Path):
    """A safe YAML loader for clients files that refuses a key given twice in one mapping (YAML
    would keep the last silently) and documents that expand to more than MAX_YAML_NODES values."""
    import yaml

    class Loader(yaml.SafeLoader):
        def compose_document(self):
            node = super().compose_document()
            sizes: dict[int, int] = {}

            def size(n) -> int:  # values the document stands for, aliases expanded (memoised)
                if sizes.get(id(n)) == -1:
                    raise LTVError(f"{path} has an alias that refers to itself (line {n.start_mark.line + 1}); "
                                   "write the settings out instead.")
                if id(n) not in sizes:
                    sizes[id(n)] = -1  # on the path being counted
                    children = ([c for pair in n.value for c in pair] if isinstance(n, yaml.MappingNode)
                                else n.value if isinstance(n, yaml.SequenceNode) else [])
                    sizes[id(n)] = 1 + sum(size(c) for c in children)
                return sizes[id(n)]

            if node is not None and size(node) > MAX_YAML_NODES:
                raise LTVError(f"{path} holds (or expands to, through &anchor / *alias) more than "
                               f"{MAX_YAML_NODES:,} values; a clients file holds settings, not data.")
            return node

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue
                    key = self.construct_object(key_node, deep=True)
                    text = str(key)
                    if text in seen:
                        raise LTVError(f"{path} gives the key {text!r} twice (lines {seen[text]} and "
                                       f"{key_node.start_mark.line + 1}); keep one.")
                    seen[text] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return Loader


def load_config(path) -> list[ClientJob]:
    """Read and validate a clients file; any problem is one sentence naming the client and key.

    The file is read with a YAML loader that refuses duplicate keys (two clients of one name
    included) and alias bombs (:data:`MAX_YAML_NODES`)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise LTVError(f"Config file not found: {path}.")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise LTVError(f"{path} is larger than {MAX_CONFIG_BYTES:,} bytes; a clients file holds settings, not data.")
    try:
        config = yaml.load(path.read_text(encoding="utf-8"), Loader=_yaml_loader(path))  # noqa: S506 - a SafeLoader
    except UnicodeDecodeError:
        raise LTVError(f"{path} is not UTF-8 text; save the clients file as UTF-8.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise LTVError(f"{path} is not valid YAML{where}: {getattr(err, 'problem', err)}.") from None
    except RecursionError:
        raise LTVError(f"{path} nests too deeply to be a clients file.") from None
    if not isinstance(config, dict):
        raise LTVError(f"{path} must be a mapping with the keys {' and '.join(TOP_KEYS)}.")
    unknown = [k for k in config if k not in TOP_KEYS]
    if unknown:
        raise LTVError(f"{path} has an unknown top-level key {unknown[0]!r}; the keys are: {', '.join(TOP_KEYS)} "
                       "(client settings go under clients: <name>:).")
    for key in TOP_KEYS:
        if not config.get(key):
            raise LTVError(f"{path} lacks the top-level key {key!r}.")
    if not isinstance(config["output"], str):
        raise LTVError(f"{path}: output must be a folder, got {config['output']!r}.")
    if not isinstance(config["clients"], dict):
        raise LTVError(f"{path}: clients must map each client's name to its settings.")
    from ltv_helpers.report import report_parameters

    known = report_parameters()
    jobs = []
    for name, entry in config["clients"].items():
        name = str(name)
        if not CLIENT_NAME.match(name):
            raise LTVError(f"Client name {name!r} cannot be a folder name: use letters, digits, '.', '_' or '-'.")
        params = _client_parameters(name, entry)
        stray = sorted(set(params) - known)
        if stray:
            raise LTVError(f"Client {name!r}: no notebook has a parameter {stray[0]!r}; the parameters are: "
                           f"{', '.join(sorted(known))}.")
        jobs.append(ClientJob(name, Path(config["output"]) / name, params))
    return jobs


def worker_count(workers: int | None, clients: int) -> int:
    """Worker processes for ``clients``: ``workers`` (default: the number of cores), at most one per client."""
    return max(1, min(workers or os.cpu_count() or 1, clients))


def _run_client(job: ClientJob, pdf: bool, channel) -> ClientResult:
    """Render one client (in a worker process); every failure becomes a result, never an exception.
    ``channel`` (a pipe's sending end, or None) is told each step."""
    from ltv_helpers.report import ReportError, render_report

    started = time.time()

    def progress(step: str) -> None:
        if channel is not None:
            channel.send(("step", job.name, step))

    try:
        html = render_report(job.output, job.parameters, pdf=pdf, progress=progress)
    except ReportError as err:
        return ClientResult(job.name, "failed", time.time() - started, notebook=err.notebook, reason=err.reason)
    except Exception as err:  # noqa: BLE001 - one client's failure must not stop the others
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return ClientResult(job.name, "failed", time.time() - started, reason=reason)
    return ClientResult(job.name, "ok", time.time() - started, report=str(html))


def _client_process(index: int, job: ClientJob, pdf: bool, channel) -> None:
    """A worker process's whole life: one client. SIGTERM (the batch being stopped) ends the run
    as an interrupt does, so the client's kernel and Chromium are ended too."""
    import signal

    def stop(signum, frame):
        # The batch is being stopped: the kernel's and the event loop's complaints about being
        # cut off are noise for the operator, who gets the batch's one line.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the batch, which stops the workers
    channel.send(("pid", job.name, os.getpid()))
    try:
        result = _run_client(job, pdf, channel)
    except KeyboardInterrupt:
        result = ClientResult(job.name, "failed", 0.0, reason="stopped before it finished")
    channel.send(("done", index, result))
    channel.close()


def _death(exitcode: int | None) -> str:
    import signal

    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"its worker process was killed ({name}) before the report was finished"
    return f"its worker process ended (exit code {exitcode}) before the report was finished"


def run_clients(jobs: list[ClientJob], *, workers: int | None = None, pdf: bool = True,
                stream=None) -> list[ClientResult]:
    """Render every job in ``workers`` processes at a time (default: the number of cores), one
    fresh process per client, with a progress bar on ``stream`` (overall steps, and which client
    is at which notebook; not on a terminal, one line per step and each worker's process id).
    A worker that dies (killed, out of memory) is that client's failure; the others go on.
    Returns the results in the jobs' order."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    from tqdm import tqdm

    stream = stream or sys.stderr
    workers = worker_count(workers, len(jobs))
    context = mp.get_context("spawn")  # fresh interpreters: no state inherited from the caller
    at: dict[str, str] = {}  # the step each running client is at
    finished: dict[str, int] = {}  # steps each client has finished
    bar = tqdm(total=len(jobs) * len(STEPS), file=stream, unit="step", dynamic_ncols=True,
               disable=not stream.isatty())
    results: list[ClientResult | None] = [None] * len(jobs)
    # Job index -> (process, its pipe's reading end, start time). One pipe per worker: a worker
    # killed while it writes cannot block the others (a shared queue's lock could).
    running: dict[int, tuple] = {}
    waiting = list(range(len(jobs)))

    def advance(client: str, steps: int) -> None:
        finished[client] = finished.get(client, 0) + steps
        bar.update(steps)

    def settle(i: int, result: ClientResult) -> None:
        results[i] = result
        at.pop(jobs[i].name, None)
        advance(jobs[i].name, len(STEPS) - finished.get(jobs[i].name, 0))

    def handle(message) -> None:
        kind, who, what = message
        if kind == "done":
            settle(who, what)
        elif kind == "pid":
            if bar.disable:
                print(f"[{who}] worker process {what}", file=stream, flush=True)
        else:
            if who in at:
                advance(who, 1)
            at[who] = what
            if bar.disable:  # not a terminal (a CI log): one line per step
                print(f"[{who}] {what}", file=stream, flush=True)
            else:
                bar.set_postfix_str(" | ".join(f"{c}: {s}" for c, s in at.items()), refresh=True)

    def finish(i: int) -> None:
        proc, reader, began = running.pop(i)
        while results[i] is None and reader.poll():  # whatever it said before it ended
            try:
                handle(reader.recv())
            except (EOFError, OSError):
                break
        proc.join()
        reader.close()
        if results[i] is None:
            settle(i, ClientResult(jobs[i].name, "failed", time.time() - began,
                                   notebook=at.get(jobs[i].name, ""), reason=_death(proc.exitcode)))

    try:
        while waiting or running:
            while waiting and len(running) < workers:
                i = waiting.pop(0)
                reader, writer = context.Pipe(duplex=False)
                proc = context.Process(target=_client_process, args=(i, jobs[i], pdf, writer),
                                       name=f"ltv-{jobs[i].name}", daemon=False)
                proc.start()
                writer.close()  # the worker holds the writing end; EOF when it ends
                running[i] = (proc, reader, time.time())
            by_handle = {}
            for i, (proc, reader, _) in running.items():
                by_handle[reader] = (i, "pipe")
                by_handle[proc.sentinel] = (i, "exit")
            for ready in wait(list(by_handle), timeout=5):
                i, kind = by_handle[ready]
                if i not in running:
                    continue
                if kind == "pipe":
                    try:
                        handle(running[i][1].recv())
                        continue
                    except (EOFError, OSError):  # the worker is gone
                        pass
                finish(i)
    except BaseException:
        for proc, _, _ in running.values():  # stopped (Ctrl-C): each worker ends its kernel and Chromium
            proc.terminate()
        for proc, _, _ in running.values():
            proc.join(timeout=30)
            if proc.exitcode is None:
                proc.kill()
        raise
    finally:
        bar.close()
    return results  # type: ignore[return-value]


def results_table(results: list[ClientResult]):
    """The end-of-run table: client, status, seconds, report, and for a failure where and why."""
    import pandas as pd

    return pd.DataFrame([{"client": r.client, "status": r.status, "seconds": round(r.seconds, 1),
                          "report": r.report or "-", "failed in": r.notebook or ("-" if r.status == "ok" else "?"),
                          "reason": r.reason or "-"} for r in results]).set_index("client")


def run_config(path, *, workers: int | None = None, pdf: bool = True) -> int:
    """``ltv report --config``: validate, render every client, print the table; 1 if any failed."""
    import pandas as pd

    jobs = load_config(path)
    print(f"{len(jobs)} clients from {path}, {worker_count(workers, len(jobs))} at a time")
    results = run_clients(jobs, workers=workers, pdf=pdf)
    with pd.option_context("display.max_colwidth", 120, "display.width", 250):
        print(results_table(results).to_string())
    failed = sum(r.status != "ok" for r in results)
    print(f"{len(results) - failed} of {len(results)} reports rendered" + (f", {failed} failed" if failed else ""))
    return 1 if failed else 0
