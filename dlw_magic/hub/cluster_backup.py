"""The cluster half of ``dlw admin backup`` / ``restore``: the objects DLW made, read back and re-created.

Every object of the kinds below that carries DLW's ``app.kubernetes.io/part-of`` label (priority classes,
Volcano queues or Kueue flavours and queues, RBAC, admission policies, per-user namespaces and what the
hub put in them: service accounts, role bindings, the workspace ConfigMap, network policies, GPU quotas,
local queues, Blob PV/PVC). Secrets are not among the kinds: an archive never holds a Secret, only the
references ``backup.secret_references`` lists. Server-set fields (uid, resourceVersion, status ...) are
dropped, so a restore creates clean objects. A kind the cluster does not serve (Kueue without Kueue) is
skipped on both sides. Restore creates what is missing, leaves equal objects alone and merges changed
ones, so running it twice changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.rest import ApiException

from .rbac import PART_OF

# (apiVersion, kind, plural, namespaced), in the order a restore creates them.
KINDS: list[tuple[str, str, str, bool]] = [
    ("v1", "Namespace", "namespaces", False),
    ("scheduling.k8s.io/v1", "PriorityClass", "priorityclasses", False),
    ("scheduling.volcano.sh/v1beta1", "Queue", "queues", False),
    ("kueue.x-k8s.io/v1beta1", "ResourceFlavor", "resourceflavors", False),
    ("kueue.x-k8s.io/v1beta1", "ClusterQueue", "clusterqueues", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRole", "clusterroles", False),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "clusterrolebindings", False),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "validatingadmissionpolicies", False),
    ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding", "validatingadmissionpolicybindings",
     False),
    ("v1", "PersistentVolume", "persistentvolumes", False),
    ("v1", "ServiceAccount", "serviceaccounts", True),
    ("rbac.authorization.k8s.io/v1", "Role", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding", "rolebindings", True),
    ("v1", "ConfigMap", "configmaps", True),
    ("networking.k8s.io/v1", "NetworkPolicy", "networkpolicies", True),
    ("v1", "ResourceQuota", "resourcequotas", True),
    ("apps/v1", "DaemonSet", "daemonsets", True),  # the chart's scratch-roots DaemonSet
    ("kueue.x-k8s.io/v1beta1", "LocalQueue", "localqueues", True),
    ("v1", "PersistentVolumeClaim", "persistentvolumeclaims", True),
]
_SERVER_FIELDS = ("uid", "resourceVersion", "creationTimestamp", "generation", "managedFields", "selfLink",
                  "deletionTimestamp", "deletionGracePeriodSeconds", "ownerReferences")


def _base(api_version: str) -> str:
    return f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"


def _path(api_version: str, plural: str, namespace: str | None = None, name: str | None = None) -> str:
    path = _base(api_version) + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return f"{path}/{name}" if name else path


def _clean(obj: dict[str, Any], api_version: str, kind: str) -> dict[str, Any]:
    meta = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _SERVER_FIELDS}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out = {k: v for k, v in obj.items() if k not in ("metadata", "status")}
    if kind == "PersistentVolumeClaim":  # the binding the cluster added; the claim binds again by itself
        meta.get("annotations", {}).pop("pv.kubernetes.io/bind-completed", None)
    return {**out, "apiVersion": api_version, "kind": kind, "metadata": meta}


def _ours(obj: dict[str, Any]) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(labels.get(k) == v for k, v in PART_OF.items())


def export_objects(api: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """(DLW's objects in restore order, kinds the cluster does not serve). ``api``: backends.kubernetes.api.Api."""
    selector = ",".join(f"{k}={v}" for k, v in PART_OF.items())
    objects: list[dict[str, Any]] = []
    skipped: list[str] = []
    for api_version, kind, plural, _ in KINDS:
        try:
            items = (api.call("GET", _path(api_version, plural), query=[("labelSelector", selector)]) or {})
        except ApiException as err:
            if err.status in (404, 405, 500, 501):  # not served (no CRD), or a server that cannot list it
                skipped.append(kind)
                continue
            raise
        for obj in items.get("items") or []:
            if _ours(obj):  # servers that ignore the selector
                objects.append(_clean(obj, api_version, kind))
    return objects, skipped


@dataclass
class ApplyReport:
    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (f"cluster: {len(self.created)} created, {len(self.updated)} updated, {len(self.unchanged)} "
                f"already there" + (f", {len(self.skipped)} skipped ({', '.join(sorted(set(self.skipped)))} not "
                                     "served by this cluster)" if self.skipped else ""))


def _same(want: dict[str, Any], have: dict[str, Any], api_version: str, kind: str) -> bool:
    got = _clean(have, api_version, kind)
    return all(got.get(k) == v for k, v in want.items() if k != "metadata") and all(
        (got["metadata"].get(k) or None) == (v or None) for k, v in want["metadata"].items())


def restore_objects(api: Any, objects: list[dict[str, Any]]) -> ApplyReport:
    """Create what is missing, merge what differs, leave equal objects alone."""
    plurals = {(v, k): (p, ns) for v, k, p, ns in KINDS}
    order = {(v, k): i for i, (v, k, _, _) in enumerate(KINDS)}
    report = ApplyReport()
    for obj in sorted(objects, key=lambda o: order.get((o["apiVersion"], o["kind"]), len(order))):
        api_version, kind = obj["apiVersion"], obj["kind"]
        if (api_version, kind) not in plurals:
            report.skipped.append(kind)
            continue
        plural, namespaced = plurals[(api_version, kind)]
        ns = obj["metadata"].get("namespace") if namespaced else None
        name = obj["metadata"]["name"]
        label = f"{kind} {ns + '/' if ns else ''}{name}"
        try:
            api.call("POST", _path(api_version, plural, ns), obj)
            report.created.append(label)
            continue
        except ApiException as err:
            if err.status == 404:
                report.skipped.append(kind)
                continue
            if err.status != 409:
                raise
        have = api.call("GET", _path(api_version, plural, ns, name))
        if _same(obj, have, api_version, kind):
            report.unchanged.append(label)
        else:
            patch = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind")}
            api.call("PATCH", _path(api_version, plural, ns, name), patch,
                     content_type="application/merge-patch+json")
            report.updated.append(label)
    return report
