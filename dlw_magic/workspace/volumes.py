"""Catalogue volume -> Kubernetes pod ``volume`` + ``volumeMount`` (camelCase dicts).

The one place that decides how a catalogue name mounts, shared by the notebook profiles (hub) and the
job renderer, so ``datasets`` means the same claim, path and read-only flag in a notebook and in a job::

    vol, mount = pod_volume(ws.volume("datasets"), "alice")
    vols, mounts = pod_volumes(ws, spec.volumes, "alice")   # VolumeRef objects or plain names

Pod volume names are ``dlw-<catalogue name>``. A request may narrow a volume (read-write -> read-only,
another mount path) but never widen it: asking read-write on a read-only catalogue entry is an error.

A per-user hostPath volume mounts the catalogue path itself with ``subPath: <user>``: the kubelet creates
that folder with the mode of the path (which the chart's ``scratch-roots`` DaemonSet makes 1777 on every
node, see ``hub.deploy``) and refuses a subPath that leaves the volume, so a symlink a pod plants in its
folder cannot lead a later pod elsewhere. No container runs as root to hand the folder over.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import DLWError
from .model import BlobVolume, DatasetVolume, HomeVolume, HostPathVolume, Workspace
from .names import safe_name

AnyVolume = HomeVolume | BlobVolume | HostPathVolume | DatasetVolume
# The user notebooks and jobs run as (KubeSpawner uid/fs_gid; the DLW images' USER 1000).
POD_UID = 1000
POD_GID = 100



def pod_volume_name(vol: AnyVolume) -> str:
    return f"dlw-{vol.name}"


def home_claim_name(vol: HomeVolume, user: str) -> str:
    return vol.claim_name_template.format(username=safe_name(user))


def pod_volume(
    vol: AnyVolume, user: str, *, mount_path: str | None = None, read_only: bool | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod's ``volumes[]`` entry and the container's ``volumeMounts[]`` entry for ``user``."""
    if read_only is False and vol.read_only:
        raise DLWError(f"volume {vol.name!r} is read-only in the admin's catalogue; it cannot be mounted read-write")
    ro = vol.read_only if read_only is None else read_only
    name = pod_volume_name(vol)
    source: dict[str, Any]
    if isinstance(vol, HomeVolume):
        source = {"persistentVolumeClaim": {"claimName": home_claim_name(vol, user)}}
    elif isinstance(vol, BlobVolume):
        source = {"persistentVolumeClaim": {"claimName": vol.pvc_name, "readOnly": ro}}
    elif isinstance(vol, HostPathVolume):
        source = {"hostPath": {"path": vol.path, "type": vol.host_path_type}}
    elif isinstance(vol, DatasetVolume):
        if vol.nfs is not None:
            source = {"nfs": {"server": vol.nfs.server, "path": vol.nfs.path, "readOnly": ro}}
        else:
            source = {"persistentVolumeClaim": {"claimName": vol.claim_name, "readOnly": ro}}
    else:  # pragma: no cover - the union is closed
        raise DLWError(f"volume {vol.name!r}: unsupported type")
    mount = {"name": name, "mountPath": mount_path or vol.mount_path, "readOnly": ro}
    if isinstance(vol, HostPathVolume) and vol.per_user:
        mount["subPath"] = safe_name(user)
    return {"name": name, **source}, mount


def pod_volumes(
    ws: Workspace, refs: Iterable[Any], user: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Volumes and mounts for catalogue references: names, or objects with name/mount_path/read_only
    (the job spec's ``VolumeRef``). Unknown names raise the catalogue's DLWError."""
    volumes: list[dict[str, Any]] = []
    mounts: list[dict[str, Any]] = []
    for ref in refs:
        if isinstance(ref, str):
            vol, mount = pod_volume(ws.volume(ref), user)
        else:
            vol, mount = pod_volume(
                ws.volume(ref.name), user,
                mount_path=getattr(ref, "mount_path", None), read_only=getattr(ref, "read_only", None),
            )
        if any(v["name"] == vol["name"] for v in volumes):
            continue
        volumes.append(vol)
        mounts.append(mount)
    return volumes, mounts
