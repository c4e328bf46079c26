"""Why a queued job waits, in one sentence, from what the cluster says about it.

The pods say it first when they exist (``status.pod_problem``: unschedulable, image pulls); before and
besides them the answer sits elsewhere: Kueue's Workload for the job (no quota reserved, admission checks
pending), the engine's own scheduler objects (Volcano's PodGroup, via ``Engine.wait_reason``) and Warning
events of the job and its pods (a ResourceQuota refusing pods, the scheduler's FailedScheduling). Pure
functions over dicts; the backend fetches the objects.
"""

from __future__ import annotations

from concurrent.futures import Executor
from typing import Any

from kubernetes.client.exceptions import ApiException

from ...engines.base import Engine, Kind, owned_by
from .api import Api

__all__ = ["WORKLOAD", "event_reason", "explain_wait", "kueue_reason", "wait_reason"]

# Kueue makes one Workload per job it queues, owned by the job (any engine Kueue integrates with).
WORKLOAD = Kind("kueue.x-k8s.io/v1beta1", "Workload", "workloads")


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
            return "WaitingForQuota", f"Kueue queue {queue} has not reserved quota for the job: {why}"
        why = (admitted or {}).get("message") or "admission checks pending"
        return "WaitingForAdmission", f"Kueue reserved quota in queue {queue}, admission pending: {why}"
    return None


def event_reason(events: list[dict[str, Any]], names: set[str]) -> tuple[str, str] | None:
    """The newest Warning about the job or its pods, as (reason, sentence)."""
    warnings = [e for e in events if e.get("type") == "Warning"
                and (e.get("involvedObject") or {}).get("name") in names]
    if not warnings:
        return None
    warnings.sort(key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "")
    last = warnings[-1]
    message = (last.get("message") or "").strip()
    who = (last.get("involvedObject") or {}).get("name")
    if "exceeded quota" in message:
        return "QuotaExceeded", f"the namespace's quota refuses the job's pods: {message}"
    if last.get("reason") == "FailedScheduling":
        return "Unschedulable", f"{who} cannot be scheduled: {message}"
    return last.get("reason") or "Warning", f"{who}: {message}"


def wait_reason(
    engine: Engine, job: dict[str, Any], related: dict[Kind, list[dict[str, Any]]], events: list[dict[str, Any]],
    names: set[str],
) -> tuple[str, str] | None:
    """Kueue first (it holds the job back before anything else runs), then the engine's scheduler, then
    events. ``related`` holds the Workloads and the engine's ``waits_on`` objects that could be read."""
    found = kueue_reason(job, related.get(WORKLOAD, []))
    if found:
        return found
    found = engine.wait_reason(job, [o for k in engine.waits_on for o in related.get(k, [])])
    return found or event_reason(events, names)


def explain_wait(
    api: Api, namespace: str, engine: Engine, job: dict[str, Any], pods: list[dict[str, Any]],
    missing: set[Kind], pool: Executor,
) -> tuple[str, str] | None:
    """Fetch the events, Workloads and the engine's ``waits_on`` objects (in one round trip) and say why.
    A kind the cluster lacks (404) or this notebook may not read (403) goes into ``missing``: not asked again."""
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
    return wait_reason(engine, job, dict(zip(kinds, lists, strict=True)), events, names)
