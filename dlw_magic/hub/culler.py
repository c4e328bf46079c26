"""The hub services that stop notebook servers, for both hubs (Kubernetes and ``dlw hub``), timed by the
admin YAML: jupyterhub-idle-culler (browser activity) and DLW's GPU-idle culler (``gpu_culler``)."""

from __future__ import annotations

from typing import Any

from ..workspace import Workspace
from .gpu_culler import SCOPES, SERVICE_NAME, check_every


def culler_service(ws: Workspace) -> tuple[dict[str, Any], dict[str, Any]]:
    """jupyterhub-idle-culler as a hub service and its role. It stops notebook servers only: jobs are
    separate Kubernetes objects (or detached local processes), so culling never ends a training run."""
    import sys

    service = {
        "name": "dlw-idle-culler",
        "command": [
            sys.executable, "-m", "jupyterhub_idle_culler",
            f"--timeout={ws.hub.idle_timeout}", f"--cull-every={ws.hub.cull_every}",
        ],
    }
    role = {
        "name": "dlw-idle-culler",
        "scopes": ["list:users", "read:users:activity", "read:servers", "delete:servers"],
        "services": ["dlw-idle-culler"],
    }
    return service, role


def add_culler(c: Any, ws: Workspace) -> None:
    """Add the culler unless the deployment already runs one (z2jh's ``cull.enabled``)."""
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    if any("cull" in s.get("name", "") for s in services):
        return
    _add_service(c, *culler_service(ws))


def _add_service(c: Any, service: dict[str, Any], role: dict[str, Any]) -> None:
    c.JupyterHub.services = [*(c.JupyterHub.services if "services" in c.JupyterHub else []), service]
    c.JupyterHub.load_roles = [*(c.JupyterHub.load_roles if "load_roles" in c.JupyterHub else []), role]


def gpu_culler_service(ws: Workspace, ws_path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The GPU-idle culler (``dlw_magic.hub.gpu_culler``) as a hub service and its role: list the servers
    and their proxy targets, ask each for its GPUs (``access:servers``), stop idle ones."""
    import sys

    service = {
        "name": SERVICE_NAME,
        "command": [
            sys.executable, "-m", "dlw_magic.hub.gpu_culler", f"--workspace={ws_path}",
            f"--every={check_every(ws.hub.gpu_idle_timeout or 0, ws.hub.gpu_idle_warning)}",
        ],
    }
    return service, {"name": SERVICE_NAME, "scopes": list(SCOPES), "services": [SERVICE_NAME]}


def add_gpu_culler(c: Any, ws: Workspace, ws_path: str) -> None:
    """Add the GPU-idle culler when ``hub.gpuIdleTimeout`` is set (z2jh's culler does not replace it)."""
    services = list(c.JupyterHub.services) if "services" in c.JupyterHub else []
    if not ws.hub.gpu_idle_timeout or any(s.get("name") == SERVICE_NAME for s in services):
        return
    _add_service(c, *gpu_culler_service(ws, ws_path))
