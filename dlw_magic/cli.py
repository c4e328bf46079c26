"""``dlw``: the command-line face over ``dlw_magic.core``.

Parses options, calls the core, formats the answer (``dlw_magic.format``): tables on a terminal, JSON
with ``--output json``. A DLWError becomes one line on stderr and exit code 1; a mistyped option or value
is one line too (what is wrong, the valid choices) and exit code 2. Nothing here decides how jobs run.
The job options come from ``dlw_magic.options.JobOptions``; the ``%dlw`` magic parses with ``build_parser``.
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import format as fmt
from .errors import DLWError

if TYPE_CHECKING:
    from .backends import Backend
    from .options import JobOptions

JOB_COMMANDS = ("train", "render")  # the commands that take job options (they load pydantic)


class UsageError(DLWError):
    """A mistyped command line: ``prog`` (``dlw train``) and what is wrong, in one line."""

    def __init__(self, prog: str, detail: str) -> None:
        super().__init__(f"{prog}: {detail}")
        self.prog, self.detail = prog, detail


def _one_line(message: str) -> str:
    """argparse's wording, shortened: ``argument --engine: invalid choice: 'x' (choose from 'a', 'b')``
    -> ``--engine: invalid choice 'x' (choose from a, b)``."""
    message = message.removeprefix("argument ").replace("COMMAND: invalid choice", "invalid command")
    choice = re.match(r"(.*): invalid choice: (.*) \(choose from (.*)\)$", message)
    if choice:
        options = ", ".join(o.strip().strip("'") for o in choice.group(3).split(","))
        return f"{choice.group(1)}: invalid choice {choice.group(2)} (choose from {options})"
    number = re.match(r"(.*): invalid int value: (.*)$", message)
    if number:
        return f"{number.group(1)}: expected an integer, got {number.group(2)}"
    return message


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a UsageError (one line), not a usage dump and exit."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, _one_line(message))


def _backend_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where jobs run")
    g.add_argument("--backend", choices=["local", "kubernetes"], help="default: DLW_BACKEND, else local "
                   "(kubernetes inside a cluster pod or with --kubeconfig)")
    g.add_argument("--kubeconfig", help="kubeconfig file (implies --backend kubernetes)")
    g.add_argument("--namespace", help="Kubernetes namespace (default: yours)")


def _output_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--output", choices=["table", "json"], default="table", help="output format")


def _job_options(p: argparse.ArgumentParser, command: str | None) -> None:
    """Options that shape a job spec (``JobOptions``): shared by train and render."""
    p.add_argument("target", nargs="?", help="notebook (.ipynb), script (.py) or job spec (.yaml)")
    if command is None or command in JOB_COMMANDS:  # `dlw jobs` need not import pydantic
        from .options import add_arguments

        add_arguments(p)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The ``dlw`` parser; with ``command`` known, the job options are only built where they are needed."""
    parser = Parser(prog="dlw", description="Promote a notebook into a training job and watch it run.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    p = sub.add_parser("train", help="submit a notebook, script or job spec as a training job")
    _job_options(p, command)
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
    _job_options(p, command)
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


def job_options(args: argparse.Namespace) -> JobOptions:
    """Parsed job options -> the ``JobOptions`` of ``core.build_spec``."""
    from .options import from_args

    return from_args(args)


def backend_from(args: argparse.Namespace) -> Backend:
    from .core import backend_for

    return backend_for(getattr(args, "backend", None), getattr(args, "kubeconfig", None),
                       getattr(args, "namespace", None))


# ---------------------------------------------------------------- commands


def cmd_train(args: argparse.Namespace) -> int:
    from . import core

    backend = backend_from(args)
    spec = core.build_spec(args.target, options=job_options(args))
    job = core.submit(spec, backend)
    _print_notes(job.provenance.get("conversion_notes") or [])
    out = sys.stdout
    as_json = args.output == "json"
    built = job.provenance.get("build") or {}
    if built and not as_json:
        out.write(f"Image {built['image']} built with {built.get('builder', 'an unknown builder')}\n")
    if not as_json:
        out.write(f"Submitted {job.name} ({job.backend}, {spec.workers} worker(s)); "
                  f"follow with: dlw logs -f {job.name}\n")
        out.flush()
    if args.wait or args.follow:
        last = None

        def progress(now: Any) -> None:
            nonlocal last
            if not (as_json or args.follow) and now.state != last and not now.state.finished:
                out.write(f"{now.name}: {now.state.value}\n")
                out.flush()
                last = now.state

        def write(text: str) -> None:
            out.write(text)
            out.flush()

        job = core.watch(job.name, backend, follow=args.follow, on_text=write, on_change=progress,
                         world_size=job.world_size)
        if not as_json:
            out.write(fmt.final_line(job) + "\n")
    if as_json:
        fmt.print_json(job.to_dict(), out)
    return 0 if not (args.wait or args.follow) or job.state.value == "Succeeded" else 1


def cmd_jobs(args: argparse.Namespace) -> int:
    from .core import list_jobs

    fmt.show_jobs(list_jobs(backend_from(args)), args.output, sys.stdout, "Submit one with: dlw train NOTEBOOK.ipynb")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .core import events, get_job

    backend = backend_from(args)
    fmt.show_status(get_job(args.name, backend), events(args.name, backend), args.output, sys.stdout)
    return 0


def stream_logs(name: str, rank: int | None, follow: bool, backend: Backend, out: TextIO) -> None:
    """Print the logs as they come (``[rank N]``-prefixed for all ranks of a multi-rank job)."""
    from .core import printable_text

    for text in printable_text(name, rank, follow, backend):  # whole lines, as many as were read at once
        out.write(text)
        out.flush()


def cmd_logs(args: argparse.Namespace) -> int:
    stream_logs(args.name, args.rank, args.follow, backend_from(args), sys.stdout)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    from .core import cancel

    job = cancel(args.name, backend_from(args))
    print(f"{job.name}: {job.state.value}")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    from .core import rerun

    job = rerun(args.name, args.new_name, backend_from(args))
    if args.output == "json":
        fmt.print_json(job.to_dict(), sys.stdout)
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

    spec = build_spec(args.target, options=job_options(args))
    _write(render(spec, engine=args.engine, workspace=args.workspace), args.out)
    return 0


def cmd_gpus(args: argparse.Namespace) -> int:
    from .core import gpus as list_gpus

    fmt.show_gpus(*list_gpus(backend_from(args)), args.output, sys.stdout)
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


def _command_of(argv: list[str]) -> str | None:
    """The subcommand named in ``argv`` (the first word that is not an option), if any."""
    return next((a for a in argv if not a.startswith("-")), None)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """``argv`` parsed; a UsageError names the command (``dlw train: unrecognized arguments: --x``)."""
    command = _command_of(argv)
    try:
        return build_parser(command).parse_args(argv)
    except UsageError as err:
        if err.prog == "dlw" and command and err.detail.startswith("unrecognized arguments"):
            raise UsageError(f"dlw {command}", err.detail) from None
        raise


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except UsageError as err:
        sys.stderr.write(f"{err}\n")
        return 2
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
