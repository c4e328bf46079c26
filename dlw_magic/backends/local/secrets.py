"""Where the local runner finds ``spec.secrets`` values: ``<secrets dir>/<secret>/<key>``, never elsewhere.

The spec already allows only Kubernetes names (``SecretRef``); this is the second lock: a reference
that would leave the secrets folder (``..``, a symlink) is refused here too.
"""

from __future__ import annotations

from pathlib import Path

from ...errors import DLWError


def secret_path(base: Path, secret: str, key: str) -> Path:
    """The file holding ``secret``/``key`` under ``base``; DLWError when the reference leaves ``base``."""
    if not secret or not key or "/" in secret or "/" in key or secret in (".", "..") or key in (".", ".."):
        raise DLWError(f"secrets: {secret!r}/{key!r} is not a secret name and key")
    root = base.resolve()
    path = (root / secret / key).resolve()
    if root not in path.parents:
        raise DLWError(f"secrets: {secret}/{key} is outside the secrets folder {root}")
    return path
