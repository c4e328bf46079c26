"""jupyterhub-idle-culler for both hubs (Kubernetes and ``dlw hub``), timed by the admin YAML."""

from __future__ import annotations

from typing import Any

from ..workspace import Workspace


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
    service, role = culler_service(ws)
    c.JupyterHub.services = [*services, service]
    roles = list(c.JupyterHub.load_roles) if "load_roles" in c.JupyterHub else []
    c.JupyterHub.load_roles = [*roles, role]
