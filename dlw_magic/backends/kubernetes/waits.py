"""Why a queued job waits, in one sentence, from what the cluster says about it.

The pods say it first when they exist (``status.pod_problem``: unschedulable, image pulls), except that a
gang scheduler's group (Volcano's PodGroup) speaks over a pod's plain ``Unschedulable``; before and
besides them the answer sits elsewhere: Kueue's Workload for the job (no quota reserved, admission checks
pending), the engine's own scheduler objects (Volcano's PodGroup, via ``Engine.wait_reason``) and the
events of the job and its pods (a ResourceQuota refusing pods, the scheduler's FailedScheduling with the
cluster autoscaler's answer, image pulls). ``object_reason`` turns one object's events into the sentence;
the hub's spawn page (``hub.spawn_wait``) says the same for a notebook pod. Pure functions over dicts; the
backend fetches the objects.
"""

from __future__ import annotations

import re
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException

from ...engines.base import Engine, Kind, owned_by, ts
from .api import Api

__all__ = ["WORKLOAD", "GpuAsk", "event_reason", "explain_wait", "gpu_ask", "kueue_reason", "object_reason",
           "preemption", "quota_sentence", "wait_reason"]

# Kueue makes one Workload per job it queues, owned by the job (any engine Kueue integrates with).
WORKLOAD = Kind("kueue.x-k8s.io/v1beta1", "Workload", "workloads")
GPU_PREFIX = "nvidia.com/"  # nvidia.com/gpu and the MIG slices nvidia.com/mig-*
GPU_PRODUCT = "nvidia.com/gpu.product"
# The node provisioner's word on a pending pod: the cluster autoscaler's TriggeredScaleUp /
# NotTriggerScaleUp, or Karpenter's (also AKS node auto-provisioning, EKS auto mode) "Nominated"
# ("Pod should schedule on: nodeclaim/NAME") and its own FailedScheduling ("Failed to schedule pod, ...").
SCALER_REASONS = ("TriggeredScaleUp", "NotTriggerScaleUp")
KARPENTER_NOMINATED = re.compile(r"Pod should schedule on: (nodeclaim|node)/(\S+)")
KARPENTER_FAILED = "Failed to schedule pod"


@dataclass(frozen=True)
class Scaler:
    """What the node provisioner said: whether a node is on its way, who said it, and its words."""

    adding: bool
    by: str  # "the cluster autoscaler is adding one"
    cannot: str  # "no node group can provide one"
    detail: str


def _scaler(reason: str, message: str) -> Scaler | None:
    if reason in SCALER_REASONS:
        return Scaler(reason == "TriggeredScaleUp", "the cluster autoscaler", "no node group can", message)
    nominated = KARPENTER_NOMINATED.search(message) if reason == "Nominated" else None
    if nominated:
        return Scaler(True, "Karpenter", "no Karpenter node pool can", f"{nominated.group(1)} {nominated.group(2)}")
    if reason == "FailedScheduling" and message.startswith(KARPENTER_FAILED):
        return Scaler(False, "Karpenter", "no Karpenter node pool can", message)
    return None


def _condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == kind), None)


def kueue_reason(job: dict[str, Any], workloads: list[dict[str, Any]]) -> tuple[str, str] | None:
    for wl in (w for w in workloads if owned_by(w, job)):
        queue = (wl.get("spec") or {}).get("queueName") or "?"
        admitted, reserved = _condition(wl, "Admitted"), _condition(wl, "QuotaReserved")
        if admitted and admitted.get("status") == "True":
            return None
        if not reserved or reserved.get("status") != "True":
            why = (reserved or {}).get("message") or "waiting for its turn"
            evicted = _condition(wl, "Evicted")
            if evicted and evicted.get("status") == "True" and evicted.get("reason") == "Preempted":
                return "Preempted", (f"{_kueue_preemptor(evicted, workloads, queue)}; it resumes from its checkpoint "
                                     f"once Kueue admits it again ({why})")
            return "WaitingForQuota", f"Kueue queue {queue} has not reserved quota for the job: {why}"
        why = (admitted or {}).get("message") or "admission checks pending"
        return "WaitingForAdmission", f"Kueue reserved quota in queue {queue}, admission pending: {why}"
    return None


def _kueue_preemptor(evicted: dict[str, Any], workloads: list[dict[str, Any]], queue: str) -> str:
    """Kueue's eviction says "Preempted to accommodate a workload (UID: u, JobUID: j) due to ...": the
    preemptor is named when its job is in this namespace (its Workload's owner)."""
    said = re.search(r"JobUID: ([^,)\s]+)", evicted.get("message") or "")
    owners = {o.get("uid"): o.get("name")
              for w in workloads for o in (w.get("metadata") or {}).get("ownerReferences") or []}
    by = f" ({owners[said.group(1)]})" if said and owners.get(said.group(1)) else ""
    return f"preempted by Kueue for a higher-priority job{by} in queue {queue}"


@dataclass(frozen=True)
class GpuAsk:
    """What a pod asks of a GPU node: the extended resource, how many, and the GPU type when pinned."""

    resource: str
    count: int = 0
    product: str = ""

    def waiting(self) -> str:
        what = f"{self.count} free GPUs" if self.count > 1 else "a free GPU"
        detail = f"{self.resource}: {self.count}" if self.count else self.resource
        return f"Waiting for a node with {what} ({detail}{f', type {self.product}' if self.product else ''})"


def gpu_ask(pod: dict[str, Any]) -> GpuAsk | None:
    """The GPUs a pod manifest (or pod template) asks for, from its containers' limits and node selector."""
    spec = pod.get("spec") or {}
    limits = [((c.get("resources") or {}).get("limits") or {}) for c in spec.get("containers") or []]
    asked = [(k, int(v)) for lim in limits for k, v in lim.items() if k.startswith(GPU_PREFIX) and str(v).isdigit()]
    if not asked:
        return None
    return GpuAsk(asked[0][0], sum(n for _, n in asked), (spec.get("nodeSelector") or {}).get(GPU_PRODUCT, ""))


def quota_sentence(message: str, what: str) -> str:
    """A ResourceQuota's refusal (an event's or an API error's message) in one sentence."""
    detail = message[message.find("exceeded quota"):] if "exceeded quota" in message else message
    return (f"the namespace's quota refuses {what}: {detail} (stop a notebook or job that holds what the quota "
            "counts, or ask for less)")


def _when(event: dict[str, Any]) -> str:
    return event.get("lastTimestamp") or event.get("eventTime") or ""


def _image(message: str) -> str:
    found = re.search(r'image "([^"]+)"', message)
    return found.group(1) if found else "?"


def _unschedulable(who: str, message: str, ask: GpuAsk | None, scaler: Scaler | None) -> tuple[str, str]:
    resource = re.search(rf"Insufficient ({re.escape(GPU_PREFIX)}[\w.-]*\w)", message)
    if resource and (ask is None or ask.resource != resource.group(1)):
        ask = GpuAsk(resource.group(1), ask.count if ask else 0, ask.product if ask else "")
    no_gpu_type = bool(ask and ask.product and re.search(r"didn't match (Pod's )?node (affinity|selector)", message))
    if ask and (resource or no_gpu_type):
        head, reason = ask.waiting(), ("InsufficientGPU" if resource else "NoGPUOfType")
        if scaler and scaler.adding:
            return "ScalingUp", f"{head}: {scaler.by} is adding one ({scaler.detail})"
        if scaler:
            return "NoNodeGroup", f"{head}: {scaler.cannot} provide one ({scaler.detail})"
        return reason, f"{head}: {message}"
    text = f"{who} cannot be scheduled: {message}"
    if "untolerated taint" in message:
        text += " (the nodes carry a taint the pod does not tolerate; the admin sets tolerations)"
    if scaler and scaler.adding:
        return "ScalingUp", f"{text}; {scaler.by} is adding a node ({scaler.detail})"
    if scaler:
        text += f"; {scaler.cannot} add a node that fits ({scaler.detail})"
    return "Unschedulable", text


def object_reason(events: list[dict[str, Any]], who: str, ask: GpuAsk | None = None) -> tuple[str, str] | None:
    """Why one object (a pod, a job) waits, from its events in any order: the scheduler's word (with the
    cluster autoscaler's, naming the GPUs of ``ask``), an image pull, a quota refusal, else its newest Warning.
    ``who`` names the object in the sentence. The hub's spawn page and ``dlw status`` both say this."""
    scheduling: str | None = None
    scaler: Scaler | None = None
    pulling = pull_failed = quota = None
    warning: dict[str, Any] | None = None
    for event in sorted(events, key=_when):
        reason, message = event.get("reason") or "", (event.get("message") or "").strip()
        if reason == "Scheduled":
            scheduling = scaler = warning = None
        elif _scaler(reason, message):
            scaler = _scaler(reason, message)
        elif reason == "FailedScheduling":
            scheduling = message
        elif reason == "Pulling":
            pulling, pull_failed = _image(message), None
        elif reason == "Pulled":
            pulling = pull_failed = None
        elif re.search(r'(?i)(failed to pull|back-off pulling) image "', message):
            if pull_failed is None or reason != "BackOff":  # "Failed" says why; "BackOff" only repeats it
                pull_failed = message
        elif "exceeded quota" in message:  # a controller's FailedCreate: bare pods get a 403 instead
            quota = message
        elif event.get("type") == "Warning":
            warning = event
    if scheduling is not None:
        return _unschedulable(who, scheduling, ask, scaler)
    if pull_failed:
        return "ImagePullBackOff", (f"image {_image(pull_failed)} cannot be pulled ({pull_failed}): check the "
                                    "image name and the registry's pull secret")
    if pulling:
        return "PullingImage", f"Pulling image {pulling} (can take minutes for a large GPU image)"
    if quota:
        return "QuotaExceeded", quota_sentence(quota, "the job's pods")
    if warning:
        return warning.get("reason") or "Warning", f"{who}: {(warning.get('message') or '').strip()}"
    return None


def event_reason(events: list[dict[str, Any]], names: set[str], ask: GpuAsk | None = None) -> tuple[str, str] | None:
    """Why the job waits, from the events of the job and its pods (``names``): each object's reason
    (``object_reason``); the object whose events are newest speaks."""
    mine: dict[str, list[dict[str, Any]]] = {}
    for e in events:
        name = (e.get("involvedObject") or {}).get("name")
        if name in names:
            mine.setdefault(name, []).append(e)
    found = [(max(map(_when, evs)), r) for name, evs in mine.items() if (r := object_reason(evs, name, ask))]
    return max(found, key=lambda f: f[0])[1] if found else None


def wait_reason(
    engine: Engine, job: dict[str, Any], related: dict[Kind, list[dict[str, Any]]], events: list[dict[str, Any]],
    names: set[str], ask: GpuAsk | None = None,
) -> tuple[str, str] | None:
    """Kueue first (it holds the job back before anything else runs), then the engine's scheduler, then
    events. ``related`` holds the Workloads and the engine's ``waits_on`` objects that could be read."""
    found = kueue_reason(job, related.get(WORKLOAD, []))
    if found:
        return found
    found = engine.wait_reason(job, [o for k in engine.waits_on for o in related.get(k, [])])
    return found or event_reason(events, names, ask)


def _disrupted(pod: dict[str, Any]) -> bool:
    return any(c.get("type") == "DisruptionTarget" and c.get("status") == "True"
               for c in (pod.get("status") or {}).get("conditions") or [])


def preemption(events: list[dict[str, Any]], job: dict[str, Any], pods: list[dict[str, Any]]) -> str | None:
    """"preempted by a higher-priority job ... on node N" when the scheduler preempted a pod of this job
    (its ``Preempted`` event) and no pod of the job has started since; else None.

    The victim is soon gone (the job's controller replaces it), so its event is what is left: matched by
    the name every engine's controller gives the job's pods, ``<job name>-...``."""
    meta = job.get("metadata") or {}
    prefix = f"{meta.get('name', '')}-"
    mine = [e for e in events if e.get("reason") == "Preempted"
            and (e.get("involvedObject") or {}).get("kind") == "Pod"
            and str((e.get("involvedObject") or {}).get("name") or "").startswith(prefix)]
    if not mine:
        return None
    event = max(mine, key=_when)
    when = ts(_when(event)) or 0.0
    # A pod that started after the preemption (and was not preempted itself) ran again: old news.
    if any((ts((p.get("status") or {}).get("startTime")) or 0.0) > when for p in pods if not _disrupted(p)):
        return None
    # "Preempted by pod <uid> on node <node>": the preemptor is named when it is in this namespace too
    # (its own events, e.g. Scheduled, carry its uid and name).
    said = re.search(r"by pod (\S+) on node (\S+)", event.get("message") or "")
    uid, node = said.groups() if said else ("", "")
    names = {(e.get("involvedObject") or {}).get("uid"): (e.get("involvedObject") or {}).get("name") for e in events}
    by = f" (pod {names[uid]})" if uid and names.get(uid) else ""
    return f"preempted by a higher-priority job{by}{f' on node {node}' if node else ''}"


def explain_wait(
    api: Api, namespace: str, engine: Engine, job: dict[str, Any], pods: list[dict[str, Any]],
    missing: set[Kind], pool: Executor, known: tuple[str, str] | None = None,
) -> tuple[str, str] | None:
    """Fetch the events, Workloads and the engine's ``waits_on`` objects (in one round trip) and say why.
    A kind the cluster lacks (404) or this notebook may not read (403) goes into ``missing``: not asked again.
    ``known``: the reason the pods already give (then only a preemption is added to it). A job the scheduler
    preempted says so first (reason ``Preempted``), then why it still waits."""
    kinds = [k for k in (WORKLOAD, *engine.waits_on) if k not in missing]

    def fetch(kind: Kind | None) -> list[dict[str, Any]]:
        group, version, plural = ("", "v1", "events") if kind is None else (kind.group, kind.version, kind.plural)
        base = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        try:
            return (api.call("GET", f"{base}/namespaces/{namespace}/{plural}") or {}).get("items") or []
        except ApiException as err:
            if kind is not None and err.status in (403, 404):
                missing.add(kind)
            return []

    events, *lists = pool.map(fetch, [None, *kinds])
    names = {(job.get("metadata") or {}).get("name", ""), *(p["metadata"]["name"] for p in pods)}
    names |= {o["metadata"]["name"] for objs in lists for o in objs if owned_by(o, job)}
    ask = next((a for p in pods if (a := gpu_ask(p))), None)
    related = dict(zip(kinds, lists, strict=True))
    # A gang scheduler marks the pods of a gang that does not fit Unschedulable, each with the gang's summary
    # or one rank's own reason; its group says the whole (Volcano's names the rank that does not fit).
    gang = engine.wait_reason(job, [o for k in engine.waits_on for o in related.get(k, [])]) \
        if known and known[0] == "Unschedulable" else None
    found = gang or known or wait_reason(engine, job, related, events, names, ask)
    preempted = preemption(events, job, pods)
    if preempted is None:
        return found
    why = found[1] if found and found[0] != "Preempted" else "waiting for room"
    return "Preempted", f"{preempted}; it resumes from its checkpoint once it can run again ({why})"
