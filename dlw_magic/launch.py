"""Run a converted notebook so that tracebacks name notebook cells: ``python -m dlw_magic.launch main.py``.

The converted script carries one marker line per cell (``# %% [cell 4] digits.ipynb``). The launcher
splits on them, compiles each cell under the filename ``digits.ipynb, cell 4`` (registered in
``linecache``, so tracebacks, warnings and ``inspect.getsource`` show the cell's own lines), and execs
the cells one after the other in a single ``__main__`` namespace, as a kernel would. Plain
``python main.py`` runs the same code; only the cell names in tracebacks are lost.

In rank 0 of a job (``DLW_OUTPUT_DIR`` set) the launcher also records each cell's outputs into the
executed notebook (dlw_magic.executed); the log stays what it would be without.

Only the standard library is imported here: IPython (slow to import) is loaded only for a script that
calls ``get_ipython()``.
"""

from __future__ import annotations
import __future__

import ast
import atexit
import builtins
import gc
import linecache
import os
import re
import sys
import traceback
import types
from pathlib import Path

TYPE_CHECKING = False  # no typing import in a rank: ~13 ms of every job's start (mypy reads the block)
if TYPE_CHECKING:
    from typing import Any

    from .executed import Recorder

MARKER = re.compile(r"^# %% \[(cell \d+|injected parameters)\] (.*)\n?", re.MULTILINE)
USAGE = "usage: python -m dlw_magic.launch SCRIPT [ARG...]"


def cell_marker(label: str, notebook: str) -> str:
    """The marker line that opens one cell of a converted script (the converter writes it)."""
    return f"# %% [{label}] {notebook}\n"


def split_cells(source: str, script_name: str) -> list[tuple[str, str]]:
    """(filename, code) per cell. The text before the first marker is the script's own header."""
    chunks: list[tuple[str, str]] = []
    filename, start = script_name, 0
    for match in MARKER.finditer(source):
        chunks.append((filename, source[start : match.start()]))
        filename, start = f"{match.group(2)}, {match.group(1)}", match.end()
    chunks.append((filename, source[start:]))
    return chunks


class Cell:
    __slots__ = ("code", "last_expression")

    def __init__(self, code: types.CodeType, last_expression: types.CodeType | None) -> None:
        self.code = code
        self.last_expression = last_expression  # compiled to show its value (executed notebook only)


_CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect (~8 ms of every job's start)
_FUTURE_FLAGS = 0
for _feature in __future__.all_feature_names:
    _FUTURE_FLAGS |= getattr(__future__, _feature).compiler_flag


def compile_cells(chunks: list[tuple[str, str]], interactive: bool = False) -> list[Cell]:
    """One compiled cell per chunk. ``interactive``: a cell's last expression is compiled apart, in
    "single" mode, so that its value goes to ``sys.displayhook`` as a kernel shows it (unless the
    line ends with ``;``)."""
    cells = []
    # Top-level `await` works in a notebook, so it does here. dont_inherit keeps this module's own
    # __future__ imports out of the user's code; the script's (hoisted into its header by the
    # converter) apply to every cell, as they do across the cells of a kernel.
    flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    for filename, code in chunks:
        lines = code.splitlines(keepends=True)
        linecache.cache[filename] = (len(code), None, lines, filename)
        last = None
        if interactive:
            tree = compile(code, filename, "exec", flags=flags | ast.PyCF_ONLY_AST, dont_inherit=True)
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                expr = tree.body.pop()
                if not lines[expr.end_lineno - 1][expr.end_col_offset :].lstrip().startswith(";"):
                    last = compile(ast.Interactive(body=[expr]), filename, "single", flags=flags, dont_inherit=True)
            compiled = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
        else:
            compiled = compile(code, filename, "exec", flags=flags, dont_inherit=True)
        flags |= compiled.co_flags & _FUTURE_FLAGS
        cells.append(Cell(compiled, last))
    return cells


def main_module(script: Path) -> types.ModuleType:
    """A fresh ``__main__`` like ``python script.py`` makes: pickle and multiprocessing's spawn find
    functions defined in cells through it (spawned children re-run the script as plain Python)."""
    module = types.ModuleType("__main__")
    module.__file__ = str(script.resolve())
    module.__builtins__ = builtins  # type: ignore[attr-defined]
    module.__spec__ = None
    sys.modules["__main__"] = module
    return module


def start_shell(module: types.ModuleType) -> Any:
    """An InteractiveShell whose user namespace is the script's, so ``%time x = f()`` defines ``x``."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # a job's home may be read-only, and history is useless
    return InteractiveShell.instance(config=config, user_module=module)  # puts get_ipython into the namespace


def release_globals(module: types.ModuleType) -> None:
    """Drop the notebook's globals, newest first, and collect them.

    Runs from atexit after the notebook's own handlers (it is registered before any cell runs, and
    atexit is last-in, first-out), while the interpreter is whole: a DDP model still holding its gloo
    group, or a file never closed, is released here in order rather than during interpreter teardown,
    where C++ destructors racing with the runtime's own shutdown can abort a rank
    ("terminate called without an active exception") after a job has finished its work.
    """
    namespace = module.__dict__
    for name in reversed([k for k in namespace if not (k.startswith("__") and k.endswith("__"))]):
        namespace.pop(name, None)
    gc.collect()


def run_cells(cells: list[Cell], namespace: dict[str, Any], recorder: Recorder | None = None) -> None:
    loop = None

    def run(code: types.CodeType) -> None:
        nonlocal loop
        if code.co_flags & _CO_COROUTINE:  # a cell with top-level await
            if loop is None:
                import asyncio

                loop = asyncio.new_event_loop()
            loop.run_until_complete(eval(code, namespace))
        else:
            exec(code, namespace)

    for index, cell in enumerate(cells):
        if recorder is None:
            run(cell.code)
            continue
        recorder.start(index)
        run(cell.code)
        if cell.last_expression is not None:
            hook, sys.displayhook = sys.displayhook, recorder.result
            try:
                run(cell.last_expression)
            finally:
                sys.displayhook = hook
        recorder.finish()


def report(err: BaseException) -> int:
    """Print the traceback without the launcher's frames; the exit status for it."""
    tb = err.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename == __file__:
        tb = tb.tb_next
    err = err.with_traceback(tb)
    sys.stdout.flush()  # keep the job log in order: output first, then the traceback
    if sys.excepthook is sys.__excepthook__:
        # The built-in hook reads source lines from disk, not from linecache: it would show no cell code.
        traceback.print_exception(type(err), err, tb)
    else:
        sys.excepthook(type(err), err, tb)  # the notebook installed its own hook
    missing = getattr(err, "filename", None) if isinstance(err, FileNotFoundError) else None
    if isinstance(missing, str) and not os.path.isabs(missing):
        print(f"dlw: {missing!r} is not in the job's copy of the code: a job gets the notebook alone unless "
              "its folder is shipped too (\"Ship the notebook's folder\" in the dialog, or "
              "source.files: ['**'] in the job YAML)", file=sys.stderr)
    sys.stderr.flush()
    return 130 if isinstance(err, KeyboardInterrupt) else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=sys.stderr)
        return 2
    script = Path(args[0])
    try:
        source = script.read_text(encoding="utf-8")
    except OSError as err:
        print(f"dlw_magic.launch: {script}: cannot read: {err.strerror}", file=sys.stderr)
        return 2
    sys.argv = list(args)  # as `python main.py ARG...` would set it
    if sys.path and sys.path[0] in ("", os.getcwd()):
        sys.path[0] = str(script.resolve().parent)
    os.environ.setdefault("MPLBACKEND", "Agg")  # no display in a job; plt.show() must not block
    chunks = split_cells(source, str(script))
    first = MARKER.search(source)
    recorder = None
    if first is not None:  # a converted notebook: rank 0 writes the executed copy
        from .executed import Recorder

        recorder = Recorder.for_job(script, first.group(2), chunks)
    try:
        cells = compile_cells(chunks, interactive=recorder is not None)
    except SyntaxError as err:
        if recorder is not None:
            names = [name for name, _ in chunks]
            recorder.fail(err, index=names.index(err.filename) if err.filename in names else None)
        traceback.print_exception(type(err), err, None)
        return 1
    module = main_module(script)
    atexit.register(release_globals, module)
    cell_text = "".join(code for _, code in chunks[1:])
    use_ipython = "get_ipython" in source or (recorder is not None and "IPython" in cell_text)
    try:
        if recorder is not None:
            recorder.install(module.__dict__, use_ipython)
        if use_ipython:
            shell = start_shell(module)
            if recorder is not None:
                recorder.attach_shell(shell)
        run_cells(cells, module.__dict__, recorder)
    except SystemExit as err:
        if recorder is not None:
            recorder.uninstall()
            recorder.end("completed" if err.code in (None, 0) else "failed")
        raise  # sys.exit(3) in a cell keeps its status
    except BaseException as err:
        if recorder is not None:
            recorder.uninstall()
            recorder.fail(err, status="terminated" if isinstance(err, KeyboardInterrupt) else "failed")
        return report(err)
    if recorder is not None:
        recorder.uninstall()
        recorder.end("completed")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
