"""Engine ``trainjob``: a Kubeflow Trainer v2 TrainJob (trainer.kubeflow.org/v1alpha1) on a runtime DLW renders.

Each job gets its own namespaced TrainingRuntime (same name as the job): a JobSet whose replicated job
``node`` runs the trainer container ``node`` with DLW's full pod template (security, volumes, code,
priority), and ``mlPolicy.torch`` so Trainer's torch plugin injects PET_NNODES, PET_NPROC_PER_NODE,
PET_NODE_RANK (the pod's completion index), PET_MASTER_ADDR and PET_MASTER_PORT. The TrainJob names that
runtime and sets the node and process counts. Retries: the JobSet's ``failurePolicy.maxRestarts``
recreates every rank together; an evicted or preempted rank (pod condition ``DisruptionTarget``) fails
its Job by pod failure policy rule 0, and the JobSet restarts every rank without counting it
(``RestartJobSetAndIgnoreMaxRestarts`` on that rule's message). ``timeout`` is the TrainJob's job-wide
``activeDeadlineSeconds``.
The JobSet makes a headless Service from the job's name, so the name must be DNS-1035.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..render.context import RenderContext
from ..render.pod import pod_template
from ..types import JobState
from .base import Engine, Kind, Status, template_spec, true_conditions, ts

GROUP = "trainer.kubeflow.org"
NODE = "node"  # Trainer's replicated job and container for the training nodes
ANCESTOR_LABEL = f"{GROUP}/trainjob-ancestor-step"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
FATAL_EXIT_CODES = [126, 127]  # command missing or not executable: no restart fixes that
# The Job's failure message when its pod failure policy's rule 0 (DisruptionTarget) fails it
# ("Pod <ns>/<pod> has condition DisruptionTarget matching FailJob rule at index 0").
EVICTED_MESSAGE = "has condition DisruptionTarget matching FailJob rule at index 0$"


class TrainJobEngine(Engine):
    name = "trainjob"
    main = Kind(f"{GROUP}/v1alpha1", "TrainJob", "trainjobs")
    runtime = Kind(f"{GROUP}/v1alpha1", "TrainingRuntime", "trainingruntimes")
    owned = (runtime,)
    controller_kinds = (Kind("jobset.x-k8s.io/v1alpha2", "JobSet", "jobsets"),)  # the runtime's template
    controller = "Kubeflow Trainer v2 and JobSet"
    container = NODE
    # Foreground deletion makes the garbage collector delete every dependent first (the TrainingRuntime,
    # owned by the TrainJob, too) and then update the TrainJob to drop its finalizer, an update Trainer's
    # webhook refuses once the runtime is gone: the TrainJob would stay for ever. Background deletes it at
    # once; the collector then removes the runtime, the JobSet, its Jobs and pods.
    cancel_propagation = "Background"

    def render(self, ctx: RenderContext) -> list[dict[str, Any]]:
        spec = ctx.spec
        tpl = pod_template(ctx, role="node", rank_from="PET_NODE_RANK", master_addr=None, container_name=NODE)
        if ctx.queue and ctx.queue_system == "volcano":
            tpl["spec"]["schedulerName"] = "volcano"
            tpl["metadata"]["annotations"]["scheduling.volcano.sh/queue-name"] = ctx.queue
        node_job: dict[str, Any] = {
            "completionMode": "Indexed",
            "backoffLimit": 0,  # a failed rank fails its Job; the JobSet then restarts every rank
            "podFailurePolicy": {"rules": [
                # Rule 0: an evicted or preempted rank fails its Job at once, so the JobSet restarts all.
                {"action": "FailJob", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
                {"action": "FailJob",
                 "onExitCodes": {"containerName": NODE, "operator": "In", "values": FATAL_EXIT_CODES}},
            ]},
            "template": tpl,
        }
        jobset: dict[str, Any] = {
            "replicatedJobs": [{
                "name": NODE,
                "replicas": 1,
                "template": {"metadata": {"labels": {ANCESTOR_LABEL: "trainer"}}, "spec": node_job},
            }],
            "failurePolicy": {
                "maxRestarts": spec.retries,
                # A missing command (the Job failed by its pod failure policy) fails at once.
                "rules": [
                    # An eviction is never the code's fault: restart every rank without using up a retry.
                    {"name": "evicted", "action": "RestartJobSetAndIgnoreMaxRestarts",
                     "onJobFailureReasons": ["PodFailurePolicy"], "onJobFailureMessagePatterns": [EVICTED_MESSAGE]},
                    {"name": "missingCommand", "action": "FailJobSet", "onJobFailureReasons": ["PodFailurePolicy"]},
                ],
            },
            "ttlSecondsAfterFinished": ctx.ttl_seconds,
        }
        runtime: dict[str, Any] = {
            "apiVersion": self.runtime.api_version,
            "kind": self.runtime.kind,
            "metadata": ctx.metadata(),
            "spec": {
                "mlPolicy": {"numNodes": spec.workers, "torch": {}},
                "template": {"spec": jobset},
            },
        }
        if ctx.queue and ctx.queue_system == "volcano" and spec.workers > 1:
            # Gang: Trainer makes a Volcano PodGroup of every node, so all ranks start together or none.
            runtime["spec"]["podGroupPolicy"] = {"volcano": {}}
        train_spec: dict[str, Any] = {
            "runtimeRef": {"apiGroup": GROUP, "kind": self.runtime.kind, "name": ctx.name},
            "trainer": {"numNodes": spec.workers, "numProcPerNode": spec.processes_per_worker},
        }
        if spec.timeout:
            train_spec["activeDeadlineSeconds"] = spec.timeout
        job = {"apiVersion": self.api_version, "kind": self.kind, "metadata": ctx.metadata(), "spec": train_spec}
        return [job, runtime]

    def created_before_job(self, obj: dict[str, Any]) -> bool:
        # Trainer's webhook resolves runtimeRef when the TrainJob is created.
        return (obj.get("apiVersion"), obj.get("kind")) == self.runtime.key

    def state(self, obj: dict[str, Any]) -> Status:
        status = obj.get("status") or {}
        conds = true_conditions(obj)
        jobs = status.get("jobsStatus") or []
        attempt = sum(int(j.get("failed") or 0) for j in jobs)
        started = ts((conds.get("Created") or {}).get("lastTransitionTime"))
        if "Complete" in conds:
            return Status(JobState.SUCCEEDED, started=started, attempt=attempt,
                          finished=ts(conds["Complete"].get("lastTransitionTime")))
        if "Failed" in conds:
            c = conds["Failed"]
            return Status(JobState.FAILED, reason=c.get("reason"), message=c.get("message"), started=started,
                          finished=ts(c.get("lastTransitionTime")), attempt=attempt)
        if "Suspended" in conds or (obj.get("spec") or {}).get("suspend"):
            return Status(JobState.QUEUED, reason="Suspended",
                          message=(conds.get("Suspended") or {}).get("message") or "waiting for the queue to admit it")
        if any(int(j.get("active") or 0) or int(j.get("ready") or 0) for j in jobs):
            return Status(JobState.RUNNING, started=started, attempt=attempt)
        return Status(JobState.QUEUED, attempt=attempt)

    def pod_rank(self, pod: dict[str, Any]) -> int:
        # One replicated job of one Job: the node rank is the pod's completion index (Trainer's PET_NODE_RANK).
        meta = pod.get("metadata") or {}
        labels, ann = meta.get("labels") or {}, meta.get("annotations") or {}
        # (JobSet's job-index label is always 0 here: the runtime has one replicated job with one replica.)
        return int(ann.get(COMPLETION_INDEX) or labels.get(COMPLETION_INDEX) or 0)

    def pod_specs(self, obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
        if (obj.get("apiVersion"), obj.get("kind")) != self.runtime.key:
            return  # a TrainJob holds no pod template
        jobs = ((((obj.get("spec") or {}).get("template") or {}).get("spec") or {}).get("replicatedJobs")) or []
        for i, rj in enumerate(jobs):
            yield (f"spec.template.spec.replicatedJobs[{i}].template.spec.template.spec",
                   template_spec((rj.get("template") or {}).get("spec")))


ENGINE = TrainJobEngine()
