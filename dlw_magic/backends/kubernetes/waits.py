"""Why a queued job waits, in one sentence, from what the cluster says about it.

The pods say it first when they exist (``status.pod_problem``: unschedulable, image pulls); before and
besides them the answer sits elsewhere: Kueue's Workload for the job (no quota reserved, admission checks
pending), the engine's own scheduler objects (Volcano's PodGroup, via ``Engine.wait_reason``) and Warning
events of the job and its pods (a ResourceQuota refusing pods, the scheduler's FailedScheduling). Pure
functions over dicts; the backend fetches the objects.
"""

from __future__ import annotations

from typing import Any

from ...engines.base import Engine, Kind, owned_by

__all__ = ["WORKLOAD", "event_reason", "kueue_reason", "wait_reason"]

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
