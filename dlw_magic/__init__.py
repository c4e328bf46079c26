"""DLW: promote a Jupyter notebook into a training job (local processes or Kubernetes).

Entry points for Jupyter live here and import their module only when used, so ``dlw`` starts fast.
"""

from __future__ import annotations

# typing costs a job's start ~13 ms to import; the names are for the type checker only (mypy reads
# any ``if TYPE_CHECKING:`` block).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__version__ = "0.1.0"
__all__ = ["checkpoint", "log_metrics"]


def __getattr__(name: str) -> Any:
    """``dlw_magic.log_metrics`` and ``dlw_magic.checkpoint`` for job code, imported on first use."""
    if name == "log_metrics":
        from .metrics import log_metrics

        return log_metrics
    if name == "checkpoint":
        import importlib

        return importlib.import_module(".checkpoint", __name__)
    raise AttributeError(f"module 'dlw_magic' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext dlw_magic``: registers ``%dlw`` and ``%%dlw``."""
    from .magics import DLWMagics

    ipython.register_magics(DLWMagics)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "dlw_magic.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "dlw-labextension"}]
