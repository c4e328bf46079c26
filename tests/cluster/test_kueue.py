"""Jobs queued by the real Kueue (tests/cluster/kueue.py) on the test control plane: the workspace's
``queueSystem: kueue`` objects as DLW renders them (ResourceFlavor, ClusterQueues, alice's LocalQueues),
Kueue's webhook suspending what DLW submits, its scheduler admitting by quota, and what alice is told
while a job waits."""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.checkpointed import GATE, HIGH_CELLS, LOW_CELLS, STEPS
from tests.cluster.controlplane import ControlPlane
from tests.cluster.kubelet import ProcessKubelet
from tests.cluster.kueue import Kueue
from tests.cluster.support import HOME_VOLUME, WORKSPACE, dlw, workspace_variant, write_notebook

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_ddp.ipynb"
# Two queues: one with the GPU node's 4 GPUs, one too small for a 2-GPU job.
QUEUES = [{"name": "team-a", "gpus": 4, "default": True}, {"name": "small", "gpus": 1}]


@pytest.fixture(scope="module")
def alice_kueue(control_plane: ControlPlane, alice: dict[str, str], alice_home: Path, kueue: Kueue,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Alice's notebook environment in a workspace whose admin chose ``queueSystem: kueue`` (and a
    ReadWriteMany home, for preemptible jobs): the admin's cluster objects (``dlw admin render``'s Kueue
    part) and the LocalQueues the hub puts in her namespace."""
    from dlw_magic.hub.deploy import kueue_queues, local_queues
    from dlw_magic.workspace import load_workspace

    ns = alice["DLW_NAMESPACE"]
    volumes = [*yaml.safe_load(WORKSPACE.read_text())["volumes"], HOME_VOLUME]
    config = workspace_variant(tmp_path_factory.mktemp("kueue"), queueSystem="kueue", queues=QUEUES,
                               volumes=volumes)
    model = load_workspace(config)
    objects = kueue_queues(model) + local_queues(model, ns)
    control_plane.apply(objects)
    yield {**alice, "DLW_WORKSPACE_CONFIG": str(config), "DLW_HOME_MOUNT": str(alice_home)}
    for obj in reversed(objects):
        meta = obj["metadata"]
        control_plane.kubectl("delete", f"{obj['kind'].lower()}.kueue.x-k8s.io", meta["name"], "--wait=false",
                              *(["-n", meta["namespace"]] if "namespace" in meta else []), check=False)


def _status(env: dict[str, str], name: str) -> dict[str, Any]:
    out = dlw("status", name, "-o", "json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _workload(cp: ControlPlane, ns: str, job_uid: str) -> dict[str, Any] | None:
    items = cp.get("workloads.v1beta2.kueue.x-k8s.io", "-n", ns)["items"]
    return next((w for w in items if any(o["uid"] == job_uid for o in w["metadata"].get("ownerReferences", []))),
                None)


def _conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def _admitted(cp: ControlPlane, ns: str, job: dict[str, Any], what: str) -> dict[str, Any]:
    """The job's Workload once Kueue has admitted it."""
    def admitted() -> dict[str, Any] | None:
        wl = _workload(cp, ns, job["metadata"]["uid"])
        return wl if wl and _conditions(wl).get("Admitted", {}).get("status") == "True" else None

    return cp.wait_for(admitted, what, 120)


def _trains_to_the_end(cp: ControlPlane, env: dict[str, str], name: str, kueue: Kueue) -> None:
    """The job Succeeds and its log has the digits example's accuracy line."""
    cp.wait_for(lambda: _status(env, name)["state"] in ("Succeeded", "Failed"), f"{name} finished", 600, every=3)
    final = _status(env, name)
    assert final["state"] == "Succeeded", dlw("logs", name, env=env).stdout[-2000:] + kueue.log_tail()
    logs = dlw("logs", name, env=env)
    assert re.search(r"accuracy: 0\.\d+", logs.stdout), logs.stdout[-2000:]


def test_cluster_queue_as_rendered_is_active_with_its_cohort(control_plane: ControlPlane,
                                                             alice_kueue: dict[str, str]) -> None:
    # DLW writes v1beta1; Kueue stores v1beta2. Through Kueue's conversion webhook the cohort arrives
    # as v1beta2's cohortName, and Kueue finds the queue usable (its flavor exists).
    def active() -> dict[str, Any] | None:
        cq = control_plane.get("clusterqueues.v1beta2.kueue.x-k8s.io", "team-a")
        return cq if _conditions(cq).get("Active", {}).get("status") == "True" else None

    cq = control_plane.wait_for(active, "ClusterQueue team-a Active", 60)
    assert cq["spec"]["cohortName"] == "dlw", cq["spec"]
    gpus = {r["name"]: r["nominalQuota"] for r in cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"]}
    assert gpus["nvidia.com/gpu"] == "4"
    lq = control_plane.get("localqueues.v1beta2.kueue.x-k8s.io", "team-a", "-n", alice_kueue["DLW_NAMESPACE"])
    assert _conditions(lq)["Active"]["status"] == "True", lq.get("status")


def test_digits_admitted_by_kueue_trains_with_two_workers(control_plane: ControlPlane,
                                                          alice_kueue: dict[str, str], kueue: Kueue) -> None:
    env, ns = alice_kueue, alice_kueue["DLW_NAMESPACE"]
    out = dlw("train", str(DIGITS), "--name", "digits-kq", "--workers", "2", "--queue", "team-a",
              "-p", "epochs=1", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    [job] = control_plane.get("jobs", "-n", ns, "-l", "dlw.dev/job=digits-kq")["items"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"

    # Kueue made a Workload for the Job, reserved quota in team-a and admitted it (then unsuspended it).
    wl = _admitted(control_plane, ns, job, "the Workload admitted")
    assert wl["status"]["admission"]["clusterQueue"] == "team-a"
    [podset] = wl["spec"]["podSets"]
    assert podset["count"] == 2

    _trains_to_the_end(control_plane, env, "digits-kq", kueue)
    # Kueue's webhook created the Job suspended: the Job controller says so in its events.
    events = control_plane.get("events", "-n", ns, "--field-selector", f"involvedObject.uid={job['metadata']['uid']}")
    reasons = {e["reason"] for e in events["items"]}
    assert {"Suspended", "Resumed"} <= reasons, reasons


def test_job_over_its_queues_quota_waits_and_says_why(control_plane: ControlPlane, alice_kueue: dict[str, str],
                                                     tmp_path: Path) -> None:
    env, ns = alice_kueue, alice_kueue["DLW_NAMESPACE"]
    nb = write_notebook(tmp_path / "wait.ipynb", ["print('never runs')"])
    # `small` has 1 GPU; the cohort's other queue has 4 idle ones, but a queue's cap is a cap (no borrowing).
    out = dlw("train", str(nb), "--name", "over-quota", "--gpus", "2", "--queue", "small", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    seen: list[dict[str, Any]] = []

    def told() -> bool:
        seen.append(_status(env, "over-quota"))
        return seen[-1].get("reason") == "WaitingForQuota"

    control_plane.wait_for(told, "dlw status: WaitingForQuota", 60, every=1)
    st = seen[-1]
    assert st["state"] == "Queued"
    # Kueue's own words, from its Workload: the queue and the resource that does not fit.
    assert st["message"].startswith("Kueue queue small has not reserved quota for the job: "), st
    assert "nvidia.com/gpu" in st["message"], st
    assert not control_plane.get("pods", "-n", ns, "-l", "dlw.dev/job=over-quota")["items"]
    text = dlw("status", "over-quota", env=env).stdout
    assert "Queued" in text and "WaitingForQuota" in text, text

    out = dlw("cancel", "over-quota", env=env)
    assert out.returncode == 0, out.stderr
    control_plane.wait_for(lambda: not control_plane.get("jobs", "-n", ns, "-l", "dlw.dev/job=over-quota")["items"],
                           "the job gone", 60)


def _pods(cp: ControlPlane, ns: str, job: str) -> list[dict[str, Any]]:
    return cp.get("pods", "-n", ns, "-l", f"dlw.dev/job={job}")["items"]


def _running(cp: ControlPlane, ns: str, job: str) -> dict[str, Any] | None:
    return next((p for p in _pods(cp, ns, job) if p["status"].get("phase") == "Running"), None)


def test_kueue_preempts_a_low_job_for_a_high_one_and_readmits_it_to_resume(
        control_plane: ControlPlane, alice_kueue: dict[str, str], nodes: dict[str, ProcessKubelet],
        tmp_path: Path) -> None:
    """Kueue's preemption within a ClusterQueue (DLW renders ``withinClusterQueue: LowerPriority``): it
    evicts the low job's Workload and suspends its Job (the pods go), admits the high job, and admits
    the low one again after it; the low job resumes from its checkpoint. The scheduler never preempts:
    Kueue keeps the queue's 4 GPUs from being over-committed."""
    cp, env, ns = control_plane, alice_kueue, alice_kueue["DLW_NAMESPACE"]
    gpu = nodes["gpu"]
    cp.wait_for(lambda: not gpu.gpu_owner, "gpu-0's GPUs free of earlier tests' pods", 120)
    low, high = "kq-low", "kq-high"
    out = dlw("train", str(write_notebook(tmp_path / "low.ipynb", LOW_CELLS)), "--name", low, "--gpus", "4",
              "--preemptible", "--queue", "team-a", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    victim = cp.wait_for(lambda: _running(cp, ns, low), "the low job Running", 120)
    cp.wait_for(lambda: "step 4 saved" in dlw("logs", low, env=env).stdout, "low: steps 0-4 saved", 120)
    [low_job] = cp.get("jobs", "-n", ns, "-l", f"dlw.dev/job={low}")["items"]

    out = dlw("train", str(write_notebook(tmp_path / "high.ipynb", HIGH_CELLS)), "--name", high, "--gpus", "4",
              "--priority", "dlw-high", "--queue", "team-a", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]

    # Kueue evicts the low Workload (Preempted) and suspends the Job; the Job controller removes its pod.
    def evicted() -> dict[str, Any] | None:
        wl = _workload(cp, ns, low_job["metadata"]["uid"])
        cond = _conditions(wl or {}).get("Evicted")
        return cond if cond and cond["status"] == "True" else None

    cond = cp.wait_for(evicted, "the low Workload evicted", 120)
    assert cond["reason"] == "Preempted", cond
    cp.wait_for(lambda: cp.get("job", low_job["metadata"]["name"], "-n", ns)["spec"].get("suspend") is True,
                "the low Job suspended", 60)
    cp.wait_for(lambda: all(p["metadata"]["uid"] != victim["metadata"]["uid"] for p in _pods(cp, ns, low)),
                "the low pod gone", 120)
    high_pod = cp.wait_for(lambda: _running(cp, ns, high), "the high job Running", 120)
    assert high_pod["spec"]["nodeName"] == "gpu-0"
    # No scheduler preemption was needed: Kueue made room before the high pod existed.
    events = cp.get("events", "-n", ns, "--field-selector", f"involvedObject.uid={victim['metadata']['uid']}")
    assert "Preempted" not in {e["reason"] for e in events["items"]}

    # What alice reads meanwhile: her low job waits, preempted by Kueue for her high one, and why it waits.
    st = _status(env, low)
    assert (st["state"], st["reason"]) == ("Queued", "Preempted"), st
    assert st["message"].startswith(f"preempted by Kueue for a higher-priority job ({high}) in queue team-a; "
                                    "it resumes from its checkpoint once Kueue admits it again ("), st
    [low_job] = cp.get("jobs", "-n", ns, "-l", f"dlw.dev/job={low}")["items"]
    assert not int(low_job["status"].get("failed") or 0)
    assert _running(cp, ns, low) is None

    # The high job finishes; Kueue admits the low one again and it resumes where it stopped.
    outputs = Path(env["DLW_HOME_MOUNT"]) / ".dlw" / "jobs"
    (outputs / low / "output" / GATE).touch()
    (outputs / high / "output" / GATE).touch()
    cp.wait_for(lambda: _status(env, high)["state"] == "Succeeded", "the high job Succeeded", 120)
    cp.wait_for(lambda: _status(env, low)["state"] in ("Succeeded", "Failed"), "the low job finished", 180, every=2)
    final = _status(env, low)
    assert final["state"] == "Succeeded", final
    logs = dlw("logs", low, env=env).stdout
    assert "resumed from step 5" in logs and "low done" in logs, logs[-2000:]
    wl = _workload(cp, ns, low_job["metadata"]["uid"])
    assert wl is not None and _conditions(wl)["Admitted"]["status"] == "True"
    with open(outputs / low / "checkpoints" / "last.pt", "rb") as f:
        assert pickle.load(f) == {"step": STEPS - 1}


def test_pytorchjob_admitted_by_kueue_trains_through_the_training_operator(
        control_plane: ControlPlane, alice_kueue: dict[str, str], kueue: Kueue) -> None:
    """Kueue's PyTorchJob integration: the job is held (``runPolicy.suspend``) until Kueue admits its two
    pod sets, Master and Worker; then the training-operator runs it."""
    env, ns = alice_kueue, alice_kueue["DLW_NAMESPACE"]
    out = dlw("train", str(DIGITS), "--name", "digits-kq-ptj", "--engine", "pytorchjob", "--workers", "2",
              "--queue", "team-a", "-p", "epochs=1", env=env)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    job = control_plane.get("pytorchjobs.kubeflow.org", "digits-kq-ptj", "-n", ns)
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"

    wl = _admitted(control_plane, ns, job, "the PyTorchJob's Workload admitted")
    assert {(p["name"], p["count"]) for p in wl["spec"]["podSets"]} == {("master", 1), ("worker", 1)}
    _trains_to_the_end(control_plane, env, "digits-kq-ptj", kueue)
