"""papermill-style parameters: read the defaults of the ``parameters`` cell, check overrides against them.

The cell is parsed with ``ast`` and never run: a default's type comes from its annotation
(``epochs: int = 3``) or else from its literal value (``lr = 0.1``). A default that is not a literal
(``device = "cuda" if ok else "cpu"``) accepts an override of any type.
"""

from __future__ import annotations

import ast
import difflib
import keyword
import math
from dataclasses import dataclass
from typing import Any

from ..errors import DLWError

# Annotation names (builtins and their typing aliases) -> the type name used in checks and messages.
_ANNOTATION_TYPES = {
    "int": "int", "float": "float", "bool": "bool", "str": "str",
    "list": "list", "List": "list", "Sequence": "list", "tuple": "tuple", "Tuple": "tuple",
    "set": "set", "Set": "set", "dict": "dict", "Dict": "dict", "Mapping": "dict",
}
_SEQUENCES = {"list": list, "tuple": tuple, "set": set}


@dataclass(frozen=True)
class Parameter:
    """One assignment of a parameters cell."""

    name: str
    default: Any  # the literal value; None when the default is not a literal (see ``literal``)
    literal: bool
    type: str | None  # "int", "float", "bool", "str", "list", "tuple", "set", "dict"; None: any type
    optional: bool  # None is an accepted value
    source: str  # the default as written
    help: str  # the comment after the assignment, if any
    cell: int

    @property
    def expects(self) -> str:
        return f"{self.type} or None" if self.optional else str(self.type)


def parse_parameters(code: str, cell: int) -> list[Parameter]:
    """Top-level ``name = value`` / ``name: type = value`` statements of a (valid Python) cell.

    Linear in the cell's size: each default's text is cut from offsets computed once (``ast.get_source_segment``
    splits the whole cell again for every statement: 10,000 assignments took minutes).
    """
    code = code.replace("\r\n", "\n").replace("\r", "\n")  # ast's line numbers count these as one break
    lines = code.splitlines()
    segment = _Segments(code)
    found: dict[str, Parameter] = {}
    for stmt in ast.parse(code).body:
        if isinstance(stmt, ast.Assign):
            targets = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            annotation = None
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value:
            targets = [stmt.target.id]
            annotation = stmt.annotation
        else:
            continue
        value = stmt.value
        if value is None:  # `x: int` alone (excluded above; says so to the type checker)
            continue
        try:
            default, literal = ast.literal_eval(value), True
        except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
            default, literal = None, False
        if literal and not _json_shaped(default):  # b"x", 1j, ...: not a value a form or JSON can carry
            default, literal = None, False
        type_name, optional = _annotation_type(annotation) if annotation else (None, False)
        if annotation is None or (type_name is None and not optional):
            type_name, optional = _value_type(default) if literal else (None, False)
        text = segment(value)
        for name in targets:
            found.pop(name, None)  # a later assignment wins, and moves to the end
            found[name] = Parameter(
                name=name, default=default, literal=literal, type=type_name, optional=optional,
                source=text, help=_trailing_comment(lines, stmt), cell=cell,
            )
    return list(found.values())


class _Segments:
    """The source text of a node, from the byte offsets of the cell's line starts (ast's columns are UTF-8)."""

    def __init__(self, code: str) -> None:
        self.data = code.encode("utf-8", "surrogatepass")
        starts, at = [0], self.data.find(b"\n")
        while at != -1:
            starts.append(at + 1)
            at = self.data.find(b"\n", at + 1)
        self.starts = starts

    def __call__(self, node: ast.expr) -> str:
        if node.end_lineno is None or node.end_col_offset is None:
            return ""
        begin = self.starts[node.lineno - 1] + node.col_offset
        end = self.starts[node.end_lineno - 1] + node.end_col_offset
        return self.data[begin:end].decode("utf-8", "replace")


def _json_shaped(value: Any, depth: int = 0) -> bool:
    """Whether a literal default is made only of what JSON holds (sets and tuples as lists)."""
    if depth > 100:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return True  # NaN and infinities: rendered as float('nan') and sent as JSON's NaN
    if isinstance(value, (list, tuple, set)):
        return all(_json_shaped(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int, float, bool)) or k is None for k in value) and all(
            _json_shaped(v, depth + 1) for v in value.values())
    return False


def as_json(value: Any) -> Any:
    """A parameter value as JSON holds it (job record, REST): sets and tuples as lists, sets sorted when
    their items sort."""
    if isinstance(value, set):
        try:
            value = sorted(value)
        except TypeError:
            value = list(value)
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    return value


def _value_type(value: Any) -> tuple[str | None, bool]:
    if value is None:
        return None, True  # None says nothing about the type: accept anything
    name = type(value).__name__
    if name in ("int", "float", "bool", "str", "list", "tuple", "set", "dict"):
        return name, False
    return None, False  # complex, bytes...: not checked


def _annotation_type(node: ast.expr) -> tuple[str | None, bool]:
    """(type name, optional) for ``int``, ``list[int]``, ``float | None``, ``Optional[str]``..."""
    if isinstance(node, ast.Constant) and node.value is None:
        return None, True
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "int" (a string annotation)
        try:
            return _annotation_type(ast.parse(node.value, mode="eval").body)
        except SyntaxError:
            return None, False
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, right = _annotation_type(node.left), _annotation_type(node.right)
        is_none = [side == (None, True) for side in (left, right)]
        if any(is_none) and not all(is_none):
            return (right[0] if is_none[0] else left[0]), True
        return None, False  # a union of real types: not checked
    if isinstance(node, ast.Subscript):
        base = _dotted_tail(node.value)
        if base == "Optional":
            return _annotation_type(node.slice)[0], True
        return _ANNOTATION_TYPES.get(base or ""), False
    return _ANNOTATION_TYPES.get(_dotted_tail(node) or ""), False


def _dotted_tail(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):  # typing.Optional, t.List
        return node.attr
    return None


def _trailing_comment(lines: list[str], stmt: ast.stmt) -> str:
    end_line, end_col = stmt.end_lineno, stmt.end_col_offset
    if end_line is None or end_col is None or end_line > len(lines):
        return ""
    rest = lines[end_line - 1][end_col:].strip()
    return rest[1:].strip() if rest.startswith("#") else ""


def check_overrides(
    notebook: str, params: list[Parameter], overrides: dict[str, Any], has_cell: bool,
    notes: list[str] | None = None,
) -> dict[str, Any]:
    """Overrides coerced to the type of their default; a DLWError for the first one that does not fit.

    A name the parameters cell does not define is taken as it is, as papermill does: injected after the
    cell as a new variable, with a line in ``notes`` (naming a close match: it may be a typo).
    """
    if not overrides:
        return {}
    if not has_cell:
        names = ", ".join(sorted(overrides))
        raise DLWError(
            f"{notebook}: parameters given ({names}) but the notebook has no cell tagged 'parameters'"
        )
    known = {p.name: p for p in params}
    checked: dict[str, Any] = {}
    for name, value in overrides.items():
        param = known.get(name)
        if param is None:
            if not name.isidentifier() or keyword.iskeyword(name):  # injected as `name = value`
                raise DLWError(f"{notebook}: parameters: {name[:80]!r} is not a Python variable name")
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            if notes is not None:
                notes.append(f"parameter {name!r} is not in the parameters cell: "
                             f"set as a new variable after it{hint}")
            checked[name] = value
        else:
            checked[name] = coerce(notebook, param, value)
        render_value(checked[name], notebook, name)  # refuse what cannot be written as Python now
    return checked


def coerce(notebook: str, param: Parameter, value: Any) -> Any:
    """``value`` as the type ``param`` expects. Text (from ``--param k=v`` or a form field) is read as a
    literal first, so "5" fits an int default and "true" a bool one."""
    original = value
    if isinstance(value, str) and param.type not in (None, "str"):
        value = _from_text(value)
    if value is None:
        if param.optional or param.type is None:
            return None
    else:
        result = _fit(param.type, value)
        if result is not _NO_FIT:
            return result
    raise DLWError(
        f"{notebook}: parameter {param.name!r} expects {param.expects}, "
        f"got {original!r} ({type(original).__name__})"
    )


_NO_FIT = object()


def _fit(type_name: str | None, value: Any) -> Any:
    if type_name is None:
        return value
    if type_name == "bool":
        return value if isinstance(value, bool) else _NO_FIT
    if isinstance(value, bool):  # bool is an int subclass, but never a number here
        return _NO_FIT
    if type_name == "int":
        if isinstance(value, int):
            return value
        return int(value) if isinstance(value, float) and value.is_integer() else _NO_FIT
    if type_name == "float":
        if not isinstance(value, (int, float)):
            return _NO_FIT
        try:
            return float(value)
        except OverflowError:  # a 400-digit integer
            return _NO_FIT
    if type_name == "str":
        # YAML reads `run: 123` as an int; for a str default the user meant "123".
        return value if isinstance(value, str) else str(value) if isinstance(value, (int, float)) else _NO_FIT
    if type_name in _SEQUENCES:
        if not isinstance(value, (list, tuple, set)):
            return _NO_FIT
        try:
            fitted = _SEQUENCES[type_name](value)
        except TypeError:  # a set of lists: its items cannot be hashed
            return _NO_FIT
        return fitted
    if type_name == "dict":
        return value if isinstance(value, dict) else _NO_FIT
    return _NO_FIT


def _from_text(text: str) -> Any:
    stripped = text.strip()
    lowered = stripped.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(stripped)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return text


def render_value(value: Any, notebook: str = "", name: str = "") -> str:
    """Python source for a parameter value (repr is not enough: ``inf`` and ``nan`` are not literals)."""
    if value is None or isinstance(value, (bool, int, str)):
        return repr(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
    if isinstance(value, list):
        return "[" + ", ".join(render_value(v, notebook, name) for v in value) + "]"
    if isinstance(value, tuple):
        inner = ", ".join(render_value(v, notebook, name) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, set):
        return "{" + ", ".join(render_value(v, notebook, name) for v in value) + "}" if value else "set()"
    if isinstance(value, dict):
        items = ", ".join(
            f"{render_value(k, notebook, name)}: {render_value(v, notebook, name)}" for k, v in value.items()
        )
        return "{" + items + "}"
    raise DLWError(
        f"{notebook}: parameter {name!r}: unsupported value type {type(value).__name__} "
        "(use int, float, bool, str, list, dict or None)"
    )
