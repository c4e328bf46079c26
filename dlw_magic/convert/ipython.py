"""Cell source -> plain Python, IPython syntax included.

A cell that parses as Python is used as is. Only a cell that does not goes through IPython's own
``TransformerManager`` (imported on first use: importing IPython costs a quarter of a second), which
turns ``%time x``, ``!ls``, ``x = !ls``, ``%%bash`` ... into ``get_ipython()...`` calls that the launcher's
InteractiveShell runs. Magics that make no sense in a batch job are then dropped (display-only, or
``%dlw`` itself: the job must not submit itself) or refused (interactive: ``%debug``...); see MAGICS.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DLWError

_SELF = "the job must not submit itself"
_DISPLAY = "display-only output: a job has no notebook to show it in"

# (kind, name) -> ("drop" | "refuse", why). Anything else runs as in the notebook.
MAGICS: dict[tuple[str, str], tuple[str, str]] = {
    ("line", "dlw"): ("drop", _SELF),
    ("cell", "dlw"): ("drop", _SELF),
    ("line", "matplotlib"): ("drop", "a job shows no figures; with the Agg backend, save them with savefig"),
    ("line", "gui"): ("drop", "a job has no GUI event loop"),
    ("line", "pdb"): ("drop", "post-mortem debugging needs a terminal; the traceback is printed instead"),
    ("cell", "html"): ("drop", _DISPLAY),
    ("cell", "javascript"): ("drop", _DISPLAY),
    ("cell", "js"): ("drop", _DISPLAY),
    ("cell", "svg"): ("drop", _DISPLAY),
    ("cell", "latex"): ("drop", _DISPLAY),
    ("cell", "markdown"): ("drop", _DISPLAY),
    ("line", "debug"): ("refuse", "it opens an interactive debugger and a job has no terminal"),
    ("cell", "debug"): ("refuse", "it opens an interactive debugger and a job has no terminal"),
    ("line", "store"): ("refuse", "a job starts fresh: save the values to a file instead"),
    ("line", "load"): ("refuse", "it only pastes code into the notebook cell: paste or import the code"),
    ("line", "edit"): ("refuse", "it opens an editor and a job has no terminal"),
    ("line", "qtconsole"): ("refuse", "a job has no display"),
    ("line", "recall"): ("refuse", "it replays notebook history and a job has none"),
    ("line", "rerun"): ("refuse", "it replays notebook history and a job has none"),
}
_EXTENSION_MAGICS = ("load_ext", "reload_ext")

_transformer: Any = None


@dataclass
class CellCode:
    code: str  # what the job runs; "" when nothing is left
    tree: ast.Module | None
    notes: list[str] = field(default_factory=list)


def cell_to_python(notebook: str, number: int, source: str) -> CellCode:
    """Plain Python for one code cell; a DLWError naming the cell for what cannot run in a job."""
    if source.lstrip().startswith("%%dlw"):
        return CellCode("", None, [f"cell {number}: dropped the %%dlw cell ({_SELF})"])
    try:
        return CellCode(source, ast.parse(source))
    except SyntaxError as first:
        python_error = first
    except (MemoryError, RecursionError, ValueError) as err:  # 100,000 nested brackets; a NUL byte
        raise DLWError(f"{notebook}: cell {number}: cannot be parsed ({_why(err)})") from None
    code = _transform(notebook, number, source)
    if code == source:  # no IPython syntax: report the Python error, not a transformed one
        raise _syntax_error(notebook, number, python_error)
    try:
        tree = ast.parse(code)
    except SyntaxError as err:
        raise _syntax_error(notebook, number, err) from None
    except (MemoryError, RecursionError, ValueError) as err:
        raise DLWError(f"{notebook}: cell {number}: cannot be parsed ({_why(err)})") from None
    return _apply_policy(notebook, number, code, tree)


def _why(err: Exception) -> str:
    if isinstance(err, (MemoryError, RecursionError)):
        return "nested too deeply"
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def _transform(notebook: str, number: int, source: str) -> str:
    global _transformer
    if _transformer is None:
        _transformer = _transformer_module().TransformerManager()
    try:
        return _transformer.transform_cell(source)
    except Exception as err:  # IPython raises assorted errors on odd input; report them as the cell's
        raise DLWError(f"{notebook}: cell {number}: IPython syntax that cannot be converted: {err}") from None


def _transformer_module() -> Any:
    """IPython's ``inputtransformer2``, loaded from its file when IPython is not imported yet.

    The module needs only the standard library, while ``import IPython`` pulls in the terminal shell,
    jedi and prompt_toolkit (a quarter of a second, on every ``dlw train``). Any surprise falls back to
    the ordinary import.
    """
    loaded = sys.modules.get("IPython.core.inputtransformer2")
    if loaded is not None:
        return loaded
    try:
        package = importlib.util.find_spec("IPython")
        locations = package.submodule_search_locations if package else None
        if locations:
            path = Path(next(iter(locations)), "core", "inputtransformer2.py")
            spec = importlib.util.spec_from_file_location("_dlw_inputtransformer2", path)
            if spec and spec.loader:
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                return module
    except Exception:  # a changed IPython layout: take the slow, supported road
        pass
    from IPython.core import inputtransformer2

    return inputtransformer2


def _syntax_error(notebook: str, number: int, err: SyntaxError) -> DLWError:
    text = (err.text or "").strip()
    where = f" at line {err.lineno}" if err.lineno else ""
    return DLWError(f"{notebook}: cell {number}: invalid syntax{where}: {err.msg}" + (f": {text}" if text else ""))


def _magic_call(node: ast.AST) -> tuple[str, str, str] | None:
    """(kind, name, argument line) for ``get_ipython().run_line_magic('name', 'args')`` and the cell twin."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (isinstance(owner, ast.Call) and isinstance(owner.func, ast.Name) and owner.func.id == "get_ipython"):
        return None
    kind = {"run_line_magic": "line", "run_cell_magic": "cell"}.get(node.func.attr)
    args = node.args
    if kind is None or not args or not isinstance(args[0], ast.Constant) or not isinstance(args[0].value, str):
        return None
    line = args[1].value if len(args) > 1 and isinstance(args[1], ast.Constant) else ""
    return kind, args[0].value, str(line)


def _decision(kind: str, name: str, line: str) -> tuple[str, str] | None:
    if kind == "line" and name in _EXTENSION_MAGICS and line.split() == ["dlw_magic"]:
        return "drop", _SELF
    if kind == "line" and name == "config" and line.strip().startswith("InlineBackend"):
        return "drop", "the inline figure backend only exists in a notebook kernel"
    return MAGICS.get((kind, name))


def _apply_policy(notebook: str, number: int, code: str, tree: ast.Module) -> CellCode:
    drops: dict[int, tuple[ast.stmt, str, str]] = {}
    for node in ast.walk(tree):
        call = _magic_call(node.value if isinstance(node, ast.Expr) else node)
        if call is None:
            continue
        kind, name, line = call
        decision = _decision(kind, name, line)
        if decision is None:
            continue
        action, why = decision
        shown = ("%" if kind == "line" else "%%") + name + (f" {line}" if kind == "line" and line else "")
        if action == "refuse":
            where = getattr(node, "lineno", "?")
            raise DLWError(f"{notebook}: cell {number}: {shown.strip()} at line {where} cannot run in a job: {why}")
        if isinstance(node, ast.Expr):  # as a value (`x = %time f()`) it is kept
            drops[id(node)] = (node, shown.strip(), why)
    if not drops:
        return CellCode(code, tree)
    notes = [f"cell {number}: dropped {shown} ({why})" for _, shown, why in drops.values()]
    if all(id(stmt) in drops for stmt in tree.body):
        return CellCode("", None, notes)
    lines = code.splitlines(keepends=True)
    for stmt, shown, _ in sorted(drops.values(), key=lambda d: -d[0].lineno):
        start, end = stmt.lineno - 1, (stmt.end_lineno or stmt.lineno) - 1
        head, tail = lines[start][: stmt.col_offset], lines[end][stmt.end_col_offset or 0 :]
        comment = f"  # dlw: dropped {shown}" if not tail.strip() else ""
        # `pass` keeps an indented block valid; blank lines keep the line numbers of the cell.
        lines[start : end + 1] = [head + "pass" + tail.rstrip("\n") + comment + "\n"] + ["\n"] * (end - start)
    return CellCode("".join(lines), None, notes)
