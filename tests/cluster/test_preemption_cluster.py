"""Preemption by kube-scheduler on the real control plane: a ``dlw-high`` GPU job displaces a running
``preemptible`` (``dlw-low``) job that fills the GPU node; the low job is not failed, waits, comes back
after the high job and resumes from its checkpoint.

The admin YAML is the suite's plus a ReadWriteMany home (``preemptible`` needs one: checkpoints must
outlive the pod). This control plane has no storage provisioner, so the admin's part is done here by hand:
a PersistentVolume and alice's claim ``claim-alice`` (z2jh's name, which KubeSpawner would create),
bound by the real PV controller. The process kubelet maps a claim to one folder per node, which alice's
notebook sees as its home (``DLW_HOME_MOUNT``), as a notebook pod mounting the same claim would.
"""

from __future__ import annotations

import json
import pickle
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.checkpointed import GATE, HIGH_CELLS, LOW_CELLS, STEPS
from tests.cluster.controlplane import ControlPlane, kubectl_path
from tests.cluster.kubelet import ProcessKubelet
from tests.cluster.support import dlw, write_notebook

LOW, HIGH = "pre-low", "pre-high"


class _PodWatch:
    """Every version of one pod the API server sends (``kubectl get -w``): the victim lives seconds."""

    def __init__(self, cp: ControlPlane, ns: str, name: str, out: Path) -> None:
        self.out = out
        self.proc = subprocess.Popen([kubectl_path(), f"--kubeconfig={cp.kubeconfig}", "get", "pod", name, "-n", ns,
                                      "-w", "-o", "json"], stdout=out.open("w"), stderr=subprocess.DEVNULL)

    def seen(self) -> list[dict[str, Any]]:
        dec, text, found = json.JSONDecoder(), self.out.read_text(), []
        at = 0
        while True:
            while at < len(text) and text[at].isspace():
                at += 1
            try:
                obj, at = dec.raw_decode(text, at)
            except ValueError:
                return found
            found.append(obj)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def pod_watch(control_plane: ControlPlane) -> Iterator[Callable[[str, str, Path], _PodWatch]]:
    started: list[_PodWatch] = []

    def start(ns: str, name: str, out: Path) -> _PodWatch:
        started.append(_PodWatch(control_plane, ns, name, out))
        return started[-1]

    yield start
    for w in started:
        w.stop()


def _pods(cp: ControlPlane, ns: str, job: str) -> list[dict[str, Any]]:
    return cp.get("pods", "-n", ns, "-l", f"dlw.dev/job={job}")["items"]


def _status(env: dict[str, str], name: str) -> dict[str, Any]:
    out = dlw("status", name, "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _running_on_gpu(cp: ControlPlane, ns: str, job: str) -> dict[str, Any] | None:
    return next((p for p in _pods(cp, ns, job) if p["status"].get("phase") == "Running"
                 and p["spec"].get("nodeName") == "gpu-0"), None)


def test_high_priority_job_preempts_low_one_which_resumes_from_its_checkpoint(control_plane, alice_rwx, nodes,
                                                                            pod_watch, tmp_path):
    cp, env, ns = control_plane, alice_rwx, alice_rwx["DLW_NAMESPACE"]
    gpu: ProcessKubelet = nodes["gpu"]
    cp.wait_for(lambda: not gpu.gpu_owner, "gpu-0's GPUs free of earlier tests' pods", 120)

    low_nb = write_notebook(tmp_path / "low.ipynb", LOW_CELLS)
    out = dlw("train", str(low_nb), "--name", LOW, "--engine", "job", "--gpus", "4", "--preemptible", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    [low_job] = cp.get("jobs", "-n", ns, "-l", f"dlw.dev/job={LOW}")["items"]
    assert low_job["spec"]["template"]["spec"]["priorityClassName"] == "dlw-low"
    cp.wait_for(lambda: _running_on_gpu(cp, ns, LOW), "the low job Running on gpu-0", 120)
    victim = _running_on_gpu(cp, ns, LOW)
    assert victim is not None
    cp.wait_for(lambda: "step 4 saved" in dlw("logs", LOW, env=env).stdout, "low: steps 0-4 saved", 120)
    assert sorted(gpu.gpu_owner) == [0, 1, 2, 3]  # the node is full

    high_nb = write_notebook(tmp_path / "high.ipynb", HIGH_CELLS)
    watched = pod_watch(ns, victim["metadata"]["name"], tmp_path / "victim.jsonl")
    out = dlw("train", str(high_nb), "--name", HIGH, "--engine", "job", "--gpus", "4", "--priority", "dlw-high",
              env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    # kube-scheduler's preemption, as the API server shows it: the victim gets DisruptionTarget ...
    def disrupted() -> dict[str, Any] | None:
        for pod in watched.seen():
            conds = {c["type"]: c for c in (pod["status"].get("conditions") or [])}
            if "DisruptionTarget" in conds:
                return conds["DisruptionTarget"]
        return None

    cond = cp.wait_for(disrupted, "DisruptionTarget on the low pod", 120)
    assert (cond["status"], cond["reason"]) == ("True", "PreemptionByScheduler"), cond
    cp.wait_for(lambda: all(p["metadata"]["uid"] != victim["metadata"]["uid"] for p in _pods(cp, ns, LOW)),
                "the low pod gone", 120)
    watched.stop()
    # The scheduler deleted it with its grace period (preemption.gracePeriod, 30 s); the kubelet stopped the
    # process on that graceful delete (SIGTERM: exit 128 + 15) and reported it Failed, then let the pod go.
    versions = watched.seen()
    deleted = next(v for v in versions if v["metadata"].get("deletionTimestamp"))
    assert deleted["metadata"]["deletionGracePeriodSeconds"] == 30
    last = versions[-1]
    [trainer] = last["status"]["containerStatuses"]
    assert last["status"]["phase"] == "Failed" and trainer["state"]["terminated"]["exitCode"] == 143, last["status"]

    # ... and the Preempted event, ...
    def preempted_event() -> dict[str, Any] | None:
        events = cp.get("events", "-n", ns, "--field-selector", f"involvedObject.uid={victim['metadata']['uid']}")
        return next((e for e in events["items"] if e["reason"] == "Preempted"), None)

    event = cp.wait_for(preempted_event, "the scheduler's Preempted event on the low pod", 60)
    assert event["reportingComponent"] == "default-scheduler" and "on node gpu-0" in event["message"], event
    # ... and the high job's pod takes gpu-0.
    high_pod = cp.wait_for(lambda: _running_on_gpu(cp, ns, HIGH), "the high job Running on gpu-0", 120)
    assert high_pod["spec"]["priorityClassName"] == "dlw-high"

    # While the high job runs, alice sees her low job waiting to resume: not failed, not running; once its
    # new pod has met the scheduler, she also sees why it still waits.
    seen: list[dict[str, Any]] = []

    def waiting() -> bool:
        seen.append(_status(env, LOW))
        return "4 free nvidia.com/gpu" in (seen[-1].get("message") or "")

    cp.wait_for(waiting, "dlw status: the low job waiting for GPUs", 60, every=1)
    assert {(st["state"], st["reason"]) for st in seen} == {("Queued", "Preempted")}, seen
    message = seen[-1]["message"]
    assert message.startswith(f"preempted by a higher-priority job (pod {high_pod['metadata']['name']}) on node "
                              "gpu-0; it resumes from its checkpoint once it can run again"), message
    text = dlw("status", LOW, env=env).stdout  # the same, as alice reads it
    assert "Queued" in text and "Preempted" in text and "higher-priority" in text, text
    assert _running_on_gpu(cp, ns, HIGH) is not None
    [low_job] = cp.get("jobs", "-n", ns, "-l", f"dlw.dev/job={LOW}")["items"]
    assert not int(low_job["status"].get("failed") or 0)  # podFailurePolicy DisruptionTarget -> Ignore
    # Its replacement pod waits for GPUs: nothing of it runs next to the high job.
    assert [p["status"].get("phase") for p in _pods(cp, ns, LOW)] == ["Pending"]

    # The high job finishes; then the low one comes back on the same node and resumes where it stopped.
    outputs = Path(env["DLW_HOME_MOUNT"]) / ".dlw" / "jobs"
    (outputs / LOW / "output" / GATE).touch()
    (outputs / HIGH / "output" / GATE).touch()
    cp.wait_for(lambda: _status(env, HIGH)["state"] == "Succeeded", "the high job Succeeded", 120)
    assert "high done" in dlw("logs", HIGH, env=env).stdout
    cp.wait_for(lambda: _status(env, LOW)["state"] in ("Succeeded", "Failed"), "the low job finished", 180, every=2)
    final = _status(env, LOW)
    assert final["state"] == "Succeeded", final
    logs = dlw("logs", LOW, env=env).stdout
    assert "resumed from step 5" in logs and "low done" in logs, logs[-2000:]
    assert "starting at step 0" not in logs  # the log of the second attempt, which resumed
    [low_job] = cp.get("jobs", "-n", ns, "-l", f"dlw.dev/job={LOW}")["items"]
    assert low_job["status"].get("succeeded") == 1 and not int(low_job["status"].get("failed") or 0)
    [pod] = _pods(cp, ns, LOW)
    assert pod["metadata"]["uid"] != victim["metadata"]["uid"] and pod["spec"]["nodeName"] == "gpu-0"
    # It came back after the high job had finished (the kubelet's times, to the second).
    [high] = _pods(cp, ns, HIGH)
    high_done = high["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"]
    assert pod["status"]["containerStatuses"][0]["state"]["terminated"]["startedAt"] >= high_done
    # In alice's home: the rank's kept log with both attempts (what `dlw logs` shows once the pods are gone)
    # and the last checkpoint, which both attempts wrote.
    job_id = low_job["metadata"]["labels"]["dlw.dev/job-id"]
    kept = (outputs / LOW / "output" / ".dlw-logs" / job_id / "rank-0.log").read_text()
    first, second = kept.split(f"--- dlw: next attempt (pod {pod['metadata']['name']}) ---")
    assert "starting at step 0" in first and "step 4 saved" in first and "step 5 saved" not in first
    assert "resumed from step 5" in second and "low done" in second
    with open(outputs / LOW / "checkpoints" / "last.pt", "rb") as f:
        assert pickle.load(f) == {"step": STEPS - 1}
