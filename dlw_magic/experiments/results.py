"""What an experiment's record says to a reader: the goal metric per trial, the best trial, table rows."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any


def summarize_metric(points: Sequence[Sequence[Any]], goal: str, cap: int) -> dict[str, Any]:
    """best, last, step and a curve of at most ``cap`` [step, value] points (evenly thinned, last kept)."""
    numbers = [p for p in points if isinstance(p[1], (int, float))]
    if not numbers:
        return {}
    values = [p[1] for p in numbers]
    stride = max(1, -(-len(numbers) // cap))
    curve = [[p[0], p[1]] for p in numbers[::stride]]
    if curve[-1][0] != numbers[-1][0]:
        curve.append([numbers[-1][0], numbers[-1][1]])
    return {"best": max(values) if goal == "max" else min(values), "last": values[-1],
            "step": numbers[-1][0], "curve": curve}


def best_trial(record: dict[str, Any]) -> dict[str, Any] | None:
    """The succeeded trial whose last goal value is best (the value a rerun of it reproduces); None
    without a goal metric or before any trial succeeded with a value."""
    goal = record["spec"].get("goal", "max")
    done = [t for t in record["trials"] if t["state"] == "Succeeded" and t.get("last") is not None]
    if not record["spec"].get("metric") or not done:
        return None
    pick = max if goal == "max" else min
    return pick(done, key=lambda t: t["last"])


def duration(trial: dict[str, Any]) -> float | None:
    if trial.get("started") is None:
        return None
    return (trial.get("finished") or time.time()) - trial["started"]


def counts(record: dict[str, Any]) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in record["trials"]:
        out[t["state"]] = out.get(t["state"], 0) + 1
    return out


def summary(record: dict[str, Any], curves: bool = True) -> dict[str, Any]:
    """The record as ``-o json`` and the REST API give it: every trial with parameters and state, the best
    trial named; ``curves`` False leaves the goal metric's points out (lists of experiments)."""
    best = best_trial(record)
    trials = []
    for t in record["trials"]:
        item = {k: t.get(k) for k in ("index", "name", "parameters", "state", "reason", "message", "best",
                                       "last", "step", "started", "finished")}
        item["duration"] = duration(t)
        if curves:
            item["curve"] = t.get("curve") or []
        trials.append(item)
    spec = record["spec"]
    return {
        "name": record["name"], "state": record["state"], "created": record.get("created"),
        "finished": record.get("finished"), "message": record.get("message"),
        "search": spec.get("search", "grid"), "parallel": spec.get("parallel", 1),
        "metric": spec.get("metric"), "goal": spec.get("goal", "max"), "stopIf": spec.get("stopIf"),
        "backend": (record.get("backend") or {}).get("name"), "counts": counts(record),
        "best": best["name"] if best else None, "trials": trials,
    }
