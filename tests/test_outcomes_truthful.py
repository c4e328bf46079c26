"""A job's recorded outcome says what happened: a rank that SIGTERMs its runner is not a user's cancel, a
process a rank detached with setsid ends with the job, a job whose runner never started says so, and a job
whose outcome a later reader records keeps the time it really ended."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from helpers import wait_until

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.backends.local import outcome
from dlw_magic.backends.local.procs import start_time
from dlw_magic.backends.local.store import Store

pytestmark = pytest.mark.timeout(180)


def submit(tmp_path: Path, text: str, name: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return core.submit(core.build_spec(path, name=name)).name


def test_a_rank_that_sigterms_its_runner_is_not_a_cancel(dlw_home, tmp_path):
    name = submit(tmp_path, "import os, signal, time\nos.kill(os.getppid(), signal.SIGTERM)\ntime.sleep(60)\n",
                  "parricide")
    job = core.wait(name, timeout=120)
    assert job.state is JobState.FAILED and job.reason == "Terminated", (job.state, job.reason, job.message)
    assert "not dlw cancel" in (job.message or "")


def test_a_setsid_grandchild_ends_with_its_job(dlw_home, tmp_path):
    pidfile = tmp_path / "grandchild.pid"
    name = submit(tmp_path, (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], start_new_session=True)\n"
        f"open({str(pidfile)!r}, 'w').write(str(p.pid))\n"), "detached")
    job = core.wait(name, timeout=120)
    assert job.state is JobState.SUCCEEDED
    pid = int(pidfile.read_text())
    assert wait_until(lambda: start_time(pid) is None, timeout=10), "the setsid grandchild outlived its job"


def test_a_job_whose_runner_never_started_says_so(dlw_home, tmp_path, monkeypatch):
    from dlw_magic.backends.local import backend as local

    name = submit(tmp_path, "pass\n", "never")
    store = Store(dlw_home)
    row = store.by_name(core.current_user(), name)
    job = core.wait(name, timeout=60)  # let this one end, then make a record as a killed submitter leaves it
    assert job.state is JobState.SUCCEEDED
    store.execute("UPDATE jobs SET state = 'Queued', supervisor_pid = NULL, finished = NULL, created = ? "
                  "WHERE id = ?", (time.time() - 1000, row["id"]))
    (Path(row["job_dir"]) / outcome.FILE).unlink()
    monkeypatch.setattr(local, "_SPAWN_GRACE", 1)
    job = core.get_job(name)
    assert (job.state, job.reason) == (JobState.FAILED, "RunnerNotStarted"), job.message
    assert "never started" in (job.message or "")


def test_an_outcome_recorded_late_keeps_the_time_the_job_ended(dlw_home, tmp_path):
    name = submit(tmp_path, "pass\n", "late")
    job = core.wait(name, timeout=60)
    store = Store(dlw_home)
    row = store.by_name(core.current_user(), name)
    ended = job.finished
    assert ended is not None
    # As if the runner had written its outcome file and died before the database: a reader records it later.
    store.execute("UPDATE jobs SET state = 'Running', finished = NULL, supervisor_pid = ?, supervisor_start = ? "
                  "WHERE id = ?", (os.getpid(), 1, row["id"]))
    time.sleep(1.5)
    job = core.get_job(name)
    assert job.state is JobState.SUCCEEDED
    assert job.finished is not None and abs(job.finished - ended) < 1.0  # not the reader's time


def test_cancelling_a_stopped_runner_is_quick_and_keeps_what_its_ranks_did(dlw_home, tmp_path):
    import signal

    flag = tmp_path / "rank-done"
    name = submit(tmp_path, (
        "import pathlib, time\n"
        f"while not pathlib.Path({str(flag)!r} + '.go').exists():\n    time.sleep(0.02)\n"
        f"pathlib.Path({str(flag)!r}).write_text('done')\n"), "stopped")
    row = Store(dlw_home).by_name(core.current_user(), name)
    assert wait_until(lambda: Store(dlw_home).by_name(core.current_user(), name)["state"] == "Running", timeout=60)
    row = Store(dlw_home).by_name(core.current_user(), name)
    os.kill(row["supervisor_pid"], signal.SIGSTOP)
    Path(str(flag) + ".go").touch()
    assert wait_until(flag.exists, timeout=30)  # the rank ran to its end (exit 0) while its runner was stopped
    time.sleep(0.3)
    began = time.monotonic()
    job = core.cancel(name)
    assert time.monotonic() - began < 10  # woken, not waited out for 15 s and killed
    assert job.state is JobState.SUCCEEDED, (job.state, job.reason, job.message)


def test_a_runner_that_cannot_be_started_fails_the_job_at_once(dlw_home, tmp_path, monkeypatch):
    import sys

    from dlw_magic.errors import DLWError

    script = tmp_path / "t.py"
    script.write_text("pass\n")
    spec = core.build_spec(script, name="no-runner")
    with monkeypatch.context() as patch, pytest.raises(DLWError, match="could not start the job's local runner"):
        patch.setattr(sys, "executable", str(tmp_path / "gone" / "python"))  # the interpreter was removed
        core.submit(spec)
    job = core.get_job("no-runner")
    assert (job.state, job.reason) == (JobState.FAILED, "StartError")  # not Queued for 120 s, then "killed"
