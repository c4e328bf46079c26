"""The ``volcano`` engine through Volcano's real vc-controller-manager and vc-scheduler
(tests/cluster/volcano.py, v1.10.0), as alice with her notebook ServiceAccount's own token: the job
controller makes the PodGroup, the headless Service, the hosts ConfigMap (svc plugin) and the pods;
vc-scheduler gang-binds them to the process kubelet's node; the digits example trains with two ranks."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import ControlPlane
from tests.cluster.support import dlw, write_notebook
from tests.cluster.volcano import Volcano

ROOT = Path(__file__).resolve().parents[2]
DIGITS = ROOT / "examples" / "digits_ddp.ipynb"
VCJOB = "jobs.batch.volcano.sh"


def _pods(cp: ControlPlane, ns: str, job: str) -> list[dict[str, Any]]:
    return cp.get("pods", "-n", ns, "-l", f"volcano.sh/job-name={job}")["items"]


def _status(alice: dict[str, str], name: str) -> dict[str, Any]:
    out = dlw("status", name, "-o", "json", env=alice)
    return json.loads(out.stdout) if out.returncode == 0 and out.stdout.strip() else {}


def _podgroup(cp: ControlPlane, ns: str, job: dict[str, Any]) -> dict[str, Any] | None:
    uid = job["metadata"]["uid"]
    for pg in cp.get("podgroups.scheduling.volcano.sh", "-n", ns)["items"]:
        if any(o.get("uid") == uid for o in pg["metadata"].get("ownerReferences") or []):
            return pg
    return None


def _scheduled_by(cp: ControlPlane, ns: str, pod: str) -> set[str]:
    events = cp.get("events", "-n", ns, "--field-selector", f"involvedObject.name={pod},reason=Scheduled")["items"]
    return {(e.get("source") or {}).get("component") or e.get("reportingComponent") or "" for e in events}


def test_digits_trains_as_a_volcano_job_gang_scheduled_by_vc_scheduler(
        control_plane: ControlPlane, alice: dict[str, str], volcano: Volcano) -> None:
    ns = alice["DLW_NAMESPACE"]
    out = dlw("train", str(DIGITS), "--name", "digits-vc", "--engine", "volcano", "--workers", "2",
              "-p", "epochs=1", env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    job = control_plane.get(VCJOB, "digits-vc", "-n", ns)
    assert job["spec"]["queue"] == "default" and job["spec"]["schedulerName"] == "volcano"

    # The job controller's PodGroup: the whole gang (both ranks) is its minimum.
    pg = control_plane.wait_for(lambda: _podgroup(control_plane, ns, job), "the job's PodGroup", 60)
    assert pg["spec"]["minMember"] == 2 and pg["spec"]["queue"] == "default"

    def both_started() -> list[dict[str, Any]] | None:
        pods = _pods(control_plane, ns, "digits-vc")
        started = [p for p in pods if p["status"].get("phase") in ("Running", "Succeeded")]
        return pods if len(pods) == 2 and len(started) == 2 else None

    pods = control_plane.wait_for(both_started, "both ranks started", 300, every=1)
    for pod in pods:
        name = pod["metadata"]["name"]
        # vc-scheduler bound it (kube-scheduler leaves pods of another scheduler alone) to the CPU node.
        assert pod["spec"]["schedulerName"] == "volcano" and pod["spec"]["nodeName"] == "cpu-0"
        assert "volcano" in _scheduled_by(control_plane, ns, name), volcano.logs()
        # The svc plugin's hostname under the job's headless Service, its hosts file and env; the env plugin's
        # task index, from which DLW's bootstrap takes the rank.
        assert pod["spec"]["hostname"] == name and pod["spec"]["subdomain"] == "digits-vc"
        [main] = pod["spec"]["containers"]
        env = {e["name"]: e for e in main["env"]}
        assert "VC_TASK_INDEX" in env and env["VC_MASTER_HOSTS"]["valueFrom"]["configMapKeyRef"]["name"] \
            == "digits-vc-svc"
        assert any((v.get("configMap") or {}).get("name") == "digits-vc-svc" for v in pod["spec"]["volumes"])
    assert sorted(p["metadata"]["name"] for p in pods) == ["digits-vc-master-0", "digits-vc-worker-0"]
    svc = control_plane.get("service", "digits-vc", "-n", ns)
    assert svc["spec"]["clusterIP"] == "None"
    hosts = control_plane.get("configmap", "digits-vc-svc", "-n", ns)["data"]
    assert hosts["VC_MASTER_HOSTS"] == "digits-vc-master-0.digits-vc"
    assert hosts["VC_WORKER_HOSTS"] == "digits-vc-worker-0.digits-vc"

    control_plane.wait_for(lambda: _status(alice, "digits-vc").get("state") in ("Succeeded", "Failed"),
                           "the Volcano Job finished", 600, every=3)
    logs = dlw("logs", "digits-vc", env=alice)
    assert _status(alice, "digits-vc")["state"] == "Succeeded", logs.stdout[-2000:] + volcano.logs()
    assert control_plane.get(VCJOB, "digits-vc", "-n", ns)["status"]["state"]["phase"] == "Completed"
    assert logs.returncode == 0, logs.stderr
    assert re.search(r"accuracy: 0\.\d+", logs.stdout), logs.stdout[-2000:]


def test_a_gang_that_cannot_fit_starts_no_rank_and_says_why(
        control_plane: ControlPlane, alice: dict[str, str], volcano: Volcano, tmp_path: Path) -> None:
    """Two ranks of 5 CPUs each: the CPU node has 8, so one rank would fit alone (kube-scheduler would start
    it). vc-scheduler starts neither, and `dlw status` says why from the PodGroup: the whole gang, and the
    rank that does not fit."""
    ns = alice["DLW_NAMESPACE"]
    write_notebook(tmp_path / "big.ipynb", ["print('ran')"])
    spec = tmp_path / "gang.yaml"
    spec.write_text("apiVersion: dlw/v1\nkind: TrainingJob\nname: gang-vc\nsource: {notebook: big.ipynb}\n"
                    "resources: {cpu: '5'}\nworkers: 2\nengine: volcano\n")
    out = dlw("train", str(spec), env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    # Right after the enqueue action admits the group, before its pods exist, vc-scheduler's verdict is
    # "2/0 tasks in gang unschedulable"; the allocate action's, once it has tried the pods, names the rank.
    waiting = control_plane.wait_for(lambda: "Origin reason" in ((s := _status(alice, "gang-vc")).get("message") or "")
                                     and s, "dlw status to say why the gang does not fit", 120, every=2)
    assert (waiting["state"], waiting["reason"]) == ("Queued", "Unschedulable"), waiting
    assert waiting["message"].startswith("Volcano cannot start all 2 ranks together: 1/2 tasks in gang "
                                         "unschedulable"), waiting["message"]
    # The rank vc-scheduler tried second (either) is the one that does not fit.
    assert re.search(r"Origin reason is gang-vc-(master|worker)-0: 0/2 nodes are unavailable: 1 Insufficient cpu",
                     waiting["message"]), waiting["message"]
    # Both pods exist (the group is admitted to the queue) and stay unbound, cycle after cycle.
    for _ in range(5):
        pods = _pods(control_plane, ns, "gang-vc")
        assert len(pods) == 2 and not [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName")]
        time.sleep(1)
    assert dlw("cancel", "gang-vc", env=alice).returncode == 0
    control_plane.wait_for(lambda: control_plane.kubectl("get", VCJOB, "gang-vc", "-n", ns, check=False).returncode,
                           "the Volcano Job gone", 60)


def test_a_gang_larger_than_the_cluster_waits_in_the_queue(
        control_plane: ControlPlane, alice: dict[str, str], volcano: Volcano, tmp_path: Path) -> None:
    """Two ranks of 3 GPUs: 6 GPUs, the cluster has 4. The PodGroup counts the gang's GPUs (DLW requests them,
    not only limits them), so Volcano's enqueue action holds the group Pending and no pod is made."""
    ns = alice["DLW_NAMESPACE"]
    nb = write_notebook(tmp_path / "big.ipynb", ["print('ran')"])
    out = dlw("train", str(nb), "--name", "big-vc", "--engine", "volcano", "--workers", "2", "--gpus", "3",
              env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    job = control_plane.get(VCJOB, "big-vc", "-n", ns)
    pg = control_plane.wait_for(lambda: _podgroup(control_plane, ns, job), "the job's PodGroup", 60)
    assert pg["spec"]["minResources"]["nvidia.com/gpu"] == "6"
    waiting = control_plane.wait_for(lambda: (s := _status(alice, "big-vc")).get("reason") == "WaitingForQueue" and s,
                                     "dlw status to say WaitingForQueue", 60, every=2)
    # vc-scheduler has seen it (its Unschedulable condition) and keeps it Pending: the job controller makes no pod.
    control_plane.wait_for(lambda: (_podgroup(control_plane, ns, job) or {}).get("status", {}).get("conditions"),
                           "vc-scheduler's verdict on the group", 60)
    assert _podgroup(control_plane, ns, job)["status"]["phase"] == "Pending"
    assert waiting["state"] == "Queued" and waiting["message"] == (
        "Volcano queue default has no room for the job yet: its 2 ranks together need nvidia.com/gpu 6 "
        "(pod group Pending)"), waiting
    assert _pods(control_plane, ns, "big-vc") == []
    assert dlw("cancel", "big-vc", env=alice).returncode == 0


def test_cancel_stops_a_running_volcano_job(control_plane: ControlPlane, alice: dict[str, str], volcano: Volcano,
                                            tmp_path: Path) -> None:
    ns = alice["DLW_NAMESPACE"]
    nb = write_notebook(tmp_path / "sleepy.ipynb", ["import time\nprint('started', flush=True)\ntime.sleep(600)"])
    out = dlw("train", str(nb), "--name", "sleepy-vc", "--engine", "volcano", "--workers", "2", env=alice)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    control_plane.wait_for(lambda: _status(alice, "sleepy-vc").get("state") == "Running", "the job Running", 180)
    control_plane.wait_for(lambda: "started" in dlw("logs", "sleepy-vc", env=alice).stdout, "its first line", 90)
    assert dlw("cancel", "sleepy-vc", env=alice).returncode == 0
    # The Job goes, and with it its pods (the kubelet stops the processes), Service and hosts ConfigMap.
    control_plane.wait_for(lambda: not _pods(control_plane, ns, "sleepy-vc"), "the pods gone", 90)
    for kind, name in ((VCJOB, "sleepy-vc"), ("service", "sleepy-vc"), ("configmap", "sleepy-vc-svc")):
        control_plane.wait_for(lambda k=kind, n=name: control_plane.kubectl("get", k, n, "-n", ns,
                                                                            check=False).returncode,
                               f"{kind} {name} gone", 60)
    assert _status(alice, "sleepy-vc").get("state") in (None, "Cancelled")
