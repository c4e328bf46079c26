"""The experiment runner: submits trials as earlier ones finish (``parallel``), stops trials early, cascades
cancels and settles the experiment.

Why a detached process: the trials beyond ``parallel`` must wait in DLW (not as Pending pods), and the
sweep must go on after the submitting kernel or shell exits, locally and on Kubernetes alike. One small
process per experiment (started like the local job runner, in its own session) polls the trials through
the backend and advances the record under its lock. It holds nothing the record does not: if it is killed,
the next reader (``dlw sweep status``, ``dlw experiments``, the panel) sees it gone and starts another,
which carries on from the record. ``advance`` is idempotent, so a reader may also call it directly.

    python -m dlw_magic.experiments.runner NAME
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from .. import core
from ..errors import Conflict, DLWError, NotFound
from ..types import JobState
from . import store
from .results import best_trial, summarize_metric
from .stopping import stop_reason

if TYPE_CHECKING:
    from ..backends import Backend
    from ..spec.experiment import Experiment

EXPERIMENT_FINAL = ("Succeeded", "Failed", "Cancelled")
_CURVE_POINTS = 500  # the goal metric's points kept per trial (the overlay chart, the median rule)


def backend_of(record: dict[str, Any]) -> Backend:
    b = record.get("backend") or {}
    return core.backend_for(b.get("name"), b.get("kubeconfig"), b.get("namespace"))


def experiment_of(record: dict[str, Any]) -> Experiment:
    from ..spec.experiment import Experiment

    return Experiment.model_validate(record["spec"])


def trial_spec(record: dict[str, Any], trial: dict[str, Any]) -> Any:
    """The trial's TrainingJob: the experiment's job with the trial's name and parameters."""
    from ..spec import parse_spec

    job = dict(record["spec"]["job"])
    job["name"] = trial["name"]
    job["parameters"] = {**(job.get("parameters") or {}), **trial["parameters"]}
    return parse_spec(job, f"experiment {record['name']}, trial {trial['index']}")


def advance(name: str, backend: Backend | None = None, wait: float = 30.0) -> dict[str, Any]:
    """One pass over the experiment: refresh trial states, stop or cancel what the rules say, submit
    waiting trials up to ``parallel``, settle it when every trial has ended. Returns the record."""
    with store.locked(name, wait) as record:
        if record is None:  # someone else is advancing it: what they last wrote
            return store.load(name)
        if record["state"] not in EXPERIMENT_FINAL:
            step(record, backend or backend_of(record))
        return record


def step(record: dict[str, Any], backend: Backend) -> None:
    """``advance``'s work, on a record the caller holds locked."""
    exp = experiment_of(record)
    metrics = _refresh(record, backend, exp)
    if record.get("cancel_requested"):
        _cancel_all(record, backend, "Cancelled", "the experiment was cancelled")
    else:
        _early_stop(record, backend, exp, metrics)
        failed = next((t for t in record["trials"] if t["state"] == "Failed"), None)
        if exp.fail_fast and failed is not None:
            _cancel_all(record, backend, "Cancelled", f"failFast: trial {failed['name']} failed")
            record["message"] = f"stopped after trial {failed['name']} failed (failFast)"
        _submit_more(record, backend, exp)
    _settle(record, exp)


def _refresh(record: dict[str, Any], backend: Backend, exp: Experiment) -> dict[str, dict[str, Any]]:
    """Read the active trials' states (and metrics): {trial name: metrics} of those read."""
    read: dict[str, dict[str, Any]] = {}
    for t in record["trials"]:
        if t["state"] not in store.TRIAL_ACTIVE:
            continue
        try:
            job = backend.get(t["name"])
        except NotFound:
            t.update(state="Failed", reason="Deleted", message="the trial's job was deleted", finished=time.time())
            continue
        t.update(state=job.state.value, started=job.started, finished=job.finished, reason=job.reason,
                 message=job.message, exit_code=job.exit_code)
        if job.state != JobState.QUEUED and (exp.metric or exp.stop_if):
            metrics = backend.metrics(job)
            read[t["name"]] = metrics
            if exp.metric:
                t.update(summarize_metric(metrics.get(exp.metric) or [], exp.goal, _CURVE_POINTS))
    return read


def _early_stop(record: dict[str, Any], backend: Backend, exp: Experiment, metrics: dict[str, dict[str, Any]]) -> None:
    rules = exp.stop_rules
    if not rules:
        return
    curves = {t["name"]: {exp.metric: t.get("curve") or []} for t in record["trials"] if exp.metric}
    for t in record["trials"]:
        if t["state"] != "Running" or t["name"] not in metrics:
            continue
        others = [c for n, c in curves.items() if n != t["name"]]
        reason = stop_reason(rules, metrics[t["name"]], others, exp.metric, exp.goal)
        if reason is None:
            continue
        with contextlib.suppress(Conflict):  # it finished meanwhile: it keeps its own ending
            core.cancel(t["name"], backend)
            t.update(state="Stopped", reason="EarlyStopped", message=reason, finished=time.time())


def _cancel_all(record: dict[str, Any], backend: Backend, reason: str, message: str) -> None:
    for t in record["trials"]:
        if t["state"] == "Waiting":
            t.update(state="Cancelled", reason="NotStarted", message=message)
        elif t["state"] in store.TRIAL_ACTIVE:
            try:
                job = core.cancel(t["name"], backend)
                t.update(state=job.state.value, reason=reason, message=message, finished=job.finished)
            except Conflict:  # it finished meanwhile
                job = backend.get(t["name"])
                t.update(state=job.state.value, reason=job.reason, message=job.message, finished=job.finished)
            except NotFound:
                t.update(state="Failed", reason="Deleted", message="the trial's job was deleted")


def _submit_more(record: dict[str, Any], backend: Backend, exp: Experiment) -> None:
    active = sum(t["state"] in store.TRIAL_ACTIVE for t in record["trials"])
    for t in record["trials"]:
        if active >= exp.parallel:
            return
        if t["state"] != "Waiting":
            continue
        try:
            job = core.submit(trial_spec(record, t), backend,
                              provenance={"experiment": record["name"], "trial": t["index"]})
        except DLWError as err:  # this trial fails; the others go on (failFast stops them on the next pass)
            t.update(state="Failed", reason="SubmitFailed", message=str(err), finished=time.time())
            if exp.fail_fast:
                return
            continue
        t.update(state=job.state.value, submitted=time.time(), job_id=job.id)
        active += 1


def _settle(record: dict[str, Any], exp: Experiment) -> None:
    trials = record["trials"]
    if any(t["state"] == "Waiting" or t["state"] in store.TRIAL_ACTIVE for t in trials):
        return
    if record.get("cancel_requested"):
        record["state"] = "Cancelled"
    elif exp.fail_fast and any(t["state"] == "Failed" for t in trials):
        record["state"] = "Failed"
    else:
        record["state"] = "Succeeded" if any(t["state"] == "Succeeded" for t in trials) else "Failed"
    record["finished"] = time.time()
    best = best_trial(record)
    record["best"] = best["name"] if best else None


# ---------------------------------------------------------------- the detached process


def _alive(runner: dict[str, Any] | None) -> bool:
    from ..backends.local import procs

    return bool(runner) and procs.alive(runner.get("pid"), runner.get("start"))  # type: ignore[union-attr]


def spawn(name: str) -> None:
    """Start the experiment's runner in its own session (it outlives the kernel, the server, the shell)."""
    from ..backends.local import procs
    from ..backends.local.backend import data_dir

    folder = store.folder(name)
    env = dict(os.environ, DLW_HOME=str(data_dir()))  # the same records, whatever the caller's config
    fd = os.open(folder / "runner.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlw_magic.experiments.runner", name],
            stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT, env=env,
            start_new_session=True, close_fds=True,
        )
    finally:
        os.close(fd)
    threading.Thread(target=proc.wait, daemon=True).start()  # reap it if this process lives longer
    with store.locked(name) as record:
        if record is not None and not _alive(record.get("runner")):
            record["runner"] = {"pid": proc.pid, "start": procs.start_time(proc.pid)}


def ensure_running(name: str, record: dict[str, Any] | None = None) -> dict[str, Any]:
    """The record; an unfinished experiment whose runner is gone (killed, reboot) gets a new one."""
    record = record or store.load(name)
    if record["state"] not in EXPERIMENT_FINAL and not _alive(record.get("runner")):
        spawn(name)
    return record


def run(name: str) -> int:
    """The runner's loop: advance until the experiment has ended; quick polls while things change."""
    from ..backends.local import procs

    me = {"pid": os.getpid(), "start": procs.start_time(os.getpid())}
    with store.locked(name) as record:
        if record is None or (_alive(record.get("runner")) and record["runner"].get("pid") != me["pid"]):
            return 0  # another runner has it
        record["runner"] = me
    backend = backend_of(store.load(name))
    # Local trials are read from SQLite (cheap): a finished one is replaced within 0.2 s. On a cluster
    # each pass costs a GET per active trial: at most one pass every 2 s once nothing changes.
    cap = 0.2 if backend.name == "local" else 2.0
    delay, last = 0.05, None
    while True:
        try:
            record = advance(name, backend)
        except NotFound:
            return 0  # the experiment was deleted
        if record["state"] in EXPERIMENT_FINAL:
            return 0
        now = [(t["state"], t.get("step")) for t in record["trials"]]
        delay = 0.05 if now != last else min(delay * 1.5, cap)
        last = now
        time.sleep(delay)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        sys.stderr.write("usage: python -m dlw_magic.experiments.runner NAME\n")
        return 2
    try:
        return run(argv[0])
    except DLWError as err:
        sys.stderr.write(f"dlw experiment runner: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
