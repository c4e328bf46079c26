"""How jobs read as text, the same in every face: tables, durations, state lines, rank prefixes.

The CLI prints these, the magics print them in a notebook, the widget puts them in its title. A face
only picks the hint style (``dlw logs NAME`` in a shell, ``%dlw logs NAME`` in a notebook).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any, TextIO

from .textsafe import one_line
from .types import GpuInfo, JobInfo


def age(seconds: float | None) -> str:
    """``75`` -> ``1m15s``; ``-`` for unknown."""
    if seconds is None:
        return "-"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600}h"


def clock(seconds: float | None) -> str:
    """``75.3`` -> ``0:01:15``."""
    if seconds is None:
        return "-"
    s = max(int(seconds), 0)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def rank_prefix(rank: int, world_size: int) -> str:
    """``[rank 3] `` before a log line of a job with several ranks; nothing for a single process."""
    return f"[rank {rank}] " if world_size > 1 else ""


def for_notebook(text: str) -> str:
    """A message's ``dlw COMMAND`` hints as a notebook user types them: ``%dlw COMMAND``."""
    return text.replace("see: dlw ", "see: %dlw ").replace("with: dlw ", "with: %dlw ")


def table(rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Columns padded to their widest cell; the first row is the header."""
    rows = [[one_line(c) for c in r] for r in rows]  # a job's reason or an event may carry escape codes
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def jobs_table(jobs: Sequence[JobInfo], out: TextIO) -> None:
    now = time.time()
    rows = [["NAME", "STATE", "WORKERS", "GPUS", "DURATION", "AGE", "REASON"]]
    for j in jobs:
        rows.append([
            j.name, j.state.value, str(j.workers), str(j.gpus * j.workers), age(j.duration),
            age(now - j.created if j.created else None), j.reason or "",
        ])
    table(rows, out)


def show_jobs(jobs: Sequence[JobInfo], output: str | None, out: TextIO, empty_hint: str) -> None:
    """``dlw jobs`` / ``%dlw jobs``: a table, JSON, or how to submit the first job."""
    if output == "json":
        print_json([job_summary(j) for j in jobs], out)
    elif jobs:
        jobs_table(jobs, out)
    else:
        out.write(f"No jobs yet. {empty_hint}\n")


def show_status(job: JobInfo, events: Sequence[dict[str, Any]], output: str | None, out: TextIO,
                notebook: bool = False, html: str | None = None) -> None:
    """``dlw status`` / ``%dlw status``: the job's facts and its cluster events, or all of it as JSON.
    ``html``: the executed notebook's HTML export, when there is one."""
    if output == "json":
        print_json({**job.to_dict(), "events": list(events), "executed_html": html}, out)
        return
    describe(job, out, notebook=notebook, html=html)
    if events:
        out.write("\nEvents:\n")
        events_table(events, out)


def show_gpus(gpus: Sequence[GpuInfo], reason: str | None, output: str | None, out: TextIO) -> None:
    """``dlw gpus`` / ``%dlw gpus``: a table, JSON, or why there are none."""
    if output == "json":
        print_json({"gpus": [g.to_dict() for g in gpus], "reason": reason}, out)
    elif not gpus:
        out.write(f"No GPUs: {reason}\n")
    else:
        gpus_table(gpus, out)


def local_time(seconds: float | None) -> str | None:
    """Unix seconds as local time, ``2026-12-06 02:40:11``."""
    import time

    return None if seconds is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def describe(job: JobInfo, out: TextIO, notebook: bool = False, html: str | None = None) -> None:
    """``dlw status NAME``: one ``Key: value`` line per known fact."""
    message = for_notebook(job.message) if notebook and job.message else job.message
    fields: list[tuple[str, Any]] = [
        ("Name", job.name), ("State", job.state.value), ("Reason", job.reason), ("Message", message),
        ("Exit code", job.exit_code), ("Backend", f"{job.backend} ({job.engine})"),
        ("Workers", f"{job.workers} x {job.world_size // max(job.workers, 1)} process(es), "
                    f"{job.gpus} GPU(s) each"),
        ("Tags", ", ".join(job.provenance.get("tags") or [])),
        ("Attempt", job.attempt + 1), ("Created", local_time(job.created)),
        ("Started", local_time(job.started)), ("Finished", local_time(job.finished)),
        ("Duration", age(job.duration)), ("Output", job.output_dir),
        ("Image", job.provenance.get("image")), ("Snapshot", job.provenance.get("snapshot_hash")),
        ("Git commit", job.provenance.get("git_commit")),
        ("Parameters", json.dumps(job.provenance.get("parameters")) if job.provenance.get("parameters") else None),
        ("Notebook", job.executed_notebook), ("HTML", html),
        ("Metrics", last_metrics(job.metrics)),
    ]
    fields += [("Preempted", line) for line in history_lines(job.history)]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        if value not in (None, ""):  # a job's own words (its exception line) cannot drive the terminal
            out.write(f"{key + ':':<{width + 2}}{one_line(value, 2000)}\n")


def last_metrics(metrics: dict[str, list[list[Any]]]) -> str | None:
    """``loss 0.0885, accuracy 0.964 (step 12)``: each metric's last value, the step of the newest."""
    from .metrics import last_values

    last = last_values(metrics)
    if not last:
        return None
    values = ", ".join(f"{one_line(name, 60)} {_number(point[1])}" for name, point in last.items())
    step = max(point[0] for point in last.values())
    return f"{values} (step {step})"


def _number(value: Any) -> str:
    return "nan" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def history_lines(history: Sequence[dict[str, Any]]) -> list[str]:
    """One line per preemption: ``at 07:12:03 by big-job (attempt 1); resumed at ... from DIR (ckpt-3.pt)``."""
    lines = []
    for h in history:
        text = f"at {stamp(h.get('preemptedAt'))} by {h.get('by')} (attempt {h.get('attempt')})"
        if h.get("resumedAt"):
            checkpoint = h.get("checkpoint")
            text += f"; resumed at {stamp(h['resumedAt'])} from {h.get('resumedFrom')}"
            text += f" ({checkpoint})" if checkpoint else " (no checkpoint written)"
        lines.append(text)
    return lines


def stamp(seconds: float | None) -> str:
    """Unix seconds as local ``2026-11-29 07:12:03``."""
    if seconds is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def events_table(events: Sequence[dict[str, Any]], out: TextIO, last: int = 20) -> None:
    rows = [["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
    rows += [[str(e.get(k) or "") for k in ("time", "type", "reason", "object", "message")] for e in events[-last:]]
    table(rows, out)


def gpus_table(gpus: Sequence[GpuInfo], out: TextIO) -> None:
    rows = [["INDEX", "NAME", "MEMORY", "UTIL", "TEMP"]]
    for g in gpus:
        rows.append([str(g.index), g.name, f"{g.memory_used_mib}/{g.memory_total_mib} MiB",
                     "-" if g.utilization_pct is None else f"{g.utilization_pct}%",
                     "-" if g.temperature_c is None else f"{g.temperature_c}C"])
    table(rows, out)


def progress(job: JobInfo, notebook: bool = False) -> str:
    """``for 0:00:12 (2 worker(s), local)``, plus the reason when there is one."""
    elapsed = job.duration if job.started else (time.time() - job.created if job.created else None)
    verb = "after" if job.state.finished else ("for" if job.started else "since")
    text = f"{verb} {clock(elapsed)} ({job.workers} worker(s), {job.backend})"
    reason = job.reason if job.reason != job.state.value else None  # not "Cancelled - Cancelled: ..."
    message = for_notebook(job.message) if notebook and job.message else job.message
    if reason or message:
        text += " - " + one_line(": ".join(p for p in (reason, message) if p), 2000)
    return text


def state_line(job: JobInfo, notebook: bool = False) -> str:
    """``digits-ddp-x7k2q: Running for 0:00:12 (2 worker(s), local)``."""
    return f"{job.name}: {job.state.value} {progress(job, notebook)}"


def final_line(job: JobInfo) -> str:
    """``boom: Failed (Error: rank 0 exited with code 4; ...)``: how ``--wait`` ends in a shell."""
    detail = f" ({one_line(f'{job.reason}: {job.message}', 2000)})" if job.reason and job.message else ""
    return f"{job.name}: {job.state.value}{detail}"


def job_summary(job: JobInfo) -> dict[str, Any]:
    """A job as listed (``dlw jobs -o json``): no spec and no pip freeze, which ``status`` shows."""
    data = job.to_dict()
    del data["spec"], data["metrics"], data["executed_notebook"]  # details of one job (dlw status)
    if "pip_freeze" in job.provenance:
        data["provenance"] = {k: v for k, v in job.provenance.items() if k != "pip_freeze"}
    return data


def print_json(data: Any, out: TextIO) -> None:
    # Indented for people; compact for pipes, where json's C encoder is several times faster.
    indent = 2 if out.isatty() else None
    out.write(json.dumps(data, indent=indent, default=str) + "\n")
