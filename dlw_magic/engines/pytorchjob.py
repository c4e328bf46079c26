"""Engine ``pytorchjob``: a Kubeflow kubeflow.org/v1 PyTorchJob (training-operator v1.9).

The operator sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK itself (and PET_* for torchrun), so the
template leaves those out; the bootstrap reads the pod's rank from ``PET_NODE_RANK`` or ``RANK``. The
container must be called ``pytorch`` and its port ``pytorchjob-port``; the webhook wants a DNS-1035 name.
Retries: restartPolicy ``ExitCode`` recreates a pod killed by a signal (eviction, preemption) and fails
the job on a code error; the operator recreates that one pod alone, which cannot rejoin a static
rendezvous, so retries are given to single-worker jobs only (see ``Engine.check``). A preemptible
single-worker job gets ``ExitCode`` too; a preemptible multi-worker job needs Kueue, which suspends and
resumes the whole PyTorchJob.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..render.context import MASTER_PORT, RenderContext
from ..render.pod import pod_template
from ..types import JobState
from .base import Engine, Kind, Status, name_index, template_spec, true_conditions, ts

# The workers' init container the training-operator adds (it waits for the master's Service name), as a Go
# template for the operator's --pytorch-init-container-template-file (default path
# /etc/config/initContainer.yaml). Upstream's default has no securityContext, so DLW's pod policy refuses every
# worker pod in a user namespace (FailedCreate) and a multi-worker PyTorchJob never starts; this one is
# upstream's wait under the restricted profile the policy asks of every container. docs/deploy.md: how to mount it.
INIT_CONTAINER_TEMPLATE = """\
- name: init-pytorch
  image: {{.InitContainerImage}}
  imagePullPolicy: IfNotPresent
  resources:
    limits: {cpu: 100m, memory: 20Mi}
    requests: {cpu: 50m, memory: 10Mi}
  securityContext:
    runAsNonRoot: true
    runAsUser: 65534
    allowPrivilegeEscalation: false
    capabilities: {drop: [ALL]}
    seccompProfile: {type: RuntimeDefault}
  command:
  - sh
  - -c
  - >-
    err=1; for i in $(seq {{.MaxTries}}); do if nslookup {{.MasterAddr}}; then err=0 && break; fi;
    echo waiting for master; sleep 2; done; exit $err
"""


class PyTorchJobEngine(Engine):
    name = "pytorchjob"
    main = Kind("kubeflow.org/v1", "PyTorchJob", "pytorchjobs")
    container = "pytorch"
    controller = "Kubeflow training operator"
    restarts_all_ranks = False

    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        spec = ctx.spec
        # ExitCode: a pod killed by a signal (exit 128+: eviction, preemption) is recreated, a code error is not.
        restart = "ExitCode" if spec.retries or spec.preemptible else "Never"

        def replica(role: str, replicas: int) -> dict[str, Any]:
            tpl = pod_template(
                ctx, role=role, rank_from="PET_NODE_RANK,RANK", master_addr=None, container_name=self.container,
                restart_policy=None, ports=[{"name": "pytorchjob-port", "containerPort": MASTER_PORT}],
            )
            return {"replicas": replicas, "restartPolicy": restart, "template": tpl}

        replicas = {"Master": replica("master", 1)}
        if spec.workers > 1:
            replicas["Worker"] = replica("worker", spec.workers - 1)
        run_policy: dict[str, Any] = {
            "cleanPodPolicy": "Running",  # finished pods stay (their logs), running ones go with the job
            "backoffLimit": spec.retries,
            "ttlSecondsAfterFinished": ctx.ttl_seconds,
        }
        if spec.timeout:
            run_policy["activeDeadlineSeconds"] = spec.timeout  # job-wide, across retries
        scheduling: dict[str, Any] = {}
        if ctx.queue and ctx.queue_system == "volcano":
            scheduling["queue"] = ctx.queue
            scheduling["minAvailable"] = spec.workers
        if ctx.priority_class:
            scheduling["priorityClass"] = ctx.priority_class
        if scheduling:
            run_policy["schedulingPolicy"] = scheduling
        return [{
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": ctx.metadata(),
            "spec": {
                "nprocPerNode": str(spec.processes_per_worker),
                "runPolicy": run_policy,
                "pytorchReplicaSpecs": replicas,
            },
        }]

    def state(self, obj: dict[str, Any]) -> Status:
        status = obj.get("status") or {}
        conds = true_conditions(obj)
        restarts = sum(int(r.get("failed") or 0) for r in (status.get("replicaStatuses") or {}).values())
        started = ts(status.get("startTime"))
        if "Succeeded" in conds:
            c = conds["Succeeded"]
            return Status(JobState.SUCCEEDED, started=started, attempt=restarts,
                          finished=ts(status.get("completionTime") or c.get("lastTransitionTime")))
        if "Failed" in conds:
            c = conds["Failed"]
            return Status(JobState.FAILED, reason=c.get("reason"), message=c.get("message"), started=started,
                          finished=ts(status.get("completionTime") or c.get("lastTransitionTime")),
                          attempt=restarts)
        if "Suspended" in conds:
            return Status(JobState.QUEUED, reason="Suspended", message=conds["Suspended"].get("message"))
        if "Running" in conds or "Restarting" in conds:
            return Status(JobState.RUNNING, reason="Restarting" if "Restarting" in conds else None,
                          started=started, attempt=restarts)
        return Status(JobState.QUEUED, attempt=restarts)

    def pod_rank(self, pod: dict[str, Any]) -> int:
        labels = (pod.get("metadata") or {}).get("labels") or {}
        index = labels.get("training.kubeflow.org/replica-index")
        role = (labels.get("training.kubeflow.org/replica-type") or labels.get("dlw.dev/role") or "").lower()
        return int(index or name_index(pod)) + (1 if role == "worker" else 0)

    def pod_specs(self, obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        for role, rs in ((obj.get("spec") or {}).get("pytorchReplicaSpecs") or {}).items():
            yield f"spec.pytorchReplicaSpecs.{role}.template.spec", template_spec(rs)


ENGINE = PyTorchJobEngine()
