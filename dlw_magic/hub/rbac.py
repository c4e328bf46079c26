"""What a notebook (and the hub) may do in Kubernetes, as manifests (plain dicts).

The notebook rules live in one ClusterRole (``<workspace>-notebook``): create/get/list/watch/delete the
job kinds DLW renders (each engine lists its own kinds) and their Services and ConfigMaps; read and
delete pods, read logs and events. Each namespace binds it to the notebook ServiceAccount with a
RoleBinding, so the rights hold in that namespace only. Nothing cluster-wide, no Secrets, no RBAC
objects, so a notebook cannot widen its own rights. With per-user namespaces this confines each user to
their own jobs; a shared namespace cannot (Kubernetes RBAC does not filter by label) and is documented.

The hub binds that ClusterRole (verb ``bind`` on it alone) instead of holding every notebook right
itself to create Roles; what else it may do is what a user namespace needs (``hub_cluster_role``).
Policy that RBAC cannot express (no privileged pods, hostPath under the allowlist) is in ``admission``.
"""

from __future__ import annotations

from typing import Any

from ..engines import all_engines
from ..workspace import WORKSPACE_CONFIGMAP, BlobVolume, HostPathVolume, Workspace, safe_name

PART_OF = {"app.kubernetes.io/part-of": "dlw"}
# Namespace labels: what the admission policies, Kueue's ClusterQueues and the network policy select on.
USER_NAMESPACE_LABEL = "dlw.dev/user-namespace"
USER_LABEL = "dlw.dev/user"
# z2jh's label for pods the hub's NetworkPolicy admits (with interNamespaceAccessLabels: accept).
HUB_ACCESS_LABEL = "hub.jupyter.org/network-access-hub"
JOB_VERBS = ["create", "get", "list", "watch", "delete", "patch"]
READ_VERBS = ["get", "list", "watch"]

NOTEBOOK_RULES: list[dict[str, Any]] = [
    *(rule for engine in all_engines() for rule in engine.rbac_rules()),
    {"apiGroups": [""], "resources": ["services", "configmaps"], "verbs": JOB_VERBS},
    {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": JOB_VERBS},  # dlw schedule --backend kubernetes
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


def notebook_cluster_role_name(ws: Workspace) -> str:
    return f"{ws.name}-notebook"


def notebook_cluster_role(ws: Workspace) -> dict[str, Any]:
    """The notebook's rights, granted per namespace by ``notebook_role_binding``."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(notebook_cluster_role_name(ws)),
        "rules": NOTEBOOK_RULES,
    }


def notebook_role_binding(ws: Workspace, namespace: str) -> dict[str, Any]:
    sa = ws.hub.service_account
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(sa, namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": notebook_cluster_role_name(ws)},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
    }


def pod_security_level(ws: Workspace) -> str:
    """The strictest Pod Security level every DLW pod passes: ``baseline`` (the image builder, Kaniko, runs
    as root, so not ``restricted``), or ``privileged`` once the catalogue has a hostPath volume (baseline
    forbids every hostPath). The user namespaces' admission policy enforces "restricted" itself, hostPath
    volumes confined and the builder excepted (``admission.pod_validations``)."""
    return "privileged" if any(isinstance(v, HostPathVolume) for v in ws.volumes) else "baseline"


def namespace_labels(ws: Workspace, user: str | None = None) -> dict[str, str]:
    """Labels of a namespace DLW users run in: Pod Security Admission enforces ``pod_security_level`` and
    warns/audits against ``restricted``."""
    labels = {
        **PART_OF,
        USER_NAMESPACE_LABEL: "true",
        "pod-security.kubernetes.io/enforce": pod_security_level(ws),
        "pod-security.kubernetes.io/warn": "restricted",
        "pod-security.kubernetes.io/audit": "restricted",
    }
    if user is not None:
        labels[USER_LABEL] = safe_name(user)  # the per-user hostPath folder name (workspace.pod_volume)
    return labels


def network_policy(ws: Workspace, namespace: str) -> dict[str, Any]:
    """Pods of a user namespace accept traffic from their own namespace (DDP ranks, the notebook) and the
    hub's (proxy, hub); they reach anything but the cloud metadata server (z2jh's singleuser policy
    applies only in the hub's namespace)."""
    def ns(name: str) -> dict[str, Any]:
        return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": name}}}

    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(f"{ws.name}-user-namespace", namespace),
        "spec": {
            "podSelector": {},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": [{"from": [{"podSelector": {}}, ns(ws.namespaces.hub)]}],
            "egress": [
                {"to": [{"podSelector": {}}, ns(ws.namespaces.hub)]},
                {"to": [ns("kube-system")],
                 "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]},
                {"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["169.254.169.254/32"]}}]},
            ],
        },
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
    """What the hub may do cluster-wide with per-user namespaces (z2jh's own Role covers only the hub's
    namespace): create and label namespaces, bind the two DLW ClusterRoles in them (verb ``bind`` on those
    alone), watch notebook pods (KubeSpawner's reflector spans namespaces), Blob PVs. Everything else it
    writes, it writes through ``hub_namespace_role``, bound in each user namespace by ``hub_role_binding``;
    the admission policy ``admission.hub_policy`` keeps the cluster-wide writes to DLW's namespaces."""
    setup = ["create", "get", "patch"]
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": setup},
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["rolebindings"], "verbs": setup},
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
         "resourceNames": [notebook_cluster_role_name(ws), hub_namespace_role_name(ws)]},
    ]
    if any(isinstance(v, BlobVolume) for v in ws.volumes):
        rules.append({"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": setup})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(f"{ws.name}-hub-user-namespaces"),
        "rules": rules,
    }


def hub_namespace_role_name(ws: Workspace) -> str:
    return f"{ws.name}-hub-in-user-namespace"


def hub_namespace_role(ws: Workspace) -> dict[str, Any]:
    """The hub's rights inside one user namespace: KubeSpawner's pods and home claims, and what
    ``deploy.namespace_objects`` puts there. Granted per namespace, so none of it holds in kube-system."""
    setup = ["create", "get", "patch"]
    rules: list[dict[str, Any]] = [
        {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "get", "list", "watch", "delete"]},
        {"apiGroups": [""], "resources": ["persistentvolumeclaims"],
         "verbs": ["create", "get", "list", "delete", "patch"]},
        {"apiGroups": [""], "resources": ["serviceaccounts", "configmaps", "resourcequotas"], "verbs": setup},
        {"apiGroups": ["networking.k8s.io"], "resources": ["networkpolicies"], "verbs": setup},
    ]
    if ws.images.pull_secret:  # copied from the hub's namespace (z2jh's Role lets the hub read it there)
        rules.append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch"]})
    if ws.queue_system == "kueue":
        rules.append({"apiGroups": ["kueue.x-k8s.io"], "resources": ["localqueues"], "verbs": setup})
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": _meta(hub_namespace_role_name(ws)),
        "rules": rules,
    }


def hub_role_binding(ws: Workspace, namespace: str, hub_service_account: str = "hub") -> dict[str, Any]:
    """``hub_namespace_role`` for the hub in one user namespace (the hub creates it right after the namespace)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(f"{ws.name}-hub", namespace),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": hub_namespace_role_name(ws)},
        "subjects": [{"kind": "ServiceAccount", "name": hub_service_account, "namespace": ws.namespaces.hub}],
    }


def hub_shared_namespace_rbac(ws: Workspace, hub_service_account: str = "hub") -> list[dict[str, Any]]:
    """Shared scheme: KubeSpawner's rights in the shared namespace (z2jh's Role covers only its own)."""
    ns = ws.namespaces.shared
    name = f"{ws.name}-hub"
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": _meta(name, ns),
        "rules": [
            {"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims"],
             "verbs": ["create", "get", "list", "watch", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["get", "list", "watch"]},
        ],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": _meta(name, ns),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": hub_service_account, "namespace": ws.namespaces.hub}],
    }
    return [role, binding]


def hub_cluster_role_binding(ws: Workspace, hub_service_account: str = "hub") -> dict[str, Any]:
    name = f"{ws.name}-hub-user-namespaces"
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": _meta(name),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": hub_service_account, "namespace": ws.namespaces.hub}],
    }
