"""What the faces call for job definitions: create, list, show, pause, resume, edit, delete, run now.

The CLI (``dlw schedule``), the magic (``%dlw schedule``) and the lab's REST API call these and format
what comes back; none of them holds a rule of its own. Local definitions are run by the local scheduler
(``service``); Kubernetes ones are CronJobs in the user's namespace (``cronjob``), kept in step here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DLWError
from . import cron
from .model import Definition, check_concurrency, check_deadline, check_keep, check_name, validate
from .scheduler import job_states, next_fire, run_state, submit_run
from .store import ScheduleStore

if TYPE_CHECKING:
    from ..backends import Backend
    from ..options import JobOptions
    from ..types import JobInfo


@dataclass
class Shown:
    """A definition as the faces show it: its next fire and its runs (newest first) with their states."""

    definition: Definition
    next_fire: datetime | None
    runs: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = self.definition
        last = next((r for r in self.runs if r.get("job")), None)
        return {
            "name": d.name, "cron": d.cron, "timezone": d.timezone, "concurrency": d.concurrency,
            "startingDeadlineSeconds": d.starting_deadline, "keep": d.keep, "backend": d.backend,
            "paused": d.paused, "created": d.created, "notebook": d.notebook,
            "nextRun": self.next_fire.timestamp() if self.next_fire else None,
            "lastJob": last["job"] if last else None,
            "runs": [{"job": r.get("job"), "state": r["state"], "scheduled": r["scheduled"], "reason": r.get("reason"),
                      "message": r.get("message"), "metrics": r.get("metrics")} for r in self.runs],
        }


def store_for(home: Path | None = None) -> ScheduleStore:
    from ..backends.local.backend import data_dir

    return ScheduleStore(home or data_dir())


def _user() -> str:
    from ..core import current_user

    return current_user()


def _now() -> datetime:
    return datetime.now(UTC)


def create(target: str | Path, cron_expr: str, *, name: str | None = None, tz: str = "UTC",
           concurrency: str = "Forbid", starting_deadline: int | str | None = None, keep: int = 5,
           options: JobOptions | None = None, backend: Backend | None = None,
           store: ScheduleStore | None = None, now: datetime | None = None) -> Definition:
    """A new definition for the notebook (or script, or job YAML) ``target``; its job spec is checked now,
    its notebook is read at each run (the notebook as last saved then)."""
    from .. import core, snapshot

    backend = backend or core.get_backend()
    spec = core.build_spec(target, options=options)
    snapshot.source_paths(spec)  # the notebook exists now (a one-line error, not a first run that fails)
    data = spec.to_yaml_dict()
    data.pop("name", None)
    src = data.get("source") or {}
    for key in ("notebook", "script"):  # runs start from another folder: absolute paths
        if src.get(key):
            src[key] = str(Path(src["workdir"] if src.get("workdir") else Path.cwd(), src[key]).resolve())
    when = now or _now()
    d = Definition(
        name=name or check_name(_default_name(target)), cron=cron_expr, spec=data, timezone=tz,
        concurrency=concurrency, starting_deadline=check_deadline(starting_deadline), keep=keep,
        backend=backend.name, created=when.timestamp(), user=_user(),
    )
    validate(d)
    store = store or store_for()
    if d.backend == "kubernetes":
        from .cronjob import apply

        d.extra = apply(d, backend)
    store.insert(d)
    return d


def _default_name(target: str | Path) -> str:
    import re

    stem = re.sub(r"[^a-z0-9]+", "-", Path(target).stem.lower()).strip("-")[:36] or "schedule"
    return stem if stem[0].isalpha() else f"s-{stem}"


def list_definitions(store: ScheduleStore | None = None, backend: Backend | None = None,
                     now: datetime | None = None) -> list[Shown]:
    from .. import core

    store = store or store_for()
    backend = backend or core.get_backend()
    definitions = store.definitions(_user())
    jobs = _jobs(backend) if definitions else {}  # the panel asks every few seconds: no listing for nothing
    return [_shown(d, store, jobs, now, backend) for d in definitions]


def _jobs(backend: Backend | None) -> dict[str, JobInfo]:
    from .. import core

    try:
        return job_states(backend or core.get_backend())
    except DLWError:  # the cluster is unreachable: the definitions still show, runs without states
        return {}


def _shown(d: Definition, store: ScheduleStore, jobs: dict[str, JobInfo], now: datetime | None,
           backend: Backend | None = None, details: bool = False) -> Shown:
    from ..format import last_metrics

    runs = store.runs(d.user, d.name)
    if d.backend == "kubernetes":  # the cluster fires these: its jobs (and, in details, its failed fires)
        from .cronjob import cluster_runs

        known = {r.get("job") for r in runs}
        fired = cluster_runs(d, jobs, backend if details else None)
        runs = sorted([*runs, *(r for r in fired if r["job"] is None or r["job"] not in known)],
                      key=lambda r: r["scheduled"], reverse=True)
    for r in runs:
        r["state"] = run_state(r, jobs)
        job = jobs.get(r.get("job") or "")
        if job is not None and backend is not None:  # at most `keep` runs (+ active ones): a few small files
            r["metrics"] = last_metrics(backend.metrics(job))
    return Shown(d, next_fire(d, now or _now()), runs)


def show(name: str, store: ScheduleStore | None = None, backend: Backend | None = None,
         now: datetime | None = None) -> Shown:
    from .. import core

    store = store or store_for()
    backend = backend or core.get_backend()
    return _shown(store.get(_user(), name), store, _jobs(backend), now, backend, details=True)


def set_paused(name: str, paused: bool, store: ScheduleStore | None = None, backend: Backend | None = None,
               now: datetime | None = None) -> Definition:
    """Pause or resume. Resuming does not make up for the fires missed while paused."""
    store = store or store_for()
    d = store.get(_user(), name)
    d.paused = paused
    if d.backend == "kubernetes":
        from .cronjob import set_suspended

        set_suspended(d, paused, backend)
    store.save(d)
    if not paused:
        store.set_last_fire(d.user, d.name, (now or _now()).timestamp())
    return store.get(d.user, d.name)


def edit(name: str, *, cron_expr: str | None = None, tz: str | None = None, concurrency: str | None = None,
         starting_deadline: int | str | None = None, keep: int | None = None, options: JobOptions | None = None,
         store: ScheduleStore | None = None, backend: Backend | None = None) -> Definition:
    """Change the schedule, its policies or the job's options; None keeps a value."""
    from .. import core
    from ..spec import parse_spec

    store = store or store_for()
    d = store.get(_user(), name)
    if cron_expr is not None:
        d.cron = cron_expr
    if tz is not None:
        d.timezone = tz
    if concurrency is not None:
        d.concurrency = check_concurrency(concurrency)
    if starting_deadline is not None:
        d.starting_deadline = check_deadline(starting_deadline)
    if keep is not None:
        d.keep = check_keep(keep)
    if options is not None and options.model_dump(exclude_unset=True, exclude_defaults=True):
        merged = core.merge_options({**d.spec, "name": "probe"}, options, f"schedule {name}")
        merged = parse_spec(merged, f"schedule {name}").to_yaml_dict()
        merged.pop("name", None)
        d.spec = merged
    validate(d)
    if d.backend == "kubernetes":
        from .cronjob import apply

        d.extra = apply(d, backend, replace=True)
    store.save(d)
    return d


def delete(name: str, store: ScheduleStore | None = None, backend: Backend | None = None) -> None:
    """Forget the definition; its runs stay as ordinary jobs (``dlw jobs``)."""
    store = store or store_for()
    d = store.get(_user(), name)
    if d.backend == "kubernetes":
        from .cronjob import remove

        remove(d, backend)
    store.delete(d.user, d.name)


def run_now(name: str, store: ScheduleStore | None = None, backend: Backend | None = None,
            now: datetime | None = None) -> JobInfo:
    """Start a run at once, outside the schedule (its concurrency policy does not apply)."""
    from .. import core

    store = store or store_for()
    backend = backend or core.get_backend()
    d = store.get(_user(), name)
    when = (now or _now()).timestamp()
    run_id = store.add_run(d, when)
    job = submit_run(d, run_id, core.default_name(f"{d.name}.ipynb"), backend, store)
    if job is None:
        failed = next(r for r in store.runs(d.user, d.name) if r["id"] == run_id)
        raise DLWError(f"schedule {name}: {failed['message']}")
    return job


def describe(d: Definition) -> str:
    """``0 3 * * * (Europe/Berlin)``, and the alias's meaning where one was used."""
    expanded = cron.expand(d.cron)
    alias = f" = {expanded}" if expanded != d.cron else ""
    return f"{d.cron} ({d.timezone}){alias}" + (" paused" if d.paused else "")


def stamp(ts: float | None, tz: str = "UTC") -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, cron.zone(tz)).strftime("%Y-%m-%d %H:%M %Z")

