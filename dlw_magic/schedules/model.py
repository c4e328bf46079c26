"""A job definition: a named job spec plus when to run it and what to do when runs overlap or are missed.

The policies are Kubernetes CronJob's, so a definition means the same on both backends:
- ``concurrency``: ``Forbid`` (skip a fire while a run is active), ``Replace`` (cancel it, start the new
  one), ``Allow`` (run side by side);
- ``starting_deadline``: seconds after its time a fire may still start (a scheduler that was off longer
  skips it, recorded as Missed); None: no deadline, the newest missed fire runs once on start-up;
- ``keep``: how many finished runs are kept (older ones are deleted with their files).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import DLWError

CONCURRENCY = ("Forbid", "Replace", "Allow")
NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME = 40  # runs are NAME-yymmddHHMM: within the 52 characters of a job name
MAX_KEEP = 1000


@dataclass
class Definition:
    name: str
    cron: str
    spec: dict[str, Any]  # the job spec (camelCase, as job YAML) without a name: each run gets its own
    timezone: str = "UTC"
    concurrency: str = "Forbid"
    starting_deadline: int | None = None
    keep: int = 5
    backend: str = "local"
    paused: bool = False
    created: float = 0.0
    last_fire: float | None = None  # unix time of the newest fire the scheduler has dealt with
    user: str = ""
    extra: dict[str, Any] = field(default_factory=dict)  # backend's own facts (the CronJob's name)

    @property
    def notebook(self) -> str | None:
        src = self.spec.get("source") or {}
        return src.get("notebook") or src.get("script")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_name(name: str) -> str:
    if not isinstance(name, str) or len(name) > MAX_NAME or not NAME.match(name):
        raise DLWError(f"name: {str(name)[:60]!r} is not a schedule name (a letter, then lowercase letters, "
                       f"digits and '-', at most {MAX_NAME} characters)")
    return name


def check_concurrency(value: str) -> str:
    for choice in CONCURRENCY:
        if str(value).lower() == choice.lower():
            return choice
    raise DLWError(f"concurrency: {value!r} is not a policy (choose from {', '.join(CONCURRENCY)})")


def check_deadline(value: int | str | None) -> int | None:
    from ..spec.model import parse_duration

    if value is None or value == "":
        return None
    try:
        return parse_duration(value)
    except ValueError as err:
        raise DLWError(f"starting deadline: {err}") from None


def check_keep(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_KEEP:
        raise DLWError(f"keep: expected a number of runs from 0 to {MAX_KEEP}, got {value!r}")
    return value


def validate(d: Definition) -> Definition:
    """Every field checked, one line naming the field on the first error; returns ``d`` normalised."""
    from . import cron

    check_name(d.name)
    cron.zone(d.timezone)
    d.cron = " ".join(d.cron.split())
    cron.check(d.cron, d.timezone)
    d.concurrency = check_concurrency(d.concurrency)
    d.starting_deadline = check_deadline(d.starting_deadline)
    d.keep = check_keep(d.keep)
    if d.backend not in ("local", "kubernetes"):
        raise DLWError(f"backend: {d.backend!r} is not a backend (choose from local, kubernetes)")
    return d
