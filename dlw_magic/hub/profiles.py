"""Workspace profiles -> KubeSpawner ``profile_list`` entries (plain dicts, no cluster needed).

Each profile becomes one entry with ``kubespawner_override`` (image, CPU/memory, node selector on
``nvidia.com/gpu.product``, GPU tolerations, the admin's extra env) and a ``gpus`` profile option whose
choices set the GPU limit. Volumes are per user, so the hub adds them with a callable, and the DLW_* env is
derived from the finished spawner settings (see ``kube``), so it always says what the pod really gets.
"""

from __future__ import annotations

from typing import Any

from ..workspace import Profile, Workspace

GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def gpu_label(n: int) -> str:
    return "no GPU" if n == 0 else f"{n} GPU" + ("s" if n > 1 else "")


def gpu_override(profile: Profile, n: int) -> dict[str, Any]:
    """What choosing ``n`` GPUs changes: the extended-resource limit."""
    return {"extra_resource_limits": {profile.gpu_resource: str(n)}} if n else {}


def profile_override(ws: Workspace, profile: Profile) -> dict[str, Any]:
    """Everything a profile sets on the spawner except per-user volumes."""
    override: dict[str, Any] = {"image": profile.image}
    if profile.env:
        override["environment"] = dict(profile.env)
    for trait, value in (
        ("cpu_guarantee", profile.cpu.guarantee),
        ("cpu_limit", profile.cpu.limit),
        ("mem_guarantee", profile.memory.guarantee),
        ("mem_limit", profile.memory.limit),
    ):
        if value is not None:
            # KubeSpawner wants floats for CPU and bytes for memory (its "4G" means 4GiB, "4Gi" is refused).
            override[trait] = cpu_float(value) if trait.startswith("cpu") else quantity_bytes(value)
    selector = dict(profile.node_selector)
    if profile.gpu_type:
        selector[GPU_PRODUCT_LABEL] = profile.gpu_type
    if selector:
        override["node_selector"] = selector
    tolerations = list(profile.tolerations)
    if any(profile.gpus) and GPU_TOLERATION not in tolerations:
        tolerations.append(GPU_TOLERATION)
    if tolerations:
        override["tolerations"] = tolerations
    return override


def cpu_float(q: str) -> float:
    return float(q[:-1]) / 1000 if q.endswith("m") else float(q)


_SUFFIX = {
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
    "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18, "m": 10**-3,
}


def quantity_bytes(q: str) -> int:
    """A Kubernetes quantity (already validated by the workspace model) as an integer: ``4Gi`` -> 4294967296."""
    for suffix in sorted(_SUFFIX, key=len, reverse=True):
        if q.endswith(suffix) and not q[: -len(suffix)].lower().endswith("e"):
            return int(float(q[: -len(suffix)]) * _SUFFIX[suffix])
    return int(float(q))


def profile_entry(ws: Workspace, profile: Profile) -> dict[str, Any]:
    """One KubeSpawner profile_list entry (without volumes)."""
    entry: dict[str, Any] = {
        "slug": profile.name,
        "display_name": profile.display_name,
        "description": profile.description or _describe(profile),
        "default": profile is ws.default_profile,
        "kubespawner_override": profile_override(ws, profile),
    }
    if len(profile.gpus) == 1:  # nothing to choose: the one count is part of the profile, not a one-entry select
        entry["kubespawner_override"].update(gpu_override(profile, profile.gpus[0]))
        return entry
    entry["profile_options"] = {
        "gpus": {
            "display_name": "GPUs",
            "choices": {
                str(n): {
                    "display_name": gpu_label(n) + (f" ({profile.gpu_type})" if n and profile.gpu_type else ""),
                    "default": n == profile.default_gpus,
                    "kubespawner_override": gpu_override(profile, n),
                }
                for n in profile.gpus
            },
        }
    }
    return entry


def _describe(profile: Profile) -> str:
    gpus = "/".join(str(n) for n in profile.gpus)
    parts = [f"{gpus} GPU" if any(profile.gpus) else "CPU only"]
    if profile.cpu.limit:
        parts.append(f"up to {profile.cpu.limit} CPU")
    if profile.memory.limit:
        parts.append(f"{profile.memory.limit} memory")
    return ", ".join(parts)


def profile_list(ws: Workspace, groups: list[str] | set[str] | None = None) -> list[dict[str, Any]]:
    """Entries for every profile (``groups=None``) or only those a member of ``groups`` may use."""
    profiles = ws.profiles if groups is None else ws.profiles_for(groups)
    return [profile_entry(ws, p) for p in profiles]
