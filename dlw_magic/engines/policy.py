"""The last gate before anything reaches the API server: refuse what a user's job may never do.

Engines only build safe objects, but the workspace file, a future engine or a hand-edited object could
slip something in; this walks every pod template of the rendered objects and refuses, in one line, a
privileged container, host namespaces, a hostPath outside the admin's allowlist, a secret outside a
``secretKeyRef``, or an object outside the user's namespace.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from typing import Any

from ..errors import DLWError
from . import for_kind

# Volume sources a job may use; anything else (secret, hostPath outside the allowlist, csi inline...) is refused.
ALLOWED_VOLUME_SOURCES = {"emptyDir", "configMap", "persistentVolumeClaim", "hostPath", "nfs"}


def pod_specs(obj: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, pod spec) for every pod template inside an object: its engine knows where they live;
    for any other kind, every mapping with ``containers`` is taken for a pod spec (nothing slips by)."""
    if obj.get("apiVersion") == "v1" and obj.get("kind") == "Pod":
        yield "spec", obj.get("spec") or {}
        return
    engine = for_kind(obj.get("apiVersion"), obj.get("kind"))
    if engine is not None:
        yield from engine.pod_specs(obj)
    else:
        yield from _anywhere(obj.get("spec"), "spec")


def _anywhere(value: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if isinstance(value, dict):
        if isinstance(value.get("containers"), list):
            yield where, value
            return
        for key, item in value.items():
            yield from _anywhere(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _anywhere(item, f"{where}[{i}]")


def _under(path: str, prefixes: list[str]) -> bool:
    path = posixpath.normpath(path)
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)


def check_objects(
    objects: list[dict[str, Any]], namespace: str, host_path_allowlist: list[str],
    secret_volumes: frozenset[str] = frozenset(),
) -> None:
    """Raise DLWError for the first thing no job may do. ``secret_volumes``: Secrets DLW itself mounts
    (the admin's registry credential in a build Job); a user's job gets none."""
    for obj in objects:
        where = f"{obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns != namespace:
            raise DLWError(f"{where}: namespace {ns!r} refused: jobs run only in your namespace {namespace!r}")
        for path, pod in pod_specs(obj):
            _check_pod(f"{where} {path}", pod, host_path_allowlist, secret_volumes)


def _check_pod(where: str, pod: dict[str, Any], allowlist: list[str], secret_volumes: frozenset[str]) -> None:
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(key):
            raise DLWError(f"{where}.{key}: refused: jobs may not share the node's {key[4:]} namespace")
    for vol in pod.get("volumes") or []:
        source = next((k for k in vol if k != "name"), None)
        if source == "secret" and vol["secret"].get("secretName") in secret_volumes:
            continue
        if source not in ALLOWED_VOLUME_SOURCES:
            raise DLWError(
                f"{where}.volumes[{vol.get('name')}]: {source} volumes are refused "
                "(only catalogue volumes; secrets only as secretKeyRef)"
            )
        if source == "hostPath" and not _under(vol["hostPath"].get("path", ""), allowlist):
            allowed = ", ".join(allowlist) or "none"
            raise DLWError(
                f"{where}.volumes[{vol.get('name')}]: hostPath {vol['hostPath'].get('path')} refused: "
                f"not under the admin's hostPathAllowlist ({allowed})"
            )
    for container in [*(pod.get("initContainers") or []), *(pod.get("containers") or [])]:
        name = f"{where}.containers[{container.get('name')}]"
        sc = container.get("securityContext") or {}
        if sc.get("privileged"):
            raise DLWError(f"{name}.securityContext.privileged: refused: no privileged containers")
        if sc.get("allowPrivilegeEscalation"):
            raise DLWError(f"{name}.securityContext.allowPrivilegeEscalation: refused")
        if (sc.get("capabilities") or {}).get("add"):
            raise DLWError(f"{name}.securityContext.capabilities.add: refused: no added capabilities")
        for src in container.get("envFrom") or []:
            if "secretRef" in src:
                raise DLWError(f"{name}.envFrom.secretRef: refused: name each secret key with secretKeyRef")
