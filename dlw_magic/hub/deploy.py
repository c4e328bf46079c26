"""Cluster manifests and Zero to JupyterHub Helm values from the admin YAML (``dlw admin render``).

``cluster_manifests(ws, namespaces)``: PriorityClasses; Volcano Queues, or Kueue ResourceFlavor +
ClusterQueues; the notebook ClusterRole; the admission policies; the hub's ClusterRole for per-user
namespaces; ``namespace_objects`` for each namespace given (the shared one, or users set up ahead of time).

``namespace_objects(ws, namespace, text, user)``: everything a namespace needs before a notebook or job
pod can start there: the labelled Namespace, the notebook ServiceAccount and RoleBinding, the
``dlw-workspace`` ConfigMap, the NetworkPolicy, the GPU quota, Kueue LocalQueues, the Blob PV/PVC pairs.
The hub applies the same list at every spawn (``kube.DLWKubeSpawner.ensure_user_objects``).

``helm_values(ws, text)``: values for the z2jh chart. The hub runs ``dlw_magic.hub.kube.configure`` as
``hub.extraConfig`` (so the hub image needs ``dlw-magic[hub]``), reading the admin YAML that
``hub.extraFiles`` mounts at /etc/dlw/workspace.yaml.

``chart_files(ws, text)``: the ``dlw-cluster`` Helm chart (``deploy/``): a generic template over
``values.objects`` (the cluster manifests) plus ``jupyterhub-values.yaml`` for the z2jh release beside it.
"""

from __future__ import annotations

from typing import Any

import yaml

from .. import __version__
from ..engines.pytorchjob import INIT_CONTAINER_TEMPLATE
from ..workspace import WORKSPACE_MOUNT, BlobVolume, HostPathVolume, Workspace
from ..workspace.blob import blob_pv, blob_pvc
from . import rbac
from .admission import admission_policies
from .profiles import profile_list

PART_OF = rbac.PART_OF
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
    ] + [notebook_priority_class(ws)]


def notebook_priority_class(ws: Workspace) -> dict[str, Any]:
    """Notebook pods' class: above the default job class unless the admin says otherwise
    (``hub.notebookPriority``), and never preempting, so a notebook start does not evict a job."""
    name, value = ws.notebook_priority_class
    return {"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name, "labels": dict(PART_OF)}, "value": value, "globalDefault": False,
            "description": "DLW notebook servers", "preemptionPolicy": "Never"}


def _capability(q: Any) -> dict[str, Any]:
    cap: dict[str, Any] = {}
    if q.gpus is not None:
        cap["nvidia.com/gpu"] = str(q.gpus)
    if q.cpu:
        cap["cpu"] = q.cpu
    if q.memory:
        cap["memory"] = q.memory
    return cap


# volcano-scheduler creates these Queues itself at start (pkg/scheduler/cache, newDefaultAndRootQueue): a chart
# that renders them cannot install (Helm refuses to adopt an object it does not own), so DLW never owns them.
VOLCANO_OWN_QUEUES = frozenset({"default", "root"})


def volcano_queues(ws: Workspace) -> list[dict[str, Any]]:
    """The admin's Volcano Queues, except those volcano-scheduler creates and owns (``default``, ``root``):
    jobs name them all the same; their weight and capability are set with kubectl (docs/deploy.md)."""
    out = []
    for q in ws.queues:
        if q.name in VOLCANO_OWN_QUEUES:
            continue
        spec: dict[str, Any] = {"weight": q.weight, "reclaimable": q.reclaimable}
        cap = _capability(q)
        if cap:
            spec["capability"] = cap
        out.append({"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue",
                    "metadata": {"name": q.name, "labels": dict(PART_OF)}, "spec": spec})
    return out


def kueue_queues(ws: Workspace) -> list[dict[str, Any]]:
    """One ResourceFlavor, a ClusterQueue per queue (GPU nominal quota); LocalQueues are per namespace."""
    out: list[dict[str, Any]] = [{"apiVersion": KUEUE_API, "kind": "ResourceFlavor",
                                  "metadata": {"name": "dlw-default", "labels": dict(PART_OF)}, "spec": {}}]
    big = "1000000"  # Kueue needs a number; a queue without a cap gets an unreachable one
    for q in ws.queues:
        resources = [
            # A cap is a cap, as Volcano's capability is: without borrowingLimit 0 the queue would borrow
            # past it from the cohort (the uncapped queues' unreachable quota), and admit any job.
            {"name": name, "nominalQuota": cap, "borrowingLimit": "0"} if cap is not None
            else {"name": name, "nominalQuota": unlimited}
            for name, cap, unlimited in (("cpu", q.cpu, big), ("memory", q.memory, f"{big}Gi"),
                                         ("nvidia.com/gpu", None if q.gpus is None else str(q.gpus), big))
        ]
        out.append({
            "apiVersion": KUEUE_API, "kind": "ClusterQueue",
            "metadata": {"name": q.name, "labels": dict(PART_OF)},
            "spec": {
                # The label every DLW namespace carries (rbac.namespace_labels), hub-created ones included.
                "namespaceSelector": {"matchLabels": {rbac.USER_NAMESPACE_LABEL: "true"}},
                # One cohort: a queue lends idle quota and takes it back (reclaim); inside a queue a higher
                # priority evicts a lower one. Kueue's defaults (Never) would never preempt anything.
                "cohort": ws.name,
                "preemption": {"withinClusterQueue": "LowerPriority", "reclaimWithinCohort": "Any",
                               "borrowWithinCohort": {"policy": "LowerPriority"}},
                "resourceGroups": [{"coveredResources": ["cpu", "memory", "nvidia.com/gpu"],
                                    "flavors": [{"name": "dlw-default", "resources": resources}]}],
            },
        })
    return out


PAUSE_IMAGE = "registry.k8s.io/pause:3.10"
_OPEN_ROOTS = "import os, sys\nfor p in sys.argv[1:]:\n    os.chmod(p, 0o1777)\n"


def scratch_roots(ws: Workspace) -> list[dict[str, Any]]:
    """A DaemonSet in the hub's namespace that makes each per-user hostPath root mode 1777 on every node.

    Pods mount a per-user root with ``subPath: <user>``; the kubelet creates that folder with the root's mode
    (``SafeMakeDir``), so the notebook user (never root) can write it, and the admission policy keeps each
    user to their own subPath. Runs as root without capabilities: the root folder is root's own (the kubelet
    made it), so chmod needs none."""
    roots = sorted({v.path for v in ws.volumes if isinstance(v, HostPathVolume) and v.per_user})
    if not roots:
        return []
    volumes = [{"name": f"root-{i}", "hostPath": {"path": r, "type": "DirectoryOrCreate"}} for i, r in enumerate(roots)]
    mounts = [{"name": f"root-{i}", "mountPath": f"/roots/{i}"} for i in range(len(roots))]
    name = f"{ws.name}-scratch-roots"
    labels = {**PART_OF, "app.kubernetes.io/name": name}
    secure = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    return [{
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": ws.namespaces.hub, "labels": labels},
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "automountServiceAccountToken": False,
                    "tolerations": [{"operator": "Exists"}],  # every node, GPU ones included
                    "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                    "initContainers": [{
                        "name": "open", "image": ws.default_profile.image,
                        "command": ["python", "-c", _OPEN_ROOTS, *(m["mountPath"] for m in mounts)],
                        "volumeMounts": mounts, "securityContext": {**secure, "runAsUser": 0},
                    }],
                    "containers": [{"name": "pause", "image": PAUSE_IMAGE,
                                    "resources": {"requests": {"cpu": "1m", "memory": "8Mi"}},
                                    "securityContext": {**secure, "runAsNonRoot": True, "runAsUser": 65535}}],
                    "volumes": volumes,
                },
            },
        },
    }]


def local_queues(ws: Workspace, namespace: str) -> list[dict[str, Any]]:
    return [{"apiVersion": KUEUE_API, "kind": "LocalQueue",
             "metadata": {"name": q.name, "namespace": namespace, "labels": dict(PART_OF)},
             "spec": {"clusterQueue": q.name}} for q in ws.queues]


def namespace_objects(
    ws: Workspace, namespace: str, workspace_text: str, user: str | None = None, groups: list[str] | None = None
) -> list[dict[str, Any]]:
    """What a DLW namespace needs before its first pod; ``user``: the per-user namespace's owner (quota,
    hostPath folder label). Order matters for a fresh namespace: the Namespace first, each PV before its PVC."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace",
         "metadata": {"name": namespace, "labels": rbac.namespace_labels(ws, user)}},
    ]
    if ws.namespaces.scheme == "per-user":  # the hub's rights in the namespace: before what needs them
        objects.append(rbac.hub_role_binding(ws, namespace))
    objects += [
        rbac.service_account(ws, namespace),
        rbac.notebook_role_binding(ws, namespace),
        rbac.workspace_configmap(namespace, workspace_text),
        rbac.network_policy(ws, namespace),
    ]
    quota = ws.gpu_quota(user, groups or []) if user is not None else None
    if quota is not None and ws.namespaces.scheme == "per-user":
        objects.append(rbac.gpu_quota(namespace, quota))
    if ws.queue_system == "kueue":
        objects += local_queues(ws, namespace)
    for vol in ws.volumes:
        if isinstance(vol, BlobVolume):
            objects += [blob_pv(vol, namespace, ws.namespaces.hub), blob_pvc(vol, namespace)]
    return objects


def cluster_manifests(ws: Workspace, workspace_text: str, namespaces: list[str] | None = None) -> list[dict[str, Any]]:
    """Everything ``kubectl apply`` (or the chart in deploy/) needs besides the z2jh release; ``namespaces``
    adds per-namespace set-up (default: the shared namespace, or none for per-user, where the hub makes
    them at each spawn)."""
    if namespaces is None:
        namespaces = [ws.namespaces.shared] if ws.namespaces.scheme == "shared" else []
    out: list[dict[str, Any]] = [*priority_classes(ws)]
    if ws.queue_system == "volcano":
        out += volcano_queues(ws)
    elif ws.queue_system == "kueue":
        out += kueue_queues(ws)
    out.append(rbac.notebook_cluster_role(ws))
    out += admission_policies(ws)
    out += scratch_roots(ws)
    if ws.namespaces.scheme == "per-user":
        out += [rbac.hub_cluster_role(ws), rbac.hub_namespace_role(ws), rbac.hub_cluster_role_binding(ws)]
    elif ws.namespaces.shared != ws.namespaces.hub:
        out += rbac.hub_shared_namespace_rbac(ws)
    for ns in namespaces:
        user = ns[len(ws.namespaces.prefix):] if ws.namespaces.scheme == "per-user" else None
        out += namespace_objects(ws, ns, workspace_text, user)
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
    if ws.namespaces.scheme == "per-user":
        # Notebooks in user namespaces reach the hub: z2jh's hub NetworkPolicy admits labelled pods from
        # other namespaces only with "accept" (configure() gives them the hub's FQDN to connect to).
        hub["networkPolicy"] = {"interNamespaceAccessLabels": "accept"}
    if ws.hub.admin_users:
        hub["config"]["Authenticator"] = {"admin_users": list(ws.hub.admin_users)}
    if ws.auth.oauth:  # else the admin's own authenticator settings (docs/deploy.md)
        from .auth import authenticator_class, authenticator_settings, secret_env

        cls, traits = authenticator_settings(ws)
        hub["config"]["JupyterHub"] = {"authenticator_class": authenticator_class(ws)}
        hub["config"][cls] = traits
        hub["extraEnv"].update(secret_env(ws))
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
            # z2jh's default is a privileged iptables init container, which the user namespaces' admission
            # policy refuses; their NetworkPolicy blocks the metadata server instead (rbac.network_policy).
            "cloudMetadata": {"blockWithIptables": False},
        },
        "cull": {"enabled": True, "timeout": ws.hub.idle_timeout, "every": ws.hub.cull_every, "users": False},
        # GPU nodes are chosen by the profiles' nvidia.com/gpu.product selector, not z2jh's node purpose.
        "scheduling": {"userScheduler": {"enabled": False},
                       "userPods": {"nodeAffinity": {"matchNodePurpose": "ignore"}}},
        "prePuller": {"hook": {"enabled": False}, "continuous": {"enabled": False}},
    }


CHART_NAME = "dlw-cluster"
JUPYTERHUB_VALUES = "jupyterhub-values.yaml"
# The training-operator's workers' init container under DLW's pod policy (engines/pytorchjob.py says why):
# the admin mounts it into the operator at /etc/config/initContainer.yaml (docs/deploy.md).
TRAINING_OPERATOR_INIT = "training-operator-initContainer.yaml"
_OBJECTS_TEMPLATE = """{{- /* The DLW cluster objects, rendered from the admin YAML by `dlw admin render --all`. */ -}}
{{- range .Values.objects }}
---
{{ toYaml . }}
{{- end }}
"""
# workspace.yaml: the admin edits it beside the chart (docs/deploy.md); it reaches the hub in jupyterhub-values.yaml.
# auth.yaml (the authenticator's secrets) must never be packaged into the release Secret of this chart.
_HELMIGNORE = ("README.md\nhub.Dockerfile\nworkspace.yaml\nauth.yaml\n*.secret.yaml\n" + JUPYTERHUB_VALUES + "\n"
               + TRAINING_OPERATOR_INIT + "\n")


def chart_files(
    ws: Workspace, workspace_text: str, hub_image: str | None = None, namespaces: list[str] | None = None,
    header: str = "",
) -> dict[str, str]:
    """File name -> text of the ``dlw-cluster`` chart and the z2jh values installed beside it."""
    chart = {
        "apiVersion": "v2", "name": CHART_NAME, "version": __version__, "appVersion": __version__,
        "type": "application", "kubeVersion": ">=1.30.0-0",  # ValidatingAdmissionPolicy v1
        "description": f"DLW cluster objects for workspace {ws.name}: priority classes, queues, RBAC, admission "
                       "policies; install beside the Zero to JupyterHub release (values in "
                       f"{JUPYTERHUB_VALUES}).",
    }
    return {
        "Chart.yaml": dump_yaml(chart),
        ".helmignore": _HELMIGNORE,
        "templates/objects.yaml": _OBJECTS_TEMPLATE,
        "values.yaml": header + dump_yaml({"objects": cluster_manifests(ws, workspace_text, namespaces)}),
        JUPYTERHUB_VALUES: header + dump_yaml(helm_values(ws, workspace_text, hub_image)),
        TRAINING_OPERATOR_INIT: INIT_CONTAINER_TEMPLATE,
    }
