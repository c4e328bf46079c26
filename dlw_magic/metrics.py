"""Numbers a job records as it trains, for ``dlw status``, the widget and the panel's charts.

In the job::

    from dlw_magic import log_metrics
    log_metrics(step=epoch, loss=0.31, accuracy=0.94)

Each rank appends one line per call to ``$DLW_OUTPUT_DIR/metrics/rank-{RANK}.jsonl``, a JSON array
``[step, unix_time, {"loss": 0.31, "accuracy": 0.94}]``. Writes are buffered and flushed at most every
``FLUSH_EVERY`` seconds (and before a fork and at exit), so 10,000 points a second cost the job a few
percent of one core at most (benchmarks/bench_metrics.py). Where the output folder does not reach the
user (Kubernetes without a shared home), ``DLW_METRICS_STDOUT=1`` also prints each line to stdout behind
``TAG``; the backend reads them back from the log with ``parse_log_line``. Outside a job (no
``DLW_OUTPUT_DIR`` and no ``DLW_METRICS_STDOUT``) ``log_metrics`` does nothing.

Only the standard library is imported: ``import dlw_magic`` stays cheap in every job.
"""

from __future__ import annotations

import atexit
import json
import math
import operator
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FOLDER = "metrics"  # under DLW_OUTPUT_DIR
TAG = "#dlw-metrics "  # the prefix of a metrics line in a job's log (DLW_METRICS_STDOUT=1)
FLUSH_EVERY = 1.0  # seconds
GPU_FILE_PREFIX = "gpu-rank-"  # metrics/gpu-rank-N.jsonl: the GPU sampler's, one file per rank

Point = list[Any]  # [step, value, time]; value None for NaN or an infinity


def metrics_file(output_dir: str | Path, rank: int | str) -> Path:
    return Path(output_dir) / FOLDER / f"rank-{rank}.jsonl"


class _Recorder:
    def __init__(self) -> None:
        env = os.environ
        self.file = None
        output = env.get("DLW_OUTPUT_DIR")
        if output:
            path = metrics_file(output, env.get("RANK", "0"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8", buffering=1 << 16)  # noqa: SIM115 (closed at exit)
            atexit.register(self.flush)
            if hasattr(os, "register_at_fork"):  # a forked child must not write the parent's buffer again
                os.register_at_fork(before=self.flush)
        self.stdout = sys.__stdout__ if env.get("DLW_METRICS_STDOUT") == "1" else None
        self.keys: dict[str, str] = {}
        self.flushed = time.monotonic()

    def key(self, name: str) -> str:
        encoded = self.keys.get(name)
        if encoded is None:
            encoded = self.keys[name] = json.dumps(name) + ":"
        return encoded

    def log(self, step: Any, values: dict[str, Any]) -> None:
        if self.file is None and self.stdout is None:
            return
        try:
            step = operator.index(step)
        except TypeError:
            raise TypeError(f"log_metrics: step must be an integer, got {type(step).__name__}") from None
        parts = []
        for name, value in values.items():
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"log_metrics: {name}: expected a number, got {type(value).__name__}") from None
            text = repr(number)
            if text[-1] in "nf":  # nan, inf: JSON has no such numbers
                text = "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")
            parts.append(self.key(name) + text)
        line = f"[{step},{time.time():.3f},{{{','.join(parts)}}}]\n"
        if self.file is not None:
            self.file.write(line)
            now = time.monotonic()
            if now - self.flushed >= FLUSH_EVERY:
                self.file.flush()
                self.flushed = now
        if self.stdout is not None:
            self.stdout.write(TAG + line)

    def flush(self) -> None:
        if self.file is not None and not self.file.closed:
            self.file.flush()
            self.flushed = time.monotonic()


_recorder: _Recorder | None = None


def log_metrics(*, step: int, **values: float) -> None:
    """Record ``values`` (numbers: floats, ints, 0-d tensors) at ``step`` for this rank of the job."""
    global _recorder
    if _recorder is None:
        _recorder = _Recorder()
    _recorder.log(step, values)


def flush() -> None:
    """Write what this rank logged so far to its file now (it is also written every second and at exit)."""
    if _recorder is not None:
        _recorder.flush()


# -- reading (dlw status, the widget, the panel) --


def parse_log_line(line: str) -> tuple[int, float, dict[str, Any]] | None:
    """(step, time, values) of a tagged metrics line from a job's log, or None for any other line."""
    if not line.startswith(TAG):
        return None
    return _parse(line[len(TAG):])


def read_log(lines: Iterable[str]) -> dict[str, list[Point]]:
    """The metrics in a job's log (DLW_METRICS_STDOUT=1), as ``read`` returns them from the files."""
    return collect(filter(None, map(parse_log_line, lines)))


def collect(records: Iterable[tuple[int, float, dict[str, Any]]]) -> dict[str, list[Point]]:
    """``{name: [[step, value, time], ...]}`` from records in the order they were logged.

    A step that does not move forward (a retried attempt resuming from its checkpoint) replaces the
    points it had from that step on, so a chart shows the run that counts.
    """
    series: dict[str, list[Point]] = {}
    for step, when, values in records:
        for name, value in values.items():
            points = series.setdefault(name, [])
            while points and points[-1][0] >= step:
                points.pop()
            number = value if isinstance(value, (int, float)) and math.isfinite(value) else None
            points.append([step, number, when])
    return series


def read(output_dir: str | Path) -> dict[str, list[Point]]:
    """The metrics a job logged into ``output_dir``: ``{name: [[step, value, time], ...]}``.

    A name logged by several ranks is taken from the lowest of them. GPU use (``gpu-rank-N.jsonl``,
    written by ``dlw_magic.gpu_sampler``) is per rank: rank 0's as ``gpu.util``, the others' as
    ``gpu.util@rankN``, as the Kubernetes backend reads them from the pods' logs. A line still being
    written (the last one) or damaged is skipped.
    """
    folder = Path(output_dir) / FOLDER
    merged: dict[str, list[Point]] = {}
    for _rank, path in _rank_files(folder, "rank-"):
        for name, points in _read_file(path).items():
            merged.setdefault(name, points)
    for rank, path in _rank_files(folder, GPU_FILE_PREFIX):
        for name, points in _read_file(path).items():
            merged[f"{name}@rank{rank}" if rank else name] = points
    return merged


def _rank_files(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """``(rank, path)`` of ``{prefix}{rank}.jsonl`` in ``folder``, lowest rank first."""
    found = []
    for path in folder.glob(f"{prefix}*.jsonl"):
        rank = path.stem[len(prefix):]
        if rank.isdigit():
            found.append((int(rank), path))
    return sorted(found)


def _read_file(path: Path) -> dict[str, list[Point]]:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return {}
    return collect(filter(None, map(_parse, text.splitlines())))


def last_values(metrics: dict[str, list[Point]]) -> dict[str, Point]:
    """The newest point of each series (what ``dlw status`` prints)."""
    return {name: points[-1] for name, points in metrics.items() if points}


def _parse(line: str) -> tuple[int, float, dict[str, Any]] | None:
    try:
        step, when, values = json.loads(line)
    except (ValueError, TypeError):
        return None
    if not isinstance(step, int) or not isinstance(when, (int, float)) or not isinstance(values, dict):
        return None
    return step, float(when), values
