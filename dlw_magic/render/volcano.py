"""Engine ``volcano``: a batch.volcano.sh/v1alpha1 Job, gang-scheduled (all replicas or none).

Task ``master`` (rank 0) and task ``worker`` (ranks 1..n-1). The ``svc`` plugin gives each pod the
hostname ``<job>-<task>-<index>`` under a headless Service named after the job; the ``env`` plugin sets
``VC_TASK_INDEX``, from which the bootstrap derives the rank. The master finishing completes the job.
"""

from __future__ import annotations

from typing import Any

from .context import MASTER_PORT, RenderContext
from .pod import pod_template

API_VERSION = "batch.volcano.sh/v1alpha1"
KIND = "Job"
GROUP, VERSION, PLURAL = "batch.volcano.sh", "v1alpha1", "jobs"
DEFAULT_MAX_RETRY = 3  # Volcano's own default, which its webhook applies to maxRetry: 0 anyway


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    spec = ctx.spec
    master_addr = f"{spec.name}-master-0.{spec.name}"
    ports = [{"name": "dist", "containerPort": MASTER_PORT}]

    def template(role: str, offset: int) -> dict[str, Any]:
        tpl = pod_template(
            ctx, role=role, rank_from="VC_TASK_INDEX", rank_offset=offset,
            master_addr=master_addr, ports=ports, restart_policy="Never",
        )
        if spec.timeout:  # Volcano Jobs have no job-wide deadline: bound each pod instead
            tpl["spec"]["activeDeadlineSeconds"] = spec.timeout
        return tpl

    tasks: list[dict[str, Any]] = [{
        "name": "master",
        "replicas": 1,
        "template": template("master", 0),
        "policies": [{"event": "TaskCompleted", "action": "CompleteJob"}],
    }]
    if spec.workers > 1:
        tasks.append({"name": "worker", "replicas": spec.workers - 1, "template": template("worker", 1)})
    # With no retries a failed pod ends the job; an eviction is never the code's fault, so it restarts.
    on_failure = "RestartJob" if spec.retries else "TerminateJob"
    vc_spec: dict[str, Any] = {
        "schedulerName": "volcano",
        "minAvailable": spec.workers,  # gang: start all ranks together or none
        "queue": ctx.queue or "default",
        "maxRetry": spec.retries or DEFAULT_MAX_RETRY,
        "ttlSecondsAfterFinished": ctx.ttl_seconds,
        "policies": [
            {"event": "PodEvicted", "action": "RestartJob"},
            {"event": "PodFailed", "action": on_failure},
        ],
        "plugins": {"svc": [], "env": []},
        "tasks": tasks,
    }
    if ctx.priority_class:
        vc_spec["priorityClassName"] = ctx.priority_class
    return [{"apiVersion": API_VERSION, "kind": KIND, "metadata": ctx.metadata(), "spec": vc_spec}]
