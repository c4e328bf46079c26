"""The points of an experiment's search space: every combination (grid) or ``trials`` random draws.

Pure functions: the same experiment and seed give the same points, so a record can be rebuilt and a
test can name what each trial gets.
"""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

from ..spec.experiment import Experiment, Range


def points(exp: Experiment, seed: int | None = None) -> list[dict[str, Any]]:
    """The trials' parameter values, in trial order (a grid's last parameter varies fastest)."""
    if exp.search == "grid":
        names = list(exp.parameters)
        lists = [exp.parameters[n] for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*lists)]
    rng = random.Random(seed if seed is not None else exp.seed)
    return [{n: draw(v, rng) for n, v in exp.parameters.items()} for _ in range(exp.trials or 0)]


def draw(values: list[Any] | Range, rng: random.Random) -> Any:
    if isinstance(values, list):
        return values[rng.randrange(len(values))]
    lo, hi = float(values.min), float(values.max)
    if values.integer:
        if values.log:
            return min(int(values.max), max(int(values.min), round(math.exp(rng.uniform(math.log(lo), math.log(hi))))))
        return rng.randint(int(values.min), int(values.max))
    x = math.exp(rng.uniform(math.log(lo), math.log(hi))) if values.log else rng.uniform(lo, hi)
    return float(f"{x:.6g}")  # readable in tables and names; 6 digits are plenty for a hyperparameter
