"""Whether ``dlw hub`` runs each user's server as a system account of their own, and whether it can.

A hub run as root for more than one user isolates them by default (``dlw-<name>`` accounts, private
homes); for one user, the usual case on a workstation, the server runs as the hub's own user. Before a
hub with system accounts starts, every file a user's server needs (the interpreter, the standard
library, site-packages, ``jupyterhub-singleuser``, the DLW package, its lab extension, the workspace
YAML) must be readable by other accounts: otherwise each server would die at spawn with a permission
error deep in a log, so the hub refuses at once with the first path and how to fix it.
"""

from __future__ import annotations

import os
import stat
import sys
import sysconfig
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..errors import DLWError
from ..venv import find_command

LAB_EXTENSION = "dlw-labextension"


def choose_system_users(flag: bool | None, users: list[str], is_root: bool, hub_user: str) -> tuple[bool, str]:
    """(system accounts on?, the one line ``dlw hub`` prints about it). ``flag``: --[no-]system-users or None."""
    on = "each user's server runs as a system account of their own (dlw-NAME, private home)"
    off = f"every user's server runs as {hub_user}, the hub's own user"
    if flag is True:
        if not is_root:
            raise DLWError("--system-users needs the hub to run as root (it creates the dlw-NAME accounts)")
        return True, f"{on}: --system-users"
    if flag is False:
        return False, f"{off}: --no-system-users"
    if not is_root:
        return False, f"{off}: not root, so no system accounts"
    if len(users) > 1:
        return True, f"{on}: root hub for {len(users)} users (--no-system-users to turn off)"
    return False, f"{off}: one user, nobody to isolate from (--system-users to turn on)"


def paths_a_server_needs(workspace: str) -> list[tuple[Path, bool]]:
    """(path, whether everything under it must be readable too), in the order a server meets them."""
    import dlw_magic

    needed: list[tuple[Path, bool]] = [(Path(sys.executable), False), (Path(os.__file__).parent, False)]
    for key in ("purelib", "platlib"):
        needed.append((Path(sysconfig.get_paths()[key]), False))
    singleuser = find_command("jupyterhub-singleuser")
    if singleuser:
        needed.append((Path(singleuser), False))
    needed.append((Path(dlw_magic.__file__).parent, True))
    lab = Path(sys.prefix) / "share" / "jupyter" / "labextensions" / LAB_EXTENSION
    if lab.exists():
        needed.append((lab, True))
    needed.append((Path(workspace), False))
    return list(dict.fromkeys(needed))


def check_readable_by_others(needed: Iterable[tuple[Path, bool]]) -> None:
    """Refuse, in one line naming the first path other accounts cannot reach, with the two ways out."""
    for path, deep in needed:
        problem = first_unreadable(path, deep)
        if problem is not None:
            where, mode = problem
            raise DLWError(
                f"system accounts cannot read {where} (each user's server needs it): run `chmod {mode} {where}`, "
                "or start with --no-system-users"
            )


def first_unreadable(path: Path, deep: bool = False) -> tuple[Path, str] | None:
    """The first of ``path``'s folders, itself or (``deep``) what is under it that others cannot use, with the
    chmod that fixes it; None when all is readable. A folder's direct entries are checked too (a pip run
    under umask 077 leaves every package private)."""
    for candidate in dict.fromkeys([Path(os.path.abspath(path)), path.resolve()]):
        for folder in reversed(candidate.parents):
            if not _mode(folder) & stat.S_IXOTH:
                return folder, "o+x"
        problem = _check_entry(candidate)
        if problem:
            return problem
        if candidate.is_dir():
            for entry in _entries(candidate, deep):
                problem = _check_entry(entry)
                if problem:
                    return problem
    return None


def _mode(path: Path) -> int:
    try:
        return path.stat().st_mode
    except OSError:  # a broken link or a vanished file is no permission problem of ours
        return 0o777


def _check_entry(path: Path) -> tuple[Path, str] | None:
    mode = _mode(path)
    if stat.S_ISDIR(mode):
        return None if mode & stat.S_IROTH and mode & stat.S_IXOTH else (path, "o+rx")
    if mode & stat.S_IXUSR:  # the interpreter, scripts: they are run, so others need x as well
        return None if mode & stat.S_IROTH and mode & stat.S_IXOTH else (path, "o+rx")
    return None if mode & stat.S_IROTH else (path, "o+r")


def _entries(folder: Path, deep: bool) -> Iterator[Path]:
    if not deep:
        yield from sorted(p for p in folder.iterdir() if p.name != "__pycache__")
        return
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(dirs + files):
            yield Path(root) / name
