"""Engine ``pytorchjob``: a Kubeflow kubeflow.org/v1 PyTorchJob (training-operator).

The operator sets MASTER_ADDR, MASTER_PORT, WORLD_SIZE and RANK itself (and PET_* for torchrun when
``nprocPerNode`` is given), so the template leaves those out; the bootstrap reads the pod's rank from
``PET_NODE_RANK`` or ``RANK``. The container must be called ``pytorch`` and its port ``pytorchjob-port``.
"""

from __future__ import annotations

from typing import Any

from .context import MASTER_PORT, RenderContext
from .pod import pod_template

API_VERSION = "kubeflow.org/v1"
KIND = "PyTorchJob"
GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"


def render(ctx: RenderContext) -> list[dict[str, Any]]:
    spec = ctx.spec
    restart = "OnFailure" if spec.retries else "Never"

    def replica(role: str, replicas: int) -> dict[str, Any]:
        tpl = pod_template(
            ctx, role=role, rank_from="PET_NODE_RANK,RANK", master_addr=None, container_name="pytorch",
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
        run_policy["activeDeadlineSeconds"] = spec.timeout
    scheduling: dict[str, Any] = {}
    if ctx.queue and ctx.queue_system == "volcano":
        scheduling["queue"] = ctx.queue
        scheduling["minAvailable"] = spec.workers
    if ctx.priority_class:
        scheduling["priorityClass"] = ctx.priority_class
    if scheduling:
        run_policy["schedulingPolicy"] = scheduling
    return [{
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": ctx.metadata(),
        "spec": {
            "nprocPerNode": str(spec.processes_per_worker),
            "runPolicy": run_policy,
            "pytorchReplicaSpecs": replicas,
        },
    }]
