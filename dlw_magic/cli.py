"""``dlw``: the command-line face over ``dlw_magic.core``.

Parses options, calls the core, formats the answer (``dlw_magic.format``): tables on a terminal, JSON
with ``--output json``. Every error is one line on stderr, ``dlw COMMAND: what is wrong``: exit code 1 for
a DLWError (or a waited-for job that did not succeed), 2 for a mistyped option or value (with the valid
choices), 130 on Ctrl-C (docs/cli.md). Nothing here decides how jobs run.
The job options come from ``dlw_magic.options.JobOptions``; the ``%dlw`` magic parses with ``build_parser``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from . import format as fmt
from .errors import DLWError

if TYPE_CHECKING:
    from .backends import Backend
    from .options import JobOptions
    from .types import JobInfo

JOB_COMMANDS = ("train", "render", "schedule")  # the commands that take job options (they load pydantic)


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


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Epilogs (the examples) as written; each option's default in its help unless the help says it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        default = action.default
        if action.dest in SPEC_DEFAULTS and "default" not in text:
            return f"{text} (default: {_spec_default(SPEC_DEFAULTS[action.dest])}, or a job spec's own)"
        if "default" in text or default in (None, False, [], argparse.SUPPRESS) or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


# Job options whose default is the job spec's (an option's own default is None: "keep the spec's value").
SPEC_DEFAULTS = {"workers": "workers", "processes_per_worker": "processes_per_worker", "gpus": "resources.gpus",
                 "engine": "engine", "retries": "retries"}


def _spec_default(path: str) -> Any:
    """The spec model's default at ``path``, read from a minimal spec (only when help is shown)."""
    from .spec import parse_spec

    value: Any = parse_spec({"name": "help", "source": {"script": "train.py"}})
    for part in path.split("."):
        value = getattr(value, part)
    return value


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a UsageError (one line), not a usage dump and exit; options are
    never abbreviated (``--worker`` is an error, not ``--workers``); help shows defaults and examples."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        raise UsageError(self.prog, _one_line(message))


class _BackendNames:
    """``--backend``'s choices: the built-ins, and backends other packages register by entry point (scanned
    only for a name that is not built in, or for ``--help``)."""

    def __contains__(self, name: object) -> bool:
        from .backends import BACKENDS, backend_names

        return name in BACKENDS or name in backend_names()

    def __iter__(self) -> Iterator[str]:
        from .backends import backend_names

        return iter(backend_names())


def examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _backend_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("where jobs run")
    g.add_argument("--backend", choices=_BackendNames(), metavar="NAME", help="local, kubernetes or one a "
                   "package registers (%(choices)s); default: DLW_BACKEND, else local (kubernetes inside a "
                   "cluster pod or with --kubeconfig)")
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

    p = sub.add_parser("train", help="submit a notebook, script or job spec as a training job", epilog=examples(
        "dlw train examples/digits_ddp.ipynb --workers 2 -p epochs=5 --follow",
        "dlw train train.py --gpus 1 --wait           # a script; exit 1 unless it succeeds",
        "dlw train job.yaml --backend kubernetes      # a job spec (docs/job-spec.md)",
    ))
    _job_options(p, command)
    _backend_options(p)
    w = p.add_mutually_exclusive_group()
    w.add_argument("--wait", action="store_true", help="wait until the job finishes; exit 1 unless it succeeds")
    w.add_argument("--follow", "-f", action="store_true", help="stream the logs until the job finishes")
    _output_option(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("jobs", help="list your jobs", epilog=examples("dlw jobs", "dlw jobs -o json"))
    p.add_argument("--tag", metavar="TAG", help="only the jobs tagged TAG (dlw train --tag TAG)")
    _backend_options(p)
    _output_option(p)
    p.add_argument("--limit", type=int, default=1000, help="newest jobs to show (0: all; default 1000)")
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("status", help="show one job")
    p.add_argument("name")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("download", help="save a job's output folder as one zip file",
                       epilog=examples("dlw download digits-ddp", "dlw download digits-ddp -o out.zip"))
    p.add_argument("name")
    p.add_argument("-o", "--out", help="the zip file to write (default: NAME-output.zip here)")
    _backend_options(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("logs", help="print a job's logs", epilog=examples("dlw logs -f digits-ddp",
                                                                          "dlw logs digits-ddp --rank 1"))
    p.add_argument("name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job finishes")
    p.add_argument("--rank", type=int, help="only this rank (default: all, prefixed)")
    _backend_options(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="cancel a queued or running job")
    p.add_argument("name")
    _backend_options(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("rerun", help="submit a job again with the same spec and code snapshot",
                       epilog=examples("dlw rerun digits-ddp --as digits-ddp-2"))
    p.add_argument("name")
    p.add_argument("--as", dest="new_name", help="name of the new job")
    _backend_options(p)
    _output_option(p)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("convert", help="print the script a notebook job runs",
                       epilog=examples("dlw convert examples/digits_ddp.ipynb -p epochs=2 -o train.py"))
    p.add_argument("notebook")
    p.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    p.add_argument("-o", "--out", help="write to this file instead of stdout")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("render", help="print Kubernetes manifests for a job (kubectl apply -f -)",
                       epilog=examples("dlw render examples/digits_ddp.ipynb --workers 2 --engine pytorchjob "
                                       "| kubectl apply -f -"))
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

    from . import cli_diff, cli_experiments, cli_schedule  # dlw sweep/compare, diff, schedule: their own modules

    cli_experiments.register(sub, command)
    cli_diff.register(sub, _backend_options, _output_option)
    cli_schedule.register(sub, _backend_options, _output_option, command)
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
    from .core import list_page

    if args.limit < 0:
        raise DLWError(f"--limit: expected 0 (all) or a positive number, got {args.limit}")
    hint = f"(filtered by --tag {args.tag})" if args.tag else "Submit one with: dlw train NOTEBOOK.ipynb"
    jobs, total = list_page(backend_from(args), args.limit or None, tag=args.tag)
    fmt.show_jobs(jobs, args.output, sys.stdout, hint)
    if len(jobs) < total:  # on stderr: a pipe reading the table or the JSON gets only the jobs
        print(f"dlw jobs: showing the newest {len(jobs)} of {total} jobs (--limit 0 for all)", file=sys.stderr)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from .core import events, get_job

    backend = backend_from(args)
    job = get_job(args.name, backend)
    fmt.show_status(job, events(args.name, backend), args.output, sys.stdout, html=finished_html(job, backend))
    return 0


def finished_html(job: JobInfo, backend: Backend) -> str | None:
    """The HTML export of a finished job's executed notebook (made now if need be), else None."""
    from .core import executed_html

    if not (job.state.finished and job.executed_notebook):
        return None
    try:
        return str(executed_html(job.name, backend))
    except DLWError as err:  # status still shows everything else
        sys.stderr.write(f"dlw: note: no HTML export: {err}\n")
        return None


def cmd_download(args: argparse.Namespace) -> int:
    from .core import output_zip

    target = Path(args.out or f"{args.name}-output.zip")
    tmp = target.with_name(f".{target.name}.part")
    try:
        with tmp.open("wb") as out:
            count = output_zip(args.name, out, backend_from(args))
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{target}: {count} file(s) of {args.name}'s output folder")
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
    from .envdiff import rerun_note

    backend = backend_from(args)
    job = rerun(args.name, args.new_name, backend)
    note = rerun_note(backend.get(args.name), backend)  # one line when the environment moved since
    if args.output == "json":
        fmt.print_json({**job.to_dict(), "environmentNote": note}, sys.stdout)
    else:
        print(f"Submitted {job.name} (same spec and code as {args.name})")
        if note:
            print(f"note: {note}")
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
        try:
            with open(path, "w", encoding="utf-8") as f:
                f.write(text)
        except OSError as err:  # a missing folder, a directory, no permission
            raise DLWError(f"-o/--out: cannot write {path} ({err.strerror})") from None
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
            raise UsageError(f"dlw {command}", err.detail + _parameter_hint(command, argv, err.detail)) from None
        raise


def _parameter_hint(command: str, argv: list[str], detail: str) -> str:
    """``dlw train nb.ipynb --epochs 3``: the notebook has a parameter ``epochs``, so say how to set it."""
    if command not in JOB_COMMANDS:
        return ""
    notebook = next((a for a in argv if a.endswith(".ipynb")), None)
    flags = [w.split("=", 1)[0] for w in detail.removeprefix("unrecognized arguments:").split() if w.startswith("--")]
    if notebook is None or not flags:
        return ""
    from .convert import read_parameters

    try:
        known = read_parameters(Path(notebook))
    except (DLWError, OSError, ValueError):
        return ""
    for flag in flags:
        name = flag[2:].replace("-", "_")
        if name in known:
            value = next((w.split("=", 1)[1] for w in argv if w.startswith(flag + "=")), None)
            if value is None and flag in argv and argv.index(flag) + 1 < len(argv):
                value = argv[argv.index(flag) + 1]
            return f" ({name} is a parameter of {notebook}: -p {name}={known[name] if value is None else value})"
    return ""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except UsageError as err:
        sys.stderr.write(f"{err}\n")
        return 2
    prog = f"dlw {args.command}"  # every error: `dlw COMMAND: what is wrong`, as a usage error
    try:
        return int(args.func(args) or 0)
    except DLWError as err:
        sys.stderr.write(f"{prog}: {err}\n")
        return 1
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted (jobs keep running; cancel with: dlw cancel NAME)\n")
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
