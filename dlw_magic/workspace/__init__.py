"""The admin's workspace description (``workspace.yaml``): load it, validate it, look things up.

Stable API (used by the hub, the job renderer and ``dlw admin``)::

    ws = load_workspace()                # path arg, else $DLW_WORKSPACE_CONFIG, else the shipped default
    ws.volume("datasets")                # VolumeDef; DLWError "volume 'x' is not in the admin's catalogue (known: ...)"
    ws.namespace_for("alice")            # "dlw-alice" (per-user scheme) or the shared namespace
    ws.priority_values                   # {"high": 1000, ...}; ws.default_priority_class
    ws.queues, ws.queue("gpu"), ws.default_queue, ws.queue_system ("volcano" | "kueue" | "none")
    ws.images.registry                   # where image builds push
    ws.profiles_for(groups), ws.profile(name), ws.default_profile, ws.home, ws.gpu_quota(user, groups)
    pod_volume(vol, user, mount_path=None, read_only=None) -> (volume, volumeMount)   # camelCase dicts
    pod_volumes(ws, refs, user) -> (volumes, volumeMounts)                            # names or VolumeRefs
    check_workspace(path) -> list[str]   # every error, one line each (for ``dlw admin check``)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from ..errors import DLWError
from ..spec.validation import error_lines, load_yaml, read_text
from .model import (
    BlobAuth,
    BlobCache,
    BlobVolume,
    DatasetVolume,
    HomeVolume,
    HostPathVolume,
    PriorityClassDef,
    Profile,
    Queue,
    VolumeDef,
    Workspace,
)
from .names import safe_name
from .volumes import POD_GID, POD_UID, home_claim_name, pod_volume, pod_volume_name, pod_volumes

__all__ = [
    "BlobAuth", "BlobCache", "BlobVolume", "DatasetVolume", "HomeVolume", "HostPathVolume",
    "PriorityClassDef", "Profile", "Queue", "VolumeDef", "Workspace",
    "check_workspace", "default_workspace_path", "home_claim_name", "load_workspace", "parse_workspace",
    "pod_volume", "pod_volume_name", "pod_volumes", "POD_UID", "POD_GID",
    "safe_name", "workspace_json_schema", "workspace_path", "WORKSPACE_CONFIGMAP", "WORKSPACE_MOUNT",
]

ENV_VAR = "DLW_WORKSPACE_CONFIG"
# Where a pod in a DLW namespace reads the admin YAML: the ConfigMap the hub keeps there, mounted at this path.
WORKSPACE_CONFIGMAP = "dlw-workspace"
WORKSPACE_MOUNT = "/etc/dlw/workspace.yaml"


def default_workspace_path() -> Path:
    """The repo's ``hub_config/workspace.yaml`` (source checkout, editable install), else the copy
    shipped in the wheel as ``dlw_magic/_data/workspace.yaml``."""
    package = Path(__file__).resolve().parents[1]
    repo_copy = package.parent / "hub_config" / "workspace.yaml"
    if repo_copy.is_file():
        return repo_copy
    return package / "_data" / "workspace.yaml"


def workspace_path(path: str | os.PathLike[str] | None = None) -> Path:
    if path:
        return Path(path)
    env = os.environ.get(ENV_VAR)
    return Path(env) if env else default_workspace_path()


# pydantic names the discriminated-union branch in the error location (volumes[1].hostPath.path); the
# YAML has no such key, so drop it: volumes[1].path.
_UNION_TAG = re.compile(r"(volumes\[\d+\])\.(?:home|blob|hostPath|dataset)(?=[.:])")


def _validated(data: Any, origin: str) -> tuple[Workspace | None, list[str]]:
    if not isinstance(data, dict):
        return None, [f"{origin}: expected a mapping at the top level, got {type(data).__name__}"]
    try:
        return Workspace.model_validate(data), []
    except ValidationError as err:
        return None, [_UNION_TAG.sub(r"\1", line) for line in error_lines(err, origin)]


def parse_workspace(data: Any, origin: str = "workspace") -> Workspace:
    """Validate a mapping; DLWError with the first problem (``origin: field.path: message``) on failure."""
    ws, errors = _validated(data, origin)
    if ws is None:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DLWError(errors[0] + more)
    return ws


def load_workspace(path: str | os.PathLike[str] | None = None) -> Workspace:
    """Load and validate the admin YAML; DLWError naming the file and field path on the first problem."""
    p = workspace_path(path)
    return parse_workspace(load_yaml(read_text(p, "workspace config"), str(p)), str(p))


def check_workspace(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Every problem in the admin YAML as ``file: field.path: message`` (empty when valid)."""
    p = workspace_path(path)
    return _validated(load_yaml(read_text(p, "workspace config"), str(p)), str(p))[1]


def workspace_json_schema() -> str:
    schema = Workspace.model_json_schema(by_alias=True)
    schema["$id"] = "https://dlw.dev/schemas/workspace-v1.json"
    schema["title"] = "DLW Workspace (dlw/v1)"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"
