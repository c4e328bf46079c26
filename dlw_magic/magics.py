"""``%dlw`` and ``%%dlw``: the notebook face over ``dlw_magic.core``.

Options are the CLI's (``dlw_magic.cli.build_parser``, built from ``dlw_magic.options``), so
``%dlw train --workers 2`` and ``dlw train nb.ipynb --workers 2`` mean the same. Each command calls
``dlw_magic.core`` and prints with ``dlw_magic.format``, like the CLI. What the magic adds: it knows which
notebook the kernel runs (``%dlw train`` with no path), it shows a live widget, its hints read
``%dlw logs NAME``, and a DLWError or a mistyped option is one red line instead of a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import yaml
from IPython.core.magic import Magics, line_cell_magic, magics_class

from . import cli, core
from . import format as fmt
from .errors import DLWError
from .spec.validation import load_yaml

# Where a kernel learns the notebook it runs for, most specific first:
# - VS Code puts the notebook's absolute path in the user namespace.
# - jupyter_server starts every kernel with JPY_SESSION_NAME: the absolute path when the frontend sends the
#   session a name (JupyterLab and Notebook 7 do), else the API path relative to the server's root.
#   It survives kernel restarts (same env) but not a rename of the notebook after the kernel started.
# - ipykernel copies JPY_SESSION_NAME into ``__session__`` at start (useful if the env var was dropped).
NOTEBOOK_HINTS: tuple[tuple[str, str], ...] = (
    ("ns", "__vsc_ipynb_file__"),
    ("env", "JPY_SESSION_NAME"),
    ("ns", "__session__"),
)
NOT_FOUND = "cannot tell which notebook this kernel runs; pass the path: %dlw {command} path/to/nb.ipynb"


def _resolve_session_path(raw: str, cwd: Path) -> Path | None:
    """An existing notebook for a session path: absolute, or relative to the server root.

    The server root is not known inside the kernel, but the kernel starts in the notebook's folder, which
    lies under the root: so try the path against the working directory and each of its parents.
    """
    raw = raw.strip()
    if raw.startswith("file://"):
        raw = raw[len("file://"):]
    if not raw.lower().endswith(".ipynb"):
        return None  # a console or a text file session
    path = Path(raw).expanduser()
    if path.is_absolute():
        return path if path.is_file() else None
    for base in (cwd, *cwd.parents):
        if (base / path).is_file():
            return (base / path).resolve()
    return (cwd / path.name).resolve() if (cwd / path.name).is_file() else None


def current_notebook(
    user_ns: dict[str, Any], command: str = "train", environ: Any = None, cwd: Path | None = None
) -> Path:
    """The notebook this kernel was started for, or a DLWError telling the user to pass the path."""
    environ = os.environ if environ is None else environ
    cwd = cwd or Path.cwd()
    stale: str | None = None
    for where, key in NOTEBOOK_HINTS:
        raw = user_ns.get(key) if where == "ns" else environ.get(key)
        if not isinstance(raw, str) or not raw.strip():
            continue
        path = _resolve_session_path(raw, cwd)
        if path is not None:
            return path
        if raw.lower().endswith(".ipynb"):
            stale = stale or raw
    if stale:
        raise DLWError(f"this kernel was started for {stale}, which is gone (renamed or moved?); "
                       f"pass the path: %dlw {command} path/to/nb.ipynb")
    raise DLWError(NOT_FOUND.format(command=command))


def saved_at(path: Path) -> str:
    """``09:31`` today, else ``2026-11-21 17:03``: when the file on disk was last written."""
    saved = time.localtime(path.stat().st_mtime)
    today = time.strftime("%Y-%m-%d", saved) == time.strftime("%Y-%m-%d")
    return time.strftime("%H:%M" if today else "%Y-%m-%d %H:%M", saved)


_ABOUT_THIS_MAGIC = re.compile(r"%%?dlw\b|load_ext dlw_magic")


def parse(argv: list[str]) -> argparse.Namespace | None:
    """The CLI parser on ``argv``; None after ``--help`` (already printed, as ``%dlw``).

    A mistyped option raises the parser's one-line ``UsageError``.
    """
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            return cli.parse_args(argv)
    except SystemExit:  # only --help exits: errors raise UsageError
        sys.stdout.write(out.getvalue().replace("usage: dlw", "usage: %dlw"))
        return None


def report_error(message: str, shell: Any) -> None:
    """One red line on stderr (ANSI colour renders in Jupyter frontends and terminals), no traceback."""
    colour = getattr(shell, "kernel", None) is not None or sys.stderr.isatty()
    sys.stderr.write(f"\x1b[31m{message}\x1b[0m\n" if colour else message + "\n")
    sys.stderr.flush()


@magics_class
class DLWMagics(Magics):
    """``%dlw COMMAND [options]`` (the ``dlw`` CLI's commands) and ``%%dlw`` (an inline job spec)."""

    @line_cell_magic
    def dlw(self, line: str = "", cell: str | None = None) -> None:
        """Promote this notebook to a training job and watch it; ``%dlw --help`` lists the commands.

        %dlw train [PATH] [--workers N] [--param NAME=VALUE]... [--wait | --follow]
        %dlw jobs | status NAME | logs NAME [-f] [--rank R] | cancel NAME | gpus | rerun NAME | convert
        %dlw diff NAME [OTHER] | schedule create --cron '0 3 * * *' [--name N] | schedule list|show|pause|...
        %%dlw [train options]   -- the cell is a job spec in YAML; without `source` it runs this notebook
        """
        try:
            argv = shlex.split(line)
        except ValueError as err:
            report_error(f"%dlw: {err}", self.shell)
            return
        command = argv[0] if argv and cell is None else ""
        label = "%%dlw" if cell is not None else f"%dlw {command}".rstrip()
        try:
            if cell is not None:
                self._inline(argv, cell)
            elif not argv:
                parse(["--help"])
            elif command == "train":
                self._train(argv[1:])
            else:
                self._delegate(argv)
        except cli.UsageError as err:
            report_error(f"{'%%dlw' if cell is not None else '%' + err.prog}: {err.detail}", self.shell)
        except DLWError as err:
            report_error(f"{label}: {fmt.for_notebook(str(err))}", self.shell)
        except KeyboardInterrupt:
            report_error(f"{label}: interrupted (jobs keep running; %dlw cancel NAME stops one)", self.shell)

    @property
    def _user_ns(self) -> dict[str, Any]:
        return self.shell.user_ns if self.shell is not None else {}

    # -- commands
    def _train(self, rest: list[str]) -> None:
        args = parse(["train", *rest])
        if args is None:
            return
        target = Path(args.target) if args.target else current_notebook(self._user_ns)
        self._submit(core.build_spec(target, options=cli.job_options(args)), args)

    def _inline(self, argv: list[str], cell: str) -> None:
        args = parse(["train", *argv])
        if args is None:
            return
        if args.target:
            raise DLWError("%%dlw takes its job spec from the cell; put the path in source.notebook")
        data = load_yaml(cell, "cell")
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise DLWError("cell: expected a job spec (a YAML mapping)")
        if "source" not in data:
            data["source"] = {"notebook": str(current_notebook(self._user_ns, "train"))}
        spec_text = yaml.safe_dump(data, sort_keys=False)
        self._submit(core.build_spec(spec_text=spec_text, options=cli.job_options(args)), args)

    def _submit(self, spec: Any, args: argparse.Namespace) -> None:
        from .widget import show_job

        backend = cli.backend_from(args)
        job = core.submit(spec, backend)
        if args.output == "json":
            fmt.print_json(job.to_dict(), sys.stdout)
            return
        # The job runs the notebook as it was on disk, not what the browser shows: say which save.
        notebook = job.provenance.get("notebook")
        if notebook and Path(notebook).is_file():
            print(f"Submitted {job.name}: a snapshot of {Path(notebook).name} as last saved at "
                  f"{saved_at(Path(notebook))} (unsaved edits are not in it)")
        else:
            print(f"Submitted {job.name}")
        for note in job.provenance.get("conversion_notes") or []:
            if not _ABOUT_THIS_MAGIC.search(note):  # that the job skips %dlw goes without saying here
                print(f"note: {note}")
        sys.stdout.flush()
        show_job(job, backend, self.shell, wait=args.wait, follow=args.follow)

    def _delegate(self, argv: list[str]) -> None:
        """Every command but train: the CLI's options, run through the core; no path means this notebook."""
        command = argv[0]
        if command in ("convert", "render", "sweep") and not _has_positional(argv):
            argv = [command, str(current_notebook(self._user_ns, command)), *argv[1:]]
        elif argv[:2] == ["schedule", "create"] and not _has_positional(argv):  # this notebook, on a schedule
            argv = [*argv[:2], str(current_notebook(self._user_ns, "schedule create")), *argv[2:]]
        args = parse(argv)
        if args is None:
            return
        run = getattr(self, f"_cmd_{command}", None)
        if run is None:  # the CLI's own command does: only where a notebook needs other words is there a _cmd_
            args.func(args)
        else:
            run(args)

    def _cmd_jobs(self, args: argparse.Namespace) -> None:
        if args.limit < 0:
            raise DLWError(f"--limit: expected 0 (all) or a positive number, got {args.limit}")
        jobs, total = core.list_page(cli.backend_from(args), args.limit or None, tag=args.tag)
        fmt.show_jobs(jobs, args.output, sys.stdout,
                      f"(filtered by --tag {args.tag})" if args.tag else "Submit this notebook with: %dlw train")
        if len(jobs) < total:
            print(f"showing the newest {len(jobs)} of {total} jobs (--limit 0 for all)", file=sys.stderr)

    def _cmd_status(self, args: argparse.Namespace) -> None:
        backend = cli.backend_from(args)
        fmt.show_status(core.get_job(args.name, backend), core.events(args.name, backend), args.output,
                        sys.stdout, notebook=True)

    def _cmd_sweep(self, args: argparse.Namespace) -> None:
        """In a kernel, the sweep's results table live (``sweep_widget``); elsewhere the CLI's lines."""
        from . import cli_experiments, experiments
        from .widget import widgets_available

        live = widgets_available(self.shell) and args.output != "json"
        if not live or args.target in ("cancel", "promote"):
            args.func(args)
            return
        cli_experiments.check_sweep_args(args)
        if args.target == "status":
            record = experiments.get(args.experiment)
        else:
            record = cli_experiments.start_sweep(args, hint="%dlw sweep status")
        from .experiments.results import summary
        from .sweep_widget import show_sweep, title_line

        record = show_sweep(record, wait=args.wait or args.follow)
        if args.wait or args.follow:
            print(title_line(summary(record, curves=False)))

    def _cmd_convert(self, args: argparse.Namespace) -> None:
        converted = core.convert(args.notebook, dict(core.parse_param(p) for p in args.param))
        for note in converted.notes:
            print(f"note: {note}")
        cli._write(converted.script, args.out)


def _has_positional(argv: list[str]) -> bool:
    """Whether ``convert``/``render`` got a path: parse and see if the notebook/target slot is filled."""
    if "-h" in argv or "--help" in argv:
        return True
    try:
        args = parse(argv)
    except cli.UsageError:
        return False
    return bool(getattr(args, "notebook", None) or getattr(args, "target", None))
