"""Engine ``job``: a plain batch/v1 Job (Indexed, with a headless Service, when there are several workers).

Ranks find each other through the Service: pod ``<name>-<index>`` is reachable as ``<name>-<index>.<svc>``,
so rank 0 is the rendezvous (MASTER_ADDR). Kueue, when the workspace uses it, admits the Job by its
queue label; Volcano schedules its pods by queue annotation (gang scheduling needs the volcano engine).

Retries: a Job replaces a failed pod (one index) alone, and a lone new rank cannot rejoin the others'
static rendezvous, so retries are given to single-worker jobs only (see ``Engine.check``). For the same
reason a preemptible multi-worker Job needs Kueue, which preempts by suspending the whole Job and
resumes it whole; an evicted single pod comes back through the ``DisruptionTarget -> Ignore`` rule.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..render.context import MASTER_PORT, RenderContext
from ..render.pod import pod_template
from ..types import JobState
from .base import DNS_1123, Engine, Kind, Status, template_spec, true_conditions, ts

# Exit codes no retry can fix: the command is missing or not executable.
FATAL_EXIT_CODES = [126, 127]
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def service_name(ctx: RenderContext) -> str:
    # Service names must start with a letter; job names may start with a digit.
    return ctx.name if ctx.name[0].isalpha() else f"dlw-{ctx.name}"


class JobEngine(Engine):
    name = "job"
    main = Kind("batch/v1", "Job", "jobs")
    owned = (Kind("v1", "Service", "services"),)
    name_rule = DNS_1123  # a Job takes any DNS label; the Service gets a letter prefix when needed
    name_rule_text = "lower-case letters, digits and '-' (DNS-1123 label)"
    restarts_all_ranks = False

    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
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
        rules: list[dict[str, Any]] = [
            {"action": "FailJob",
             "onExitCodes": {"containerName": self.container, "operator": "In", "values": FATAL_EXIT_CODES}},
        ]
        if not multi:
            # An evicted or preempted single pod is all ranks: restart it without using up a retry.
            rules.insert(0, {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]})
        job_spec: dict[str, Any] = {
            "completions": spec.workers,
            "parallelism": spec.workers,
            "backoffLimit": spec.retries,
            "ttlSecondsAfterFinished": ctx.ttl_seconds,
            "podFailurePolicy": {"rules": rules},
            "template": template,
        }
        if multi:
            job_spec["completionMode"] = "Indexed"
        if spec.timeout:
            job_spec["activeDeadlineSeconds"] = spec.timeout  # job-wide, across retries
        objects: list[dict[str, Any]] = [{
            "apiVersion": self.api_version, "kind": self.kind, "metadata": ctx.metadata(), "spec": job_spec,
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

    def state(self, obj: dict[str, Any]) -> Status:
        status = obj.get("status") or {}
        conds = true_conditions(obj)
        attempt = int(status.get("failed") or 0)
        started = ts(status.get("startTime"))
        if "Complete" in conds or "SuccessCriteriaMet" in conds:
            done = status.get("completionTime") or conds.get("Complete", {}).get("lastTransitionTime")
            return Status(JobState.SUCCEEDED, started=started, attempt=attempt, finished=ts(done))
        if "Failed" in conds or "FailureTarget" in conds:
            c = conds.get("Failed") or conds["FailureTarget"]
            return Status(JobState.FAILED, reason=c.get("reason"), message=c.get("message"), started=started,
                          finished=ts(c.get("lastTransitionTime")), attempt=attempt)
        if "Suspended" in conds or (obj.get("spec") or {}).get("suspend"):
            return Status(JobState.QUEUED, reason="Suspended",
                          message="waiting for the queue to admit the job (Kueue)")
        if int(status.get("active") or 0) or int(status.get("ready") or 0):
            return Status(JobState.RUNNING, started=started, attempt=attempt)
        return Status(JobState.QUEUED, attempt=attempt)

    def pod_rank(self, pod: dict[str, Any]) -> int:
        meta = pod.get("metadata") or {}
        index = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(
            COMPLETION_INDEX)
        return int(index or 0)

    def pod_specs(self, obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        spec = obj.get("spec") or {}
        if "template" in spec:
            yield "spec.template.spec", template_spec(spec)


ENGINE = JobEngine()
