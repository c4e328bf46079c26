"""The admin YAML as the hub sees it: loaded once, re-read when the file changes; users' group names.

Light on purpose (no KubeSpawner import): the local hub uses it too.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from ..workspace import Workspace, load_workspace, workspace_path


@functools.lru_cache(maxsize=8)
def _load(path: str, mtime: float) -> Workspace:
    return load_workspace(path)


_CHECKED: dict[str | None, tuple[float, Workspace]] = {}
RECHECK_SECONDS = 2.0


def cached_workspace(path: str | None = None) -> Workspace:
    """The admin YAML, re-read when the file changes; the hub calls this for every spawn, so the file's
    mtime is looked at most every RECHECK_SECONDS."""
    now = time.monotonic()
    hit = _CHECKED.get(path)
    if hit is not None and now - hit[0] < RECHECK_SECONDS:
        return hit[1]
    p = workspace_path(path)
    try:
        mtime = p.stat().st_mtime
    except FileNotFoundError:
        mtime = 0.0  # load_workspace names the missing file
    ws = _load(str(p), mtime)
    _CHECKED[path] = (now, ws)
    return ws


def user_groups(user: Any) -> list[str]:
    return [getattr(g, "name", g) for g in (getattr(user, "groups", None) or [])]
