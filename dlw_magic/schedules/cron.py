"""Cron expressions and time zones: checked once, with one-line errors, and their fire times.

Five fields (minute hour day-of-month month day-of-week), as Kubernetes CronJobs take them, or an alias
(``@hourly``, ``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``). Times are
computed in the schedule's IANA time zone (``0 3 * * *`` in Europe/Berlin is 03:00 Berlin time, summer and
winter) by croniter; an expression that never fires (``0 0 30 2 *``) is an error, not a silent schedule.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import DLWError

ALIASES = {
    "@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *", "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *",
}
# Missed fires looked at after a long stop (the scheduler was off for a year): Kubernetes gives up past 100.
MAX_MISSED = 100


def expand(expr: str) -> str:
    """The five-field form of ``expr`` (aliases resolved); a DLWError naming ``cron`` when malformed."""
    from croniter import croniter

    text = " ".join(str(expr).split())
    if not text:
        raise DLWError("cron: empty (expected five fields such as '0 3 * * *', or @daily)")
    if text.startswith("@"):
        if text.lower() not in ALIASES:
            raise DLWError(f"cron: unknown alias {text!r} (choose from {', '.join(ALIASES)})")
        return ALIASES[text.lower()]
    if len(text.split(" ")) != 5:
        raise DLWError(f"cron: {text!r} has {len(text.split(' '))} fields; expected 5 "
                       "(minute hour day-of-month month day-of-week)")
    try:
        croniter(text)
    except Exception as err:  # croniter's errors are several classes, all one-line
        raise DLWError(f"cron: {text!r} is not a cron expression ({str(err).split(']')[-1].strip()})") from None
    return text


def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name`` (``Europe/Berlin``, ``UTC``); a DLWError naming ``timezone`` if unknown."""
    try:
        if not name or name.startswith(("/", ".")) or ".." in name:
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise DLWError(f"timezone: {name!r} is not a time zone (an IANA name such as Europe/Berlin, or UTC)") from None


def check(expr: str, tz: str, now: datetime | None = None) -> str:
    """``expr`` expanded, after making sure it fires at all (30 February never comes)."""
    text = expand(expr)
    if next_fire(text, tz, now or datetime.now(UTC)) is None:
        raise DLWError(f"cron: {expr!r} never fires (no such date, e.g. 30 February)")
    return text


def next_fire(expr: str, tz: str, after: datetime) -> datetime | None:
    """The first fire strictly after ``after`` (UTC-aware), or None when there is none."""
    from croniter import CroniterBadDateError, croniter

    local = after.astimezone(zone(tz))
    try:
        return croniter(expand(expr), local).get_next(datetime).astimezone(UTC)
    except CroniterBadDateError:
        return None


def fires_between(expr: str, tz: str, after: datetime, until: datetime) -> list[datetime]:
    """Fires in (after, until], oldest first: at most the newest ``MAX_MISSED`` (walked back from ``until``,
    so a scheduler that was off for a year does not step through every minute of it)."""
    from croniter import CroniterBadDateError, croniter

    if until <= after:
        return []
    it = croniter(expand(expr), (until + timedelta(seconds=1)).astimezone(zone(tz)))
    out: list[datetime] = []
    while len(out) < MAX_MISSED:
        try:
            t = it.get_prev(datetime).astimezone(UTC)
        except CroniterBadDateError:
            break
        if t <= after:
            break
        if t <= until:
            out.append(t)
    return out[::-1]
