"""Numbers a job records as it trains, for ``dlw status``, the widget and the panel's charts.

In the job::

    from dlw_magic import log_metrics
    log_metrics(step=epoch, loss=0.31, accuracy=0.94)

Each rank appends one line per call to ``$DLW_OUTPUT_DIR/metrics/rank-{RANK}.jsonl``, a JSON array
``[step, unix_time, {"loss": 0.31, "accuracy": 0.94}]``. Lines wait in memory and are written in one
batch every ``FLUSH_EVERY`` seconds of logging (or ``FLUSH_LINES`` lines), before a fork, before
``checkpoint.save`` and at exit; each set of names gets its line template once and the time stamp is
formatted once a millisecond, so 10,000 points a second cost the job under 3 % of one core
(benchmarks/bench_metrics.py). Where the output folder does not reach the
user (Kubernetes without a shared home), ``DLW_METRICS_STDOUT=1`` also prints each line to stdout behind
``TAG``; the backend reads them back from the log with ``parse_log_line``. Outside a job (no
``DLW_OUTPUT_DIR`` and no ``DLW_METRICS_STDOUT``) ``log_metrics`` does nothing.

Only the standard library is imported: ``import dlw_magic`` stays cheap in every job.
"""

from __future__ import annotations

import _thread
import atexit
import json
import math
import operator
import os
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

FOLDER = "metrics"  # under DLW_OUTPUT_DIR
TAG = "#dlw-metrics "  # the prefix of a metrics line in a job's log (DLW_METRICS_STDOUT=1)
FLUSH_EVERY = 1.0  # seconds: what a reader sees is at most this old (while the job logs)
FLUSH_LINES = 10_000  # and at most this many lines wait in memory
MAX_FILE_BYTES = 64 << 20  # per rank: past it, points are dropped (one note on stderr), never the job
READ_TAIL_BYTES = 8 << 20  # a reader takes the newest this many bytes of each file: status stays fast
MAX_POINTS = 5000  # per series as read: a chart of 1,000,000 steps gets every 200th and the newest
GPU_FILE_PREFIX = "gpu-rank-"  # metrics/gpu-rank-N.jsonl: the GPU sampler's, one file per rank

Point = list[Any]  # [step, value, time]; value None for NaN or an infinity


def metrics_file(output_dir: str | Path, rank: int | str) -> Path:
    return Path(output_dir) / FOLDER / f"rank-{rank}.jsonl"


class _Recorder:
    """One rank's metrics channel: lines kept in memory, written to the file in batches.

    Most jobs log the same names at every step, so a line comes from a template made once for those
    names (``[%d,%s,{"loss":%.17g,...}]``: 17 significant digits give the same float back, and
    ``%g`` takes numpy and torch scalars as they are); NaN, infinities and anything odd go the
    general way (``_values_text``).
    """

    def __init__(self) -> None:
        env = os.environ
        self.file = None
        self.pending: list[str] = []  # lines not yet written to the file
        self.lock = _thread.allocate_lock()  # (threading's Lock without importing threading)
        output = env.get("DLW_OUTPUT_DIR")
        if output:
            path = metrics_file(output, env.get("RANK", "0"))
            path.parent.mkdir(parents=True, exist_ok=True)
            self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed at exit)
            self.room = MAX_FILE_BYTES - self.file.tell()
            atexit.register(self.flush)
            if hasattr(os, "register_at_fork"):  # a forked child must not write the parent's lines again
                os.register_at_fork(before=self.flush, after_in_child=self.forked)
        self.stdout = sys.__stdout__ if env.get("DLW_METRICS_STDOUT") == "1" else None
        self.events = None  # TensorBoard event files (DLW_TENSORBOARD=1, rank 0): dlw_magic.tb_events
        if output and env.get("DLW_TENSORBOARD") == "1" and env.get("RANK", "0") == "0":
            from .tb_events import FOLDER as TB_FOLDER
            from .tb_events import EventWriter

            self.events = EventWriter(Path(output) / TB_FOLDER)  # flushed with the metrics file
        self.off = self.file is None and self.stdout is None
        self.use(())
        self.stamp, self.stamped = "", -1.0  # the time as written, and when it was formatted (once a ms)
        self.flushed = time.time()

    def use(self, names: Iterable[str]) -> None:
        """Make the template for lines with these names."""
        order = tuple(names)
        self.names, self.count = frozenset(order), len(order)
        fields = ",".join(json.dumps(name).replace("%", "%%") + ":%.17g" for name in order)
        self.template = f"[%d,%s,{{{fields}}}]\n"
        # an "n" beyond the names' own is a nan or an inf (JSON spells them NaN, Infinity): the general way
        self.n = self.template.count("n")
        self.pick: Callable[[dict[str, Any]], tuple[Any, ...]]
        if len(order) > 1:
            self.pick = operator.itemgetter(*order)
        elif order:
            self.pick = lambda values, name=order[0]: (values[name],)  # type: ignore[misc]
        else:
            self.pick = lambda values: ()

    def line(self, step: int, values: dict[str, Any]) -> str:
        """The line for a point the template did not make: new names, NaN or an infinity, not a number."""
        if values.keys() != self.names:
            self.use(values)
            try:
                line: str = self.template % (step, self.stamp, *self.pick(values))
                if line.count("n") == self.n:
                    return line
            except Exception:  # noqa: S110 (the general way below names what is wrong)
                pass
        return f"[{step},{self.stamp},{_values_text(values)}]\n"

    def flush(self) -> None:
        self.flushed = time.time()
        with self.lock:  # threads may log too: lines appended meanwhile stay for the next flush
            count = len(self.pending)
            if self.file is not None and not self.file.closed and count:
                text = "".join(self.pending[:count])
                del self.pending[:count]
                if len(text) > self.room:  # over the cap: keep whole lines up to it, say so once
                    text = text[: text.rfind("\n", 0, max(self.room, 0)) + 1]
                    if self.room >= 0:
                        sys.stderr.write(f"dlw: log_metrics: this rank's metrics file reached {MAX_FILE_BYTES} "
                                         "bytes; later points are not recorded\n")
                    self.room = -1
                if text:
                    self.file.write(text)
                    self.room -= len(text)
                    self.file.flush()
            if self.events is not None:
                self.events.flush()

    def forked(self) -> None:
        self.lock = _thread.allocate_lock()  # another thread may have held it at the fork


def _values_text(values: dict[str, Any]) -> str:
    """``{"loss":0.5,"x":NaN}``: any names, and NaN and infinities spelt the way ``json.loads`` reads them."""
    parts = []
    for name, value in values.items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"log_metrics: {name}: expected a number, got {type(value).__name__}") from None
        text = repr(number)
        if text[-1] in "nf":  # nan, inf: JSON has no such numbers
            text = "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity")
        parts.append(json.dumps(name) + ":" + text)
    return "{" + ",".join(parts) + "}"


_recorder: _Recorder | None = None
_now = time.time


def log_metrics(*, step: int, **values: float) -> None:
    """Record ``values`` (numbers: floats, ints, 0-d tensors) at ``step`` for this rank of the job."""
    global _recorder
    rec = _recorder
    if rec is None:
        rec = _recorder = _Recorder()
    if rec.off:
        return
    if type(step) is not int:
        try:
            step = operator.index(step)
        except TypeError:
            raise TypeError(f"log_metrics: step must be an integer, got {type(step).__name__}") from None
    now = _now()
    if not rec.stamped <= now < rec.stamped + 0.001:
        rec.stamp, rec.stamped = f"{now:.3f}", now
    # the hot path (10,000 calls a second must cost under 3 % of a core): the template of the last names
    try:
        line: str | None = rec.template % (step, rec.stamp, *rec.pick(values))
        if line.count("n") != rec.n or len(values) != rec.count:  # type: ignore[union-attr]
            line = None
    except Exception:
        line = None
    if line is None:
        line = rec.line(step, values)
    if rec.file is not None:
        rec.pending.append(line)
        if not rec.flushed <= now < rec.flushed + FLUSH_EVERY or len(rec.pending) >= FLUSH_LINES:
            rec.flush()
    if rec.stdout is not None:
        rec.stdout.write(TAG + line)
    if rec.events is not None:
        rec.events.add(step, now, values)


def flush() -> None:
    """Write what this rank logged so far to its file now (it is also written every second, before a
    fork, before a checkpoint is saved and at exit)."""
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
    return {name: thin(points) for name, points in collect(filter(None, map(parse_log_line, lines))).items()}


def thin(points: list[Point], limit: int = MAX_POINTS) -> list[Point]:
    """At most about ``limit`` points, evenly spaced, the newest always kept (a job page polls them every 3 s)."""
    if len(points) <= limit:
        return points
    stride = -(-len(points) // limit)
    kept = points[::stride]
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept


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
    return {name: thin(points) for name, points in merged.items()}


def _rank_files(folder: Path, prefix: str) -> list[tuple[int, Path]]:
    """``(rank, path)`` of ``{prefix}{rank}.jsonl`` in ``folder``, lowest rank first."""
    found = []
    for path in folder.glob(f"{prefix}*.jsonl"):
        rank = path.stem[len(prefix):]
        if rank.isdigit():
            found.append((int(rank), path))
    return sorted(found)


def _read_file(path: Path) -> dict[str, list[Point]]:
    """The file's points; of a file over ``READ_TAIL_BYTES`` only its newest lines (what status and the charts show)."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > READ_TAIL_BYTES:
                f.seek(size - READ_TAIL_BYTES)
                f.readline()  # the rest of a line cut in two
            data = f.read(READ_TAIL_BYTES)
    except OSError:
        return {}
    return collect(filter(None, map(_parse, data.decode("utf-8", "replace").splitlines())))


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
