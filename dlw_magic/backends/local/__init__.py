"""The embedded default: a local job runner over SQLite and detached supervisor processes."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .backend import LocalBackend, data_dir

__all__ = ["LocalBackend", "data_dir"]


def __getattr__(name: str) -> Any:
    """``LocalBackend`` and ``data_dir`` on first use: the job runner imports this package's other modules,
    and starts ~40 ms sooner without the backend's."""
    if name in __all__:
        from . import backend

        return getattr(backend, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
