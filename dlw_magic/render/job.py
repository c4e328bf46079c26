"""Engine ``job``: a plain batch/v1 Job (Indexed, with a headless Service, when there are several workers).

Ranks find each other through the Service: pod ``<name>-<index>`` is reachable as ``<name>-<index>.<svc>``,
so rank 0 is the rendezvous (MASTER_ADDR). Kueue, when the workspace uses it, admits the Job by its
queue label; Volcano schedules its pods by queue annotation (gang scheduling needs the volcano engine).
"""

from __future__ import annotations

from typing import Any

from .context import MASTER_PORT, RenderContext
from .pod import pod_template

API_VERSION = "batch/v1"
KIND = "Job"
GROUP, VERSION, PLURAL = "batch", "v1", "jobs"
# Exit codes no retry can fix: the command is missing or not executable.
FATAL_EXIT_CODES = [126, 127]


def service_name(ctx: RenderContext) -> str:
    # Service names must start with a letter; job names may start with a digit.
    return ctx.name if ctx.name[0].isalpha() else f"dlw-{ctx.name}"


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    spec = ctx.spec
    multi = spec.workers > 1
    svc = service_name(ctx)
    template = pod_template(
        ctx,
        role="worker",
        rank_from="JOB_COMPLETION_INDEX",
        master_addr=f"{spec.name}-0.{svc}" if multi else "localhost",
        subdomain=svc if multi else None,
        ports=[{"name": "dist", "containerPort": MASTER_PORT}] if multi else None,
    )
    if ctx.queue and ctx.queue_system == "volcano":
        template["spec"]["schedulerName"] = "volcano"
        template["metadata"]["annotations"]["scheduling.volcano.sh/queue-name"] = ctx.queue
    job_spec: dict[str, Any] = {
        "completions": spec.workers,
        "parallelism": spec.workers,
        "backoffLimit": spec.retries,
        "ttlSecondsAfterFinished": ctx.ttl_seconds,
        "podFailurePolicy": {
            "rules": [
                # Evictions and preemptions are not the code's fault: they do not use up retries.
                {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {
                    "action": "FailJob",
                    "onExitCodes": {"containerName": "trainer", "operator": "In", "values": FATAL_EXIT_CODES},
                },
            ]
        },
        "template": template,
    }
    if multi:
        job_spec["completionMode"] = "Indexed"
    if spec.timeout:
        job_spec["activeDeadlineSeconds"] = spec.timeout
    objects: list[dict[str, Any]] = [{
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": ctx.metadata(),
        "spec": job_spec,
    }]
    if multi:
        objects.append({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": ctx.metadata(svc),
            "spec": {
                "clusterIP": "None",
                # Ranks must resolve each other before they are Ready, or the rendezvous never happens.
                "publishNotReadyAddresses": True,
                "selector": {"dlw.dev/job-id": ctx.job_id},
                "ports": [{"name": "dist", "port": MASTER_PORT, "targetPort": MASTER_PORT}],
            },
        })
    return objects
