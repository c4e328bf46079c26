"""Ship the job's code snapshot to the pods without building an image.

Small snapshots travel in a ConfigMap (one key per file, mapped back to its path by ``items``);
larger ones are copied by the backend into the user's home volume and mounted from there.
ConfigMaps are capped at 1 MiB by the API server, so we keep a margin.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

from .context import CodeSource, RenderContext

CONFIGMAP_MAX_BYTES = 900 * 1024
SNAPSHOT_MOUNT = "/dlw/snapshot"  # read-only copy as shipped
CODE_DIR = "/dlw/code"  # writable working copy the entrypoint runs in
HOME_JOBS_DIR = ".dlw/jobs"  # inside the user's home volume, for snapshots too big for a ConfigMap


def snapshot_files(root: Path) -> list[tuple[str, bytes]]:
    return [(p.relative_to(root).as_posix(), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


def encoded_size(root: Path) -> int:
    """Bytes the snapshot takes inside a ConfigMap (binary files grow by a third in base64)."""
    total = 0
    for rel, data in snapshot_files(root):
        total += len(rel) * 2 + (len(data) if _is_text(data) else (len(data) + 2) // 3 * 4)
    return total


def _is_text(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return b"\0" not in data


def _key(index: int, rel: str) -> str:
    # ConfigMap keys allow [-._a-zA-Z0-9] only and no '/': number them and keep the base name readable.
    base = re.sub(r"[^-._a-zA-Z0-9]", "_", rel.rsplit("/", 1)[-1])[:200]
    return f"f{index:04d}.{base}"


def code_source(root: Path, name: str, fits: bool) -> CodeSource:
    if not fits:
        return CodeSource(home_sub_path=f"{HOME_JOBS_DIR}/{name}/code")
    items = [{"key": _key(i, rel), "path": rel} for i, (rel, _) in enumerate(snapshot_files(root))]
    return CodeSource(config_map=f"{name}-code", config_map_items=items)


def config_map(ctx: RenderContext) -> dict[str, Any] | None:
    """The ConfigMap holding the snapshot, or None when the code ships through the home volume."""
    if ctx.code.config_map is None:
        return None
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    files = dict(snapshot_files(ctx.prepared.snapshot_dir))
    for item in ctx.code.config_map_items:
        content = files[item["path"]]
        if _is_text(content):
            data[item["key"]] = content.decode("utf-8")
        else:
            binary[item["key"]] = base64.b64encode(content).decode("ascii")
    cm: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": ctx.metadata(ctx.code.config_map),
        "immutable": True,  # a snapshot never changes; also spares the kubelet from watching it
        "data": data,
    }
    if binary:
        cm["binaryData"] = binary
    return cm
