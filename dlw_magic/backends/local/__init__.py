"""The embedded default: a local job runner over SQLite and detached supervisor processes."""

from __future__ import annotations

from .backend import LocalBackend, data_dir

__all__ = ["LocalBackend", "data_dir"]
