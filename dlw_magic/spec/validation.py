"""Turn pydantic and YAML errors into one-line messages that name the file and the field path."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import DLWError

M = TypeVar("M", bound=BaseModel)


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def error_lines(err: ValidationError, origin: str) -> list[str]:
    """Every problem as ``origin: field.path: message``."""
    lines = []
    for e in err.errors(include_url=False):
        # Drop the union/validator branch names pydantic inserts (e.g. 'function-after[...]').
        loc = tuple(p for p in e["loc"] if not (isinstance(p, str) and ("[" in p or p in {"int", "str"})))
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown field"
        lines.append(f"{origin}: {field_path(loc)}: {msg}")
    return lines


def validate(model: type[M], data: Any, origin: str) -> M:
    """Validate ``data`` or raise a DLWError whose one line names the first bad field."""
    if not isinstance(data, dict):
        raise DLWError(f"{origin}: expected a mapping at the top level, got {type(data).__name__}")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = error_lines(err, origin)
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise DLWError(lines[0] + more) from None


def load_yaml(text: str, origin: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DLWError(f"{origin}:{where} invalid YAML: {problem}") from None


def read_text(path: str | Path, what: str = "file") -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DLWError(f"{p}: {what} not found") from None
    except IsADirectoryError:
        raise DLWError(f"{p}: is a directory, expected a {what}") from None
    except UnicodeDecodeError:
        raise DLWError(f"{p}: not UTF-8 text") from None
