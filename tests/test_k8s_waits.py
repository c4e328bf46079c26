"""Why a queued job waits: one sentence in `dlw status` from what the cluster says (Kueue Workloads,
Volcano PodGroups, pod conditions and events). Against kmock's emulator; the tests play Kueue and Volcano."""

from __future__ import annotations

from pathlib import Path

import pytest
import test_k8s_backend as _k8s
from k8s_emulator import KubeEmulator
from test_k8s_backend import JOB, VOLCANO, submit

from dlw_magic.backends import JobState
from dlw_magic.backends.kubernetes import KubernetesBackend

WORKLOAD = ("kueue.x-k8s.io/v1beta1", "Workload")
PODGROUP = ("scheduling.volcano.sh/v1beta1", "PodGroup")

env, kube, backend, script = _k8s.env, _k8s.kube, _k8s.backend, _k8s.script  # shared fixtures


def _owned(kube, kind, name: str) -> list[dict]:
    job = kube.get(kind, name)
    return [{"apiVersion": kind[0], "kind": kind[1], "name": name, "uid": job["metadata"].get("uid") or "u-1"}]


def _workload(kube, conditions: list[dict], job: str = "demo") -> None:
    owner = _owned(kube, JOB, job) if job == "demo" else [
        {"apiVersion": "batch/v1", "kind": "Job", "name": job, "uid": "u-other"}]
    kube.create({"apiVersion": WORKLOAD[0], "kind": "Workload",
                 "metadata": {"name": f"job-{job}-1a2b3", "ownerReferences": owner},
                 "spec": {"queueName": "team-a", "podSets": []}, "status": {"conditions": conditions}})


def test_kueue_says_why_a_job_waits_for_quota(backend, kube, script):
    submit(backend, script, gpus=4)
    kube._call("PATCH", kube.path(JOB, "demo"), {"spec": {"suspend": True}},
               content_type="application/merge-patch+json")
    _workload(kube, [{"type": "QuotaReserved", "status": "False", "reason": "Pending",
                      "message": "couldn't assign flavors to pod set main: insufficient unused quota for "
                                 "nvidia.com/gpu in flavor h200, 4 more needed"}])
    _workload(kube, [], job="other")  # another job's workload says nothing about this one
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.QUEUED, "WaitingForQuota")
    assert info.message == ("Kueue queue team-a has not reserved quota for the job: couldn't assign flavors to "
                            "pod set main: insufficient unused quota for nvidia.com/gpu in flavor h200, 4 more needed")


def test_kueue_admission_checks_and_admitted(backend, kube, script):
    submit(backend, script)
    _workload(kube, [{"type": "QuotaReserved", "status": "True"},
                     {"type": "Admitted", "status": "False", "message": "The workload has not all checks ready"}])
    info = backend.get("demo")
    assert info.reason == "WaitingForAdmission" and "not all checks ready" in info.message
    kube.set_status(WORKLOAD, "job-demo-1a2b3", {"conditions": [{"type": "QuotaReserved", "status": "True"},
                                                                 {"type": "Admitted", "status": "True"}]})
    assert backend.get("demo").reason is None  # admitted: nothing holds it back any more


def test_volcano_podgroup_explains_a_gang_that_does_not_fit(backend, kube, script):
    submit(backend, script, engine="volcano", workers=3)
    group = {"apiVersion": PODGROUP[0], "kind": "PodGroup",
             "metadata": {"name": "demo-5f1c", "ownerReferences": _owned(kube, VOLCANO, "demo")},
             "spec": {"minMember": 3, "queue": "research"}, "status": {"phase": "Pending"}}
    kube.create(group)
    info = backend.get("demo")
    assert (info.reason, info.message) == (
        "WaitingForQueue", "Volcano queue research has no room for the job yet (pod group Pending)")
    kube.set_status(PODGROUP, "demo-5f1c", {"phase": "Inqueue", "conditions": [{
        "type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
        "message": "3/3 tasks in gang unschedulable: pod group is not ready, 3 Pending, 3 minAvailable"}]})
    info = backend.get("demo")
    assert info.reason == "Unschedulable"
    assert info.message.startswith("Volcano cannot start all 3 ranks together: 3/3 tasks in gang unschedulable")


def test_volcano_says_what_the_gang_needs_and_speaks_over_its_pods(backend, kube, script):
    """As vc-scheduler v1.10 does it (tests/cluster/test_volcano.py runs the real one): a group the enqueue
    action has not admitted is Pending and marked Unschedulable ("2/0 tasks"); once admitted, the pods of a
    gang that does not fit are marked Unschedulable with the gang's summary, which names no reason."""
    submit(backend, script, engine="volcano", workers=2)
    kube.create({"apiVersion": PODGROUP[0], "kind": "PodGroup",
                 "metadata": {"name": "demo-5f1c", "ownerReferences": _owned(kube, VOLCANO, "demo")},
                 "spec": {"minMember": 2, "queue": "default", "minResources": {
                     "count/pods": "2", "pods": "2", "nvidia.com/gpu": "6", "requests.nvidia.com/gpu": "6"}},
                 "status": {"phase": "Pending", "conditions": [{
                     "type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
                     "message": "2/0 tasks in gang unschedulable: pod group is not ready, 2 minAvailable"}]}})
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.QUEUED, "WaitingForQueue")
    assert info.message == ("Volcano queue default has no room for the job yet: its 2 ranks together need "
                            "nvidia.com/gpu 6 (pod group Pending)")
    summary = "pod group is not ready, 2 Pending, 2 minAvailable; Pending: 1 Schedulable, 1 Unschedulable"
    kube.set_status(PODGROUP, "demo-5f1c", {"phase": "Inqueue", "conditions": [{
        "type": "Unschedulable", "status": "True", "reason": "NotEnoughResources",
        "message": f"1/2 tasks in gang unschedulable: {summary}. Origin reason is demo-worker-0: 0/2 nodes are "
                   "unavailable: 1 Insufficient cpu."}]})
    for name in ("demo-master-0", "demo-worker-0"):
        kube.add_pod(kube.get(VOLCANO, "demo"), name, {"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": summary}]})
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.QUEUED, "Unschedulable")
    assert info.message == (f"Volcano cannot start all 2 ranks together: 1/2 tasks in gang unschedulable: {summary}. "
                            "Origin reason is demo-worker-0: 0/2 nodes are unavailable: 1 Insufficient cpu.")


def test_a_pods_scheduling_event_is_the_reason_when_nothing_else_says(backend, kube, script):
    submit(backend, script)
    kube.add_pod(kube.get(JOB, "demo"), "demo-0-x", {"phase": "Pending"})
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "demo-0-x.1"}, "type": "Warning",
                 "reason": "FailedScheduling", "involvedObject": {"kind": "Pod", "name": "demo-0-x"},
                 "message": "0/5 nodes are available: 5 node(s) had untolerated taint {dedicated: infra}."})
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "else.1"}, "type": "Warning",
                 "reason": "BackOff", "involvedObject": {"kind": "Pod", "name": "someone-else"}, "message": "x"})
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.QUEUED, "Unschedulable")
    assert info.message == "demo-0-x cannot be scheduled: 0/5 nodes are available: 5 node(s) had untolerated " \
                           "taint {dedicated: infra}. (the nodes carry a taint the pod does not tolerate; the " \
                           "admin sets tolerations)"


def test_a_preempted_job_waits_to_resume_and_says_so(backend, kube, script):
    # What kube-scheduler and the Job controller leave after a preemption (tests/cluster/test_preemption_cluster.py
    # shows it on a real control plane): the victim pod gone, its Preempted event, and the Job's replacement
    # pod waiting for GPUs, which the Job counts as active.
    submit(backend, script, gpus=4)
    kube.set_status(JOB, "demo", {"active": 1, "startTime": "2026-11-22T08:00:00Z"})
    kube.add_pod(kube.get(JOB, "demo"), "demo-n2xk8", {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
         "message": "0/2 nodes are available: 1 Insufficient nvidia.com/gpu."}]})
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "demo-7fq2c.1"}, "type": "Normal",
                 "reason": "Preempted", "message": "Preempted by pod 0b8e5c1a-uid on node gpu-0",
                 "eventTime": "2026-11-22T08:10:00.000000Z", "reportingComponent": "default-scheduler",
                 "involvedObject": {"kind": "Pod", "name": "demo-7fq2c", "uid": "7fq2c-uid"}})
    kube.create({"apiVersion": "v1", "kind": "Event", "metadata": {"name": "urgent-x1y2z.1"}, "type": "Normal",
                 "reason": "Scheduled", "message": "Successfully assigned dlw-alice/urgent-x1y2z to gpu-0",
                 "eventTime": "2026-11-22T08:10:01.000000Z",
                 "involvedObject": {"kind": "Pod", "name": "urgent-x1y2z", "uid": "0b8e5c1a-uid"}})
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.QUEUED, "Preempted")  # not Running: nothing of it runs
    assert info.message == (
        "preempted by a higher-priority job (pod urgent-x1y2z) on node gpu-0; it resumes from its checkpoint once "
        "it can run again (no node has 4 free nvidia.com/gpu right now: the job waits in the queue, or lower "
        "resources.gpus (0/2 nodes are available: 1 Insufficient nvidia.com/gpu.))")
    # Back on a node: running again, and the preemption is history.
    kube.set_pod_status("demo-n2xk8", _k8s.running("2026-11-22T08:12:00Z"))
    info = backend.get("demo")
    assert (info.state, info.reason) == (JobState.RUNNING, None)


def test_status_prints_the_sentence(kube, script, monkeypatch, capsys):
    from dlw_magic import cli

    monkeypatch.setenv("DLW_KUBECONFIG", str(kube.kubeconfig))
    assert cli.main(["train", str(script), "--name", "demo", "--image", "img:1"]) == 0
    _workload(kube, [{"type": "QuotaReserved", "status": "False", "message": "LocalQueue team-a doesn't exist"}])
    capsys.readouterr()
    assert cli.main(["status", "demo"]) == 0
    out = capsys.readouterr().out
    assert "WaitingForQuota" in out and "LocalQueue team-a doesn't exist" in out


def test_a_cluster_without_kueue_or_volcano_is_asked_once(env, tmp_path: Path, script):
    resources = ["v1/pods", "v1/configmaps", "v1/services", "v1/events", "batch/v1/jobs",
                 "batch.volcano.sh/v1alpha1/jobs"]
    with KubeEmulator(tmp_path, resources=resources) as kube:
        backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig))
        submit(backend, script, engine="volcano")
        for _ in range(3):
            info = backend.get("demo")
            assert (info.state, info.reason) == (JobState.QUEUED, None)
        asked = [p for _, p, _ in kube.requests() if p.endswith(("/workloads", "/podgroups"))]
        assert sorted(asked) == ["/apis/kueue.x-k8s.io/v1beta1/namespaces/dlw-alice/workloads",
                                 "/apis/scheduling.volcano.sh/v1beta1/namespaces/dlw-alice/podgroups"]


@pytest.mark.parametrize(("group", "plural"), [("kueue.x-k8s.io", "workloads"),
                                               ("scheduling.volcano.sh", "podgroups")])
def test_the_notebook_role_may_read_what_explains_a_wait(group, plural):
    from dlw_magic.hub.rbac import NOTEBOOK_RULES

    verbs = {v for r in NOTEBOOK_RULES if group in r["apiGroups"] and plural in r["resources"] for v in r["verbs"]}
    assert {"get", "list"} <= verbs and "create" not in verbs and "delete" not in verbs
