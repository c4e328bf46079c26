"""The admin YAML's ``budgets:``: GPU-hours a user may use per period (day, week or month, UTC).

Entries work as ``quotas`` do: a user's own entry wins, else the largest of their groups' entries, else
``defaultUserGpuHours`` (none: no budget). Past ``warnAt`` of the budget a submission warns; past the
budget new GPU jobs are refused until the period resets. Running work is never stopped by a budget.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from pydantic import Field

from .base import WsModel

Period = Literal["day", "week", "month"]
Hours = Annotated[float, Field(ge=0)]


class Budgets(WsModel):
    period: Period = Field("week", description="Budgets reset at 00:00 UTC each day, each Monday, or each 1st.")
    warn_at: float = Field(0.8, gt=0, le=1, description="Warn when this fraction of the budget is used.")
    default_user_gpu_hours: Hours | None = Field(None, description="GPU-hours for users with no entry; none: no limit.")
    users: dict[str, Hours] = Field(default_factory=dict)
    groups: dict[str, Hours] = Field(default_factory=dict)

    def for_user(self, user: str, groups: Collection[str] = ()) -> tuple[float, str] | None:
        """(GPU-hours, which entry) for ``user``; None when no budget applies."""
        if user in self.users:
            return self.users[user], f"user {user}"
        from_groups = [(self.groups[g], f"group {g}") for g in sorted(groups) if g in self.groups]
        if from_groups:
            return max(from_groups)
        if self.default_user_gpu_hours is not None:
            return self.default_user_gpu_hours, "defaultUserGpuHours"
        return None


def period_bounds(period: Period, now: datetime) -> tuple[datetime, datetime]:
    """(start, reset) of the period holding ``now`` (UTC)."""
    day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    if period == "day":
        return day, day + timedelta(days=1)
    if period == "week":
        start = day - timedelta(days=day.weekday())
        return start, start + timedelta(days=7)
    start = day.replace(day=1)
    reset = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return start, reset
