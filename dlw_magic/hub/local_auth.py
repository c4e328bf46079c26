"""An authenticator for a hub that serves one machine (``dlw hub``): each user has a password of their own.

The hub listens on 127.0.0.1 only. Each allowed user signs in with their own password, kept in
``<data dir>/passwords/<name>`` (folder 0700, files 0600, owned by whoever runs the hub): ``dlw hub``
creates a random one for each user on first start, and the admin hands it over or replaces it (write the
file). One password for everyone would let any user sign in as any other (as The Littlest JupyterHub, a
shared machine needs per-user credentials). ``DLW_HUB_PASSWORD`` is a convenience for a hub of one user
and is refused with several. Admin rights come only from the admin YAML's ``hub.adminUsers``.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from jupyterhub.auth import Authenticator
from traitlets import Unicode

from .. import settings
from ..errors import DLWError
from ..workspace import safe_name


def password_path(folder: Path, username: str) -> Path:
    return folder / safe_name(username)


def private_dir(path: Path) -> None:
    """``path`` made (if missing) and left 0700: never a link (whoever made one could redirect root's writes)."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        os.fchmod(fd, 0o700)
    finally:
        os.close(fd)


def ensure_password(path: Path) -> str:
    """The password in ``path``, else a new random one saved there 0600 (its folder 0700)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        password = secrets.token_urlsafe(18)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(password + "\n")
        return password
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise DLWError(f"{path}: not a regular file")
        os.fchmod(f.fileno(), 0o600)
        return f.read(4096).decode("utf-8", "replace").strip()


def ensure_passwords(folder: Path, users: list[str]) -> None:
    """Each user's password (see the module doc); refuses the one shared ``DLW_HUB_PASSWORD`` for several users."""
    if settings.current().hub_password and len(users) > 1:
        raise DLWError(
            f"DLW_HUB_PASSWORD is one password for every user: with several --user each signs in with their own "
            f"(in {folder}/NAME); unset it"
        )
    if settings.current().hub_password:
        return
    for user in users:
        ensure_password(password_path(folder, user))


class LocalPasswordAuthenticator(Authenticator):
    """User name from the allowed list + that user's own password."""

    password_dir = Unicode("", config=True, help="Folder of per-user password files (see the module doc).")

    async def authenticate(self, handler, data):
        username = self.normalize_username(str((data or {}).get("username", "")))
        given = str((data or {}).get("password", ""))
        if not username or not given or not self.password_dir or not self.check_allowed(username, None):
            return None
        env = settings.current().hub_password
        if env and len(self.allowed_users) == 1:
            expected = env
        else:
            try:
                expected = ensure_password(password_path(Path(self.password_dir), username))
            except (OSError, DLWError):
                return None
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            self.log.warning("dlw hub: wrong password for %r", username)
            return None
        return username
