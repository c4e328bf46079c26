"""An authenticator for a hub that serves one machine (``dlw hub``).

The hub listens on 127.0.0.1 only. Anyone who can read ``<data dir>/password`` (mode 0600, created on
first start, or set ``DLW_HUB_PASSWORD``) may log in as one of the allowed users (default: the OS user
who started the hub). All notebook servers run as that same OS user: this is a convenience for one
person (or a few trusted people sharing a workstation), not isolation between users. For a team, deploy
the Kubernetes hub with a real identity provider (docs/deploy.md).
"""

from __future__ import annotations

import hmac
import os
import secrets
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from .. import settings


def ensure_password(path: Path) -> str:
    """The hub password: $DLW_HUB_PASSWORD, else the file's content, else a new random one saved 0600."""
    env = settings.current().hub_password
    if env:
        return env
    if path.is_file():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(18)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(password + "\n")
    return password


class LocalPasswordAuthenticator(Authenticator):
    """User name from the allowed list + the one machine-local password."""

    password_file = Unicode("", config=True, help="File holding the shared password (created 0600 if missing).")

    async def authenticate(self, handler, data):
        username = (data or {}).get("username", "")
        given = (data or {}).get("password", "")
        if not username or not self.password_file:
            return None
        expected = ensure_password(Path(self.password_file))
        if not hmac.compare_digest(given.encode(), expected.encode()):
            self.log.warning("dlw hub: wrong password for %r", username)
            return None
        return username  # allowed_users is checked by JupyterHub (check_allowed)
