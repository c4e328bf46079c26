"""Notebook -> the Python script a job runs (``main.py`` of its snapshot).

    conv = convert_notebook(Path("digits.ipynb"), {"epochs": 10})
    conv.script       # valid Python, one marked block per kept code cell (see dlw_magic.launch)
    conv.parameters   # effective parameter values: the parameters cell's defaults + the overrides

Code cells are kept in order; cells tagged ``skip``/``dlw-skip`` and raw cells are dropped; markdown
becomes comments. Overrides are checked against the ``parameters`` cell and injected right after it,
as papermill does. The notebook file is only read. docs/conversion.md tells the whole story.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..launch import MARKER, cell_marker
from .ipython import cell_to_python
from .notebook import Cell, load_cells
from .parameters import Parameter, as_json, check_overrides, parse_parameters, render_value

__all__ = ["ConvertedNotebook", "Parameter", "convert_notebook", "describe_parameters", "read_parameters"]

_PRELUDE_SHELL = '''\
if "get_ipython" not in globals():  # plain `python main.py`; the launcher starts the shell itself
    import sys as _dlw_sys

    from IPython.core.interactiveshell import InteractiveShell as _DLWShell
    from traitlets.config import Config as _DLWConfig

    _dlw_config = _DLWConfig()
    _dlw_config.HistoryManager.hist_file = ":memory:"
    _DLWShell.instance(config=_dlw_config, user_module=_dlw_sys.modules[__name__])
    del _dlw_sys, _DLWShell, _DLWConfig, _dlw_config
'''
_PRELUDE_DISPLAY = '''\
if "display" not in globals():  # a notebook kernel has display() built in
    from IPython.display import display
'''


@dataclass
class ConvertedNotebook:
    script: str
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what was dropped, one line each ("cell 3: dropped ...")
    uses_ipython: bool = False  # the script needs an InteractiveShell (magics, !commands)


@dataclass
class _CodeCell:
    cell: Cell
    code: str
    params: list[Parameter]


def convert_notebook(path: Path, parameters: dict[str, Any]) -> ConvertedNotebook:
    """The script for the notebook at ``path`` with ``parameters`` overriding its parameters cell."""
    path = Path(path)
    name = path.name
    cells = load_cells(path)
    notes: list[str] = []
    code_cells = _code_cells(name, cells, notes)
    param_cells = [c for c in code_cells.values() if c.cell.is_parameters]
    defined = _merge(param_cells)
    overrides = check_overrides(name, list(defined.values()), dict(parameters), has_cell=bool(param_cells),
                                notes=notes)
    extra = {k: v for k, v in overrides.items() if k not in defined}
    effective = as_json({p.name: p.default for p in defined.values() if p.literal} | overrides)

    parts = [
        f"# Converted by DLW from {name}. Run it with `python -m dlw_magic.launch main.py` so that\n"
        "# tracebacks name notebook cells; plain `python main.py` runs the same code.\n"
    ]
    futures = _hoist_futures(code_cells)
    if futures:
        parts.append("".join(f"from __future__ import {feature}\n" for feature in futures))
    body = " ".join(c.code for c in code_cells.values())
    uses_ipython = "get_ipython" in body
    if uses_ipython:
        parts.append(_PRELUDE_SHELL)
    if "display(" in body:
        parts.append(_PRELUDE_DISPLAY)
    for cell in cells:
        kept = code_cells.get(cell.number)
        if kept is not None:
            parts.append("\n" + cell_marker(f"cell {cell.number}", name) + kept.code)
            injected = {p.name: overrides[p.name] for p in kept.params if p.name in overrides}
            if extra and kept is param_cells[-1]:  # names the cell does not define: after its last one
                injected |= extra
            if injected:
                parts.append(_injection(name, cell.number, injected))
        elif cell.kind == "markdown" and cell.source.strip():
            parts.append(f"\n# %% [markdown] cell {cell.number}\n" + _as_comment(cell.source))
        elif cell.skipped and cell.kind == "code":
            parts.append(f"\n# [cell {cell.number}] skipped (tag: {', '.join(sorted(cell.tags))})\n")
    return ConvertedNotebook("".join(parts), effective, notes, uses_ipython)


def read_parameters(path: Path) -> dict[str, Any]:
    """Defaults of the notebook's parameters cell (those written as literals), in cell order."""
    return as_json({p.name: p.default for p in describe_parameters(path) if p.literal})


def describe_parameters(path: Path) -> list[Parameter]:
    """Every parameter with its default, type, source text and comment (for a form that edits them)."""
    path = Path(path)
    cells = [c for c in load_cells(path) if c.is_parameters]
    return list(_merge([_CodeCell(c, "", _params(path.name, c)) for c in cells]).values())


def _code_cells(name: str, cells: list[Cell], notes: list[str]) -> dict[int, _CodeCell]:
    kept: dict[int, _CodeCell] = {}
    for cell in cells:
        # A parameters cell is kept even when tagged skip: the overrides are injected after it.
        if cell.kind != "code" or (cell.skipped and not cell.is_parameters) or not cell.source.strip():
            continue
        converted = cell_to_python(name, cell.number, cell.source)
        notes.extend(converted.notes)
        if not converted.code.strip():
            continue
        code = converted.code if converted.code.endswith("\n") else converted.code + "\n"
        if "# %% [" in code:  # a line that looks like our marker would split the cell in the launcher
            code = MARKER.sub(lambda m: "#" + m.group(0), code)
        params = parse_parameters(converted.code, cell.number) if cell.is_parameters else []
        kept[cell.number] = _CodeCell(cell, code, params)
    return kept


def _hoist_futures(code_cells: dict[int, _CodeCell]) -> list[str]:
    """Move ``from __future__ import ...`` to the top of the script, where Python requires them.

    In a kernel such an import in any cell applies to the cells after it; in the script it applies
    to all of them. The import's lines stay in the cell as comments, so line numbers do not move.
    """
    features: list[str] = []
    for code_cell in code_cells.values():
        if "__future__" not in code_cell.code:
            continue
        lines = code_cell.code.splitlines(keepends=True)
        for stmt in ast.parse(code_cell.code).body:
            if not (isinstance(stmt, ast.ImportFrom) and stmt.module == "__future__"):
                continue
            start, end = stmt.lineno - 1, (stmt.end_lineno or stmt.lineno) - 1
            after = lines[end][stmt.end_col_offset or 0 :].strip()
            if lines[start][: stmt.col_offset].strip() or (after and not after.startswith("#")):
                continue  # shares its line with other code (`from __future__ import x; y = 1`): leave it
            features += [alias.name for alias in stmt.names if alias.name not in features]
            moved = lines[start : end + 1]
            lines[start : end + 1] = [f"# {line.rstrip()}  (dlw: moved to the top)\n" for line in moved]
        code_cell.code = "".join(lines)
    return features


def _params(name: str, cell: Cell) -> list[Parameter]:
    converted = cell_to_python(name, cell.number, cell.source)
    return parse_parameters(converted.code, cell.number) if converted.code.strip() else []


def _merge(param_cells: list[_CodeCell]) -> dict[str, Parameter]:
    merged: dict[str, Parameter] = {}
    for code_cell in param_cells:
        for param in code_cell.params:
            merged.pop(param.name, None)
            merged[param.name] = param
    return merged


def _injection(name: str, cell_number: int, values: dict[str, Any]) -> str:
    lines = [cell_marker("injected parameters", name), f"# Parameters (override the defaults of cell {cell_number})\n"]
    lines += [f"{key} = {render_value(value, name, key)}\n" for key, value in values.items()]
    return "".join(lines)


def _as_comment(text: str) -> str:
    return "".join(f"# {line}".rstrip() + "\n" for line in text.splitlines())
