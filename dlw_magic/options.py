"""The job options a face may override, defined once: ``JobOptions``.

The CLI builds its ``train``/``render`` flags from this model, the REST API validates submit requests
with it, the magics parse through the CLI's parser, and ``core.build_spec`` merges it into the spec.
Its JSON Schema generates the lab extension's TypeScript types::

    python -m dlw_magic.options --typescript labextension/src/generated/options.ts

Only the types are checked here; ranges and names (workers >= 1, a known engine, a valid job name) are
the spec's rules and fail there, naming the notebook or YAML they came with.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from .errors import DLWError
from .spec.model import TAG_RULE, ParamValue, Tag, VolumeRef

VolumeName = Annotated[str, Field(min_length=1, strict=True)]


class JobOptions(BaseModel):
    """Every override of a job spec a face offers; None (or absent) keeps the spec's own value."""

    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, title="JobOptions",
    )

    name: StrictStr | None = Field(None, description="job name (default: from the file name plus a random suffix)")
    workers: StrictInt | None = Field(None, description="number of workers (pods or local process groups)")
    processes_per_worker: StrictInt | None = Field(None, description="ranks per worker")
    gpus: StrictInt | None = Field(None, description="GPUs per worker")
    gpu_type: StrictStr | None = Field(None, description="GPU product, e.g. NVIDIA-A100-SXM4-80GB")
    parameters: dict[str, ParamValue] = Field(
        default_factory=dict,
        description="override a notebook parameter (repeatable); values are typed: 3, 0.1, true, [1,2]",
    )
    engine: StrictStr | None = Field(None, description="Kubernetes engine")
    queue: StrictStr | None = Field(None, description="queue (Volcano/Kueue) or local queue name")
    priority: StrictInt | StrictStr | None = Field(None, description="priority class name or integer")
    image: StrictStr | None = Field(None, description="container image (default: the notebook's)")
    build: StrictBool | None = Field(None, description="build an image for the job")
    preemptible: StrictBool | None = Field(
        None, description="may be preempted by higher-priority jobs, then requeued (resumes from its checkpoint)",
    )
    timeout: StrictInt | StrictStr | None = Field(None, description="seconds or a duration such as 30m, 2h")
    retries: StrictInt | None = Field(None, description="restarts after a failure")
    volumes: list[VolumeName | VolumeRef] | None = Field(
        None, description="volume from the admin's catalogue (repeatable)",
    )
    files: list[VolumeName] | None = Field(
        None, description="extra files to ship, glob patterns relative to the notebook's folder ('**': all of it)",
    )
    tags: list[Tag] | None = Field(None, description="tag to find the job by, e.g. baseline (repeatable)")

    @model_validator(mode="before")
    @classmethod
    def _blank_is_unset(cls, data: Any) -> Any:
        # A form's empty field and JSON null both mean "keep the spec's value".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None and v != ""}
        return data

    @field_validator("priority", mode="before")
    @classmethod
    def _priority_number(cls, v: Any) -> Any:
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            return int(v)
        return v

    def spec_overrides(self) -> dict[str, Any]:
        """The options as a partial spec (camelCase, as in job YAML): what ``core.build_spec`` merges."""
        data: dict[str, Any] = {}
        for key in ("name", "workers", "processes_per_worker", "engine", "queue", "priority", "image",
                    "timeout", "retries", "build", "preemptible"):
            value = getattr(self, key)
            if value is not None:
                data[to_camel(key)] = value
        if self.volumes is not None:
            data["volumes"] = [
                {"name": v} if isinstance(v, str) else v.model_dump(by_alias=True, exclude_none=True)
                for v in self.volumes
            ]
        resources = {"gpus": self.gpus, "gpuType": self.gpu_type}
        if any(v is not None for v in resources.values()):
            data["resources"] = {k: v for k, v in resources.items() if v is not None}
        if self.parameters:
            data["parameters"] = dict(self.parameters)
        if self.files:
            data["source"] = {"files": list(self.files)}
        if self.tags is not None:
            data["tags"] = list(dict.fromkeys(self.tags))
        return data


FIELD_NAMES = tuple(to_camel(name) for name in JobOptions.model_fields)


def _message(error: Mapping[str, Any]) -> str:
    loc = error["loc"]
    where = str(loc[0]) if loc else "options"
    if where == "volumes" and len(loc) > 1 and isinstance(loc[1], int):
        return f"volumes[{loc[1]}]: expected a volume name"
    kind, value = error["type"], error.get("input")
    if kind == "extra_forbidden":
        return f"{where}: unknown field (expected one of {', '.join(FIELD_NAMES)})"
    if where == "parameters":
        return "parameters: expected an object of name -> value"
    if where == "volumes":
        return "volumes: expected a list of volume names from the admin's catalogue"
    if where == "tags":
        return f"tags: expected a list of tags ({TAG_RULE})"
    if where == "files":
        return "files: expected a list of glob patterns relative to the notebook's folder"
    if kind.startswith("int"):
        return f"{where}: expected an integer, got {value!r}"
    if kind.startswith("bool"):
        return f"{where}: expected true or false, got {value!r}"
    if kind.startswith("string"):
        return f"{where}: expected text, got {value!r}"
    # A union (priority, timeout): name what it takes.
    return f"{where}: expected a number or text, got {value!r}"


def parse_options(data: Mapping[str, Any]) -> JobOptions:
    """Options from a mapping (JSON keys, camelCase, or Python names); one-line DLWError on bad input."""
    try:
        return JobOptions.model_validate(dict(data))
    except ValidationError as err:
        errors = err.errors(include_url=False)
        # Report the first field in the order the user sees them, once (unions report each branch).
        raise DLWError(_message(errors[0])) from None


# ---------------------------------------------------------------- the CLI's flags

# Flags whose spelling is not ``--field-name``; every other field gets ``--field-name``.
_FLAGS: dict[str, tuple[str, ...]] = {
    "processes_per_worker": ("--procs-per-worker",),
    "parameters": ("--param", "-p"),
    "volumes": ("--volume",),
    "files": ("--file",),
    "tags": ("--tag",),
}


class _EngineNames:
    """``--engine``'s choices, read from the engine registry only when argparse looks at them (an
    ``--engine`` given, or ``--help``): importing every engine costs ``dlw train`` ~50 ms otherwise."""

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    @staticmethod
    def _names() -> list[str]:
        from .engines import names

        return names()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per JobOptions field, help from its description."""
    for name, info in JobOptions.model_fields.items():
        flags = _FLAGS.get(name, ("--" + name.replace("_", "-"),))
        kwargs: dict[str, Any] = {"dest": name, "help": info.description}
        if name == "parameters":
            kwargs.update(action="append", default=[], metavar="NAME=VALUE")
        elif name == "volumes":
            kwargs.update(action="append", metavar="NAME")
        elif name == "files":
            kwargs.update(action="append", metavar="PATTERN")
        elif name == "tags":
            kwargs.update(action="append", metavar="TAG")
        elif name in ("build", "preemptible"):
            kwargs.update(action="store_true", default=None)
        elif name == "engine":
            kwargs.update(choices=_EngineNames(), metavar="ENGINE", help=f"{info.description}: %(choices)s")
        elif info.annotation == (StrictInt | None):
            kwargs.update(type=int, metavar="N")
        parser.add_argument(*flags, **kwargs)


def from_args(args: argparse.Namespace) -> JobOptions:
    """The options of a parsed ``train``/``render`` command line."""
    from .core import parse_param

    data = {name: getattr(args, name, None) for name in JobOptions.model_fields}
    data["parameters"] = dict(parse_param(p) for p in getattr(args, "parameters", None) or [])
    return parse_options(data)


# ---------------------------------------------------------------- TypeScript

TS_FILE = "labextension/src/generated/options.ts"  # relative to the repository root
_TS_HEADER = (
    f"// Generated by `python -m dlw_magic.options --typescript {TS_FILE}` from dlw_magic.options.JobOptions.\n"
    "// Do not edit: change the model and regenerate (tests/test_options.py fails when this is stale).\n\n"
)


def _ts_type(schema: Mapping[str, Any]) -> str:
    if "$ref" in schema:
        return "I" + str(schema["$ref"]).rsplit("/", 1)[-1]
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "anyOf" in schema:
        if {"boolean", "number", "string", "array", "object"} <= {s.get("type") for s in schema["anyOf"]}:
            return "unknown"  # any JSON value (a notebook parameter)
        parts: list[str] = []
        for sub in schema["anyOf"]:
            t = _ts_type(sub)
            if t not in parts:
                parts.append(t)
        return " | ".join(parts)
    kind = schema.get("type")
    if kind == "array":
        item = _ts_type(schema.get("items", {}))
        return f"Array<{item}>"
    if kind == "object":
        extra = schema.get("additionalProperties")
        value = _ts_type(extra) if isinstance(extra, dict) else "unknown"
        return f"Record<string, {value}>"
    return {"string": "string", "integer": "number", "number": "number", "boolean": "boolean",
            "null": "null"}.get(str(kind), "unknown")


def _ts_interface(name: str, schema: Mapping[str, Any]) -> str:
    required = set(schema.get("required", []))
    lines = [f"export interface I{name} {{"]
    for prop, sub in schema.get("properties", {}).items():
        if sub.get("description"):
            lines.append(f"  /** {sub['description']} */")
        optional = "" if prop in required else "?"
        lines.append(f"  {prop}{optional}: {_ts_type(sub)};")
    lines.append("}")
    return "\n".join(lines)


def typescript() -> str:
    """TypeScript interfaces for JobOptions and the models it refers to."""
    schema = JobOptions.model_json_schema(by_alias=True)
    blocks = [_ts_interface(name, sub) for name, sub in sorted(schema.get("$defs", {}).items())]
    blocks.append(_ts_interface("JobOptions", schema))
    return _TS_HEADER + "\n\n".join(blocks) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dlw_magic.options", description="JobOptions as a schema.",
                                     allow_abbrev=False)
    parser.add_argument("--typescript", nargs="?", const="-", metavar="FILE",
                        help=f"TypeScript interfaces, printed or written to FILE (the checked-in one: {TS_FILE})")
    args = parser.parse_args(argv)
    if args.typescript == "-":
        sys.stdout.write(typescript())
    elif args.typescript:
        with open(args.typescript, "w", encoding="utf-8") as f:
            f.write(typescript())
    else:
        sys.stdout.write(json.dumps(JobOptions.model_json_schema(by_alias=True), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
