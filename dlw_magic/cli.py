"""``dlw``: the command-line face over ``dlw_magic.core``.

Parses options, calls the core, formats the answer: tables on a terminal, JSON with ``--output json``.
A DLWError becomes one line on stderr and exit code 1; nothing here decides how jobs run.
The ``%dlw`` magic reuses ``build_parser``/``train_kwargs``/``main``, so both take the same options.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from .errors import DLWError

if TYPE_CHECKING:
    from .backends import Backend, JobInfo


def _backend_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where jobs run")
    g.add_argument("--backend", choices=["local", "kubernetes"], help="default: DLW_BACKEND, else local "
                   "(kubernetes inside a cluster pod or with --kubeconfig)")
    g.add_argument("--kubeconfig", help="kubeconfig file (implies --backend kubernetes)")
    g.add_argument("--namespace", help="Kubernetes namespace (default: yours)")


def _output_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")


def _job_options(p: argparse.ArgumentParser) -> None:
    """Options that shape a job spec: shared by train and render."""
    p.add_argument("target", nargs="?", help="notebook (.ipynb), script (.py) or job spec (.yaml)")
    p.add_argument("--name", help="job name (default: from the file name plus a random suffix)")
    p.add_argument("--workers", type=int, help="number of workers (pods or local process groups)")
    p.add_argument("--procs-per-worker", type=int, dest="processes_per_worker", help="ranks per worker")
    p.add_argument("--gpus", type=int, help="GPUs per worker")
    p.add_argument("--gpu-type", help="GPU product, e.g. NVIDIA-A100-SXM4-80GB")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE",
                   help="override a notebook parameter (repeatable); values are typed: 3, 0.1, true, [1,2]")
    p.add_argument("--engine", choices=["job", "volcano", "pytorchjob"], help="Kubernetes engine")
    p.add_argument("--queue", help="queue (Volcano/Kueue) or local queue name")
    p.add_argument("--priority", help="priority class name or integer")
    p.add_argument("--image", help="container image (default: the notebook's)")
    p.add_argument("--build", action="store_true", default=None, help="build an image for the job")
    p.add_argument("--timeout", help="seconds or a duration such as 30m, 2h")
    p.add_argument("--retries", type=int, help="restarts after a failure")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dlw", description="Promote a notebook into a training job and watch it run.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="submit a notebook, script or job spec as a training job")
    _job_options(p)
    _backend_options(p)
    w = p.add_mutually_exclusive_group()
    w.add_argument("--wait", action="store_true", help="wait until the job finishes; exit 1 unless it succeeds")
    w.add_argument("--follow", "-f", action="store_true", help="stream the logs until the job finishes")
    _output_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("jobs", help="list your jobs")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("status", help="show one job")
    p.add_argument("name")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("logs", help="print a job's logs")
    p.add_argument("name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")
    p.add_argument("--rank", type=int, help="only this rank (default: all, prefixed)")
    _backend_options(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("name")
    _backend_options(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("rerun", help="submit a job again with the same spec and code snapshot")
    p.add_argument("name")
    p.add_argument("--as", dest="new_name", help="name of the new job")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("convert", help="print the script a notebook job runs")
    p.add_argument("notebook")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-o", "--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("render", help="print Kubernetes manifests for a job (kubectl apply -f -)")
    _job_options(p)
    p.add_argument("--workspace", help="admin YAML (default: DLW_WORKSPACE_CONFIG, else the built-in default)")
    p.add_argument("-o", "--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("gpus", help="GPUs jobs can use")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_gpus)

    p = sub.add_parser("schema", help="print the JSON Schema of the job spec")
    p.set_defaults(func=cmd_schema)

    try:
        from . import cli_admin
    except ImportError:  # the admin/hub commands are optional
        pass
    else:
        cli_admin.register(sub)
    return parser


# ---------------------------------------------------------------- helpers


def train_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Parsed job options -> keyword arguments of ``core.build_spec``."""
    from .core import parse_param

    return {
        "name": args.name,
        "workers": args.workers,
        "gpus": args.gpus,
        "params": dict(parse_param(p) for p in args.param),
        "gpu_type": args.gpu_type,
        "processes_per_worker": args.processes_per_worker,
        "engine": args.engine,
        "queue": args.queue,
        "priority": _int_or_str(args.priority),
        "image": args.image,
        "build": args.build,
        "timeout": args.timeout,
        "retries": args.retries,
    }


def _int_or_str(value: str | None) -> int | str | None:
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return value


def backend_from(args: argparse.Namespace) -> Backend:
    from .backends import get_backend

    options = {}
    if getattr(args, "kubeconfig", None):
        options["kubeconfig"] = args.kubeconfig
    if getattr(args, "namespace", None):
        options["namespace"] = args.namespace
    name = getattr(args, "backend", None) or ("kubernetes" if options else None)
    return get_backend(name, **options)


def _age(seconds: float | None) -> str:
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


def format_table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n")


def jobs_table(jobs: list[JobInfo], out: TextIO) -> None:
    now = time.time()
    rows = [["NAME", "STATE", "WORKERS", "GPUS", "DURATION", "AGE", "REASON"]]
    for j in jobs:
        rows.append([
            j.name, j.state.value, str(j.workers), str(j.gpus * j.workers), _age(j.duration),
            _age(now - j.created if j.created else None), j.reason or "",
        ])
    format_table(rows, out)


def describe(job: JobInfo, out: TextIO) -> None:
    fields = [
        ("Name", job.name), ("State", job.state.value), ("Reason", job.reason), ("Message", job.message),
        ("Exit code", job.exit_code), ("Backend", f"{job.backend} ({job.engine})"),
        ("Workers", f"{job.workers} x {job.world_size // max(job.workers, 1)} process(es), "
                    f"{job.gpus} GPU(s) each"),
        ("Attempt", job.attempt + 1), ("Duration", _age(job.duration)), ("Output", job.output_dir),
        ("Image", job.provenance.get("image")), ("Snapshot", job.provenance.get("snapshot_hash")),
        ("Git commit", job.provenance.get("git_commit")),
        ("Parameters", json.dumps(job.provenance.get("parameters")) if job.provenance.get("parameters") else None),
    ]
    width = max(len(k) for k, _ in fields)
    for key, value in fields:
        if value not in (None, ""):
            out.write(f"{key + ':':<{width + 2}}{value}\n")


def _print_json(data: Any, out: TextIO) -> None:
    # Indented for people; compact for pipes, where json's C encoder is several times faster.
    indent = 2 if out.isatty() else None
    out.write(json.dumps(data, indent=indent, default=str) + "\n")


def stream_logs(name: str, rank: int | None, follow: bool, backend: Backend, out: TextIO) -> None:
    from .core import log_lines

    prefixed = rank is None and backend.get(name).world_size > 1
    for r, line in log_lines(name, rank=rank, follow=follow, backend=backend):
        out.write(f"[rank {r}] {line}" if prefixed else line)
        out.flush()


def wait_for(name: str, backend: Backend, out: TextIO, quiet: bool = False) -> JobInfo:
    """Poll until the job finishes, printing each state change on a terminal."""
    from .core import wait

    last = None

    def progress(job: JobInfo) -> None:
        nonlocal last
        if not quiet and job.state != last and not job.state.finished:
            out.write(f"{job.name}: {job.state.value}\n")
            out.flush()
            last = job.state

    return wait(name, backend=backend, on_change=progress)


# ---------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from . import core

    backend = backend_from(args)
    spec = core.build_spec(args.target, **train_kwargs(args))
    job = core.submit(spec, backend)
    _print_notes(job.provenance.get("conversion_notes") or [])
    out = sys.stdout
    as_json = args.output == "json"
    if not as_json:
        out.write(f"Submitted {job.name} ({job.backend}, {spec.workers} worker(s)); "
                  f"follow with: dlw logs -f {job.name}\n")
        out.flush()
    if args.follow:
        stream_logs(job.name, None, True, backend, out)
    if args.wait or args.follow:
        job = wait_for(job.name, backend, out, quiet=as_json or args.follow)
        if not as_json:
            out.write(f"{job.name}: {job.state.value}"
                      + (f" ({job.reason}: {job.message})" if job.reason and job.message else "") + "\n")
    if as_json:
        _print_json(job.to_dict(), out)
    return 0 if not (args.wait or args.follow) or job.state.value == "Succeeded" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    jobs = backend_from(args).list_jobs()
    if args.output == "json":
        _print_json([j.to_dict() for j in jobs], sys.stdout)
    elif jobs:
        jobs_table(jobs, sys.stdout)
    else:
        print("No jobs yet. Submit one with: dlw train NOTEBOOK.ipynb")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    backend = backend_from(args)
    job = backend.get(args.name)
    events = backend.events(args.name)
    if args.output == "json":
        _print_json({**job.to_dict(), "events": events}, sys.stdout)
        return 0
    describe(job, sys.stdout)
    if events:
        sys.stdout.write("\nEvents:\n")
        rows = [["TIME", "TYPE", "REASON", "OBJECT", "MESSAGE"]]
        rows += [[str(e.get("time") or ""), str(e.get("type") or ""), str(e.get("reason") or ""),
                  str(e.get("object") or ""), str(e.get("message") or "")] for e in events[-20:]]
        format_table(rows, sys.stdout)
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    stream_logs(args.name, args.rank, args.follow, backend_from(args), sys.stdout)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    job = backend_from(args).cancel(args.name)
    print(f"{job.name}: {job.state.value}")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from .core import rerun

    job = rerun(args.name, args.new_name, backend_from(args))
    if args.output == "json":
        _print_json(job.to_dict(), sys.stdout)
    else:
        print(f"Submitted {job.name} (same spec and code as {args.name})")
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    from .core import convert, parse_param

    converted = convert(args.notebook, dict(parse_param(p) for p in args.param))
    _print_notes(converted.notes)
    _write(converted.script, args.out)
    return 0


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        sys.stderr.write(f"dlw: note: {note}\n")


def cmd_render(args: argparse.Namespace) -> int:
    from .core import build_spec, render

    spec = build_spec(args.target, **train_kwargs(args))
    _write(render(spec, engine=args.engine, workspace=args.workspace), args.out)
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    gpus, reason = backend_from(args).gpus()
    if args.output == "json":
        _print_json({"gpus": [g.to_dict() for g in gpus], "reason": reason}, sys.stdout)
    elif not gpus:
        print(f"No GPUs: {reason}")
    else:
        rows = [["INDEX", "NAME", "MEMORY", "UTIL", "TEMP"]]
        for g in gpus:
            rows.append([str(g.index), g.name, f"{g.memory_used_mib}/{g.memory_total_mib} MiB",
                         "-" if g.utilization_pct is None else f"{g.utilization_pct}%",
                         "-" if g.temperature_c is None else f"{g.temperature_c}C"])
        format_table(rows, sys.stdout)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .spec import spec_json_schema

    sys.stdout.write(spec_json_schema())
    return 0


def _write(text: str, path: str | None) -> None:
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except DLWError as err:
        sys.stderr.write(f"dlw: error: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("dlw: interrupted (jobs keep running; cancel with: dlw cancel NAME)\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
