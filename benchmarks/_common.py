"""Shared bits of the benchmarks: timing and the JSON line each benchmark prints."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeat: int = 5) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_cmd(argv: list[str], **kwargs: Any) -> Callable[[], None]:
    def call() -> None:
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, **kwargs)

    return call


def report(name: str, **fields: Any) -> dict[str, Any]:
    out = {"benchmark": name, **{k: round(v, 4) if isinstance(v, float) else v for k, v in fields.items()}}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()
    return out
