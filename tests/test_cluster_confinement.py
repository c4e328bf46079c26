"""The cluster path's second pass (issue 17): what a stolen hub token, a hand-made pod, Service or job, a
namespace deletion, Volcano's own queues and the admin's node images do to DLW's cluster objects.

Policies are evaluated with cel-python (``tests.test_hub_cluster.Policy``), RBAC with ``tests.k8s_authz``;
tests/cluster/test_defects_*.py replays the same on a real API server where one can be built.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dlw_magic.errors import DLWError
from dlw_magic.hub import rbac
from dlw_magic.hub.admission import admission_policies, hub_username
from dlw_magic.hub.cluster_check import check_cluster
from dlw_magic.hub.deploy import chart_files, cluster_manifests, namespace_objects
from dlw_magic.workspace import load_workspace
from tests.k8s_authz import allowed, request_attributes

celpy = pytest.importorskip("celpy", reason="cel-python (the test extra) evaluates the admission policies")
from tests.test_hub_cluster import Policy, policy, user_namespace  # noqa: E402 - after the importorskip

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "hub_config" / "workspace.yaml"
HUB = "system:serviceaccount:dlw:hub"


def ws() -> Any:
    return load_workspace(DEFAULT)


# -- 1. Volcano's own queues ----------------------------------------------------------------------------


def test_chart_does_not_own_the_queues_volcano_creates() -> None:
    """volcano-scheduler creates Queues default and root at start; Helm refuses to install over them."""
    objects = cluster_manifests(ws(), DEFAULT.read_text())
    queues = [o["metadata"]["name"] for o in objects if o["kind"] == "Queue"]
    assert "research" in queues  # the admin's own queue stays
    assert "default" not in queues and "root" not in queues
    assert "name: default\n" not in chart_files(ws(), DEFAULT.read_text())["values.yaml"].split("kind: Queue")[-1]


# -- 6. the hub's rights --------------------------------------------------------------------------------


def _hub_may(method: str, path: str) -> bool:
    """What the hub's RBAC allows in ``path``'s namespace: its cluster-wide ClusterRole, plus the per-namespace
    role where the namespace is a DLW user namespace the hub set up (its RoleBinding is there)."""
    w = ws()
    attrs = request_attributes(method, path)
    rules = list(rbac.hub_cluster_role(w)["rules"])
    if attrs.namespace and attrs.namespace.startswith(w.namespaces.prefix):
        bindings = [o for o in namespace_objects(w, attrs.namespace, "", "alice") if o["kind"] == "RoleBinding"]
        if any(b["roleRef"]["name"] == rbac.hub_namespace_role_name(w) for b in bindings):
            rules += rbac.hub_namespace_role(w)["rules"]
    return allowed(rules, attrs)


@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/api/v1/namespaces/kube-system/pods"),
    ("POST", "/api/v1/namespaces/kube-system/configmaps"),
    ("PATCH", "/api/v1/namespaces/kube-system/configmaps/coredns"),
    ("POST", "/api/v1/namespaces/kube-system/secrets"),
    ("DELETE", "/api/v1/namespaces/kube-system/pods/etcd-0"),
    ("POST", "/api/v1/namespaces/default/serviceaccounts"),
])
def test_hub_rbac_holds_no_namespaced_writes_outside_user_namespaces(method: str, path: str) -> None:
    assert not _hub_may(method, path)


def test_hub_rbac_covers_a_user_namespace_it_set_up() -> None:
    for method, path in (("POST", "/api/v1/namespaces/dlw-alice/pods"),
                         ("POST", "/api/v1/namespaces/dlw-alice/configmaps"),
                         ("POST", "/api/v1/namespaces/dlw-alice/persistentvolumeclaims")):
        assert _hub_may(method, path), path
    objects = namespace_objects(ws(), "dlw-alice", "", "alice")
    kinds = [o["kind"] for o in objects]
    # The hub's RoleBinding comes right after the Namespace: every later object needs it.
    assert kinds[:2] == ["Namespace", "RoleBinding"]
    assert objects[1]["roleRef"]["name"] == rbac.hub_namespace_role_name(ws())


def hub_policy() -> Policy:
    return policy("hub-confinement")


def _ns(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}


def _denied(p: Policy, obj: Any, ns: dict[str, Any] | None, *, resource: str, namespace: str = "",
            operation: str = "CREATE", old: Any = None, user: str = HUB) -> list[str]:
    """Policy.denials with the request's resource and namespace, which the hub policy reads."""
    activation_request = {"operation": operation, "userInfo": {"username": user},
                          "namespace": namespace, "resource": {"group": "", "version": "v1", "resource": resource}}
    env = p.env
    act: dict[str, Any] = {
        "object": celpy.json_to_cel(obj), "oldObject": celpy.json_to_cel(old),
        "namespaceObject": celpy.json_to_cel(ns), "request": celpy.json_to_cel(activation_request),
    }
    for cond in p.spec.get("matchConditions", []):
        if not env.program(env.compile(cond["expression"])).evaluate(act):
            return []
    return [v["message"] for v in p.spec["validations"]
            if not env.program(env.compile(v["expression"])).evaluate(act)]


def test_hub_policy_keeps_namespaced_writes_in_dlw_namespaces() -> None:
    p = hub_policy()
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "coredns"}}
    system = _ns("kube-system")
    assert _denied(p, cm, system, resource="configmaps", namespace="kube-system", operation="UPDATE", old=cm)
    assert _denied(p, None, system, resource="pods", namespace="kube-system", operation="DELETE", old={})
    assert _denied(p, cm, user_namespace(), resource="configmaps", namespace="dlw-alice") == []
    assert _denied(p, cm, _ns("dlw"), resource="configmaps", namespace="dlw") == []  # its own (z2jh's Role)
    # Others' requests are not the hub policy's business.
    assert _denied(p, cm, system, resource="configmaps", namespace="kube-system", user="admin") == []


def test_hub_policy_keeps_namespace_labels_the_user_policies_select_on() -> None:
    p = hub_policy()
    labels = rbac.namespace_labels(ws(), "alice")
    mine = _ns("dlw-alice", **labels)
    assert _denied(p, mine, None, resource="namespaces") == []
    assert _denied(p, mine, mine, resource="namespaces", namespace="dlw-alice", operation="UPDATE", old=mine) == []
    dropped = _ns("dlw-alice", **{k: v for k, v in labels.items() if k != rbac.USER_NAMESPACE_LABEL})
    assert _denied(p, dropped, mine, resource="namespaces", namespace="dlw-alice", operation="UPDATE", old=mine)
    weaker = _ns("dlw-alice", **{**labels, "pod-security.kubernetes.io/enforce": "baseline",
                                 rbac.USER_LABEL: "alice"})
    if labels["pod-security.kubernetes.io/enforce"] != "baseline":
        assert _denied(p, weaker, mine, resource="namespaces", namespace="dlw-alice", operation="UPDATE", old=mine)
    moved = _ns("dlw-alice", **{**labels, rbac.USER_LABEL: "bob"})  # bob's scratch folder for alice's pods
    assert _denied(p, moved, mine, resource="namespaces", namespace="dlw-alice", operation="UPDATE", old=mine)
    system = _ns("kube-system")
    taken = _ns("kube-system", **labels)
    assert _denied(p, taken, system, resource="namespaces", namespace="kube-system", operation="UPDATE", old=system)


def test_hub_policy_allows_only_blob_persistent_volumes() -> None:
    from dlw_magic.workspace.blob import blob_pv

    p = hub_policy()
    w = ws()
    blob = blob_pv(w.volume("datasets"), "dlw-alice", "dlw")
    assert _denied(p, blob, None, resource="persistentvolumes") == []
    root = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "root"},
            "spec": {"hostPath": {"path": "/"}, "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]}}
    assert _denied(p, root, None, resource="persistentvolumes")
    stolen = {**blob, "spec": {**blob["spec"], "csi": {**blob["spec"]["csi"], "nodeStageSecretRef": {
        "name": "cloud-credentials", "namespace": "kube-system"}}}}
    assert _denied(p, stolen, None, resource="persistentvolumes")


# -- wrong but works: Services, queues, priorities -------------------------------------------------------


@pytest.mark.parametrize(("spec", "refused"), [
    ({"type": "LoadBalancer", "ports": [{"port": 80}]}, True),
    ({"type": "NodePort", "ports": [{"port": 80}]}, True),
    ({"type": "ExternalName", "externalName": "example.com"}, True),
    ({"ports": [{"port": 80}], "externalIPs": ["1.2.3.4"]}, True),
    ({"clusterIP": "None", "ports": [{"port": 29500}]}, False),  # the headless Service of a DDP job
])
def test_notebook_may_create_only_cluster_ip_services(spec: dict[str, Any], refused: bool) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"}, "spec": spec}
    assert bool(policy("user-services").denials(svc, user_namespace())) == refused


def _job(**template_spec: Any) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
            "spec": {"template": {"metadata": {"annotations": template_spec.pop("annotations", {})},
                                  "spec": {"containers": [{"name": "c", "image": "x"}], **template_spec}}}}


def test_jobs_outside_the_admins_queues_are_refused() -> None:
    p = policy("user-job-queues")
    sa = "system:serviceaccount:dlw-alice:dlw-notebook"

    def denied(job: dict[str, Any], group: str = "batch", resource: str = "jobs") -> list[str]:
        request = {"operation": "CREATE", "userInfo": {"username": sa}, "namespace": "dlw-alice",
                   "resource": {"group": group, "version": "v1", "resource": resource}}
        act = {"object": celpy.json_to_cel(job), "oldObject": None,
               "namespaceObject": celpy.json_to_cel(user_namespace()), "request": celpy.json_to_cel(request)}
        env = p.env
        assert all(env.program(env.compile(c["expression"])).evaluate(act) for c in p.spec["matchConditions"])
        return [v["message"] for v in p.spec["validations"]
                if not env.program(env.compile(v["expression"])).evaluate(act)]

    assert denied(_job())  # a plain Job, no queue: past Volcano entirely
    assert denied(_job(schedulerName="volcano", annotations={"scheduling.volcano.sh/queue-name": "vip"}))
    assert denied(_job(schedulerName="volcano", annotations={"scheduling.volcano.sh/queue-name": "research"})) == []
    vc = {"apiVersion": "batch.volcano.sh/v1alpha1", "kind": "Job", "metadata": {"name": "v"},
          "spec": {"queue": "vip", "tasks": []}}
    assert denied(vc, "batch.volcano.sh")
    assert denied({**vc, "spec": {"queue": "default", "tasks": []}}, "batch.volcano.sh") == []


def test_pods_may_name_only_the_admins_priority_classes() -> None:
    pods = policy("user-pods")
    from tests.test_hub_cluster import _pod, _restricted

    assert any("priorityClassName" in m for m in pods.denials(
        _restricted(_pod(priorityClassName="system-cluster-critical")), user_namespace()))
    for name in ("dlw-normal", "dlw-notebook"):
        assert pods.denials(_restricted(_pod(priorityClassName=name)), user_namespace()) == []


def test_notebooks_outrank_normal_jobs_and_never_preempt() -> None:
    objects = {o["metadata"]["name"]: o for o in cluster_manifests(ws(), DEFAULT.read_text())
               if o["kind"] == "PriorityClass"}
    notebook = objects["dlw-notebook"]
    assert notebook["value"] > objects["dlw-normal"]["value"] and notebook["preemptionPolicy"] == "Never"
    custom = ws().model_copy(update={"hub": ws().hub.model_copy(update={"notebook_priority": 50})})
    assert custom.notebook_priority_class == ("dlw-notebook", 50)


def test_namespace_labels_keep_the_strictest_pod_security_level() -> None:
    w = ws()
    assert rbac.namespace_labels(w)["pod-security.kubernetes.io/enforce"] == "privileged"  # hostPath scratch
    no_host = w.model_copy(update={"volumes": [v for v in w.volumes if v.type != "hostPath"],
                                   "profiles": [p.model_copy(update={"volumes": []}) for p in w.profiles]})
    assert rbac.namespace_labels(no_host)["pod-security.kubernetes.io/enforce"] == "baseline"
    assert rbac.namespace_labels(w)["pod-security.kubernetes.io/warn"] == "restricted"


# -- 5. node images and the admin check -----------------------------------------------------------------


def _get(objects: dict[str, Any]) -> Any:
    return lambda path: objects.get(path)


def check_cluster_lines(w: Any) -> list[str]:
    """The check's lines on a cluster that answers nothing (no CRDs, no nodes)."""
    return [f.line() for f in check_cluster(w, _get({}))]


def test_default_scratch_is_writable_on_every_node_image_and_only_where_asked() -> None:
    w = ws()
    assert w.profile("cpu").volumes == []  # a CPU notebook mounts no hostPath
    cos = {"metadata": {"name": "gke-0"}, "status": {"nodeInfo": {"osImage": "Container-Optimized OS from Google"}}}
    lines = [f.line() for f in check_cluster(w, _get({"/api/v1/nodes": {"items": [cos]}}))]
    assert "ok   hostPath /var/lib/dlw/scratch (volume scratch): writable on every node image" in lines
    old = w.model_copy(update={"volumes": [v.model_copy(update={"path": "/mnt/scratch/dlw"})
                                           if v.type == "hostPath" else v for v in w.volumes],
                               "host_path_allowlist": ["/mnt/scratch"]})
    bad = [f.line() for f in check_cluster(old, _get({"/api/v1/nodes": {"items": [cos]}}))]
    assert any(line.startswith("FAIL hostPath /mnt/scratch/dlw") and "Container-Optimized OS" in line
               for line in bad), bad


def test_admin_check_reads_volcano_kueue_and_trainer_preconditions() -> None:
    w = ws()
    conf = {"data": {"volcano-scheduler.conf": 'actions: "enqueue, allocate, backfill"\n'}}
    lines = [f.line() for f in check_cluster(w, _get({
        "/api/v1/namespaces/volcano-system/configmaps/volcano-scheduler-configmap": conf}))]
    assert any(line.startswith("warn Volcano scheduler actions: no preempt or reclaim") for line in lines), lines
    conf = {"data": {"volcano-scheduler.conf": 'actions: "enqueue, allocate, preempt, reclaim, backfill"\n'}}
    lines = [f.line() for f in check_cluster(w, _get({
        "/api/v1/namespaces/volcano-system/configmaps/volcano-scheduler-configmap": conf}))]
    assert any(line.startswith("ok   Volcano scheduler actions") for line in lines), lines

    kueue = w.model_copy(update={"queue_system": "kueue"})
    manager = {"data": {"controller_manager_config.yaml": "integrations:\n  frameworks: [batch/job]\n"}}
    lines = [f.line() for f in check_cluster(kueue, _get({
        "/api/v1/namespaces/kueue-system/configmaps/kueue-manager-config": manager}))]
    assert any(line.startswith("warn Kueue integration kubeflow.org/pytorchjob: not in") for line in lines), lines
    assert "ok   Kueue integration batch/job: enabled (engine job)" in lines
    assert any(line.startswith("warn Kueue queue default: no gpus cap") for line in lines), lines

    crd = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/trainingruntimes.trainer.kubeflow.org"
    old = {"spec": {"versions": [{"schema": {"openAPIV3Schema": {"properties": {"onJobFailureReasons": {}}}}}]}}
    lines = [f.line() for f in check_cluster(w, _get({crd: old}))]
    assert any(line.startswith("warn Kubeflow Trainer version") for line in lines), lines

    # The training-operator's default worker init container is refused by DLW's pod policy.
    ptj = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/pytorchjobs.kubeflow.org"
    deps = "/apis/apps/v1/deployments?labelSelector=control-plane%3Dkubeflow-training-operator"

    def operator(mounts: list[str]) -> dict[str, Any]:
        return {"items": [{"metadata": {"namespace": "kubeflow", "name": "training-operator"}, "spec": {"template": {
            "spec": {"containers": [{"command": ["/manager"], "volumeMounts": [{"mountPath": m} for m in mounts]}]}}}}]}

    lines = [f.line() for f in check_cluster(w, _get({ptj: {}, deps: operator(["/tmp/k8s-webhook-server"])}))]
    assert any(line.startswith("warn training-operator init container (kubeflow/training-operator): upstream's")
               for line in lines), lines
    lines = [f.line() for f in check_cluster(w, _get({ptj: {}, deps: operator(["/etc/config/"])}))]
    assert any(line.startswith("ok   training-operator init container") for line in lines), lines
    assert not any("training-operator" in line for line in check_cluster_lines(w))


def test_kueue_cluster_queues_preempt_and_reclaim() -> None:
    kueue = ws().model_copy(update={"queue_system": "kueue"})
    queues = [o for o in cluster_manifests(kueue, DEFAULT.read_text()) if o["kind"] == "ClusterQueue"]
    assert queues and all(q["spec"]["preemption"]["withinClusterQueue"] == "LowerPriority"
                          and q["spec"]["preemption"]["reclaimWithinCohort"] == "Any"
                          and q["spec"]["cohort"] == "dlw" for q in queues)


# -- notebooks: /dev/shm, priority, restricted security, cluster domain ----------------------------------


def test_notebook_settings_give_shm_priority_and_restricted_security() -> None:
    from dlw_magic.hub.kube import hub_fqdn_url, spawner_settings

    s = spawner_settings(ws())
    assert {"name": "dlw-shm", "mountPath": "/dev/shm"} in s["volume_mounts"]
    assert {"name": "dlw-shm", "emptyDir": {"medium": "Memory"}} in s["volumes"]
    assert s["priority_class_name"] == "dlw-notebook"
    assert s["container_security_context"]["capabilities"] == {"drop": ["ALL"]}
    assert s["pod_security_context"]["runAsNonRoot"] is True
    assert hub_fqdn_url("http://hub:8081/hub/api", "dlw", "corp.internal") == (
        "http://hub.dlw.svc.corp.internal:8081/hub/api")


def test_notebook_pods_run_the_notebook_server_with_the_spawners_arguments() -> None:
    from traitlets.config import Config

    from dlw_magic.hub.kube import configure

    c = Config()
    configure(c, str(DEFAULT), cull=False)
    assert c.KubeSpawner.cmd == "jupyterhub-singleuser"  # not the image's CMD, which drops --ip/--port
    c = Config()
    c.KubeSpawner.cmd = ["start-singleuser.sh"]  # the chart's singleuser.cmd
    configure(c, str(DEFAULT), cull=False)
    assert c.KubeSpawner.cmd == ["start-singleuser.sh"]


def test_cluster_domain_comes_from_the_admin_yaml(tmp_path: Path) -> None:
    from traitlets.config import Config

    from dlw_magic.hub.kube import configure

    text = DEFAULT.read_text().replace("  serviceAccount: dlw-notebook\n",
                                       "  serviceAccount: dlw-notebook\n  clusterDomain: corp.internal\n")
    path = tmp_path / "ws.yaml"
    path.write_text(text)
    c = Config()
    c.JupyterHub.hub_connect_url = "http://hub:8081"
    configure(c, str(path), cull=False)
    assert c.JupyterHub.hub_connect_url == "http://hub.dlw.svc.corp.internal:8081"


# -- jobs: preemption keeps work, one timeout, no volcano under Kueue -------------------------------------


def _render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: str, workspace: Any, **fields: Any) -> Any:
    from dlw_magic import snapshot
    from dlw_magic.engines.objects import render_objects
    from dlw_magic.spec import parse_spec

    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "train.py").write_text("print('hi')\n")
    spec = parse_spec({"name": "job", "source": {"script": "train.py"}, "image": "registry.example/t:1", **fields})
    prepared = snapshot.prepare(spec, tmp_path / "snap", "alice")
    return render_objects(prepared, engine, workspace=workspace)


def _rwx(tmp_path: Path) -> str:
    path = tmp_path / "rwx.yaml"
    path.write_text(DEFAULT.read_text().replace("    size: 10Gi\n",
                                                "    size: 10Gi\n    accessModes: [ReadWriteMany]\n"))
    return str(path)


def test_preemptible_jobs_need_a_persistent_checkpoint_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DLWError, match="preemptible: .*ReadWriteMany home"):
        _render(tmp_path, monkeypatch, "job", str(DEFAULT), preemptible=True)
    (job,) = [o for o in _render(tmp_path, monkeypatch, "job", _rwx(tmp_path), preemptible=True,
                                 preemption={"gracePeriod": "2m"}) if o["kind"] == "Job"]
    assert job["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 120


def test_volcano_timeout_is_never_renewed_by_preemption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DLWError, match="timeout: a Volcano Job has no job-wide deadline"):
        _render(tmp_path, monkeypatch, "volcano", _rwx(tmp_path), preemptible=True, timeout="1h")


def test_volcano_engine_is_refused_under_kueue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "kueue.yaml"
    path.write_text(DEFAULT.read_text().replace("queueSystem: volcano", "queueSystem: kueue"))
    with pytest.raises(DLWError, match="engine: volcano jobs are not queued by Kueue"):
        _render(tmp_path, monkeypatch, "volcano", str(path))


def test_hub_username_matches_the_chart_service_account() -> None:
    assert hub_username(ws()) == HUB
    assert any(o["kind"] == "ValidatingAdmissionPolicyBinding" and o["metadata"]["name"] == "dlw-hub-confinement"
               for o in admission_policies(ws()))


# -- Blob PVs after a user namespace is recreated -------------------------------------------------------


def test_a_released_blob_pv_binds_the_recreated_claim(tmp_path: Path) -> None:
    """Retain keeps the PV and its old claimRef.uid when the namespace goes; the hub's next apply clears the
    uid so the PV controller binds the new claim of the same name."""
    import asyncio
    import logging

    from kubernetes_asyncio import config as aconfig
    from kubernetes_asyncio.client import ApiClient

    from dlw_magic.hub.apply import apply_objects
    from dlw_magic.workspace.blob import blob_pv
    from tests.k8s_emulator import KubeEmulator

    pv = blob_pv(ws().volume("datasets"), "dlw-alice", "dlw")
    with KubeEmulator(tmp_path, resources=["v1/persistentvolumes"]) as kube:
        old = {**pv, "spec": {**pv["spec"], "claimRef": {**pv["spec"]["claimRef"], "uid": "old-claim-uid"}},
               "status": {"phase": "Released"}}
        kube._call("POST", "api/v1/persistentvolumes", old)

        async def apply() -> None:
            async with ApiClient(await _async_config(aconfig, kube.kubeconfig)) as api:
                await apply_objects(api, [pv], logging.getLogger("test"))

        asyncio.run(apply())
        claim = kube._call("GET", f"api/v1/persistentvolumes/{pv['metadata']['name']}")["spec"]["claimRef"]
    assert claim.get("uid") is None and claim["name"] == "dlw-blob-datasets" and claim["namespace"] == "dlw-alice"


async def _async_config(aconfig: Any, kubeconfig: Path) -> Any:
    from kubernetes_asyncio.client import Configuration

    cfg = Configuration()
    await aconfig.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
    return cfg


def test_auth_yaml_beside_the_chart_is_not_packaged() -> None:
    """docs/deploy.md keeps auth.yaml in the chart folder: Helm must not put it into the release Secret."""
    ignored = chart_files(ws(), DEFAULT.read_text())[".helmignore"].splitlines()
    assert "auth.yaml" in ignored and "workspace.yaml" in ignored


def test_multi_node_trainjob_is_a_volcano_gang(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.k8s_schema import validate_objects

    objs = _render(tmp_path, monkeypatch, "trainjob", str(DEFAULT), workers=3)
    runtime = next(o for o in objs if o["kind"] == "TrainingRuntime")
    assert runtime["spec"]["podGroupPolicy"] == {"volcano": {}}
    assert validate_objects(objs) == len(objs)
    single = _render(tmp_path, monkeypatch, "trainjob", str(DEFAULT))
    assert "podGroupPolicy" not in next(o for o in single if o["kind"] == "TrainingRuntime")["spec"]
