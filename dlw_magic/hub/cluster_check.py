"""``dlw admin check --cluster``: does the cluster in the kubeconfig have what the admin YAML needs?

Each prerequisite of docs/deploy.md that can be read from the API server, as one line: the CRDs of the
queue system and engines, GPU nodes advertising the profiles' GPU resources and ``gpuType`` labels (the
NVIDIA device plugin and GPU Feature Discovery), a StorageClass for the home claims, the Blob CSI driver
and the blob credential Secrets in the hub's namespace. Read-only: it creates nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import engines
from ..workspace import BlobVolume, HostPathVolume, Workspace

Get = Callable[[str], Any]  # GET a path -> JSON dict, or None where the API answers 404


@dataclass
class Finding:
    ok: bool
    what: str
    detail: str
    required: bool = True

    def line(self) -> str:
        mark = "ok  " if self.ok else ("FAIL" if self.required else "warn")
        return f"{mark} {self.what}: {self.detail}"


def _crds(ws: Workspace) -> list[tuple[str, str, bool]]:
    """(CRD name, why, required): the queue system's are required, each engine's only warned about
    (a cluster may offer some engines and not others)."""
    out: list[tuple[str, str, bool]] = []
    if ws.queue_system == "volcano":
        out.append(("queues.scheduling.volcano.sh", "queueSystem: volcano", True))
    elif ws.queue_system == "kueue":
        out += [(f"{p}.kueue.x-k8s.io", "queueSystem: kueue", True)
                for p in ("clusterqueues", "localqueues", "resourceflavors", "workloads")]
    for engine in engines.all_engines():
        for crd in engine.crds():
            out.append((crd, f"engine {engine.name}" + (f": {engine.controller}" if engine.controller else ""),
                        False))
    return out


# Node images with a read-only root and the folders they let pods' hostPaths create (COS: "Disks and file
# system overview"; Bottlerocket: its data volume holds /var and /local).
READ_ONLY_ROOT_IMAGES = {
    "Container-Optimized OS": ("/mnt/stateful_partition", "/mnt/disks", "/var", "/home", "/tmp", "/etc"),
    "Bottlerocket": ("/var", "/local", "/mnt", "/opt"),
}


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def _node_paths(ws: Workspace, nodes: list[dict[str, Any]]) -> list[Finding]:
    """Each hostPath volume against each node image's writable folders (DirectoryOrCreate needs one)."""
    out = []
    for vol in ws.volumes:
        if not isinstance(vol, HostPathVolume):
            continue
        bad = sorted({image for n in nodes for image, writable in READ_ONLY_ROOT_IMAGES.items()
                      if image in str(((n.get("status") or {}).get("nodeInfo") or {}).get("osImage", ""))
                      and not _under(vol.path, writable)})
        out.append(Finding(not bad, f"hostPath {vol.path} (volume {vol.name})",
                           "writable on every node image" if not bad else
                           f"read-only on {', '.join(bad)} nodes: use a path under "
                           f"{' or '.join(READ_ONLY_ROOT_IMAGES[bad[0]][:3])} (e.g. /var/lib/dlw)"))
    return out


def _config_text(get: Get, namespace: str, name: str) -> str | None:
    cm = get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
    return None if cm is None else "\n".join(str(v) for v in (cm.get("data") or {}).values())


def _volcano_actions(get: Get) -> list[Finding]:
    """Volcano's default scheduler config (``enqueue, allocate, backfill``) never preempts nor reclaims."""
    import yaml

    text = _config_text(get, "volcano-system", "volcano-scheduler-configmap")
    if text is None:
        return [Finding(False, "Volcano scheduler actions", "volcano-system/volcano-scheduler-configmap not "
                        "readable: check that its actions include preempt and reclaim (docs/deploy.md)", False)]
    try:
        actions = [a.strip() for a in str((yaml.safe_load(text) or {}).get("actions", "")).split(",")]
    except yaml.YAMLError:
        actions = []
    missing = [a for a in ("preempt", "reclaim") if a not in actions]
    return [Finding(not missing, "Volcano scheduler actions",
                    f"{', '.join(actions)}" if not missing else
                    f"no {' or '.join(missing)}: higher priorities never displace lower ones, queues never reclaim; "
                    'set actions: "enqueue, allocate, preempt, reclaim, backfill" (docs/deploy.md)', False)]


def _kueue_integrations(get: Get) -> list[Finding]:
    import yaml

    text = _config_text(get, "kueue-system", "kueue-manager-config")
    frameworks: list[str] = []
    if text is not None:
        try:
            frameworks = list(((yaml.safe_load(text) or {}).get("integrations") or {}).get("frameworks") or [])
        except yaml.YAMLError:
            frameworks = []
    out = []
    for engine, framework in (("pytorchjob", "kubeflow.org/pytorchjob"), ("job", "batch/job"),
                              ("trainjob", "trainer.kubeflow.org/trainjob")):
        ok = framework in frameworks
        out.append(Finding(ok, f"Kueue integration {framework}",
                           f"enabled (engine {engine})" if ok else
                           f"not in kueue-system/kueue-manager-config integrations.frameworks: Kueue ignores "
                           f"{engine} jobs (they run outside every queue); add it there", False))
    return out


def _trainer_version(get: Get) -> list[Finding]:
    """Trainer v2.0 (JobSet < 0.10) prunes ``onJobFailureMessagePatterns``: DLW's eviction rule then restarts for
    ever on exit codes 126/127, so the trainjob engine needs a Trainer whose runtime CRD has the field."""
    import json

    crd = get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/trainingruntimes.trainer.kubeflow.org")
    if crd is None:
        return []
    ok = "onJobFailureMessagePatterns" in json.dumps(crd)
    return [Finding(ok, "Kubeflow Trainer version", "its TrainingRuntime CRD has onJobFailureMessagePatterns" if ok
                    else "TrainingRuntime CRD lacks onJobFailureMessagePatterns (Trainer v2.0 / JobSet < 0.10): "
                    "upgrade Trainer, or dlw train --engine trainjob is refused", False)]


def _training_operator_init(get: Get) -> list[Finding]:
    """The training-operator adds an init container to PyTorchJob workers; its default one has no securityContext
    and DLW's pod policy refuses it, so its Deployment must read DLW's template (docs/deploy.md)."""
    if get("/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pytorchjobs.kubeflow.org") is None:
        return []
    found = (get("/apis/apps/v1/deployments?labelSelector=control-plane%3Dkubeflow-training-operator") or {})
    operators = found.get("items") or []
    what = "training-operator init container"
    if not operators:
        return [Finding(False, what, "no Deployment labelled control-plane=kubeflow-training-operator readable: "
                        "check that it reads training-operator-initContainer.yaml (docs/deploy.md)", False)]
    out = []
    for dep in operators:
        meta = dep.get("metadata") or {}
        containers = (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        args = [a for c in containers for a in (c.get("command") or []) + (c.get("args") or [])]
        mounts = [m.get("mountPath", "").rstrip("/") for c in containers for m in c.get("volumeMounts") or []]
        ok = any(a.startswith("--pytorch-init-container-template-file") for a in args) or "/etc/config" in mounts
        out.append(Finding(ok, f"{what} ({meta.get('namespace')}/{meta.get('name')})",
                           "reads a template (--pytorch-init-container-template-file or /etc/config)" if ok else
                           "upstream's default: DLW's pod policy refuses every worker of a multi-worker PyTorchJob; "
                           "mount training-operator-initContainer.yaml at /etc/config (docs/deploy.md)", False))
    return out


def check_cluster(ws: Workspace, get: Get) -> list[Finding]:
    findings: list[Finding] = []
    for name, why, required in _crds(ws):
        found = get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}") is not None
        findings.append(Finding(found, f"CRD {name}", f"{'present' if found else 'missing'} ({why})", required))

    nodes = (get("/api/v1/nodes") or {}).get("items", [])
    findings += _node_paths(ws, nodes)
    if ws.queue_system == "volcano":
        findings += _volcano_actions(get)
    elif ws.queue_system == "kueue":
        findings += _kueue_integrations(get)
        for q in ws.queues:
            if q.gpus is None:  # rendered as an unreachable quota: nothing ever waits or is preempted for it
                findings.append(Finding(False, f"Kueue queue {q.name}", "no gpus cap: its quota is unlimited, so "
                                        "Kueue never queues nor preempts for GPUs there; set queues[].gpus", False))
    findings += _trainer_version(get)
    findings += _training_operator_init(get)
    for resource in sorted({p.gpu_resource for p in ws.profiles if any(p.gpus)}):
        gpu_nodes = [n for n in nodes if int(str((n.get("status") or {}).get("allocatable", {}).get(resource, "0")))]
        findings.append(Finding(bool(gpu_nodes), f"GPU resource {resource}",
                                f"{len(gpu_nodes)} node(s) advertise it" if gpu_nodes else
                                "no node advertises it: install the NVIDIA device plugin (or GPU Operator)"))
    products = {(n.get("metadata") or {}).get("labels", {}).get("nvidia.com/gpu.product") for n in nodes}
    for gpu_type in sorted({p.gpu_type for p in ws.profiles if p.gpu_type}):
        findings.append(Finding(gpu_type in products, f"gpuType {gpu_type}",
                                "a node carries nvidia.com/gpu.product=" + gpu_type if gpu_type in products else
                                "no node has that nvidia.com/gpu.product label (GPU Feature Discovery)"))

    home = ws.home
    if home is not None:
        if home.storage_class:
            found = get(f"/apis/storage.k8s.io/v1/storageclasses/{home.storage_class}") is not None
            findings.append(Finding(found, f"StorageClass {home.storage_class}",
                                    "present" if found else "missing (volumes[home].storageClass)"))
        else:
            classes = (get("/apis/storage.k8s.io/v1/storageclasses") or {}).get("items", [])
            default = [c["metadata"]["name"] for c in classes
                       if (c["metadata"].get("annotations") or {}).get(
                           "storageclass.kubernetes.io/is-default-class") == "true"]
            findings.append(Finding(bool(default), "default StorageClass",
                                    default[0] if default else "none: mark one default or set storageClass"))

    blobs = [v for v in ws.volumes if isinstance(v, BlobVolume)]
    if blobs:
        found = get("/apis/storage.k8s.io/v1/csidrivers/blob.csi.azure.com") is not None
        findings.append(Finding(found, "CSI driver blob.csi.azure.com",
                                "present" if found else "missing: install the Azure Blob CSI driver"))
    for vol in blobs:
        secret = vol.auth.secret if vol.auth else None
        if secret:
            found = get(f"/api/v1/namespaces/{ws.namespaces.hub}/secrets/{secret}") is not None
            findings.append(Finding(found, f"Secret {ws.namespaces.hub}/{secret}",
                                    f"present (volume {vol.name})" if found else
                                    f"missing: the credential of blob volume {vol.name}, in the hub's namespace"))
    if ws.images.pull_secret:
        found = get(f"/api/v1/namespaces/{ws.namespaces.hub}/secrets/{ws.images.pull_secret}") is not None
        findings.append(Finding(found, f"Secret {ws.namespaces.hub}/{ws.images.pull_secret}",
                                "present (images.pullSecret)" if found else
                                "missing: the hub copies images.pullSecret from its namespace into users'"))
    return findings


def api_get(kubeconfig: str | None = None) -> Get:
    """GET through the admin's kubeconfig (``DLW_KUBECONFIG``, else ~/.kube/config)."""
    from kubernetes.client.exceptions import ApiException

    from ..backends.kubernetes.api import Api, api_client, api_error

    api = Api(api_client(kubeconfig))

    def get(path: str) -> Any:
        try:
            return api.call("GET", path)
        except ApiException as err:
            if err.status == 404:
                return None
            raise api_error(err, f"GET {path}") from None

    return get
