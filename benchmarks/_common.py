"""Shared bits of the benchmarks: timing and the JSON line each benchmark prints."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def ensure_bytecode() -> None:
    """Compile dlw_magic as pip does at install: with PYTHONDONTWRITEBYTECODE set (some shells and CI
    set it) every `dlw` run would compile the package's modules again, ~0.2 s no user pays."""
    import compileall
    import importlib.util

    spec = importlib.util.find_spec("dlw_magic")
    assert spec is not None and spec.submodule_search_locations
    for folder in spec.submodule_search_locations:
        compileall.compile_dir(folder, quiet=2)


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
