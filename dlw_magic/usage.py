"""GPU-hours: who held how many GPUs for how long, and the budgets of the admin YAML applied to it.

Sources: the local job records (``jobs.db``: GPUs per worker x workers, from start to finish or now) and,
on Kubernetes, pods (notebooks and jobs) with GPU requests, from start to their containers' end or now.
Each use is clipped to the window asked for, so a job that spans the start of the week counts only the
hours inside it. ``budget_state`` compares a user's hours in the current period with their budget;
``check_budget`` refuses a new GPU job past it (running work is never touched).
"""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from collections.abc import Collection, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import DLWError

GPU_PREFIXES = ("nvidia.com/", "amd.com/gpu")
POD_USER_ANNOTATIONS = ("dlw.dev/user", "hub.jupyter.org/username")


@dataclass(frozen=True)
class GpuUse:
    user: str
    gpus: int
    start: float  # epoch seconds
    end: float | None  # None: still running
    what: str  # job name or pod name


@dataclass(frozen=True)
class UserHours:
    user: str
    gpu_hours: float
    items: int  # jobs or pods that held GPUs in the window


def local_uses(home: Path) -> list[GpuUse]:
    """GPU use of every local job that started, from ``<home>/jobs.db`` (read-only)."""
    db = home / "jobs.db"
    if not db.is_file():
        return []
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT user, name, gpus, workers, started, finished FROM jobs "
                            "WHERE started IS NOT NULL AND gpus > 0").fetchall()
    finally:
        conn.close()
    return [GpuUse(user, gpus * workers, started, finished, name)
            for user, name, gpus, workers, started, finished in rows]


def _time(text: str | None) -> float | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() if text else None


def pod_gpus(pod: dict[str, Any]) -> int:
    """GPUs a pod holds: its containers' GPU limits (requests when no limit; extended resources need both equal)."""
    total = 0
    for c in (pod.get("spec") or {}).get("containers") or []:
        res = c.get("resources") or {}
        amounts = {**(res.get("requests") or {}), **(res.get("limits") or {})}
        total += sum(int(str(v)) for k, v in amounts.items() if k.startswith(GPU_PREFIXES) and str(v).isdigit())
    return total


def pod_uses(pods: Iterable[dict[str, Any]]) -> list[GpuUse]:
    """GPU use of pods (Kubernetes JSON) that hold GPUs and have started."""
    out = []
    for pod in pods:
        gpus = pod_gpus(pod)
        meta, status = pod.get("metadata") or {}, pod.get("status") or {}
        start = _time(status.get("startTime"))
        if not gpus or start is None:
            continue
        annotations, labels = meta.get("annotations") or {}, meta.get("labels") or {}
        user = next((annotations[a] for a in POD_USER_ANNOTATIONS if annotations.get(a)), None) or labels.get(
            "dlw.dev/user") or meta.get("namespace", "?")
        end = None
        if status.get("phase") in ("Succeeded", "Failed"):
            ends = [_time((cs.get("state") or {}).get("terminated", {}).get("finishedAt"))
                    for cs in status.get("containerStatuses") or []]
            end = max((e for e in ends if e is not None), default=start)
        out.append(GpuUse(user, gpus, start, end, meta.get("name", "?")))
    return out


def hours_by_user(uses: Iterable[GpuUse], since: float, until: float) -> list[UserHours]:
    """GPU-hours per user inside [since, until], most first."""
    hours: dict[str, float] = {}
    items: dict[str, int] = {}
    for u in uses:
        overlap = min(u.end if u.end is not None else until, until) - max(u.start, since)
        if overlap <= 0:
            continue
        hours[u.user] = hours.get(u.user, 0.0) + u.gpus * overlap / 3600
        items[u.user] = items.get(u.user, 0) + 1
    return sorted((UserHours(user, round(h, 6), items[user]) for user, h in hours.items()),
                  key=lambda r: (-r.gpu_hours, r.user))


def parse_since(text: str, now: float) -> float:
    """``7d``, ``12h``, ``30m`` ago, or an ISO date/time (UTC unless it says otherwise)."""
    units = {"d": 86400, "h": 3600, "m": 60, "w": 604800}
    if text and text[-1] in units and text[:-1].isdigit():
        return now - int(text[:-1]) * units[text[-1]]
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise DLWError(f"--since {text!r}: expected 7d, 12h, 30m or a date such as 2026-12-01") from None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def render(rows: list[UserHours], fmt: str) -> str:
    if fmt == "json":
        return json.dumps([asdict(r) for r in rows], indent=2) + "\n"
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["user", "gpu_hours", "items"])
        writer.writerows([r.user, r.gpu_hours, r.items] for r in rows)
        return buf.getvalue()
    lines = [f"{'USER':<24} {'GPU-HOURS':>10} {'JOBS/PODS':>10}"]
    lines += [f"{r.user:<24} {r.gpu_hours:>10.2f} {r.items:>10}" for r in rows]
    lines.append(f"{'total':<24} {sum(r.gpu_hours for r in rows):>10.2f} {sum(r.items for r in rows):>10}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------
# Budgets


@dataclass(frozen=True)
class BudgetState:
    user: str
    used: float  # GPU-hours this period
    limit: float
    entry: str  # "user alice", "group research", "defaultUserGpuHours"
    period: str
    reset: datetime
    warn_at: float

    @property
    def exhausted(self) -> bool:
        return self.used >= self.limit

    @property
    def warning(self) -> bool:
        return self.used >= self.warn_at * self.limit

    def line(self) -> str:
        when = "today" if self.period == "day" else f"this {self.period}"
        return (f"{self.user} used {self.used:.1f} of {self.limit:g} GPU-hours {when} "
                f"(budget: {self.entry}); it resets {self.reset:%Y-%m-%d %H:%M} UTC")


def budget_state(ws: Any, user: str, groups: Collection[str], uses: Iterable[GpuUse], now: float) -> BudgetState | None:
    """``user``'s budget this period, or None when the admin set none for them."""
    from .workspace.budgets import period_bounds

    budgets = ws.budgets
    found = budgets.for_user(user, groups)
    if found is None:
        return None
    limit, entry = found
    start, reset = period_bounds(budgets.period, datetime.fromtimestamp(now, UTC))
    mine = [u for u in uses if u.user == user]
    used = sum(r.gpu_hours for r in hours_by_user(mine, start.timestamp(), now))
    return BudgetState(user, used, limit, entry, budgets.period, reset, budgets.warn_at)


def check_budget(state: BudgetState | None) -> str | None:
    """Refuse (DLWError, one line) a new GPU job past the budget; a warning line past warnAt; else None."""
    if state is None:
        return None
    if state.exhausted:
        raise DLWError(f"GPU budget used up: {state.line()}; jobs without GPUs still run, and running work "
                       "is not stopped")
    if state.warning:
        return f"warning: {state.line()}"
    return None


def backend_uses(backend: Any) -> list[GpuUse]:
    """The GPU use a backend can see: local job records, or the pods of the user's namespace."""
    if backend.name == "local":
        return local_uses(backend.home)
    if backend.name == "kubernetes":
        pods = backend.api.call("GET", f"/api/v1/namespaces/{backend.namespace}/pods") or {}
        return pod_uses(pods.get("items") or [])
    return []


def enforce_budget(backend: Any, user: str, now: float) -> str | None:
    """Before a GPU job: refuse past the user's budget (DLWError), else a warning line past warnAt, else None."""
    from . import settings
    from .workspace import load_workspace

    ws = load_workspace(settings.current().workspace_config)
    if ws.budgets.for_user(user, settings.current().groups) is None:
        return None
    return check_budget(budget_state(ws, user, settings.current().groups, backend_uses(backend), now))


def own_usage(backend: Any, user: str, now: float) -> dict[str, Any]:
    """``user``'s GPU-hours this budget period and their budget, for ``dlw usage`` and the Lab's GPU status."""
    from . import settings
    from .workspace import load_workspace
    from .workspace.budgets import period_bounds

    ws = load_workspace(settings.current().workspace_config)
    uses = backend_uses(backend)
    state = budget_state(ws, user, settings.current().groups, uses, now)
    if state is None:
        start, reset = period_bounds(ws.budgets.period, datetime.fromtimestamp(now, UTC))
        used = sum(r.gpu_hours for r in hours_by_user([u for u in uses if u.user == user], start.timestamp(), now))
        return {"user": user, "period": ws.budgets.period, "gpuHours": round(used, 4), "budget": None,
                "entry": None, "resets": reset.isoformat(), "warning": False, "exhausted": False,
                "line": f"{user} used {used:.1f} GPU-hours since {start:%Y-%m-%d} (UTC); no GPU budget set by "
                        "the admin"}
    prefix = "used up: " if state.exhausted else "warning: " if state.warning else ""
    return {"user": user, "period": state.period, "gpuHours": round(state.used, 4), "budget": state.limit,
            "entry": state.entry, "resets": state.reset.isoformat(), "warning": state.warning,
            "exhausted": state.exhausted, "line": prefix + state.line()}
