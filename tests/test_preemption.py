"""Local preemption and "why it waits", as a researcher sees them: real runners, real SQLite, simulated GPUs.

``DLW_FAKE_GPUS=2`` gives the local backend two GPUs (indices 0 and 1) on a machine without any.
Jobs that must hold their GPUs for a while wait for a file the test creates: no timed assertions.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml
from helpers import processes_with_env, wait_until

from dlw_magic import core
from dlw_magic import format as fmt
from dlw_magic.backends import JobState
from dlw_magic.backends.local.scheduling import Running, pick_victims

# Saves a checkpoint when told to stop; the next attempt finds it and finishes.
CHECKPOINTING = """
import os, pathlib, signal, sys, time
ckpt = pathlib.Path(os.environ["DLW_CHECKPOINT_DIR"]) / "step.txt"
if ckpt.exists():
    print("resumed from", ckpt.read_text(), flush=True)
    sys.exit(0)
def save(signum, frame):
    ckpt.write_text("step-7")
    print("checkpoint saved", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, save)
print("training", flush=True)
while True:
    time.sleep(0.05)
"""

# Ignores SIGTERM on its first attempt; finishes on the next.
STUBBORN = """
import os, signal, sys, time
if os.environ["DLW_ATTEMPT"] != "0":
    print("second attempt", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("training", flush=True)
while True:
    time.sleep(0.05)
"""

# Holds its GPUs until the test creates the file named by RELEASE.
HOLDER = """
import os, pathlib, time
print("gpus", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
while not pathlib.Path(os.environ["RELEASE"]).exists():
    time.sleep(0.05)
"""


@pytest.fixture
def two_gpus(dlw_home, monkeypatch):
    monkeypatch.setenv("DLW_FAKE_GPUS", "2")
    yield dlw_home
    for job in core.list_jobs():  # a failed test leaves no runner waiting for its release file
        if not job.state.finished:
            core.cancel(job.name)


def job_yaml(tmp_path: Path, name: str, code: str, **fields) -> Path:
    (tmp_path / f"{name}.py").write_text(code)
    spec = {"apiVersion": "dlw/v1", "kind": "TrainingJob", "name": name, "source": {"script": f"{name}.py"},
            **fields}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def submit(path: Path) -> str:
    return core.submit(core.build_spec(path)).name


def log(name: str) -> str:
    return "".join(c.text for c in core.logs(name, rank=0))


def status_text(name: str) -> str:
    out = io.StringIO()
    fmt.describe(core.get_job(name), out)
    return out.getvalue()


def test_preempted_job_resumes_from_its_checkpoint_and_succeeds(two_gpus, tmp_path):
    release = tmp_path / "release"
    low = submit(job_yaml(tmp_path, "low", CHECKPOINTING, preemptible=True, resources={"gpus": 2},
                          preemption={"gracePeriod": "30s"}))
    assert wait_until(lambda: "training" in log(low))
    high = submit(job_yaml(tmp_path, "high", HOLDER, priority="high", resources={"gpus": 2},
                           env={"RELEASE": str(release)}))

    assert wait_until(lambda: core.get_job(high).state is JobState.RUNNING)
    # The waiting job's runner refreshes why it waits each time it asks for its turn.
    assert wait_until(lambda: "held by high (GPU 0,1)" in (core.get_job(low).message or ""))
    waiting = core.get_job(low)
    assert waiting.state is JobState.QUEUED
    assert waiting.reason == "Preempted"
    assert waiting.message.startswith("preempted by job high")
    assert [h["by"] for h in waiting.history] == ["high"]
    assert "checkpoint saved" in log(low)
    assert "Preempted:  at " in status_text(low) and "by high (attempt 1)" in status_text(low)

    release.touch()
    assert core.wait(high, timeout=60).state is JobState.SUCCEEDED
    done = core.wait(low, timeout=60)
    assert done.state is JobState.SUCCEEDED, done
    assert done.attempt + 1 == 2
    assert "resumed from step-7" in log(low)
    (entry,) = done.history
    assert entry["by"] == "high" and entry["attempt"] == 1
    assert entry["resumedFrom"] == str(Path(done.output_dir).parent / "checkpoints")
    assert entry["checkpoint"] == "step.txt"
    shown = status_text(low)
    assert "Attempt:    2" in shown
    assert f"from {entry['resumedFrom']} (step.txt)" in shown


def test_a_job_that_ignores_sigterm_is_killed_after_the_grace_period(two_gpus, tmp_path):
    release = tmp_path / "release"
    low = submit(job_yaml(tmp_path, "stubborn", STUBBORN, preemptible=True, resources={"gpus": 1},
                          preemption={"gracePeriod": 1}))
    assert wait_until(lambda: "training" in log(low))
    high = submit(job_yaml(tmp_path, "big", HOLDER, priority="high", resources={"gpus": 2},
                           env={"RELEASE": str(release)}))

    assert wait_until(lambda: core.get_job(high).state is JobState.RUNNING)
    job = core.get_job(low)
    assert (job.state, job.reason) == (JobState.QUEUED, "Preempted")  # never Failed for being preempted
    assert processes_with_env("DLW_JOB_NAME", low) == []  # SIGTERM ignored: SIGKILL ended it

    release.touch()
    done = core.wait(low, timeout=60)
    assert done.state is JobState.SUCCEEDED, done
    assert done.attempt == 1
    assert done.history[0]["checkpoint"] is None
    assert "(no checkpoint written)" in status_text(low)


def test_queued_jobs_say_what_they_wait_for(two_gpus, tmp_path):
    release = tmp_path / "release"
    holder = submit(job_yaml(tmp_path, "holder", HOLDER, resources={"gpus": 2}, env={"RELEASE": str(release)}))
    assert wait_until(lambda: core.get_job(holder).state is JobState.RUNNING)
    # Higher priority, but the holder is not preemptible: it waits.
    urgent = submit(job_yaml(tmp_path, "urgent", "print('urgent ran')\n", priority="high", resources={"gpus": 1}))
    later = submit(job_yaml(tmp_path, "later", "print('later ran')\n", resources={"gpus": 1}))

    def says(name: str, text: str) -> bool:
        job = core.get_job(name)
        return job.reason == "WaitingForGPUs" and text in (job.message or "")

    assert wait_until(lambda: says(urgent, "needs 1 GPU(s), 0 free; held by holder (GPU 0,1); 1st of 2"))
    assert wait_until(lambda: says(later, "waits behind urgent (priority 100) for GPUs; 2nd of 2"))
    assert core.get_job(holder).state is JobState.RUNNING
    assert "Message:" in status_text(later) and "waits behind urgent" in status_text(later)

    release.touch()
    for name in (holder, urgent, later):
        job = core.wait(name, timeout=60)
        assert job.state is JobState.SUCCEEDED and job.history == [], job
    assert core.get_job(urgent).reason is None  # the wait is over: no stale reason


def run(name: str, priority: int, gpus: list[int], started: float, preemptible: bool = True) -> Running:
    return Running(id=name, name=name, priority=priority, preemptible=preemptible, gpus=gpus, started=started)


def test_victims_are_the_fewest_needed_lowest_priority_first():
    jobs = [
        run("low-small", -100, [0], 2.0),
        run("low-big", -100, [1, 2], 1.0),
        run("mid", 0, [3], 3.0),
        run("keeper", -100, [4], 4.0, preemptible=False),
        run("above", 200, [5], 5.0),
    ]
    names = lambda victims: sorted(v.name for v in victims)  # noqa: E731
    assert names(pick_victims(1, 0, 100, jobs)) == ["low-small"]  # lowest priority, then latest started
    assert names(pick_victims(2, 0, 100, jobs)) == ["low-big"]  # one job is fewer than two
    assert names(pick_victims(3, 0, 100, jobs)) == ["low-big", "low-small"]
    assert names(pick_victims(4, 0, 100, jobs)) == ["low-big", "low-small", "mid"]
    assert pick_victims(5, 0, 100, jobs) is None  # not preemptible, or not of lower priority
    assert pick_victims(2, 0, -100, jobs) is None  # equal priority never preempts
    assert names(pick_victims(2, 1, 100, jobs)) == ["low-small"]  # one GPU already free
