"""The pod bootstrap keeps each rank's output on the job's output volume, and stays a faithful PID 1.

Rendered pods run as local processes (as in test_rank_contract): the rank's output must reach both the
container's stream and ``$DLW_OUTPUT_DIR/.dlw-logs/<job id>/rank-<N>.log``, the entrypoint's exit code must
be the container's, and a SIGTERM to the container must reach the entrypoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import test_k8s_backend as _k8s
from test_rank_contract import ROOT, WORKSPACE, controller_pods, unpack_config_map

from dlw_magic import core, snapshot
from dlw_magic.engines.objects import render_objects

env, kube, backend, script = _k8s.env, _k8s.kube, _k8s.backend, _k8s.script  # shared fixtures

SCRIPT = """
import os, signal, sys, time
mode = os.environ["TEE_MODE"]
def stop(sig, frame):
    print("rank got SIGTERM, saving", flush=True)
    sys.exit(7)
if mode == "handle":
    signal.signal(signal.SIGTERM, stop)
print("hello from stdout", flush=True)
print("hello from stderr", file=sys.stderr, flush=True)
if mode in ("wait", "handle"):
    print("ready", flush=True)
    time.sleep(60)
sys.exit(3)
"""


@pytest.fixture
def pod(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Start rank 1 of a rendered 2-worker job; ``mode`` tells the script how to behave."""
    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("DLW_NAMESPACE", "DLW_WORKSPACE_CONFIG", "JUPYTERHUB_USER"):
        monkeypatch.delenv(var, raising=False)
    started: list[subprocess.Popen] = []

    def start(mode: str, **extra_env: str) -> tuple[subprocess.Popen, Path]:
        script = tmp_path / "proj" / "train.py"
        script.parent.mkdir(exist_ok=True)
        script.write_text(SCRIPT)
        spec = core.build_spec(script, name="tee", workers=2, image="img:1")
        prepared = snapshot.prepare(spec, tmp_path / "staging", "alice")
        objs = render_objects(prepared, workspace=WORKSPACE)
        pod_spec, injected = controller_pods("job", objs, 29500)[1]
        unpack_config_map(objs, pod_spec, tmp_path / "snapshot")
        [container] = pod_spec["containers"]
        env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        output = tmp_path / "output"
        env.update(injected)
        env.update({"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "HOME": str(tmp_path),
                    "PYTHONPATH": str(ROOT), "DLW_SNAPSHOT_DIR": str(tmp_path / "snapshot"),
                    "DLW_CODE_DIR": str(tmp_path / "code"), "DLW_OUTPUT_DIR": str(output), "TEE_MODE": mode,
                    "DLW_CHECKPOINT_DIR": str(output / "checkpoints"),  # not the machine's /dlw/output
                    **extra_env})
        proc = subprocess.Popen([*container["command"], *container["args"]], env=env, cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        started.append(proc)
        return proc, output / ".dlw-logs" / env["DLW_JOB_ID"] / "rank-1.log"

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def test_output_reaches_the_container_and_the_volume_and_the_exit_code_is_kept(pod):
    proc, log = pod("plain")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3
    assert out == "hello from stdout\n" and err == "hello from stderr\n"  # streams stay apart
    assert sorted(log.read_text().splitlines()) == ["hello from stderr", "hello from stdout"]


def test_a_capped_log_on_the_volume_says_where_it_stopped(pod):
    proc, log = pod("plain", DLW_LOG_MAX_BYTES="20")
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3 and out == "hello from stdout\n"  # the container's stream is whole
    kept = log.read_text()
    assert len(kept.split("\n[dlw:")[0]) == 20
    assert "rank 1's kept log reached 20 bytes (DLW_LOG_MAX_BYTES); the rest is only in the pod's log" in kept


def test_sigterm_reaches_the_entrypoint(pod):
    proc, log = pod("handle")
    assert proc.stdout.readline() == "hello from stdout\n"
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)  # what the kubelet sends the container's PID 1 on eviction or cancel
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 7  # the entrypoint's own handler ran and chose the exit code
    assert "rank got SIGTERM, saving" in out and "rank got SIGTERM, saving" in log.read_text()


def test_an_entrypoint_killed_by_sigterm_exits_143(pod):
    proc, _ = pod("wait")
    assert proc.stdout.readline() == "hello from stdout\n"
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM


# -- the backend reads those files once the pods are gone ----------------------------------------------------


def _keep(home: Path, job_id: str, rank: int, text: str, name: str = "demo") -> None:
    """What rank ``rank``'s bootstrap wrote: DLW_OUTPUT_DIR is the home's .dlw/jobs/<name>/output."""
    folder = home / ".dlw" / "jobs" / name / "output" / ".dlw-logs" / job_id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"rank-{rank}.log").write_text(text)


def test_logs_outlive_evicted_pods_and_the_job(kube, script, shared_home):
    from test_k8s_backend import JOB, running, submit

    from dlw_magic.backends.kubernetes import KubernetesBackend
    from dlw_magic.errors import NotFound

    ws, home = shared_home
    backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig), workspace=ws)
    info = submit(backend, script, workers=2)
    _keep(home, "older-job-id", 1, "a previous job of the same name\n")
    _keep(home, info.id, 0, "rank 0 as saved\n")
    _keep(home, info.id, 1, "rank 1 before its node went away\n")
    kube.add_pod(kube.get(JOB, "demo"), "demo-0-x", running(),
                 annotations={"batch.kubernetes.io/job-completion-index": "0"})
    kube.set_log("demo-0-x", "rank 0 live\n")  # rank 1's pod was evicted and is gone
    assert [(c.rank, c.text) for c in backend.logs("demo")] == [
        (0, "rank 0 live\n"), (1, "rank 1 before its node went away\n")]
    assert [c.text for c in backend.logs("demo", rank=1, offset=len("rank 1 "))] == ["before its node went away\n"]
    # The job finished and its TTL deleted it with its pods: the saved files are all that is left.
    kube.set_status(JOB, "demo", {"conditions": [{"type": "Complete", "status": "True"}]})
    kube._call("DELETE", kube.path(("v1", "Pod"), "demo-0-x"))
    assert [c.text for c in backend.logs("demo", follow=True)] == [
        "rank 0 as saved\n", "rank 1 before its node went away\n"]
    kube._call("DELETE", kube.path(JOB, "demo"))
    os.utime(home / ".dlw" / "jobs" / "demo" / "output" / ".dlw-logs" / "older-job-id", (1, 1))  # newest wins
    with pytest.raises(NotFound):
        backend.get("demo")
    assert [(c.rank, c.text) for c in backend.logs("demo")] == [
        (0, "rank 0 as saved\n"), (1, "rank 1 before its node went away\n")]
    with pytest.raises(NotFound):
        list(backend.logs("never-ran"))


def test_without_a_shared_home_there_is_nothing_to_fall_back_to(backend, kube, script, tmp_path, monkeypatch):
    from test_k8s_backend import JOB, submit

    from dlw_magic.errors import NotFound

    monkeypatch.setenv("DLW_HOME_MOUNT", str(tmp_path / "home"))
    info = submit(backend, script)
    _keep(tmp_path / "home", info.id, 0, "never seen: the job's output was an emptyDir\n")
    kube._call("DELETE", kube.path(JOB, "demo"))
    with pytest.raises(NotFound):
        list(backend.logs("demo"))


def test_a_new_pod_of_the_same_rank_appends_to_the_kept_log(pod):
    # A retry or a preemption: the job's controller makes the rank's pod again, on the same output volume.
    first, log = pod("plain")
    first.communicate(timeout=60)
    second, again = pod("plain", HOSTNAME="tee-1-b7x2q")
    second.communicate(timeout=60)
    assert again == log and second.returncode == 3
    kept = log.read_text()
    assert "\n--- dlw: next attempt (pod tee-1-b7x2q) ---\n" in kept
    before, after = kept.split("--- dlw: next attempt")
    assert "hello from stdout" in before and "hello from stdout" in after  # the first attempt's output stays
