"""Early stopping from what trials log with ``dlw_magic.log_metrics``: pure decisions, applied by the runner.

Metrics are ``{name: [[step, value, time], ...]}`` as ``core.get_job`` returns them.
"""

from __future__ import annotations

import operator
import statistics
from collections.abc import Sequence
from typing import Any

from ..spec.experiment import StopRule

_OPS = {">": operator.gt, "<": operator.lt, ">=": operator.ge, "<=": operator.le}
Metrics = dict[str, list[list[Any]]]


def best_until(points: Sequence[Sequence[Any]], step: int, goal: str) -> float | None:
    """The best value logged at steps up to ``step`` (None where nothing was logged yet)."""
    values = [p[1] for p in points if p[0] <= step and isinstance(p[1], (int, float))]
    if not values:
        return None
    return max(values) if goal == "max" else min(values)


def last_step(metrics: Metrics) -> int | None:
    steps = [p[0] for pts in metrics.values() for p in pts]
    return max(steps) if steps else None


def stop_reason(
    rules: Sequence[StopRule], mine: Metrics, others: Sequence[Metrics], metric: str | None, goal: str,
) -> str | None:
    """Why the trial with metrics ``mine`` should stop now (a sentence), or None to let it run.

    ``others``: the metrics of the experiment's other trials (running or finished)."""
    for rule in rules:
        if rule.kind == "threshold":
            points = mine.get(rule.metric or "") or []
            if not points or points[-1][0] < rule.after or not isinstance(points[-1][1], (int, float)):
                continue
            step, value = points[-1][0], points[-1][1]
            if _OPS[rule.op or ">"](value, rule.value or 0.0):
                return f"{rule.metric} = {value:g} at step {step} ({rule})"
        elif metric:
            points = mine.get(metric) or []
            if not points or points[-1][0] < rule.after:
                continue
            step = points[-1][0]
            mine_best = best_until(points, step, goal)
            # The others' best up to the same step, where they have got that far.
            theirs = [best_until(o.get(metric) or [], step, goal) for o in others
                      if (o.get(metric) or [[-1]])[-1][0] >= step]
            known = [v for v in theirs if v is not None]
            if mine_best is None or len(known) < 2:
                continue
            median = statistics.median(known)
            worse = mine_best < median if goal == "max" else mine_best > median
            if worse:
                return (f"best {metric} {mine_best:g} by step {step} is worse than the median {median:g} "
                        f"of {len(known)} other trials ({rule})")
    return None
