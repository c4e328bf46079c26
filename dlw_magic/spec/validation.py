"""Turn pydantic and YAML errors into one-line messages that name the file and the field path.

Spec input is hostile until checked: YAML is read with aliases and explicit tags refused (a 400-byte
alias bomb expands to gigabytes; ``!!python/...``, ``!!set`` and ``!!binary`` make values JSON cannot
hold), nesting, string sizes and integer digits bounded, and dates left as text. ``check_values``
then refuses NUL bytes, lone surrogates, non-finite numbers, non-text keys and shared (aliased)
containers in any parsed data, from YAML or JSON, before the model sees it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from ..errors import DLWError

M = TypeVar("M", bound=BaseModel)

MAX_SPEC_CHARS = 1 << 20
MAX_DEPTH = 32
MAX_STRING = 100_000
MAX_INT_DIGITS = 100


class SpecLoader(yaml.SafeLoader):
    """SafeLoader without aliases, explicit tags, deep nesting, huge scalars or implicit dates."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str):
        super().__init__(stream)
        self._depth = 0

    def _refuse(self, problem: str, mark: Any) -> None:
        raise yaml.constructor.ConstructorError(None, None, problem, mark)

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if self.check_event(yaml.AliasEvent):
            self._refuse(f"aliases (*{event.anchor}) are not allowed in a job spec", event.start_mark)
        tag = getattr(event, "tag", None)
        if tag is not None and tag != "!":
            self._refuse(f"tags ({tag}) are not allowed in a job spec", event.start_mark)
        if isinstance(event, yaml.ScalarEvent) and len(event.value) > MAX_STRING:
            self._refuse(f"a value over {MAX_STRING} characters", event.start_mark)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                self._refuse(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:
                self._refuse("found unhashable key", key_node.start_mark)
            if duplicate:
                self._refuse(f"key {key!r} appears twice", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        if sum(c.isdigit() for c in node.value) > MAX_INT_DIGITS:
            self._refuse(f"an integer over {MAX_INT_DIGITS} digits", node.start_mark)
        return super().construct_yaml_int(node)


SpecLoader.add_constructor("tag:yaml.org,2002:int", SpecLoader.construct_yaml_int)


def check_values(data: Any, origin: str) -> None:
    """Refuse what no spec field can hold; the error names ``origin`` and the field path."""
    seen: set[int] = set()

    def bad(path: list[Any], problem: str) -> DLWError:
        return DLWError(f"{origin}: {field_path(tuple(path))}: {problem}")

    def walk(value: Any, path: list[Any]) -> None:
        if len(path) > MAX_DEPTH:
            raise bad(path[:MAX_DEPTH], f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, str):
            check_text(value, path)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int):
            if value.bit_length() > MAX_INT_DIGITS * 3.33:
                raise bad(path, f"an integer over {MAX_INT_DIGITS} digits")
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise bad(path, f"{value} is not a finite number")
        elif isinstance(value, (dict, list)):
            if id(value) in seen:
                raise bad(path, "the same value appears twice (YAML aliases are not allowed)")
            seen.add(id(value))
            if isinstance(value, dict):
                for key, item in value.items():
                    if not isinstance(key, str):
                        raise bad(path, f"key {key!r} is not text")
                    check_text(key, path)
                    walk(item, [*path, key])
            else:
                for i, item in enumerate(value):
                    walk(item, [*path, i])
        else:
            raise bad(path, f"a {type(value).__name__} value is not allowed (use text, numbers, lists, mappings)")

    def check_text(text: str, path: list[Any]) -> None:
        if len(text) > MAX_STRING:
            raise bad(path, f"a value over {MAX_STRING} characters")
        if "\0" in text:
            raise bad(path, "NUL bytes are not allowed")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise bad(path, "not valid Unicode text (a lone surrogate)") from None

    walk(data, [])


def field_path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not str(part).isprintable() or len(str(part)) > 60:  # a newline or escape in a key: one line
            out += f"[{str(part)[:60]!r}]"
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
    check_values(data, origin)
    try:
        return model.model_validate(data)
    except ValidationError as err:
        lines = error_lines(err, origin)
        more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
        raise DLWError(lines[0] + more) from None


def load_yaml(text: str, origin: str) -> Any:
    if len(text) > MAX_SPEC_CHARS:
        raise DLWError(f"{origin}: over {MAX_SPEC_CHARS >> 20} MiB, too large for a job spec")
    if "\0" in text:
        raise DLWError(f"{origin}: NUL bytes are not allowed in a job spec")
    try:
        data = yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a stricter SafeLoader
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}:" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise DLWError(f"{origin}:{where} invalid YAML: {problem}") from None
    except RecursionError:
        raise DLWError(f"{origin}: invalid YAML: nested too deeply") from None
    check_values(data, origin)
    return data


def yaml_value(text: str) -> Any:
    """One value (``--param`` text) read with the spec's rules; yaml.YAMLError when refused."""
    if len(text) > MAX_STRING:
        raise yaml.YAMLError(f"a value over {MAX_STRING} characters")
    try:
        return yaml.load(text, Loader=SpecLoader)  # noqa: S506 - SpecLoader is a stricter SafeLoader
    except RecursionError:
        raise yaml.YAMLError("nested too deeply") from None


def read_text(path: str | Path, what: str = "file") -> str:
    p = Path(path)
    try:
        if p.stat().st_size > MAX_SPEC_CHARS * 4:
            raise DLWError(f"{p}: over {MAX_SPEC_CHARS * 4 >> 20} MiB, too large for a {what}")
        return p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DLWError(f"{p}: {what} not found") from None
    except IsADirectoryError:
        raise DLWError(f"{p}: is a directory, expected a {what}") from None
    except UnicodeDecodeError:
        raise DLWError(f"{p}: not UTF-8 text") from None
    except ValueError as err:  # a NUL byte in the path
        raise DLWError(f"{str(p)!r}: not a usable path ({err})") from None
    except OSError as err:
        raise DLWError(f"{p}: cannot read the {what} ({err.strerror})") from None
