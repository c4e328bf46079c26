"""The embedded local backend, as a researcher sees it: jobs run, report state, stop, and survive crashes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from helpers import processes_with_env, wait_until

from dlw_magic import core
from dlw_magic.backends import JobState, get_backend
from dlw_magic.backends.local.store import Store
from dlw_magic.errors import Conflict, DLWError, NotFound

ENV_DUMP = """
import json, os
keys = ["RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT",
        "DLW_JOB_NAME", "DLW_OUTPUT_DIR", "CUDA_VISIBLE_DEVICES"]
env = {k: os.environ.get(k) for k in keys}
with open(os.path.join(os.environ["DLW_OUTPUT_DIR"], f"env-{env['RANK']}.json"), "w") as f:
    json.dump(env, f)
print("rank", env["RANK"], "of", env["WORLD_SIZE"])
"""

SLEEPER = "import os, time\nprint('started', os.environ['RANK'], flush=True)\ntime.sleep(120)\n"


def script(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def run(target: Path, **options) -> str:
    spec = core.build_spec(target, **options)
    return core.submit(spec).name


def test_distributed_job_gets_the_torchrun_environment(dlw_home, tmp_path):
    name = run(script(tmp_path, "env.py", ENV_DUMP), workers=2, processes_per_worker=2)
    job = core.wait(name, timeout=60)
    assert job.state is JobState.SUCCEEDED, job
    out = Path(job.output_dir)
    envs = [json.loads((out / f"env-{r}.json").read_text()) for r in range(4)]
    assert [e["RANK"] for e in envs] == ["0", "1", "2", "3"]
    assert [e["LOCAL_RANK"] for e in envs] == ["0", "1", "0", "1"]
    assert {e["WORLD_SIZE"] for e in envs} == {"4"}
    assert {e["LOCAL_WORLD_SIZE"] for e in envs} == {"2"}
    assert {e["MASTER_ADDR"] for e in envs} == {"127.0.0.1"}
    assert len({e["MASTER_PORT"] for e in envs}) == 1
    assert {e["CUDA_VISIBLE_DEVICES"] for e in envs} == {""}  # no GPU asked: none visible
    logs = {r: "".join(c.text for c in core.logs(name, rank=r)) for r in range(4)}
    assert all(f"rank {r} of 4" in logs[r] for r in range(4))


def test_cancel_distributed_job_leaves_no_process(dlw_home, tmp_path):
    name = run(script(tmp_path, "sleep.py", SLEEPER), workers=3)
    assert wait_until(lambda: core.get_job(name).state is JobState.RUNNING)
    assert wait_until(lambda: len(processes_with_env("DLW_JOB_NAME", name)) == 3)
    job = core.cancel(name)
    assert job.state is JobState.CANCELLED
    assert job.reason == "Cancelled"
    assert wait_until(lambda: processes_with_env("DLW_JOB_NAME", name) == [], timeout=10)
    with pytest.raises(Conflict, match="already finished"):
        core.cancel(name)


def test_kill_9_of_the_runner_fails_the_job_and_ends_its_ranks(dlw_home, tmp_path):
    name = run(script(tmp_path, "sleep.py", SLEEPER), workers=2)
    assert wait_until(lambda: len(processes_with_env("DLW_JOB_NAME", name)) == 2)
    pid = Store(dlw_home).by_name(core.current_user(), name)["supervisor_pid"]
    os.kill(pid, signal.SIGKILL)
    # Ranks die with their runner; the next reader records why the job ended.
    assert wait_until(lambda: processes_with_env("DLW_JOB_NAME", name) == [], timeout=10)
    job = core.get_job(name)
    assert job.state is JobState.FAILED
    assert job.reason == "RunnerLost"
    assert "dlw rerun" in job.message
    assert [j.name for j in core.list_jobs() if j.state is JobState.RUNNING] == []


def test_failed_rank_fails_the_job_with_its_exit_code(dlw_home, tmp_path):
    code = "import os, sys, time\nif os.environ['RANK'] == '1': sys.exit(3)\ntime.sleep(60)\n"
    name = run(script(tmp_path, "fail.py", code), workers=2)
    job = core.wait(name, timeout=30)
    assert job.state is JobState.FAILED
    assert job.exit_code == 3
    assert "rank 1 exited with code 3" in job.message
    assert processes_with_env("DLW_JOB_NAME", name) == []  # rank 0 was stopped too


def test_retries_run_the_job_again(dlw_home, tmp_path):
    code = (
        "import os, pathlib, sys\n"
        "mark = pathlib.Path(os.environ['DLW_OUTPUT_DIR'], 'tried')\n"
        "if not mark.exists():\n    mark.write_text('x'); print('first try fails'); sys.exit(1)\n"
        "print('second try works')\n"
    )
    name = run(script(tmp_path, "flaky.py", code), retries=2)
    job = core.wait(name, timeout=30)
    assert job.state is JobState.SUCCEEDED
    assert job.attempt == 1
    log = "".join(c.text for c in core.logs(name, rank=0))
    assert "first try fails" in log and "attempt 2" in log and "second try works" in log


def test_timeout_stops_the_job(dlw_home, tmp_path):
    name = run(script(tmp_path, "sleep.py", SLEEPER), timeout=1)
    job = core.wait(name, timeout=30)
    assert job.state is JobState.FAILED
    assert job.reason == "DeadlineExceeded"


def test_follow_streams_until_the_end_and_resumes_from_an_offset(dlw_home, tmp_path):
    code = "import time\nfor i in range(5):\n    print('line', i, flush=True); time.sleep(0.1)\n"
    name = run(script(tmp_path, "lines.py", code))
    lines = [line for _, line in core.log_lines(name, follow=True)]
    assert lines == [f"line {i}\n" for i in range(5)]
    assert core.get_job(name).state is JobState.SUCCEEDED
    chunks = list(core.logs(name, rank=0))
    first_line_end = len("line 0\n")
    resumed = "".join(c.text for c in core.logs(name, rank=0, offset=first_line_end))
    assert resumed == "".join(c.text for c in chunks)[first_line_end:]


def test_records_and_provenance_survive_a_new_backend(dlw_home, tmp_path, monkeypatch):
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    path = script(repo, "train.py", "print('ok')\n")
    subprocess.run(["git", "-C", str(repo), "add", "."], check=True)
    subprocess.run(["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"],
                   check=True)
    name = run(path)
    assert core.wait(name, timeout=30).state is JobState.SUCCEEDED
    from dlw_magic import backends

    backends._cache.clear()  # a new process: only the data directory is shared
    job = core.get_job(name)
    assert job.state is JobState.SUCCEEDED
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert job.provenance["git_commit"] == head.strip()
    assert job.provenance["snapshot_hash"].startswith("sha256:")
    assert any(line.startswith("PyYAML==") for line in job.provenance["pip_freeze"])


def test_rerun_submits_the_same_job_again(dlw_home, tmp_path):
    path = script(tmp_path, "hello.py", "print('hello from v1')\n")
    first = run(path)
    core.wait(first, timeout=30)
    path.write_text("print('hello from v2')\n")  # the user edits the code afterwards
    second = core.rerun(first).name
    assert second != first
    job = core.wait(second, timeout=30)
    assert job.state is JobState.SUCCEEDED
    assert "hello from v1" in "".join(c.text for c in core.logs(second, rank=0))
    assert job.provenance["snapshot_hash"] == core.get_job(first).provenance["snapshot_hash"]


def test_duplicate_name_is_refused_and_changes_nothing(dlw_home, tmp_path):
    path = script(tmp_path, "hello.py", "print('hi')\n")
    run(path, name="exp1")
    before = core.get_job("exp1")
    with pytest.raises(Conflict, match="'exp1' already exists"):
        run(path, name="exp1")
    assert len(core.list_jobs()) == 1
    assert core.get_job("exp1").id == before.id
    assert len(list((dlw_home / "jobs").iterdir())) == 1  # no snapshot left behind


def test_more_gpus_than_the_machine_has_is_a_clear_error(dlw_home, tmp_path):
    with pytest.raises(DLWError, match=r"resources.gpus: the job needs 2 GPU\(s\)"):
        run(script(tmp_path, "gpu.py", "print(1)\n"), gpus=1, workers=2)
    assert core.list_jobs() == []


def test_unknown_job(dlw_home):
    for call in (core.get_job, core.cancel, lambda n: list(core.logs(n))):
        with pytest.raises(NotFound, match="job 'nope' not found"):
            call("nope")


def test_users_see_only_their_own_jobs(dlw_home, tmp_path, monkeypatch):
    from dlw_magic import backends

    monkeypatch.setenv("JUPYTERHUB_USER", "alice")
    backends._cache.clear()
    run(script(tmp_path, "a.py", "print(1)\n"), name="alices-job")
    monkeypatch.setenv("JUPYTERHUB_USER", "bob")
    backends._cache.clear()
    assert core.list_jobs() == []
    with pytest.raises(NotFound):
        core.cancel("alices-job")


def test_gpu_queue_honours_priority_and_free_gpus(tmp_path):
    """The start decision with 2 GPUs: priority first, big jobs are not starved, CPU jobs never wait."""
    store = Store(tmp_path)

    def add(job_id: str, gpus: int, priority: int, created: float) -> None:
        store.insert({
            "id": job_id, "name": job_id, "user": "u", "state": "Queued", "priority": priority, "workers": 1,
            "world_size": 1, "gpus": gpus, "created": created, "job_dir": str(tmp_path / job_id),
            "spec": "{}", "provenance": "{}", "entrypoint": "[]",
        })

    add("low-1gpu", 1, 0, 1.0)
    add("high-2gpu", 2, 100, 2.0)
    add("low-later-1gpu", 1, 0, 3.0)
    add("cpu", 0, -100, 4.0)
    inventory = [0, 1]
    assert store.try_start("low-1gpu", inventory) is None  # the high-priority job goes first
    assert store.try_start("cpu", inventory) == []  # needs no GPU: never waits
    assert store.try_start("high-2gpu", inventory) == [0, 1]
    assert store.try_start("low-1gpu", inventory) is None  # no GPU free now
    store.finish("high-2gpu", JobState.SUCCEEDED, 0, None, None)
    # Both fit now; the earlier job keeps the first GPU even if the later one asks first.
    assert store.try_start("low-later-1gpu", inventory) == [1]
    assert store.try_start("low-1gpu", inventory) == [0]


def test_backend_is_chosen_by_environment(dlw_home, monkeypatch):
    from dlw_magic import backends

    assert get_backend().name == "local"
    monkeypatch.setenv("DLW_BACKEND", "nonsense")
    backends._cache.clear()
    with pytest.raises(DLWError, match="backend 'nonsense' is unknown"):
        get_backend()


def test_a_database_from_before_preemption_opens_and_lists_its_jobs(tmp_path):
    import sqlite3

    from dlw_magic.backends.local import store as store_module

    old_schema = store_module.SCHEMA
    for column in store_module._ADDED_COLUMNS:
        old_schema = "\n".join(line for line in old_schema.splitlines() if not line.strip().startswith(column + " "))
    db = sqlite3.connect(tmp_path / "jobs.db")
    db.executescript(old_schema)
    db.execute(
        "INSERT INTO jobs (id, name, user, state, workers, world_size, created, job_dir, spec, provenance, entrypoint) "
        "VALUES ('x', 'old-job', 'u', 'Succeeded', 1, 1, 1.0, ?, '{}', '{}', '[]')", (str(tmp_path / "x"),))
    db.commit()
    db.close()
    (job,) = [store_module.to_info(r) for r in Store(tmp_path).list_user("u")]
    assert (job.name, job.state, job.history) == ("old-job", JobState.SUCCEEDED, [])


def test_the_runners_package_list_follows_installs_though_it_is_cached(tmp_path, monkeypatch):
    from dlw_magic.backends.local.supervisor import environment_freeze

    site = tmp_path / "site"
    (site / "demo_pkg-1.0.dist-info").mkdir(parents=True)
    (site / "demo_pkg-1.0.dist-info" / "METADATA").write_text("Name: demo-pkg\nVersion: 1.0\n")
    monkeypatch.syspath_prepend(str(site))
    cache = tmp_path / "freeze-cache.json"
    first = environment_freeze(cache)
    assert "demo-pkg==1.0" in first.splitlines() and environment_freeze(cache) == first == environment_freeze()
    (site / "demo_pkg-1.0.dist-info").rename(site / "demo_pkg-2.0.dist-info")  # an upgrade
    (site / "demo_pkg-2.0.dist-info" / "METADATA").write_text("Name: demo-pkg\nVersion: 2.0\n")
    os.utime(site, ns=(1, 1))  # the folder's time differs even on a coarse clock
    assert "demo-pkg==2.0" in environment_freeze(cache).splitlines()


def test_an_image_without_buildah_is_refused_at_submit(dlw_home, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no buildah: the local runner cannot run an image
    spec = core.build_spec(script(tmp_path, "env.py", ENV_DUMP), name="boxed", image="localhost/dlw/train-base:0.1.0")
    with pytest.raises(DLWError, match="job boxed: image localhost/dlw/train-base:0.1.0: the local backend runs a "
                                       "job in its image with buildah, which is not installed here"):
        core.submit(spec)
    with pytest.raises(NotFound):
        core.get_job("boxed")  # nothing was queued
