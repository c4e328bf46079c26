"""Backends by name, imported only when used (papermill-style registry).

``local`` runs jobs as processes on this machine (the embedded default); ``kubernetes`` submits the
rendered manifests to a cluster. A new backend registers here; nothing else changes.
"""

from __future__ import annotations

import importlib

from ..errors import DLWError
from .base import Backend, GpuInfo, JobInfo, JobState, LogChunk, PreparedJob

__all__ = ["Backend", "GpuInfo", "JobInfo", "JobState", "LogChunk", "PreparedJob", "get_backend"]

BACKENDS: dict[str, str] = {
    "local": "dlw_magic.backends.local:LocalBackend",
    "kubernetes": "dlw_magic.backends.kubernetes:KubernetesBackend",
}

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
            raise DLWError(f"backend {name!r} is unknown (choose from {', '.join(BACKENDS)})")
        module, cls = target.split(":")
        try:
            backend_cls = getattr(importlib.import_module(module), cls)
        except ImportError as err:
            raise DLWError(
                f"backend {name!r} needs a missing package: {err.name} (pip install 'dlw-magic[{name}]')"
            ) from None
        _cache[key] = backend_cls(**options)
    return _cache[key]
