"""Engine ``volcano``: a batch.volcano.sh/v1alpha1 Job, gang-scheduled (all replicas or none).

Task ``master`` (rank 0) and task ``worker`` (ranks 1..n-1). The ``svc`` plugin gives each pod the
hostname ``<job>-<task>-<index>`` under a headless Service named after the job (so the name must be
DNS-1035); the ``env`` plugin sets ``VC_TASK_INDEX``, from which the bootstrap derives the rank. The
master finishing completes the job. Retries: ``PodFailed -> RestartJob`` restarts every rank together;
an evicted or preempted pod always restarts the whole job (``PodEvicted -> RestartJob``), and each
restart counts against ``maxRetry``.
A Volcano Job has no job-wide deadline: ``timeout`` becomes each pod's deadline, which a restart would
renew, so a timeout with retries or preemptible (every eviction restarts the job) is refused.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..errors import DLWError
from ..render.context import MASTER_PORT, RenderContext
from ..render.pod import pod_template
from ..types import JobState
from .base import Engine, Kind, Status, name_index, owned_by, template_spec, ts

DEFAULT_MAX_RETRY = 3  # Volcano's own default, which its webhook applies to maxRetry: 0 anyway
# Every RestartJob, evictions included, counts against maxRetry: a preemptible job without retries
# (where only evictions restart it) may be preempted this often before it fails.
PREEMPTIBLE_MAX_RETRY = 10


class VolcanoEngine(Engine):
    name = "volcano"
    controller = "Volcano"
    main = Kind("batch.volcano.sh/v1alpha1", "Job", "jobs")
    # The gang scheduler's view of the job: why the whole gang does not fit, or that its queue is full.
    waits_on = (Kind("scheduling.volcano.sh/v1beta1", "PodGroup", "podgroups"),)

    def check(self, ctx: RenderContext) -> None:
        super().check(ctx)
        if ctx.spec.timeout and (ctx.spec.retries or ctx.spec.preemptible):
            why = "retries" if ctx.spec.retries else "preemptible (each preemption restarts it)"
            raise DLWError(
                f"job {ctx.name}: timeout: a Volcano Job has no job-wide deadline and each restart would get a "
                f"new one; drop {why.split(' ')[0]}, or use --engine trainjob or pytorchjob (job-wide deadline)"
            )

    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        spec = ctx.spec
        master_addr = f"{spec.name}-master-0.{spec.name}"
        ports = [{"name": "dist", "containerPort": MASTER_PORT}]

        def template(role: str, offset: int) -> dict[str, Any]:
            tpl = pod_template(
                ctx, role=role, rank_from="VC_TASK_INDEX", rank_offset=offset,
                master_addr=master_addr, ports=ports, restart_policy="Never",
            )
            if spec.timeout:  # no retries (see check): the pods' deadline is the job's
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
            # The Volcano Queue when Volcano queues; a Kueue LocalQueue name is no Volcano Queue.
            "queue": (ctx.queue if ctx.queue_system == "volcano" else None) or "default",
            "maxRetry": spec.retries or (PREEMPTIBLE_MAX_RETRY if spec.preemptible else DEFAULT_MAX_RETRY),
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
        return [{"apiVersion": self.api_version, "kind": self.kind, "metadata": ctx.metadata(), "spec": vc_spec}]

    def state(self, obj: dict[str, Any]) -> Status:
        status = obj.get("status") or {}
        st = status.get("state") or {}
        phase = st.get("phase") or "Pending"
        attempt = int(status.get("retryCount") or 0)
        when = ts(st.get("lastTransitionTime"))
        msg = st.get("message") or None
        if phase in ("Completed", "Completing"):
            return Status(JobState.SUCCEEDED, finished=when, attempt=attempt)
        if phase in ("Failed", "Terminated", "Terminating", "Aborted", "Aborting"):
            return Status(JobState.FAILED, reason=phase, message=msg, finished=when, attempt=attempt)
        if phase in ("Running", "Restarting"):
            return Status(JobState.RUNNING, reason="Restarting" if phase == "Restarting" else None, attempt=attempt)
        return Status(JobState.QUEUED, attempt=attempt)

    def wait_reason(self, obj: dict[str, Any], related: list[dict[str, Any]]) -> tuple[str, str] | None:
        for group in (g for g in related if owned_by(g, obj)):
            spec, status = group.get("spec") or {}, group.get("status") or {}
            ranks = spec.get("minMember") or "the"
            # Pending: the enqueue action has not admitted the gang (its queue or the cluster has no room for
            # minResources), and the job controller makes no pods yet. vc-scheduler marks such a group
            # Unschedulable too ("2/0 tasks in gang unschedulable"), which says less.
            if status.get("phase") == "Pending":
                queue = spec.get("queue") or "default"
                need = _resources(spec.get("minResources") or {})
                return "WaitingForQueue", (
                    f"Volcano queue {queue} has no room for the job yet: its {ranks} ranks together need {need} "
                    "(pod group Pending)" if need else
                    f"Volcano queue {queue} has no room for the job yet (pod group Pending)")
            for c in status.get("conditions") or []:
                if c.get("type") == "Unschedulable" and c.get("status") == "True":
                    why = c.get("message") or c.get("reason") or "not enough free resources"
                    return "Unschedulable", f"Volcano cannot start all {ranks} ranks together: {why}"
        return None

    def pod_rank(self, pod: dict[str, Any]) -> int:
        meta = pod.get("metadata") or {}
        labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
        index = ann.get("volcano.sh/task-index") or labels.get("volcano.sh/task-index")
        task = ann.get("volcano.sh/task-spec") or labels.get("volcano.sh/task-spec") or labels.get("dlw.dev/role")
        return int(index or name_index(pod)) + (1 if task == "worker" else 0)

    def pod_specs(self, obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for i, task in enumerate((obj.get("spec") or {}).get("tasks") or []):
            yield f"spec.tasks[{i}].template.spec", template_spec(task)


def _resources(min_resources: dict[str, Any]) -> str:
    """A PodGroup's minResources as "cpu 10, nvidia.com/gpu 6" (without its pod counts and quota aliases)."""
    skip = ("pods", "count/", "requests.", "limits.")
    return ", ".join(f"{k} {v}" for k, v in sorted(min_resources.items()) if not k.startswith(skip))


ENGINE = VolcanoEngine()
