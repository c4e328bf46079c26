"""Volumes a job may mount: only the admin's catalogue (translated by ``dlw_magic.workspace``).

The translation (claim names, per-user hostPath folders, read-only rules) belongs to the workspace
package so that a notebook and a job mount ``datasets`` the same way; this module only asks it.
"""

from __future__ import annotations

from typing import Any

from ..errors import DLWError
from ..workspace import home_claim_name, pod_volumes
from .context import RenderContext


def catalogue_volumes(ctx: RenderContext) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    if not ctx.spec.volumes:
        return [], []
    return pod_volumes(ctx.workspace, ctx.spec.volumes, ctx.prepared.user)


def home_shared(ctx: RenderContext) -> bool:
    """Can a job pod mount the user's home while the notebook holds it? Only a ReadWriteMany claim can."""
    home = ctx.workspace.home if ctx.workspace is not None else None
    return home is not None and "ReadWriteMany" in home.access_modes


def home_volume(ctx: RenderContext) -> tuple[dict[str, Any], str]:
    """The user's home PVC as a pod volume (no mount: callers mount sub folders), and its mount path."""
    home = ctx.workspace.home if ctx.workspace is not None else None
    if home is None:
        raise DLWError(f"job {ctx.name}: the workspace defines no home volume to ship the code through")
    return {"name": "dlw-home", "persistentVolumeClaim": {"claimName": home_claim_name(home, ctx.prepared.user)}}, (
        home.mount_path
    )
