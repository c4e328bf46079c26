"""What the "Train as job" dialog may offer: engines, and the admin's volumes, queues, priority classes.

The admin describes these once in workspace.yaml (``dlw_magic.workspace``). When it cannot be loaded,
the lists are empty and ``reason`` says why, so the dialog shows that instead of guessing. What the
active backend cannot run is left out, with a line in ``unavailable`` saying why: the local backend runs
plain processes, so it has no Kubernetes engines, no queues and no catalogue volumes.
"""

from __future__ import annotations

from typing import Any

from ..engines import names
from ..errors import DLWError
from ..spec.model import DNS1123_LABEL, JOB_NAME_MAX, JOB_NAME_RULE, TAG_PATTERN, TAG_RULE

# The spec's rules the dialog checks as the user types (the server checks them again on submit).
RULES = {
    "name": {"pattern": DNS1123_LABEL.pattern, "maxLength": JOB_NAME_MAX, "rule": JOB_NAME_RULE},
    "tag": {"pattern": TAG_PATTERN, "maxLength": 63, "rule": TAG_RULE},
}

# Per backend: field -> why the dialog does not offer it.
UNAVAILABLE: dict[str, dict[str, str]] = {
    "local": {
        "engines": "the local backend runs every job as local processes (engine job); "
                   "the other engines need Kubernetes",
        "queues": "queues are Kubernetes (Volcano/Kueue) queues; the local backend orders jobs by priority",
        "volumes": "the local backend does not mount catalogue volumes; read data from a local path",
    },
}


def job_options(backend: str = "kubernetes", workspace: str | None = None) -> dict[str, Any]:
    """The dialog's choices on ``backend`` from ``workspace`` (a path; default: DLW_WORKSPACE_CONFIG or the
    shipped one)."""
    unavailable = UNAVAILABLE.get(backend, {})
    engines = names()
    result: dict[str, Any] = {
        "engines": engines[:1] if "engines" in unavailable else engines, "volumes": [], "queues": [],
        "priorityClasses": [], "profiles": [], "queueSystem": None, "reason": None,
        "backend": backend, "unavailable": unavailable, "rules": RULES,
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
    if "volumes" not in unavailable:
        result["volumes"] = [
            {"name": v.name, "type": v.type, "mountPath": v.mount_path, "readOnly": v.read_only,
             "description": v.description}
            for v in ws.volumes
            if v.type != "home"  # the home is the notebook's own volume, never a job's choice
        ]
    if "queues" not in unavailable:
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
