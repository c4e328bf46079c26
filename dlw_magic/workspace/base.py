"""Shared pieces of the workspace models: camelCase aliases, unknown keys refused, name and path checks."""

from __future__ import annotations

import posixpath

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from ..spec.model import DNS1123_LABEL


class WsModel(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def label(v: str, what: str = "name") -> str:
    if len(v) > 40 or not DNS1123_LABEL.match(v):
        raise ValueError(f"{v!r} is not a valid {what} (lowercase letters, digits and '-', at most 40 characters)")
    return v


def abs_path(v: str) -> str:
    if not v.startswith("/"):
        raise ValueError(f"{v!r} is not an absolute path")
    if ".." in v.split("/"):
        raise ValueError(f"{v!r} must not contain '..'")
    return posixpath.normpath(v)
