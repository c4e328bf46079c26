"""One pass of the local scheduler: ``tick(now)`` starts what is due, by each definition's policies.

Pure in its time: the caller says what ``now`` is (the service passes the clock, tests pass a fake one),
so no test sleeps through a minute. A fire is claimed in the database before anything is submitted
(``ScheduleStore.claim``): a second scheduler ticking at the same moment finds it taken. Whatever goes
wrong with one definition (its notebook deleted, a bad spec, a full disk) becomes that run's Failed
reason; the scheduler goes on with the next definition.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..errors import DLWError
from . import cron
from .model import Definition
from .store import FAILED, MISSED, PENDING, SKIPPED, SUBMITTED, ScheduleStore

if TYPE_CHECKING:
    from ..backends import Backend
    from ..types import JobInfo

log = logging.getLogger("dlw.schedules")
# A run claimed but never submitted (the scheduler was killed in between) is called failed after this.
_STUCK_SECONDS = 600.0


@dataclass
class Event:
    """What a tick did with one definition (the service logs these; tests read them)."""

    definition: str
    action: str  # submitted | skipped | missed | failed | replaced
    job: str | None = None
    fire: datetime | None = None
    message: str | None = None


def utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def run_name(d: Definition, fire: datetime) -> str:
    """``nightly-2612060300``: the definition's name and the fire's time in its own zone."""
    return f"{d.name}-{fire.astimezone(cron.zone(d.timezone)):%y%m%d%H%M}"


def job_states(backend: Backend) -> dict[str, JobInfo]:
    return {j.name: j for j in backend.list_jobs()}


def run_state(run: dict[str, Any], jobs: dict[str, JobInfo]) -> str:
    """A run's state: its job's when it has one (Deleted once the job is gone), else the scheduler's."""
    if run.get("job"):
        job = jobs.get(run["job"])
        return job.state.value if job else "Deleted"
    return str(run["state"])


def _active(run: dict[str, Any], jobs: dict[str, JobInfo]) -> bool:
    job = jobs.get(run.get("job") or "")
    return job is not None and not job.state.finished


def submit_run(d: Definition, run_id: int, job_name: str, backend: Backend, store: ScheduleStore) -> JobInfo | None:
    """Submit the definition's job as ``job_name``; a failure is recorded on the run, never raised."""
    from .. import core
    from ..spec import parse_spec

    try:
        data = {**d.spec, "name": job_name}
        job = core.submit(parse_spec(data, f"schedule {d.name}"), backend)
    except DLWError as err:
        store.update_run(run_id, state=FAILED, reason="SubmitFailed", message=str(err))
        log.warning("schedule %s: run failed to start: %s", d.name, err)
        return None
    except Exception as err:  # a bug must cost one run, not the scheduler
        store.update_run(run_id, state=FAILED, reason="SchedulerError", message=f"{type(err).__name__}: {err}")
        log.exception("schedule %s: run failed to start", d.name)
        return None
    store.update_run(run_id, job=job.name, state=SUBMITTED)
    return job


def prune(d: Definition, backend: Backend, store: ScheduleStore, jobs: dict[str, JobInfo]) -> None:
    """Keep the newest ``d.keep`` finished runs; delete older ones' jobs (and their files)."""
    from .. import core

    finished = [r for r in store.runs(d.user, d.name) if not _active(r, jobs) and r["state"] != PENDING]
    for run in finished[d.keep:]:
        if run.get("job"):
            with contextlib.suppress(DLWError):
                core.delete(run["job"], backend)
        store.forget_run(run["id"])


def start_fire(d: Definition, run_id: int, fire: datetime, backend: Backend, store: ScheduleStore,
               jobs: dict[str, JobInfo]) -> Event:
    """Apply the concurrency policy, then submit."""
    from .. import core

    active = [r["job"] for r in store.runs(d.user, d.name) if r["id"] != run_id and _active(r, jobs)]
    if active and d.concurrency == "Forbid":
        message = f"{active[0]} was still running (concurrency Forbid)"
        store.update_run(run_id, state=SKIPPED, reason="ConcurrencyForbid", message=message)
        return Event(d.name, "skipped", fire=fire, message=message)
    if active and d.concurrency == "Replace":
        for name in active:
            with contextlib.suppress(DLWError):
                core.cancel(name, backend)
    job = submit_run(d, run_id, run_name(d, fire), backend, store)
    if job is None:
        run = next((r for r in store.runs(d.user, d.name) if r["id"] == run_id), {})
        return Event(d.name, "failed", fire=fire, message=run.get("message"))
    jobs[job.name] = job
    return Event(d.name, "replaced" if active and d.concurrency == "Replace" else "submitted", job.name, fire)


def tick(now: datetime, backend: Backend, store: ScheduleStore, user: str | None = None) -> list[Event]:
    """Start every local definition's due fire (the newest one when several were missed)."""
    events: list[Event] = []
    jobs: dict[str, JobInfo] | None = None
    for d in store.definitions(user):
        if d.paused or d.backend != "local":
            continue  # Kubernetes definitions are CronJobs: the cluster runs them
        try:
            jobs = jobs if jobs is not None else job_states(backend)
            events.extend(_tick_one(d, now, backend, store, jobs))
        except Exception as err:  # one definition's trouble must not stop the others' runs
            log.exception("schedule %s: %s", d.name, err)
    return events


def _tick_one(d: Definition, now: datetime, backend: Backend, store: ScheduleStore,
              jobs: dict[str, JobInfo]) -> list[Event]:
    """One definition: its newest due fire, by its missed-run and concurrency policies."""
    events: list[Event] = []
    try:
        fires = cron.fires_between(d.cron, d.timezone, utc(d.last_fire or d.created), now)
    except DLWError as err:  # edited behind our back into something invalid
        log.warning("schedule %s: %s", d.name, err)
        return events
    _settle_stuck(d, store, now)
    if not fires:
        return events
    fire = fires[-1]
    late = (now - fire).total_seconds()
    if d.starting_deadline is not None and late > d.starting_deadline:
        message = (f"not started by its deadline ({d.starting_deadline} s after {fire:%Y-%m-%d %H:%M} UTC): "
                   "the scheduler was not running")
        if store.claim(d, fire.timestamp(), MISSED, "StartingDeadlineExceeded", message, now.timestamp()):
            events.append(Event(d.name, "missed", fire=fire, message=message))
        return events
    run_id = store.claim(d, fire.timestamp(), now=now.timestamp())
    if run_id is None:
        return events  # another scheduler took this fire
    if len(fires) > 1:
        store.update_run(run_id, message=f"{len(fires) - 1} earlier fire(s) missed while the scheduler was off")
    events.append(start_fire(d, run_id, fire, backend, store, jobs))
    prune(d, backend, store, jobs)
    return events


def _settle_stuck(d: Definition, store: ScheduleStore, now: datetime) -> None:
    for run in store.runs(d.user, d.name):
        if run["state"] == PENDING and not run["job"] and now.timestamp() - run["created"] > _STUCK_SECONDS:
            store.update_run(run["id"], state=FAILED, reason="SchedulerStopped",
                             message="the scheduler stopped before submitting this run")


def next_fire(d: Definition, now: datetime) -> datetime | None:
    """When ``d`` fires next (None: paused, remote, or never)."""
    if d.paused:
        return None
    return cron.next_fire(d.cron, d.timezone, max(now, utc(d.last_fire or d.created)))
