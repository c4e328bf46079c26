"""DLW: promote a Jupyter notebook into a training job (local processes or Kubernetes).

Entry points for Jupyter live here and import their module only when used, so ``dlw`` starts fast.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext dlw_magic``: registers ``%dlw`` and ``%%dlw``."""
    from .magics import DLWMagics

    ipython.register_magics(DLWMagics)


def _jupyter_server_extension_points() -> list[dict[str, str]]:
    return [{"module": "dlw_magic.server"}]


def _jupyter_labextension_paths() -> list[dict[str, str]]:
    return [{"src": "labextension", "dest": "dlw-labextension"}]
