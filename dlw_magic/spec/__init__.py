"""Job spec: model, loading from YAML with field-path errors, JSON Schema export."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .model import Build, Resources, SecretRef, Source, TrainingJob, VolumeRef
from .validation import load_yaml, read_text, validate

__all__ = [
    "Build", "Resources", "SecretRef", "Source", "TrainingJob", "VolumeRef",
    "load_spec", "parse_spec", "spec_json_schema",
]


def parse_spec(data: Any, origin: str = "spec") -> TrainingJob:
    """Validate a mapping (already parsed YAML) into a TrainingJob."""
    return validate(TrainingJob, data, origin)


def load_spec(path: str | Path) -> TrainingJob:
    """Load a job YAML; relative source paths are resolved against the YAML file's folder."""
    p = Path(path)
    spec = parse_spec(load_yaml(read_text(p, "job spec"), str(p)), str(p))
    base = p.resolve().parent
    src = spec.source
    if src.workdir is None:
        src.workdir = str(base)
    elif not Path(src.workdir).is_absolute():
        src.workdir = str((base / src.workdir).resolve())
    return spec


def spec_json_schema() -> str:
    schema = TrainingJob.model_json_schema(by_alias=True)
    schema["$id"] = "https://dlw.dev/schemas/trainingjob-v1.json"
    schema["title"] = "DLW TrainingJob (dlw/v1)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
