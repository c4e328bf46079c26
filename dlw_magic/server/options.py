"""What the "Train as job" dialog may offer: engines, and the admin's volumes, queues, priority classes.

The admin describes these once in workspace.yaml (``dlw_magic.workspace``). When it cannot be loaded,
the lists are empty and ``reason`` says why, so the dialog shows that instead of guessing.
"""

from __future__ import annotations

from typing import Any

from ..engines import names
from ..errors import DLWError


def job_options(workspace: str | None = None) -> dict[str, Any]:
    """The dialog's choices from ``workspace`` (a path; default: DLW_WORKSPACE_CONFIG or the shipped one)."""
    result: dict[str, Any] = {
        "engines": names(), "volumes": [], "queues": [], "priorityClasses": [],
        "profiles": [], "queueSystem": None, "reason": None,
    }
    try:
        from ..workspace import load_workspace
    except ImportError:
        result["reason"] = "this DLW version has no workspace support (dlw_magic.workspace)"
        return result
    try:
        ws = load_workspace(workspace)
    except DLWError as err:
        result["reason"] = str(err)
        return result
    result["queueSystem"] = ws.queue_system
    result["volumes"] = [
        {"name": v.name, "type": v.type, "mountPath": v.mount_path, "readOnly": v.read_only,
         "description": v.description}
        for v in ws.volumes
        if v.type != "home"  # the home is the notebook's own volume, never a job's choice
    ]
    result["queues"] = [{"name": q.name, "default": q.default, "gpus": q.gpus} for q in ws.queues]
    result["priorityClasses"] = [
        {"name": p.name, "value": p.value, "default": p.default, "description": p.description}
        for p in ws.priority_classes
    ]
    result["profiles"] = [
        {"name": p.name, "displayName": p.display_name, "gpus": p.gpus, "gpuType": p.gpu_type}
        for p in ws.profiles
    ]
    return result
