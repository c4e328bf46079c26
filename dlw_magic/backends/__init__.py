"""Backends by name, imported only when used (papermill-style registry).

``local`` runs jobs as processes on this machine (the embedded default); ``kubernetes`` submits the
rendered manifests to a cluster. Another package adds one with an entry point in the
``dlw_magic.backends`` group (``name = "mypkg.backend:MyBackend"``, a ``Backend`` subclass); built-ins
keep their names.
"""

from __future__ import annotations

import importlib

from ..errors import DLWError
from .base import Backend, GpuInfo, JobInfo, JobState, LogChunk, PreparedJob

__all__ = ["Backend", "GpuInfo", "JobInfo", "JobState", "LogChunk", "PreparedJob", "backend_names", "get_backend"]

BACKENDS: dict[str, str] = {
    "local": "dlw_magic.backends.local:LocalBackend",
    "kubernetes": "dlw_magic.backends.kubernetes:KubernetesBackend",
}
ENTRY_POINT_GROUP = "dlw_magic.backends"


def _targets() -> dict[str, str]:
    """Built-ins, then what installed packages register (a built-in keeps its name)."""
    from importlib.metadata import entry_points  # ~20 ms to import and scan: only for a name not built in

    found = dict(BACKENDS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)
    return found


def backend_names() -> list[str]:
    return list(_targets())


_cache: dict[tuple[str, tuple], Backend] = {}


def default_backend_name() -> str:
    """DLW_BACKEND wins; inside a cluster pod (or with a kubeconfig named by DLW_KUBECONFIG) use Kubernetes."""
    from ..settings import current

    return current().default_backend


def get_backend(name: str | None = None, **options: str) -> Backend:
    name = name or default_backend_name()
    key = (name, tuple(sorted(options.items())))
    if key not in _cache:
        target = BACKENDS.get(name)
        if target is None:
            targets = _targets()
            target = targets.get(name)
            if target is None:
                raise DLWError(f"backend {name!r} is unknown (choose from {', '.join(targets)})")
        module, cls = target.split(":")
        try:
            backend_cls = getattr(importlib.import_module(module), cls)
        except ImportError as err:
            raise DLWError(
                f"backend {name!r} needs a missing package: {err.name} (pip install 'dlw-magic[{name}]')"
            ) from None
        _cache[key] = backend_cls(**options)
    return _cache[key]
