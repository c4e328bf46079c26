"""Job output folders as the Lab file browser can open them.

The local backend keeps outputs under its data directory, which is outside the server root (or hidden,
``~/.local/share/dlw``), where the file browser cannot go. Each job the lab shows gets a link
``dlw-outputs/<job name>`` in the root pointing at its output folder; the contents API follows links, so
the folder opens like any other. Deleting the job removes its link.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

LINKS_DIR = "dlw-outputs"


def output_link(root: Path, name: str, output_dir: str) -> str | None:
    """``dlw-outputs/<name>`` (made or repaired as needed), or None when it cannot be made here."""
    target = Path(output_dir)
    if not target.is_dir():
        return None
    link = root / LINKS_DIR / name
    try:
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return f"{LINKS_DIR}/{name}"
        link.parent.mkdir(exist_ok=True)
        if link.is_symlink():
            link.unlink()  # a link of an earlier job of the same name
        elif link.exists():
            return None  # the user's own file of that name: leave it alone
        link.symlink_to(target, target_is_directory=True)
    except OSError:
        return None  # a read-only root, a filesystem without links
    return f"{LINKS_DIR}/{name}"


def remove_link(root: Path, name: str) -> None:
    link = root / LINKS_DIR / name
    if link.is_symlink():
        link.unlink()
        with contextlib.suppress(OSError):
            link.parent.rmdir()  # only when it is now empty
