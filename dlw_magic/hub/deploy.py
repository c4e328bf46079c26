"""Cluster manifests and Zero to JupyterHub Helm values from the admin YAML (``dlw admin render``).

``cluster_manifests(ws, namespaces)``: PriorityClasses; Volcano Queues, or Kueue ResourceFlavor +
ClusterQueues (+ LocalQueues per namespace); the hub's ClusterRole for per-user namespaces; for each
namespace given (the shared one, or users set up ahead of time) the notebook ServiceAccount, Role,
RoleBinding, the ``dlw-workspace`` ConfigMap and the Blob PV/PVC pairs.

``helm_values(ws, text)``: values for the z2jh chart. The hub runs ``dlw_magic.hub.kube.configure`` as
``hub.extraConfig`` (so the hub image needs ``dlw-magic[hub]``), reading the admin YAML that
``hub.extraFiles`` mounts at /etc/dlw/workspace.yaml.
"""

from __future__ import annotations

from typing import Any

import yaml

from ..workspace import BlobVolume, Workspace
from ..workspace.blob import blob_pv, blob_pvc
from . import rbac
from .profiles import WORKSPACE_MOUNT, profile_list

PART_OF = {"app.kubernetes.io/part-of": "dlw"}
# Served by every Kueue release so far; newer ones also serve v1beta2 (same shape for what DLW writes).
KUEUE_API = "kueue.x-k8s.io/v1beta1"


class _Dumper(yaml.SafeDumper):
    """Multi-line strings (the carried admin YAML, extraConfig code) as readable literal blocks; no anchors."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def dump_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, width=110)


def dump_yaml_docs(objects: list[dict[str, Any]]) -> str:
    return "".join("---\n" + dump_yaml(o) for o in objects)


def priority_classes(ws: Workspace) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "scheduling.k8s.io/v1",
            "kind": "PriorityClass",
            "metadata": {"name": p.name, "labels": dict(PART_OF)},
            "value": p.value,
            "globalDefault": False,  # DLW applies its default to its own jobs only, never cluster-wide
            "description": p.description or f"DLW priority {p.name}",
            "preemptionPolicy": p.preemption_policy,
        }
        for p in ws.priority_classes
    ]


def _capability(q: Any) -> dict[str, Any]:
    cap: dict[str, Any] = {}
    if q.gpus is not None:
        cap["nvidia.com/gpu"] = str(q.gpus)
    if q.cpu:
        cap["cpu"] = q.cpu
    if q.memory:
        cap["memory"] = q.memory
    return cap


def volcano_queues(ws: Workspace) -> list[dict[str, Any]]:
    out = []
    for q in ws.queues:
        spec: dict[str, Any] = {"weight": q.weight, "reclaimable": q.reclaimable}
        cap = _capability(q)
        if cap:
            spec["capability"] = cap
        out.append({"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue",
                    "metadata": {"name": q.name, "labels": dict(PART_OF)}, "spec": spec})
    return out


def kueue_queues(ws: Workspace, namespaces: list[str]) -> list[dict[str, Any]]:
    """One ResourceFlavor, a ClusterQueue per queue (GPU nominal quota), a LocalQueue per namespace."""
    out: list[dict[str, Any]] = [{"apiVersion": KUEUE_API, "kind": "ResourceFlavor",
                                  "metadata": {"name": "dlw-default", "labels": dict(PART_OF)}, "spec": {}}]
    big = "1000000"  # Kueue needs a number; a queue without a cap gets an unreachable one
    for q in ws.queues:
        resources = [
            {"name": "cpu", "nominalQuota": q.cpu or big},
            {"name": "memory", "nominalQuota": q.memory or f"{big}Gi"},
            {"name": "nvidia.com/gpu", "nominalQuota": str(q.gpus) if q.gpus is not None else big},
        ]
        out.append({
            "apiVersion": KUEUE_API, "kind": "ClusterQueue",
            "metadata": {"name": q.name, "labels": dict(PART_OF)},
            "spec": {
                "namespaceSelector": {"matchLabels": dict(PART_OF)},
                "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                                    "flavors": [{"name": "dlw-default", "resources": resources}]}],
            },
        })
    for ns in namespaces:
        out += local_queues(ws, ns)
    return out


def local_queues(ws: Workspace, namespace: str) -> list[dict[str, Any]]:
    return [{"apiVersion": KUEUE_API, "kind": "LocalQueue",
             "metadata": {"name": q.name, "namespace": namespace, "labels": dict(PART_OF)},
             "spec": {"clusterQueue": q.name}} for q in ws.queues]


def user_namespace_objects(
    ws: Workspace, namespace: str, user: str, groups: list[str], workspace_text: str
) -> list[dict[str, Any]]:
    """What a user's namespace needs before their first notebook pod (the hub creates these)."""
    objects = [
        rbac.service_account(ws, namespace),
        rbac.notebook_role(ws, namespace),
        rbac.notebook_role_binding(ws, namespace),
        rbac.workspace_configmap(namespace, workspace_text),
    ]
    quota = ws.gpu_quota(user, groups)
    if quota is not None and ws.namespaces.scheme == "per-user":
        objects.append(rbac.gpu_quota(namespace, quota))
    if ws.queue_system == "kueue":
        objects += local_queues(ws, namespace)
    return objects


def namespace_objects(ws: Workspace, namespace: str, workspace_text: str) -> list[dict[str, Any]]:
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": dict(PART_OF)}},
        rbac.service_account(ws, namespace),
        rbac.notebook_role(ws, namespace),
        rbac.notebook_role_binding(ws, namespace),
        rbac.workspace_configmap(namespace, workspace_text),
    ]
    for vol in ws.volumes:
        if isinstance(vol, BlobVolume):
            objects += [blob_pv(vol, namespace), blob_pvc(vol, namespace)]
    return objects


def cluster_manifests(ws: Workspace, workspace_text: str, namespaces: list[str] | None = None) -> list[dict[str, Any]]:
    """Everything ``kubectl apply`` needs besides the Helm release; ``namespaces`` adds per-namespace set-up
    (default: the shared namespace, or none for per-user, where the hub makes them at first spawn)."""
    if namespaces is None:
        namespaces = [ws.namespaces.shared] if ws.namespaces.scheme == "shared" else []
    out: list[dict[str, Any]] = [*priority_classes(ws)]
    if ws.queue_system == "volcano":
        out += volcano_queues(ws)
    elif ws.queue_system == "kueue":
        out += kueue_queues(ws, namespaces)
    if ws.namespaces.scheme == "per-user":
        out += [rbac.hub_cluster_role(ws), rbac.hub_cluster_role_binding(ws)]
    for ns in namespaces:
        out += namespace_objects(ws, ns, workspace_text)
    return out


def _image(ref: str) -> dict[str, str]:
    name, _, tag = ref.rpartition(":") if ":" in ref.rsplit("/", 1)[-1] else (ref, "", "latest")
    return {"name": name, "tag": tag}


def helm_values(ws: Workspace, workspace_text: str, hub_image: str | None = None) -> dict[str, Any]:
    """Values for the Zero to JupyterHub chart; the hub's extraConfig applies the admin YAML itself."""
    static_profiles = []
    for entry in profile_list(ws):
        entry = {k: v for k, v in entry.items() if k != "default" or v}
        static_profiles.append(entry)
    home = ws.home
    storage: dict[str, Any] = {
        "type": "none",
        "extraVolumes": [{"name": "dlw-workspace", "configMap": {"name": rbac.WORKSPACE_CONFIGMAP}}],
        "extraVolumeMounts": [{"name": "dlw-workspace", "mountPath": "/etc/dlw", "readOnly": True}],
    }
    if home is not None:
        dynamic: dict[str, Any] = {
            "pvcNameTemplate": home.claim_name_template,
            "volumeNameTemplate": "dlw-home",
            "storageAccessModes": list(home.access_modes),
        }
        if home.storage_class:
            dynamic["storageClass"] = home.storage_class
        storage.update(type="dynamic", capacity=home.size, homeMountPath=home.mount_path, dynamic=dynamic)
    hub: dict[str, Any] = {
        "extraFiles": {"dlw-workspace": {"mountPath": WORKSPACE_MOUNT, "stringData": workspace_text}},
        "extraEnv": {"DLW_WORKSPACE_CONFIG": WORKSPACE_MOUNT},
        # z2jh runs its own culler (cull: below), so configure() does not add a second one.
        "extraConfig": {"dlw": "from dlw_magic.hub.kube import configure\nconfigure(c, cull=False)\n"},
        "config": {"KubeSpawner": {"enable_user_namespaces": ws.namespaces.scheme == "per-user"}},
    }
    if ws.hub.admin_users:
        hub["config"]["Authenticator"] = {"admin_users": list(ws.hub.admin_users)}
    if hub_image:
        hub["image"] = _image(hub_image)
    default = ws.default_profile
    return {
        "hub": hub,
        "rbac": {"create": True},
        "singleuser": {
            "image": _image(default.image),
            "cmd": "jupyterhub-singleuser",
            "serviceAccountName": ws.hub.service_account,
            "extraEnv": {"DLW_WORKSPACE_CONFIG": WORKSPACE_MOUNT, "DLW_BACKEND": "kubernetes"},
            "storage": storage,
            "profileList": static_profiles,
            "allowPrivilegeEscalation": False,
        },
        "cull": {"enabled": True, "timeout": ws.hub.idle_timeout, "every": ws.hub.cull_every, "users": False},
        # GPU nodes are chosen by the profiles' nvidia.com/gpu.product selector, not z2jh's node purpose.
        "scheduling": {"userScheduler": {"enabled": False},
                       "userPods": {"nodeAffinity": {"matchNodePurpose": "ignore"}}},
        "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
    }
