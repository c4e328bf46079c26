"""Job state and an actionable reason from the engine object's status and its pods.

The engine object says where the job is (queued, running, done); the pods say why it is stuck or
failed (unschedulable, no GPU of the requested type, image pull, out of memory, evicted), because that
is what a researcher can act on. Pure functions over dicts: easy to test with hand-made objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..base import JobState

PULL_ERRORS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull"}
CONFIG_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass
class Status:
    state: JobState
    reason: str | None = None
    message: str | None = None
    exit_code: int | None = None
    started: float | None = None
    finished: float | None = None
    attempt: int = 0


def ts(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _true_conditions(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c.get("type"): c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("status") == "True"}


def engine_state(engine: str, obj: dict[str, Any]) -> Status:
    """What the engine's controller says, before looking at pods."""
    status = obj.get("status") or {}
    conds = _true_conditions(obj)
    if engine == "volcano":
        phase = (status.get("state") or {}).get("phase") or "Pending"
        attempt = int(status.get("retryCount") or 0)
        when = ts((status.get("state") or {}).get("lastTransitionTime"))
        msg = (status.get("state") or {}).get("message") or None
        if phase in ("Completed", "Completing"):
            return Status(JobState.SUCCEEDED, finished=when, attempt=attempt)
        if phase in ("Failed", "Terminated", "Terminating", "Aborted", "Aborting"):
            return Status(JobState.FAILED, reason=phase, message=msg, finished=when, attempt=attempt)
        if phase in ("Running", "Restarting"):
            return Status(JobState.RUNNING, reason="Restarting" if phase == "Restarting" else None, attempt=attempt)
        return Status(JobState.QUEUED, reason="Inqueue" if phase == "Inqueue" else None, attempt=attempt)
    if engine == "pytorchjob":
        restarts = sum(int(r.get("failed") or 0) for r in (status.get("replicaStatuses") or {}).values())
        for kind, state in (("Succeeded", JobState.SUCCEEDED), ("Failed", JobState.FAILED)):
            if kind in conds:
                c = conds[kind]
                return Status(state, reason=c.get("reason") if state == JobState.FAILED else None,
                              message=c.get("message") if state == JobState.FAILED else None,
                              finished=ts(status.get("completionTime") or c.get("lastTransitionTime")),
                              started=ts(status.get("startTime")), attempt=restarts)
        if "Suspended" in conds:
            return Status(JobState.QUEUED, reason="Suspended", message=conds["Suspended"].get("message"))
        if "Running" in conds or "Restarting" in conds:
            return Status(JobState.RUNNING, reason="Restarting" if "Restarting" in conds else None,
                          started=ts(status.get("startTime")), attempt=restarts)
        return Status(JobState.QUEUED, attempt=restarts)
    # batch/v1 Job
    attempt = int(status.get("failed") or 0)
    started = ts(status.get("startTime"))
    if "Complete" in conds or "SuccessCriteriaMet" in conds:
        return Status(JobState.SUCCEEDED, started=started, attempt=attempt,
                      finished=ts(status.get("completionTime") or conds.get("Complete", {}).get("lastTransitionTime")))
    if "Failed" in conds or "FailureTarget" in conds:
        c = conds.get("Failed") or conds["FailureTarget"]
        return Status(JobState.FAILED, reason=c.get("reason"), message=c.get("message"), started=started,
                      finished=ts(c.get("lastTransitionTime")), attempt=attempt)
    if "Suspended" in conds or (obj.get("spec") or {}).get("suspend"):
        return Status(JobState.QUEUED, reason="Suspended", message="waiting for the queue to admit the job (Kueue)")
    if int(status.get("active") or 0) or int(status.get("ready") or 0):
        return Status(JobState.RUNNING, started=started, attempt=attempt)
    return Status(JobState.QUEUED, attempt=attempt)


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


def job_status(
    engine: str, obj: dict[str, Any], pods: list[tuple[int | None, dict[str, Any]]], spec: dict[str, Any]
) -> Status:
    """The job's state with the most useful reason from its pods ((rank, pod) pairs)."""
    status = engine_state(engine, obj)
    if (obj.get("metadata") or {}).get("deletionTimestamp"):
        return Status(JobState.CANCELLED, reason="Cancelled", message="deleted (cancel) and stopping its pods",
                      started=status.started, finished=ts(obj["metadata"]["deletionTimestamp"]))
    problems = [p for rank, pod in pods if (p := pod_problem(pod, rank, spec))]
    problems.sort(key=lambda p: _ORDER.index(p[0]) if p[0] in _ORDER else len(_ORDER))
    if status.state == JobState.QUEUED and any(
        (pod.get("status") or {}).get("phase") == "Running" for _, pod in pods
    ):
        status.state = JobState.RUNNING  # the controller has not caught up yet
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
