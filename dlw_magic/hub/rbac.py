"""What a notebook may do in Kubernetes, as manifests (plain dicts).

The notebook's ServiceAccount gets a namespaced Role: create/get/list/watch/delete the job kinds DLW
renders (each engine lists its own kinds) and their Services and ConfigMaps; read and delete pods,
read logs and events. Nothing cluster-wide, no Secrets, no RBAC objects, so a notebook cannot widen its
own rights. With per-user namespaces this confines each user to their own jobs; a shared namespace
cannot (Kubernetes RBAC does not filter by label) and is documented as such.
"""

from __future__ import annotations

from typing import Any

from ..engines import all_engines
from ..workspace import Workspace

WORKSPACE_CONFIGMAP = "dlw-workspace"
PART_OF = {"app.kubernetes.io/part-of": "dlw"}
JOB_VERBS = ["create", "get", "list", "watch", "delete", "patch"]
READ_VERBS = ["get", "list", "watch"]

NOTEBOOK_RULES: list[dict[str, Any]] = [
    *(rule for engine in all_engines() for rule in engine.rbac_rules()),
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": JOB_VERBS},
    {"apiGroups": [""], "resources": ["pods"], "verbs": [*READ_VERBS, "delete"]},
    {"apiGroups": [""], "resources": ["pods/log"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": READ_VERBS},
    {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": READ_VERBS},
    # Kueue's Workloads say why a job waits for quota (`dlw status`); engines add their schedulers' kinds.
    {"apiGroups": ["kueue.x-k8s.io"], "resources": ["workloads"], "verbs": ["get", "list"]},
]


def _meta(name: str, namespace: str | None = None, **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": {**PART_OF, **labels}}
    if namespace:
        meta["namespace"] = namespace
    return meta


def service_account(ws: Workspace, namespace: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(ws.hub.service_account, namespace)}


def notebook_role(ws: Workspace, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(ws.hub.service_account, namespace),
        "rules": NOTEBOOK_RULES,
    }


def notebook_role_binding(ws: Workspace, namespace: str) -> dict[str, Any]:
    sa = ws.hub.service_account
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(sa, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": sa},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
    }


def workspace_configmap(namespace: str, text: str) -> dict[str, Any]:
    """The admin YAML, mounted read-only in notebooks at /etc/dlw/workspace.yaml for the job renderer."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(WORKSPACE_CONFIGMAP, namespace),
        "data": {"workspace.yaml": text},
    }


def gpu_quota(namespace: str, gpus: int, resource: str = "nvidia.com/gpu") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta("dlw-gpu-quota", namespace),
        "spec": {"hard": {f"requests.{resource}": str(gpus)}},
    }


def hub_cluster_role(ws: Workspace) -> dict[str, Any]:
    """Rights the hub needs with per-user namespaces (z2jh's own Role covers only the hub's namespace):
    spawn pods and home claims anywhere, make namespaces and grant the notebook Role.

    Kubernetes lets the hub create a Role only with rights it holds itself, so it holds NOTEBOOK_RULES too.
    """
    rules = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "get", "list"]},
        # KubeSpawner itself, across user namespaces: notebook pods, home claims, their events.
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"], "verbs": ["create", "get", "list", "delete"]},
        {"apiGroups": [""], "resources": ["serviceaccounts", "configmaps", "resourcequotas"],
         "verbs": ["create", "get", "list", "patch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"],
         "verbs": ["create", "get", "list", "patch"]},
        *NOTEBOOK_RULES,
    ]
    if ws.queue_system == "kueue":
        rules.append({"apiGroups": ["kueue.x-k8s.io"], "resources": ["localqueues"], "verbs": ["create", "get"]})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(f"{ws.name}-hub-user-namespaces"),
        "rules": rules,
    }


def hub_cluster_role_binding(ws: Workspace, hub_service_account: str = "hub") -> dict[str, Any]:
    name = f"{ws.name}-hub-user-namespaces"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": hub_service_account, "namespace": ws.namespaces.hub}],
    }
