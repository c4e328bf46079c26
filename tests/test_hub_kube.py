"""KubeSpawner's own code builds the notebook pods the admin YAML describes.

For every profile and GPU choice of the default and the test workspaces, a real ``DLWKubeSpawner``
(KubeSpawner with ``_mock=True``: no hub, no API calls) applies the profile the way a spawn does
(``load_user_options``) and builds the pod; the pod must validate against the Kubernetes schema and carry
the GPU limit, node selector, tolerations, volumes, env and service account the profile says.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from traitlets.config import Config

from dlw_magic.workspace import Workspace, load_workspace
from tests.k8s_schema import validate_object

ROOT = Path(__file__).resolve().parents[1]
WORKSPACES = [ROOT / "hub_config" / "workspace.yaml", *sorted((ROOT / "tests/data/workspaces").glob("*.yaml"))]


class Group:
    def __init__(self, name: str) -> None:
        self.name = name


class User:
    def __init__(self, name: str, groups: list[str] = ()) -> None:  # type: ignore[assignment]
        self.name, self.id, self.url = name, 1, f"/user/{name}/"
        self.groups = [Group(g) for g in groups]


class Hub:
    public_host, url, base_url, api_url = "hub", "http://hub:8081/hub/", "/hub/", "http://hub:8081/hub/api"


@pytest.fixture(autouse=True)
def kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """KubeSpawner loads a kubeconfig even with _mock=True; this one points nowhere and is never used."""
    cfg = tmp_path / "kubeconfig"
    cfg.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    point_kubeconfig(cfg, monkeypatch)


def point_kubeconfig(cfg: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # kubernetes_asyncio reads $KUBECONFIG once, at import: patch its copy too.
    from kubernetes_asyncio.config import kube_config

    monkeypatch.setenv("KUBECONFIG", str(cfg))
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(cfg))


def hub_config(path: Path, base: Config | None = None) -> Config:
    from dlw_magic.hub.kube import configure

    c = base or Config()
    configure(c, str(path))
    return c


async def build_pod(path: Path, user: User, options: dict[str, str], base: Config | None = None) -> dict[str, Any]:
    from kubernetes_asyncio.client import ApiClient

    from dlw_magic.hub.kube import DLWKubeSpawner

    spawner = DLWKubeSpawner(_mock=True, config=hub_config(path, base), user=user, hub=Hub())
    spawner.user_options = options
    await spawner.load_user_options()
    pod = await spawner.get_pod_manifest()
    async with ApiClient() as api:
        out = api.sanitize_for_serialization(pod)
    out["metadata"]["namespace"] = spawner.namespace
    return out


def cases() -> list[tuple[Path, str, int]]:
    out = []
    for path in WORKSPACES:
        for profile in load_workspace(path).profiles:
            out += [(path, profile.name, n) for n in profile.gpus]
    return out


def user_for(ws: Workspace, profile: str) -> User:
    groups = ws.profile(profile).groups
    return User("alice", groups[:1])


@pytest.mark.parametrize(("path", "profile", "gpus"), cases(), ids=lambda v: v.name if isinstance(v, Path) else str(v))
def test_every_profile_builds_a_valid_pod(path: Path, profile: str, gpus: int) -> None:
    ws = load_workspace(path)
    prof = ws.profile(profile)
    pod = asyncio.run(build_pod(path, user_for(ws, profile), {"profile": profile, "gpus": str(gpus)}))
    validate_object(pod)

    spec = pod["spec"]
    container = spec["containers"][0]
    assert container["image"] == prof.image
    limits = container["resources"].get("limits", {})
    if gpus:
        assert limits[prof.gpu_resource] == str(gpus)
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    else:
        assert not any(k.startswith("nvidia.com/") for k in limits)
    if prof.gpu_type:
        assert spec["nodeSelector"]["nvidia.com/gpu.product"] == prof.gpu_type
    for k, v in prof.node_selector.items():
        assert spec["nodeSelector"][k] == v
    for t in prof.tolerations:
        assert t in spec["tolerations"]

    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["DLW_PROFILE"] == profile
    assert env["DLW_GPUS"] == str(gpus)
    assert env["DLW_IMAGE"] == prof.image
    assert env["DLW_NAMESPACE"] == ws.namespace_for("alice") == pod["metadata"]["namespace"]
    assert env["DLW_WORKSPACE_CONFIG"] == "/etc/dlw/workspace.yaml"
    for k, v in prof.env.items():
        assert env[k] == v

    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    names = {v["name"] for v in spec["volumes"]}
    for vol_name in ([ws.home.name] if ws.home else []) + prof.volumes:
        vol = ws.volume(vol_name)
        assert mounts[vol.mount_path]["name"] == f"dlw-{vol_name}"
        assert mounts[vol.mount_path]["readOnly"] == vol.read_only
        assert f"dlw-{vol_name}" in names
    assert mounts["/etc/dlw"]["readOnly"] is True  # the admin YAML, for the job renderer

    assert spec["serviceAccountName"] == ws.hub.service_account
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert not container["securityContext"].get("privileged")


def test_memory_and_cpu_come_from_the_profile() -> None:
    pod = asyncio.run(build_pod(WORKSPACES[0], User("alice"), {"profile": "gpu", "gpus": "4"}))
    res = pod["spec"]["containers"][0]["resources"]
    assert res["limits"]["memory"] == 64 * 2**30 and res["requests"]["memory"] == 16 * 2**30
    assert res["limits"]["cpu"] == 16.0 and res["requests"]["cpu"] == 4.0
    assert res["limits"]["nvidia.com/gpu"] == "4"


def test_default_profile_and_default_gpu_choice() -> None:
    pod = asyncio.run(build_pod(WORKSPACES[0], User("alice"), {}))
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["DLW_PROFILE"] == "cpu" and env["DLW_GPUS"] == "0"
    pod = asyncio.run(build_pod(WORKSPACES[0], User("alice"), {"profile": "gpu"}))
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_profiles_are_offered_and_accepted_by_group() -> None:
    from dlw_magic.hub.kube import profile_list_callable

    spawner_alice = type("S", (), {"user": User("alice")})()
    spawner_bob = type("S", (), {"user": User("bob", ["research"])})()
    offer = profile_list_callable(str(WORKSPACES[0]))
    assert [p["slug"] for p in offer(spawner_alice)] == ["cpu", "gpu"]
    assert [p["slug"] for p in offer(spawner_bob)] == ["cpu", "gpu", "gpu-research"]
    with pytest.raises(ValueError, match="No such profile: gpu-research"):
        asyncio.run(build_pod(WORKSPACES[0], User("alice"), {"profile": "gpu-research"}))
    pod = asyncio.run(build_pod(WORKSPACES[0], User("bob", ["research"]), {"profile": "gpu-research"}))
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "8"


def test_gpu_choice_outside_the_profile_is_refused() -> None:
    with pytest.raises(KeyError):
        asyncio.run(build_pod(WORKSPACES[0], User("alice"), {"profile": "gpu", "gpus": "3"}))


def test_profile_volumes_merge_with_volumes_the_hub_already_has() -> None:
    base = Config()
    base.KubeSpawner.volumes = [{"name": "site-tools", "configMap": {"name": "tools"}}]
    base.KubeSpawner.volume_mounts = [{"name": "site-tools", "mountPath": "/opt/tools"}]
    base.KubeSpawner.tolerations = [{"key": "site", "operator": "Exists"}]
    pod = asyncio.run(build_pod(WORKSPACES[0], User("alice"), {"profile": "gpu", "gpus": "1"}, base))
    names = [v["name"] for v in pod["spec"]["volumes"]]
    assert names[:2] == ["site-tools", "dlw-workspace"]
    assert {"dlw-home", "dlw-scratch", "dlw-datasets"} <= set(names)
    mounts = {m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
    assert {"/opt/tools", "/etc/dlw", "/home/jovyan", "/scratch", "/data/datasets"} <= mounts
    assert {"key": "site", "operator": "Exists"} in pod["spec"]["tolerations"]


async def test_home_claim_matches_the_job_renderers() -> None:
    from dlw_magic.hub.kube import DLWKubeSpawner
    from dlw_magic.workspace import home_claim_name

    ws = load_workspace(WORKSPACES[0])
    user = User("Alice.Smith@x.org")
    spawner = DLWKubeSpawner(_mock=True, config=hub_config(WORKSPACES[0]), user=user, hub=Hub())
    assert spawner.pvc_name == home_claim_name(ws.home, user.name)
    assert spawner.namespace == ws.namespace_for(user.name)
    pod = await build_pod(WORKSPACES[0], user, {"profile": "cpu"})
    home = next(v for v in pod["spec"]["volumes"] if v["name"] == "dlw-home")
    assert home["persistentVolumeClaim"]["claimName"] == spawner.pvc_name


def test_shared_namespace_scheme_and_pull_secret() -> None:
    path = ROOT / "tests/data/workspaces/shared_kueue.yaml"
    c = hub_config(path)
    assert c.KubeSpawner.enable_user_namespaces is False
    assert c.KubeSpawner.namespace == "ml-users"
    pod = asyncio.run(build_pod(path, User("alice", ["vision"]), {"profile": "mig"}))
    assert pod["metadata"]["namespace"] == "ml-users"
    assert pod["spec"]["imagePullSecrets"] == [{"name": "lab-pull"}]
    assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/mig-1g.10gb"] == "1"


def test_idle_culler_is_configured_unless_the_chart_runs_one() -> None:
    c = hub_config(WORKSPACES[0])
    (service,) = [s for s in c.JupyterHub.services if s["name"] == "dlw-idle-culler"]
    assert "--timeout=3600" in service["command"] and "--cull-every=600" in service["command"]
    assert any(r["name"] == "dlw-idle-culler" and "delete:servers" in r["scopes"] for r in c.JupyterHub.load_roles)
    z2jh = Config()
    z2jh.JupyterHub.services = [{"name": "cull-idle", "command": ["x"]}]
    c = hub_config(WORKSPACES[0], z2jh)
    assert [s["name"] for s in c.JupyterHub.services] == ["cull-idle"]


NAMESPACE_RESOURCES = [
    "v1/namespaces", "v1/serviceaccounts", "v1/configmaps", "v1/resourcequotas", "v1/pods", "v1/secrets",
    "v1/persistentvolumeclaims", "v1/persistentvolumes", "rbac.authorization.k8s.io/v1/rolebindings",
    "networking.k8s.io/v1/networkpolicies",
]


@pytest.mark.parametrize("queue_system", ["volcano", "kueue"])
def test_spawn_sets_up_the_users_namespace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, queue_system: str) -> None:
    """Against kmock's KubernetesEmulator: the hub's requests create everything the user's namespace needs
    (labelled Namespace, ServiceAccount, RoleBinding, GPU quota, admin YAML ConfigMap, NetworkPolicy, Kueue
    LocalQueues, the Blob PV/PVC the GPU profiles mount, the pull Secret), the home PVC and the pod; a
    changed admin YAML reaches the namespace at the next spawn; every request is one the hub's ClusterRole
    allows."""
    from dlw_magic.hub import rbac
    from dlw_magic.hub.kube import DLWKubeSpawner
    from dlw_magic.workspace import load_workspace
    from tests.k8s_authz import allowed, request_attributes
    from tests.k8s_emulator import KubeEmulator

    data = yaml.safe_load(WORKSPACES[0].read_text())
    data["queueSystem"] = queue_system
    data["images"]["pullSecret"] = "regcred"
    ws_file = tmp_path / "workspace.yaml"
    ws_file.write_text(yaml.safe_dump(data))
    resources = [*NAMESPACE_RESOURCES, "kueue.x-k8s.io/v1beta1/localqueues"]
    with KubeEmulator(tmp_path, namespace="dlw-alice", resources=resources) as kube:
        point_kubeconfig(kube.kubeconfig, monkeypatch)
        kube._call("POST", "api/v1/namespaces/dlw/secrets", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "regcred", "namespace": "dlw"},
            "type": "kubernetes.io/dockerconfigjson", "data": {".dockerconfigjson": "e30="}})
        seen = len(kube.requests())

        async def spawn() -> None:
            c = hub_config(ws_file)
            c.KubeSpawner.k8s_api_host = kube.url
            spawner = DLWKubeSpawner(_mock=True, config=c, user=User("alice"), hub=Hub())
            await spawner.ensure_user_objects()
            data["quotas"]["defaultUserGpus"] = 4  # the admin changes the workspace between two spawns
            ws_file.write_text(yaml.safe_dump(data))
            mtime = ws_file.stat().st_mtime + 10  # a later write, whatever the file system's clock resolution
            os.utime(ws_file, (mtime, mtime))
            await spawner.ensure_user_objects()
            spawner.user_options = {"profile": "gpu", "gpus": "2"}
            await spawner.load_user_options()
            await spawner._make_create_pvc_request(spawner.get_pvc_manifest(), 10)
            await spawner._make_create_pod_request(await spawner.get_pod_manifest(), 10)

        monkeypatch.setattr("dlw_magic.hub.workspace_cache.RECHECK_SECONDS", 0.0)
        # kmock cannot store cluster-scoped Namespaces (their labels: tests/test_hub_cluster.py).
        from dlw_magic.hub import kube as hub_kube

        every = hub_kube.namespace_objects
        monkeypatch.setattr(hub_kube, "namespace_objects",
                            lambda *a: [o for o in every(*a) if o["kind"] != "Namespace"])
        asyncio.run(spawn())
        hub_requests = list(kube.emulator)[seen:]

        def names(path: str) -> list[str]:
            return sorted(i["metadata"]["name"] for i in kube._call("GET", path)["items"])

        ns = "api/v1/namespaces/dlw-alice"
        assert names(f"{ns}/serviceaccounts") == ["dlw-notebook"]
        bindings = kube._call("GET", "apis/rbac.authorization.k8s.io/v1/namespaces/dlw-alice/rolebindings")["items"]
        assert sorted((b["roleRef"]["kind"], b["roleRef"]["name"]) for b in bindings) == [
            ("ClusterRole", "dlw-hub-in-user-namespace"), ("ClusterRole", "dlw-notebook")]
        (quota,) = kube._call("GET", f"{ns}/resourcequotas")["items"]
        assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "4"}  # updated, not left stale
        cm = kube._call("GET", f"{ns}/configmaps/dlw-workspace")
        assert cm["data"]["workspace.yaml"] == ws_file.read_text()
        assert names("apis/networking.k8s.io/v1/namespaces/dlw-alice/networkpolicies") == ["dlw-user-namespace"]
        queues = names("apis/kueue.x-k8s.io/v1beta1/namespaces/dlw-alice/localqueues")
        assert queues == (["default", "research"] if queue_system == "kueue" else [])
        assert names(f"{ns}/persistentvolumeclaims") == ["claim-alice", "dlw-blob-datasets"]
        assert names("api/v1/persistentvolumes") == ["dlw-blob-datasets-dlw-alice"]
        secret = kube._call("GET", f"{ns}/secrets/regcred")
        assert secret["data"] == {".dockerconfigjson": "e30="}
        (pod,) = kube._call("GET", f"{ns}/pods")["items"]
        assert pod["spec"]["serviceAccountName"] == "dlw-notebook"
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
        assert pod["spec"]["imagePullSecrets"] == [{"name": "regcred"}]

        # The hub's rights: z2jh's Role in its own namespace (the pull Secret), the ClusterRole elsewhere.
        # (In a user namespace: the cluster-wide rules plus the namespace's RoleBinding to hub_namespace_role.)
        spawn_ws = load_workspace(ws_file)
        rules = rbac.hub_cluster_role(spawn_ws)["rules"] + rbac.hub_namespace_role(spawn_ws)["rules"]
        z2jh_role = [{"apiGroups": [""], "resources": ["pods", "persistentvolumeclaims", "secrets", "services"],
                      "verbs": ["get", "watch", "list", "create", "delete"]}]
        assert any(r.method.value.upper() == "PATCH" for r in hub_requests)  # the second spawn updates
        for request in hub_requests:
            attrs = request_attributes(str(request.method.value), request.url.path, dict(request.url.query))
            if attrs.namespace == "dlw":
                assert allowed(z2jh_role, attrs), attrs
            else:
                assert allowed(rules, attrs), attrs


def test_hub_config_file_sets_up_kubespawner(monkeypatch: pytest.MonkeyPatch) -> None:
    """JupyterHub loads hub_config/jupyterhub_config.py as it would in a cluster."""
    from jupyterhub.app import JupyterHub

    from dlw_magic.hub.kube import DLWKubeSpawner

    lab = ROOT / "tests/data/workspaces/shared_kueue.yaml"
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(lab))
    app = JupyterHub()
    app.load_config_file(str(ROOT / "hub_config" / "jupyterhub_config.py"))
    assert app.config.JupyterHub.spawner_class is DLWKubeSpawner
    assert app.config.KubeSpawner.namespace == "ml-users"
    assert app.config.KubeSpawner.service_account == "ml-notebook"
    assert app.config.Authenticator.admin_users == {"root-admin"}
    spawner = type("S", (), {"user": User("alice", ["vision"])})()
    assert [p["slug"] for p in app.config.KubeSpawner.profile_list(spawner)] == ["small", "mig"]


async def test_spawn_form_lists_the_users_profiles_and_gpu_choices() -> None:
    """KubeSpawner renders the spawn page from our profile list: names, descriptions, GPU choices."""
    from dlw_magic.hub.kube import DLWKubeSpawner

    spawner = DLWKubeSpawner(_mock=True, config=hub_config(WORKSPACES[0]), user=User("alice"), hub=Hub())
    form = await spawner._render_options_form_dynamically(spawner)
    assert "CPU notebook" in form and "GPU notebook" in form and "1, 2 or 4 NVIDIA GPUs on one node." in form
    assert "4 GPUs (NVIDIA-H100-80GB-HBM3)" in form
    assert "gpu-research" not in form
    options = spawner.options_from_form({"profile": ["gpu"], "profile-option-gpu--gpus": ["4"]})
    assert options == {"profile": "gpu", "gpus": "4"}


def test_a_notebook_may_take_the_admins_start_timeout_over_z2jhs(tmp_path: Path) -> None:
    """z2jh's 300 s is shorter than an autoscaled GPU node plus a large image pull: the admin YAML decides."""
    z2jh = Config()
    z2jh.KubeSpawner.start_timeout = 300  # what z2jh's jupyterhub_config.py sets from singleuser.startTimeout
    assert hub_config(WORKSPACES[0], z2jh).KubeSpawner.start_timeout == 900
    text = WORKSPACES[0].read_text(encoding="utf-8")
    custom = tmp_path / "workspace.yaml"
    custom.write_text(text.replace("hub:\n", "hub:\n  startTimeout: 20m\n", 1), encoding="utf-8")
    assert "startTimeout: 20m" in custom.read_text(encoding="utf-8")
    assert hub_config(custom).KubeSpawner.start_timeout == 1200


def test_namespace_objects_are_applied_namespace_first_then_rights_then_the_rest() -> None:
    """A fresh namespace: the Namespace and PVs before anything in it, the hub's RoleBinding before what
    needs its rights, each PV before its PVC; the objects of one wave go out together (one round trip)."""
    import logging

    from kubernetes_asyncio.client.exceptions import ApiException

    from dlw_magic.hub.apply import apply_objects

    log: list[tuple[str, str]] = []  # ("start" | "end", resource), in time order

    class Recorder:  # the API's answers: the namespace exists already (409, then the merge patch)
        async def call_api(self, path: str, method: str, **_: Any) -> dict[str, Any]:
            kind = path.rsplit("/", 1)[-1] if method == "POST" else path.rsplit("/", 2)[-2]
            log.append(("start", kind))
            await asyncio.sleep(0.01)
            log.append(("end", kind))
            if method == "POST" and kind == "namespaces":
                raise ApiException(status=409)
            return {}

    def obj(kind: str, name: str, ns: str | None = "dlw-alice") -> dict[str, Any]:
        api = "rbac.authorization.k8s.io/v1" if kind == "RoleBinding" else "v1"
        return {"apiVersion": api, "kind": kind, "metadata": {"name": name, **({"namespace": ns} if ns else {})}}

    objects = [obj("Namespace", "dlw-alice", None), obj("RoleBinding", "dlw-hub"), obj("ServiceAccount", "sa"),
               obj("RoleBinding", "dlw-notebook"), obj("ConfigMap", "cm"), obj("PersistentVolume", "pv", None),
               obj("PersistentVolumeClaim", "pvc")]
    asyncio.run(apply_objects(Recorder(), objects, logging.getLogger("test")))
    wave = {"namespaces": 0, "persistentvolumes": 0, "rolebindings": 1, "serviceaccounts": 2, "configmaps": 2,
            "persistentvolumeclaims": 2}
    starts = [wave[k] for e, k in log if e == "start"]
    assert starts == sorted(starts) and len(starts) == 8  # the namespace: created, else updated
    for w in (1, 2):  # a wave starts once every request of the one before has ended
        first_start = next(i for i, (e, k) in enumerate(log) if e == "start" and wave[k] == w)
        last_end = max(i for i, (e, k) in enumerate(log) if e == "end" and wave[k] == w - 1)
        assert last_end < first_start
    # the last wave's three requests are all out before the first of them comes back
    assert [e for e, k in log if wave[k] == 2][:3] == ["start"] * 3
