"""The local runner under faults: a held database lock, a full disk, a runner that starts slowly,
is stopped or is killed, half-submitted jobs, chatty ranks and hostile references. Outcomes are never
falsified or lost, and every failure has a reason a person can read."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import processes_with_env, wait_until

from dlw_magic import cli, core
from dlw_magic.backends import JobState, get_backend
from dlw_magic.backends.local import outcome
from dlw_magic.backends.local.procs import alive
from dlw_magic.backends.local.store import Store
from dlw_magic.errors import DLWError

pytestmark = pytest.mark.timeout(120)

WAIT_FOR_GO = """
import os, pathlib, time
print("waiting", flush=True)
go = pathlib.Path(os.environ["DLW_OUTPUT_DIR"]).parent / "go"
give_up = time.time() + 90  # a failed test must not leave the job waiting for ever
while not go.exists() and time.time() < give_up:
    time.sleep(0.02)
print("done", flush=True)
"""

GRANDCHILD = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("started", flush=True)
time.sleep(120)
"""


def submit(tmp_path: Path, text: str, name: str, **options) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(text)
    return core.submit(core.build_spec(path, name=name, **options)).name


def record(home: Path, name: str):
    return Store(home).by_name(core.current_user(), name)


def runner_gone(home: Path, name: str) -> bool:
    row = record(home, name)
    return not alive(row["supervisor_pid"], row["supervisor_start"])


def cli_run(*args: str) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main(list(args))
    return rc, err.getvalue()


# ---------------------------------------------------------------- the database


def test_a_job_that_ends_while_the_database_is_locked_still_succeeds(dlw_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLW_DB_BUSY_SECONDS", "1")  # the runner and this reader give up after a second
    name = submit(tmp_path, WAIT_FOR_GO, "locked")
    assert wait_until(lambda: core.get_job(name).state is JobState.RUNNING)
    job_dir = Path(record(dlw_home, name)["job_dir"])
    assert wait_until(lambda: (job_dir / "logs" / "rank-0.log").read_text().startswith("waiting"))

    lock = sqlite3.connect(dlw_home / "jobs.db", isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        (job_dir / "go").touch()
        # The runner cannot record the end; it keeps the outcome in the job's folder and exits.
        assert wait_until(lambda: runner_gone(dlw_home, name), timeout=60)
        assert outcome.read(job_dir)["state"] == "Succeeded"
        with pytest.raises(DLWError, match="locked by another process") as info:
            core.list_jobs()  # the reader cannot record it either: one line, no traceback
        assert "\n" not in str(info.value)
        rc, err = cli_run("jobs")
        assert rc == 1 and err.count("\n") == 1 and "locked" in err
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    job = core.get_job(name)
    assert job.state is JobState.SUCCEEDED and job.exit_code == 0, job


def test_concurrent_threads_share_one_backend_without_errors(dlw_home, tmp_path):
    """The REST server runs core calls on a thread pool over one cached backend."""
    from concurrent.futures import ThreadPoolExecutor

    backend = get_backend()
    script = tmp_path / "noop.py"
    script.write_text("pass\n")

    def one(i: int) -> str:
        return core.submit(core.build_spec(script, name=f"t-{i}"), backend).name

    with ThreadPoolExecutor(8) as pool:
        names = list(pool.map(one, range(24)))
        lists = list(pool.map(lambda _: len(backend.list_jobs()), range(24)))
    assert sorted(names) == sorted(f"t-{i}" for i in range(24))
    assert all(n <= 24 for n in lists)
    assert wait_until(lambda: all(j.state.finished for j in backend.list_jobs()), timeout=90)
    assert {j.state for j in backend.list_jobs()} == {JobState.SUCCEEDED}


# ---------------------------------------------------------------- runner liveness


def test_a_runner_that_is_slow_to_start_is_not_declared_lost(dlw_home, tmp_path):
    name = submit(tmp_path, "print('ran')\n", "slow-start")
    row = record(dlw_home, name)
    pid = row["supervisor_pid"]
    assert pid, "the submitter records the runner's pid as soon as it exists"
    os.kill(pid, signal.SIGSTOP)
    try:
        # Long past any start-up timer, the runner is alive (stopped): it must not be called lost.
        Store(dlw_home).update(row["id"], created=time.time() - 3600)
        assert core.get_job(name).state is JobState.QUEUED
    finally:
        os.kill(pid, signal.SIGCONT)
    assert core.wait(name, timeout=60).state is JobState.SUCCEEDED


def test_a_runner_that_finds_its_job_decided_ends_its_ranks_and_exits(dlw_home, tmp_path):
    name = submit(tmp_path, GRANDCHILD, "decided")
    assert wait_until(lambda: len(processes_with_env("DLW_JOB_NAME", name)) == 2)
    row = record(dlw_home, name)
    Store(dlw_home).finish(row["id"], JobState.FAILED, None, "RunnerLost", "decided elsewhere")
    assert wait_until(lambda: processes_with_env("DLW_JOB_NAME", name) == [], timeout=20)
    assert wait_until(lambda: runner_gone(dlw_home, name), timeout=10)
    job = core.get_job(name)
    assert (job.state, job.reason) == (JobState.FAILED, "RunnerLost")  # not overwritten


def test_a_lost_runner_s_rank_grandchildren_are_ended(dlw_home, tmp_path):
    name = submit(tmp_path, GRANDCHILD, "orphans")
    assert wait_until(lambda: len(processes_with_env("DLW_JOB_NAME", name)) == 2)  # the rank and its child
    os.kill(record(dlw_home, name)["supervisor_pid"], signal.SIGKILL)
    assert wait_until(lambda: runner_gone(dlw_home, name), timeout=10)
    job = core.get_job(name)  # the reader notices, records why, and ends what is left
    assert (job.state, job.reason) == (JobState.FAILED, "RunnerLost")
    assert wait_until(lambda: processes_with_env("DLW_JOB_NAME", name) == [], timeout=10)


def test_half_submitted_job_folders_are_removed(dlw_home, tmp_path):
    name = submit(tmp_path, "pass\n", "kept")
    core.wait(name, timeout=60)
    jobs = dlw_home / "jobs"
    old = jobs / "0123456789ab"
    (old / "snapshot").mkdir(parents=True)
    (old / "snapshot" / "main.py").write_text("pass\n")
    fresh = jobs / "ba9876543210"  # a submit under way right now
    (fresh / "snapshot").mkdir(parents=True)
    hour_ago = time.time() - 7200
    os.utime(old, (hour_ago, hour_ago))
    with contextlib.suppress(FileNotFoundError):
        (dlw_home / ".swept").unlink()
    core.list_jobs()
    assert not old.exists()
    assert fresh.exists()
    assert Path(record(dlw_home, name)["job_dir"]).exists()


# ---------------------------------------------------------------- logs and disk


def test_a_rank_printing_past_the_log_cap_is_cut_with_a_marker(dlw_home, tmp_path, monkeypatch):
    monkeypatch.setenv("DLW_LOG_MAX_BYTES", "10000")
    name = submit(tmp_path, "for i in range(5000):\n    print(f'line {i:05d}')\n", "chatty")
    job = core.wait(name, timeout=60)
    assert job.state is JobState.SUCCEEDED
    log = (Path(record(dlw_home, name)["job_dir"]) / "logs" / "rank-0.log").read_text()
    assert log.startswith("line 00000\n")
    assert "log cap of 10000 bytes" in log and "bytes of rank 0's output dropped" in log
    assert len(log) < 10000 + 500


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 3 MiB tmpfs; skipped where mounting is not allowed (not root, or no CAP_SYS_ADMIN)."""
    mnt = tmp_path / "small-disk"
    mnt.mkdir()
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)],
                              capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as err:
        pytest.skip(f"cannot mount a small tmpfs to fill: {err}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill: {done.stderr.strip() or done.returncode}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True, timeout=20)


def fill(path: Path) -> None:
    with open(path, "wb") as f, contextlib.suppress(OSError):
        while True:
            f.write(b"x" * 65536)
            f.flush()


def test_a_full_disk_is_a_reason_not_a_mystery(small_disk, tmp_path, monkeypatch):
    from dlw_magic import backends

    home = small_disk / "dlw"
    monkeypatch.setenv("DLW_HOME", str(home))
    monkeypatch.setenv("DLW_BACKEND", "local")
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    backends._cache.clear()
    try:
        writer = submit(tmp_path, WAIT_FOR_GO + "open(os.environ['DLW_OUTPUT_DIR'] + '/ckpt', 'wb').write("
                        "b'x' * (8 << 20))\n", "ckpt")
        talker = submit(tmp_path, WAIT_FOR_GO + "for i in range(300000):\n    print('chatter', i)\n", "talker")
        for name in (writer, talker):
            assert wait_until(lambda n=name: core.get_job(n).state is JobState.RUNNING, timeout=60)
        fill(small_disk / "filler")
        for name in (writer, talker):
            (Path(record(home, name)["job_dir"]) / "go").touch()
        ckpt = core.wait(writer, timeout=60)
        assert (ckpt.state, ckpt.reason) == (JobState.FAILED, "DiskFull"), ckpt
        assert "is full" in ckpt.message
        talk = core.wait(talker, timeout=60)
        assert talk.state is JobState.SUCCEEDED, talk  # it ran to its end: its output was cut, not its outcome
        assert "not logged" in talk.message and "is full" in talk.message

        script = tmp_path / "later.py"
        script.write_text("print('x' * 100000)\n" * 50)
        rc, err = cli_run("train", str(script))
        assert rc == 1 and err.count("\n") == 1 and "full" in err, err
        rc, err = cli_run("jobs")
        assert rc == 0, err
        assert sorted(os.listdir(home / "jobs")) == sorted(
            Path(record(home, n)["job_dir"]).name for n in (writer, talker))  # nothing half-made left
    finally:
        backends._cache.clear()


# ---------------------------------------------------------------- security


def test_data_folder_records_and_logs_are_the_owner_s_only(dlw_home, tmp_path):
    name = submit(tmp_path, "print('secret-ish')\n", "private")
    core.wait(name, timeout=60)
    job_dir = Path(record(dlw_home, name)["job_dir"])
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    assert mode(dlw_home) == 0o700
    assert mode(dlw_home / "jobs") == 0o700
    assert mode(dlw_home / "jobs.db") == 0o600
    assert mode(job_dir) == 0o700
    assert mode(job_dir / "logs" / "rank-0.log") == 0o600
    assert mode(job_dir / "supervisor.log") == 0o600


@pytest.mark.parametrize("secret, key", [("../../../../etc", "hostname"), ("ok", "../../etc/hostname"),
                                         ("ok", ".."), ("/etc", "hostname")])
def test_secret_references_are_names_never_paths(dlw_home, tmp_path, secret, key):
    script = tmp_path / "s.py"
    script.write_text("pass\n")
    with pytest.raises(DLWError, match=r"secrets\[0\]\.(secret|key)"):
        core.build_spec(spec_text=json.dumps({"source": {"script": "s.py"},
                                               "secrets": [{"env": "X", "secret": secret, "key": key}]}),
                        base_dir=tmp_path)


def test_a_secret_folder_linking_outside_is_refused_by_the_local_runner(dlw_home, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "host").symlink_to("/etc")
    monkeypatch.setenv("DLW_SECRETS_DIR", str(secrets))
    script = tmp_path / "s.py"
    script.write_text("pass\n")
    spec = core.build_spec(spec_text=json.dumps({"name": "linked", "source": {"script": "s.py"},
                                                 "secrets": [{"env": "X", "secret": "host", "key": "hostname"}]}),
                           base_dir=tmp_path)
    with pytest.raises(DLWError, match="outside the secrets folder"):
        core.submit(spec)
    assert list((dlw_home / "jobs").iterdir()) == []


def test_source_files_never_follow_a_symlink_out_of_the_workdir(dlw_home, tmp_path):
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "train.py").write_text("pass\n")
    (work / "etc").symlink_to("/etc")
    (work / "data" / "hostname").symlink_to("/etc/hostname")
    for pattern, fragment in [("etc", "outside"), ("data", "outside"), ("data/*", "outside")]:
        spec = core.build_spec(work / "train.py", name=f"files-{len(pattern)}")
        spec.source.files = [pattern]
        with pytest.raises(DLWError, match=fragment):
            core.submit(spec)
    (work / "data" / "hostname").unlink()
    (work / "data" / "up").symlink_to("..")
    spec = core.build_spec(work / "train.py", name="loop")
    spec.source.files = ["data"]
    with pytest.raises(DLWError, match="folder above it"):
        core.submit(spec)
    assert list((dlw_home / "jobs").iterdir()) == []


def test_named_priority_classes_of_the_workspace_work_locally(dlw_home, tmp_path):
    script = tmp_path / "p.py"
    script.write_text("pass\n")
    rc, err = cli_run("train", str(script), "--name", "urgent", "--priority", "dlw-high", "--wait")
    assert rc == 0, err
    assert record(dlw_home, "urgent")["priority"] > 0
    rc, err = cli_run("train", str(script), "--name", "nope", "--priority", "no-such-class")
    assert rc == 1 and "not a priority class" in err and err.count("\n") == 1


def test_terminal_control_sequences_in_job_output_are_made_visible():
    from dlw_magic.textsafe import sanitize_terminal

    assert sanitize_terminal("plain line\n") == "plain line\n"
    assert sanitize_terminal("\x1b[31mred\x1b[0m\n") == "\x1b[31mred\x1b[0m\n"  # colours stay
    assert sanitize_terminal("\x1b[2J\x1b[H") == "^[[2J^[[H"  # clear screen, cursor home
    assert sanitize_terminal("\x1b]0;owned\x07") == "^[]0;owned^G"  # window title
    assert sanitize_terminal("x\r[rank 1] forged\n") == "[rank 1] forged\n"  # the real prefix stays first
    assert sanitize_terminal("a\x0b[rank 1] b") == "a^K[rank 1] b"
    assert sanitize_terminal("10%\r50%\r100%\n") == "100%\n"  # a progress bar shows its last state
    assert sanitize_terminal("\x9b2J") == "\\x9b2J"


def test_the_runner_module_runs_with_its_own_interpreter_only():
    """The runner is started as ``python -m``; its module must import without the spec stack."""
    done = subprocess.run([sys.executable, "-c", "import dlw_magic.backends.local.supervisor, sys; "
                           "print('pydantic' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
