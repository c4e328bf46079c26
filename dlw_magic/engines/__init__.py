"""Engines by name: the built-ins plus any another package registers (papermill's and JupyterHub's way).

A package adds an engine with an entry point in the ``dlw_magic.engines`` group whose value is an
``Engine`` object (``mypkg.engine:ENGINE``). The CLI's choices, the lab extension's list, the backend's
kinds, RBAC rules and the policy gate all read this registry.
"""

from __future__ import annotations

import functools
import importlib
from importlib.metadata import entry_points

from ..engine_names import BUILTIN, ENTRY_POINT_GROUP
from ..errors import DLWError
from .base import Engine, Kind, Status

__all__ = ["Engine", "Kind", "Status", "all_engines", "for_kind", "get", "names"]


@functools.cache
def _registry() -> dict[str, Engine]:
    found: dict[str, Engine] = {name: importlib.import_module(mod).ENGINE for name, mod in BUILTIN.items()}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in found:
            continue  # a built-in keeps its name
        engine = ep.load()
        if not isinstance(engine, Engine):
            raise DLWError(f"entry point {ep.name} = {ep.value} ({ENTRY_POINT_GROUP}): not a dlw_magic Engine")
        found[ep.name] = engine
    return found


def names() -> list[str]:
    """Every engine a job may name, built-ins first."""
    return list(_registry())


def get(name: str) -> Engine:
    engine = _registry().get(name)
    if engine is None:
        raise DLWError(f"engine {name!r} is unknown (choose from {', '.join(names())})")
    return engine


def all_engines() -> list[Engine]:
    return list(_registry().values())


def for_kind(api_version: str | None, kind: str | None) -> Engine | None:
    """The engine whose job object (or a custom kind it owns) has this apiVersion and kind."""
    key = (api_version, kind)
    for engine in _registry().values():
        if engine.main.key == key:
            return engine
    for engine in _registry().values():
        if any(k.key == key and k.group for k in engine.owned):
            return engine
    return None
