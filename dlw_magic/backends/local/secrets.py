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


MAX_SECRET_BYTES = 1 << 20


def read_secret(base: Path, secret: str, key: str) -> str:
    """The value of ``secret``/``key`` (one trailing newline dropped). A FIFO or device is refused without
    blocking, and an error never carries the value (a value that is not UTF-8 is named, not echoed)."""
    import os
    import stat

    path = secret_path(base, secret, key)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as err:
        raise DLWError(f"secrets: {secret}/{key}: cannot read {path} ({err.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DLWError(f"secrets: {secret}/{key}: {path} is not a regular file")
        if st.st_size > MAX_SECRET_BYTES:
            raise DLWError(f"secrets: {secret}/{key}: {path} is over {MAX_SECRET_BYTES} bytes")
        data = f.read(MAX_SECRET_BYTES + 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise DLWError(f"secrets: {secret}/{key}: the value is not UTF-8 text (environment variables "
                       "hold text)") from None
    return text.rstrip("\n")
