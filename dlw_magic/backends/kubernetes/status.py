"""Job state and an actionable reason from the engine object's status and its pods.

The engine object says where the job is (queued, running, done); the pods say why it is stuck or
failed (unschedulable, no GPU of the requested type, image pull, out of memory, evicted), because that
is what a researcher can act on. Pure functions over dicts: easy to test with hand-made objects.
"""

from __future__ import annotations

import re
from typing import Any

from ...engines.base import Engine, Status, ts
from ..base import JobState

__all__ = ["job_status", "pod_problem"]

PULL_ERRORS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


# --- pods -------------------------------------------------------------------------------------------------

def _container_statuses(pod: dict[str, Any]) -> list[dict[str, Any]]:
    st = pod.get("status") or {}
    return [*(st.get("initContainerStatuses") or []), *(st.get("containerStatuses") or [])]


def _gpu_hint(message: str, spec: dict[str, Any]) -> tuple[str, str] | None:
    res = spec.get("resources") or {}
    gpus, gpu_type = res.get("gpus") or 0, res.get("gpuType")
    resource = res.get("gpuResource") or "nvidia.com/gpu"
    if gpus and gpu_type and re.search(r"node affinity|node selector|didn't match Pod's node", message, re.I):
        return "NoGPUOfType", (
            f"no node with GPU type {gpu_type} (nvidia.com/gpu.product) can take the pod: "
            f"check resources.gpuType or wait for one to free up ({message})"
        )
    if gpus and f"Insufficient {resource}" in message:
        return "InsufficientGPU", (
            f"no node has {gpus} free {resource} right now: the job waits in the queue, or lower "
            f"resources.gpus ({message})"
        )
    return None


def pod_problem(pod: dict[str, Any], rank: int | None, spec: dict[str, Any]) -> tuple[str, str, int | None] | None:
    """(reason, message, exit code) for a pod in trouble, or None when it is fine (or simply pending)."""
    st = pod.get("status") or {}
    who = f"rank {rank}" if rank is not None else (pod.get("metadata") or {}).get("name", "pod")
    if st.get("reason") == "Evicted":
        return "Evicted", f"{who} was evicted: {st.get('message') or 'the node ran short of resources'}", None
    for c in st.get("conditions") or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            return "Preempted", f"{who} was stopped by the cluster ({c.get('reason')}): {c.get('message') or ''}", None
    for cs in _container_statuses(pod):
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") in PULL_ERRORS:
            return "ImagePullBackOff", (
                f"{who}: image {cs.get('image')} cannot be pulled ({waiting.get('message') or waiting['reason']}): "
                "check the image name and the registry's pull secret"
            ), None
        if waiting.get("reason") in CONFIG_ERRORS:
            return waiting["reason"], f"{who}: {waiting.get('message') or waiting['reason']}", None
    for cs in _container_statuses(pod):
        for state in ((cs.get("state") or {}).get("terminated"), (cs.get("lastState") or {}).get("terminated")):
            if state and state.get("reason") == "OOMKilled":
                limit = (spec.get("resources") or {}).get("memory")
                limit_text = f" (limit {limit})" if limit else ""
                return "OOMKilled", (
                    f"{who} ran out of memory{limit_text}: raise resources.memory or lower the batch size"
                ), state.get("exitCode", 137)
    for cs in _container_statuses(pod):
        term = (cs.get("state") or {}).get("terminated")
        if term and term.get("exitCode"):
            return "Error", f"{who} exited with code {term['exitCode']}: see dlw logs", term["exitCode"]
    if st.get("phase") == "Pending":
        for c in st.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("status") == "False" and c.get("reason") == "Unschedulable":
                message = c.get("message") or "no node fits the pod"
                return (*(_gpu_hint(message, spec) or ("Unschedulable", f"{who} cannot be scheduled: {message}")), None)
    return None


# Which problem explains a failure best (first wins); pending jobs are explained by the others.
_ORDER = ["OOMKilled", "Evicted", "Preempted", "Error", "ImagePullBackOff", "CreateContainerConfigError",
          "CreateContainerError", "RunContainerError", "NoGPUOfType", "InsufficientGPU", "Unschedulable"]


def _none_placed(pods: list[tuple[int | None, dict[str, Any]]]) -> bool:
    """Pods there are, and every one not finished waits for a node (after a preemption, for instance)."""
    live = [pod for _, pod in pods if (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed")]
    return bool(live) and all((pod.get("status") or {}).get("phase") == "Pending" and not (pod.get("spec") or {}).get(
        "nodeName") for pod in live)


def job_status(
    engine: Engine, obj: dict[str, Any], pods: list[tuple[int | None, dict[str, Any]]], spec: dict[str, Any]
) -> Status:
    """The job's state with the most useful reason from its pods ((rank, pod) pairs)."""
    status = engine.state(obj)
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Status(JobState.CANCELLED, reason="Cancelled", message="deleted (cancel) and stopping its pods",
                      started=status.started, finished=ts(obj["metadata"]["deletionTimestamp"]))
    problems = [p for rank, pod in pods if (p := pod_problem(pod, rank, spec))]
    problems.sort(key=lambda p: _ORDER.index(p[0]) if p[0] in _ORDER else len(_ORDER))
    if status.state == JobState.QUEUED and any(
        (pod.get("status") or {}).get("phase") == "Running" for _, pod in pods
    ):
        status.state = JobState.RUNNING  # the controller has not caught up yet
    elif status.state == JobState.RUNNING and _none_placed(pods):
        status.state = JobState.QUEUED  # a Job counts a pod waiting for a node as active: nothing runs yet
    if status.started is None:
        starts = [ts((pod.get("status") or {}).get("startTime")) for _, pod in pods]
        status.started = min((s for s in starts if s), default=None)
    if status.state == JobState.FAILED and status.reason == "DeadlineExceeded":
        timeout = spec.get("timeout")
        status.message = f"ran past its timeout ({timeout} s): raise timeout or make it faster" if timeout else (
            status.message)
    elif problems and status.state != JobState.SUCCEEDED:
        reason, message, code = problems[0]
        if not status.state.finished and reason in ("Error", "OOMKilled"):
            message += " (retrying)"  # a rank failed but the controller restarts it
        status.reason, status.message, status.exit_code = reason, message, code
    if status.state == JobState.SUCCEEDED:
        status.exit_code = 0
    return status
