"""Issue 17 on a real API server: what cel-python and the emulator cannot show.

* deleting a user namespace completes with the ``dlw-workspace`` ConfigMap guard installed (the namespace
  controller and the garbage collector delete through admission);
* the dlw-cluster chart installs where volcano-scheduler has already made its ``default`` Queue, upgrades
  after an admin edit (a queue changed, one added) and uninstalls without touching Volcano's queues;
* hostPath spellings and root pods the pod policy must refuse, refused by the API server itself;
* the hub's ServiceAccount: no write in kube-system by RBAC (SubjectAccessReview), and what RBAC must let
  it do cluster-wide (label namespaces, create PVs) held to DLW's namespaces and the Blob driver.

Everything here runs under its own workspace name (``f17``) and is removed at the end of the module, so
the suite's own install (workspace ``dlw``) never meets these policies.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.controlplane import ControlPlane, helm_path

ROOT = Path(__file__).resolve().parents[2]
NAME = "f17"
USER = "alice"
ALLOW = "/mnt/scratch"
SCRATCH = "/mnt/scratch/dlw"  # the per-user root


def _workspace() -> Any:
    """The default workspace (a Blob volume, Volcano queues) under another name (its priority classes too,
    so nothing here touches the suite's install), its scratch where the suite's own workspace has it, so
    the suite's policies (which select the same namespace label) agree."""
    from dlw_magic.workspace import load_workspace

    ws = load_workspace(ROOT / "hub_config" / "workspace.yaml")
    volumes = [v.model_copy(update={"path": SCRATCH}) if v.type == "hostPath" else v for v in ws.volumes]
    classes = [p.model_copy(update={"name": f"{NAME}-{p.name}"}) for p in ws.priority_classes]
    return ws.model_copy(update={"name": NAME, "volumes": volumes, "host_path_allowlist": [ALLOW],
                                 "priority_classes": classes,
                                 "namespaces": ws.namespaces.model_copy(
                                     update={"prefix": f"{NAME}-", "hub": f"{NAME}-hub"})})


def _cluster_objects(ws: Any) -> list[dict[str, Any]]:
    """The chart's objects without the parts this module does not exercise (Volcano Queues, the DaemonSet)."""
    from dlw_magic.hub.deploy import cluster_manifests

    skip = {"Queue", "DaemonSet"}
    return [o for o in cluster_manifests(ws, "") if o["kind"] not in skip]


def _delete(cp: ControlPlane, objects: list[dict[str, Any]]) -> None:
    for o in objects:
        kind = o["kind"].lower()
        ns = ["-n", o["metadata"]["namespace"]] if o["metadata"].get("namespace") else []
        cp.kubectl("delete", kind, o["metadata"]["name"], *ns, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def f17(control_plane: ControlPlane) -> Iterator[Any]:
    """The f17 workspace's cluster objects (policies, RBAC, priority classes), its hub namespace and SA."""
    ws = _workspace()
    objects = _cluster_objects(ws)
    control_plane.kubectl("create", "namespace", ws.namespaces.hub, check=False)
    control_plane.kubectl("create", "serviceaccount", "hub", "-n", ws.namespaces.hub, check=False)
    control_plane.apply(objects)
    try:
        yield ws
    finally:
        _delete(control_plane, objects)


def _user_namespace(cp: ControlPlane, ws: Any, user: str = USER) -> str:
    """The user's namespace as the hub leaves it: labelled, with the hub's and the notebook's bindings."""
    from dlw_magic.hub.deploy import namespace_objects

    ns = ws.namespace_for(user)
    objects = [o for o in namespace_objects(ws, ns, "", user) if o["kind"] not in ("PersistentVolume",
                                                                                   "PersistentVolumeClaim")]
    namespace, rest = objects[0], objects[1:]
    # Unlabelled first: only the hub may write the dlw-workspace ConfigMap once the policies select it.
    cp.apply([{**namespace, "metadata": {"name": ns}}, *rest])
    cp.apply([namespace])
    return ns


def _policy_active(cp: ControlPlane, ns: str) -> bool:
    """New policies take a moment to reach the API server's admission chain: a root pod is the probe."""
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe", "namespace": ns},
           "spec": {"containers": [{"name": "c", "image": "python:3.12", "securityContext": {"runAsUser": 0}}]}}
    out = cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)
    return out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr


def _pod(ns: str, volumes: list[dict[str, Any]], mounts: list[dict[str, Any]],
         security: dict[str, Any] | None = None) -> dict[str, Any]:
    restricted = {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}, **(security or {})}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": ns},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 1000,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "c", "image": "python:3.12", "volumeMounts": mounts,
                                     "securityContext": restricted}],
                     "volumes": volumes}}


def _admitted(cp: ControlPlane, pod: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return cp.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod), check=False)


def test_user_namespace_deletion_completes(control_plane: ControlPlane, f17: Any) -> None:
    ns = _user_namespace(control_plane, f17, "carol")
    control_plane.wait_for(lambda: _policy_active(control_plane, ns), "the f17 policies in force", 30)
    # The guard holds for a user (and the admin: it binds to the namespace, not to a user)...
    out = control_plane.kubectl("delete", "configmap", "dlw-workspace", "-n", ns, check=False)
    assert out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr, out.stderr
    # ...but lets the namespace controller empty a namespace being deleted.
    control_plane.kubectl("delete", "namespace", ns, "--wait=false")
    control_plane.wait_for(
        lambda: control_plane.kubectl("get", "namespace", ns, check=False).returncode != 0,
        f"namespace {ns} deleted", 90)


@pytest.mark.parametrize("path", [
    ALLOW,                                   # the parent of every user's folder
    SCRATCH,                                 # every user's folder, mounted without subPath
    f"{SCRATCH}/bob",                        # another user's folder
    f"{ALLOW}//dlw/bob",                     # spellings the node resolves, the API server keeps
    f"{ALLOW}/./dlw/bob",
    f"{SCRATCH}/{USER}/h",                   # below her folder: a symlink she planted there
])
def test_forbidden_host_paths_are_refused_by_the_api_server(control_plane: ControlPlane, f17: Any,
                                                            path: str) -> None:
    ns = _user_namespace(control_plane, f17)
    control_plane.wait_for(lambda: _policy_active(control_plane, ns), "the f17 policies in force", 30)
    pod = _pod(ns, [{"name": "h", "hostPath": {"path": path}}], [{"name": "h", "mountPath": "/h"}])
    out = _admitted(control_plane, pod)
    assert out.returncode != 0 and "hostPath" in out.stderr, out.stderr


def test_own_scratch_by_sub_path_is_admitted_and_root_is_not(control_plane: ControlPlane, f17: Any) -> None:
    ns = _user_namespace(control_plane, f17)
    control_plane.wait_for(lambda: _policy_active(control_plane, ns), "the f17 policies in force", 30)
    volume = [{"name": "h", "hostPath": {"path": SCRATCH, "type": "DirectoryOrCreate"}}]
    own = _pod(ns, volume, [{"name": "h", "mountPath": "/scratch", "subPath": USER}])
    out = _admitted(control_plane, own)
    assert out.returncode == 0, out.stderr
    other = _pod(ns, volume, [{"name": "h", "mountPath": "/scratch", "subPath": "bob"}])
    out = _admitted(control_plane, other)
    assert out.returncode != 0 and "hostPath" in out.stderr, out.stderr
    for security in ({"runAsUser": 0}, {"allowPrivilegeEscalation": True},
                     {"seLinuxOptions": {"type": "spc_t"}}):
        out = _admitted(control_plane, _pod(ns, [], [], security))
        assert out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr, (security, out.stderr)


def _can_i(cp: ControlPlane, ws: Any, verb: str, resource: str, namespace: str) -> bool:
    out = cp.kubectl("auth", "can-i", verb, resource, "-n", namespace,
                     f"--as=system:serviceaccount:{ws.namespaces.hub}:hub", check=False)
    return out.stdout.strip() == "yes"


def test_hub_rbac_writes_nothing_in_kube_system(control_plane: ControlPlane, f17: Any) -> None:
    ns = _user_namespace(control_plane, f17)
    for verb, resource in (("create", "pods"), ("create", "configmaps"), ("patch", "configmaps"),
                           ("delete", "pods"), ("create", "secrets"), ("create", "serviceaccounts")):
        assert not _can_i(control_plane, f17, verb, resource, "kube-system"), (verb, resource)
        assert not _can_i(control_plane, f17, verb, resource, "default"), (verb, resource)
    for verb, resource in (("create", "pods"), ("create", "configmaps"), ("create", "persistentvolumeclaims")):
        assert _can_i(control_plane, f17, verb, resource, ns), (verb, resource, ns)


def test_hub_token_cannot_relabel_kube_system_or_make_a_host_pv(control_plane: ControlPlane, f17: Any) -> None:
    hub = control_plane.sa_kubeconfig(f17.namespaces.hub, "hub")
    ns = _user_namespace(control_plane, f17)
    control_plane.wait_for(lambda: _policy_active(control_plane, ns), "the f17 policies in force", 30)
    # RBAC lets the hub label namespaces (it must, for the ones it creates); the policy keeps it to DLW's.
    out = control_plane.kubectl("label", "namespace", "kube-system", "dlw.dev/user-namespace=true",
                                kubeconfig=hub, check=False)
    assert out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr, out.stderr
    out = control_plane.kubectl("label", "namespace", ns, "dlw.dev/user-namespace-", kubeconfig=hub, check=False)
    assert out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr, out.stderr
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"{NAME}-root"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/"}}}
    out = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pv), kubeconfig=hub,
                                check=False)
    assert out.returncode != 0 and "ValidatingAdmissionPolicy" in out.stderr, out.stderr
    # Its own work still goes through: the namespace keeps its labels, a Blob PV for a user namespace.
    from dlw_magic.workspace.blob import blob_pv

    blob = blob_pv(f17.volume("datasets"), ns, f17.namespaces.hub)
    out = control_plane.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(blob), kubeconfig=hub,
                                check=False)
    assert out.returncode == 0, out.stderr


def _write_chart(ws: Any, chart: Path) -> Path:
    from dlw_magic.hub.deploy import chart_files

    for name, text in chart_files(ws, "").items():
        (chart / name).parent.mkdir(parents=True, exist_ok=True)
        (chart / name).write_text(text)
    return chart


def test_chart_installs_upgrades_and_uninstalls_where_volcano_made_its_default_queue(
        control_plane: ControlPlane, tmp_path: Path) -> None:
    from dlw_magic.workspace.model import Queue

    control_plane.install_crds("volcano")
    for queue in ("default", "root"):  # what volcano-scheduler creates at start
        control_plane.apply([{"apiVersion": "scheduling.volcano.sh/v1beta1", "kind": "Queue",
                              "metadata": {"name": queue}, "spec": {"weight": 1}}])
    base = _workspace()
    classes = [p.model_copy(update={"name": p.name.replace(NAME, f"{NAME}c", 1)}) for p in base.priority_classes]
    namespaces = base.namespaces.model_copy(update={"prefix": f"{NAME}c-", "hub": f"{NAME}c-hub"})
    ws = base.model_copy(update={"name": f"{NAME}c", "priority_classes": classes, "namespaces": namespaces})
    release, hub_ns = f"{NAME}-cluster", f"{NAME}c-hub"
    helm = [helm_path(), "--namespace", hub_ns, f"--kubeconfig={control_plane.kubeconfig}"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*helm, *args], capture_output=True, text=True, timeout=180, check=False)

    out = run("install", release, str(_write_chart(ws, tmp_path / "v1")), "--create-namespace")
    try:
        assert out.returncode == 0, out.stderr
        research = control_plane.get("queue", "research")
        assert research["spec"]["capability"]["nvidia.com/gpu"] == "32"  # the admin's queue

        # The admin edits the YAML (research gets 48 GPUs, a new queue) and upgrades the release.
        queues = [q.model_copy(update={"gpus": 48}) if q.name == "research" else q for q in ws.queues]
        ws2 = ws.model_copy(update={"queues": [*queues, Queue(name="extra", gpus=8)]})
        out = run("upgrade", release, str(_write_chart(ws2, tmp_path / "v2")), "--wait", "--timeout", "120s")
        assert out.returncode == 0, out.stderr
        assert control_plane.get("queue", "research")["spec"]["capability"]["nvidia.com/gpu"] == "48"
        assert control_plane.get("queue", "extra")["spec"]["capability"]["nvidia.com/gpu"] == "8"
        history = run("history", release, "-o", "json")
        assert [r["revision"] for r in json.loads(history.stdout)] == [1, 2], history.stdout

        # Uninstall removes what the chart made and nothing of Volcano's.
        out = run("uninstall", release, "--wait", "--timeout", "120s")
        assert out.returncode == 0, out.stderr
        for gone in ("research", "extra"):
            got = control_plane.kubectl("get", "queue", gone, check=False)
            assert got.returncode != 0 and "NotFound" in got.stderr, gone
        for kept in ("default", "root"):
            assert control_plane.get("queue", kept)["metadata"]["name"] == kept
        names = {p["metadata"]["name"] for p in control_plane.get("priorityclasses")["items"]}
        assert not {c.name for c in classes} & names, names
    finally:
        run("uninstall", release, "--wait=false")
