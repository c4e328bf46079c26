"""``dlw admin render``: Helm values, cluster manifests, RBAC and Blob objects from the admin YAML.
Every manifest validates (Kubernetes schema, Volcano CRDs); notebooks get job rights in their namespace only."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlw_magic.hub import rbac
from dlw_magic.hub.deploy import cluster_manifests, helm_values
from dlw_magic.workspace import load_workspace
from dlw_magic.workspace.blob import blob_pv, blob_pvc, blob_storage_class, blobfuse2_config, mount_options
from tests.k8s_schema import validate_object, validate_objects

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "hub_config" / "workspace.yaml"
LAB = ROOT / "tests/data/workspaces/shared_kueue.yaml"


def dlw(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, timeout=60)


def kinds(objects: list[dict[str, Any]]) -> list[str]:
    return [o["kind"] for o in objects]


def test_rendered_manifests_validate(tmp_path: Path) -> None:
    out = dlw("admin", "render", str(DEFAULT), "--manifests", "--namespace", "dlw-alice", "--out",
              str(tmp_path / "m.yaml"))
    assert out.returncode == 0, out.stderr
    objects = [o for o in yaml.safe_load_all((tmp_path / "m.yaml").read_text()) if o]
    assert validate_objects(objects) == len(objects)
    assert kinds(objects)[:5] == ["PriorityClass"] * 3 + ["Queue"] * 2
    assert {"ClusterRole", "ClusterRoleBinding", "Namespace", "ServiceAccount", "Role", "RoleBinding",
            "ConfigMap", "PersistentVolume", "PersistentVolumeClaim"} <= set(kinds(objects))
    queue = next(o for o in objects if o["kind"] == "Queue" and o["metadata"]["name"] == "research")
    assert queue["spec"] == {"weight": 4, "reclaimable": True, "capability": {"nvidia.com/gpu": "32"}}
    assert all(o["globalDefault"] is False for o in objects if o["kind"] == "PriorityClass")


def test_kueue_workspace_renders_cluster_and_local_queues() -> None:
    ws = load_workspace(LAB)
    objects = cluster_manifests(ws, LAB.read_text())
    assert "Queue" not in kinds(objects)
    local = [o for o in objects if o["kind"] == "LocalQueue"]
    assert {(o["metadata"]["namespace"], o["spec"]["clusterQueue"]) for o in local} == {
        ("ml-users", "vision"), ("ml-users", "nlp")}
    cq = next(o for o in objects if o["kind"] == "ClusterQueue" and o["metadata"]["name"] == "vision")
    gpu = cq["spec"]["resourceGroups"][0]["flavors"][0]["resources"][2]
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": "8"}
    # Shared scheme: the namespace is set up by the manifests, not by the hub; no ClusterRole for the hub.
    assert "ClusterRole" not in kinds(objects)
    validate_objects(o for o in objects if not o["apiVersion"].startswith("kueue.x-k8s.io"))


def test_notebook_role_allows_jobs_in_its_namespace_only() -> None:
    ws = load_workspace(DEFAULT)
    role = rbac.notebook_role(ws, "dlw-alice")
    validate_object(role)
    assert role["kind"] == "Role" and role["metadata"]["namespace"] == "dlw-alice"
    allowed = {(g, r): set(rule["verbs"]) for rule in role["rules"]
               for g in rule["apiGroups"] for r in rule["resources"]}
    for key in [("batch", "jobs"), ("batch.volcano.sh", "jobs"), ("kubeflow.org", "pytorchjobs"),
                ("trainer.kubeflow.org", "trainjobs"), ("trainer.kubeflow.org", "trainingruntimes"),
                ("", "services"), ("", "configmaps")]:
        assert {"create", "list", "watch", "delete"} <= allowed[key]
    assert {"list", "watch", "delete"} <= allowed[("", "pods")] and "create" not in allowed[("", "pods")]
    assert "get" in allowed[("", "pods/log")] and "watch" in allowed[("", "events")]
    assert ("", "secrets") not in allowed  # secrets only by reference
    assert not any(g == "rbac.authorization.k8s.io" for g, _ in allowed)  # cannot grant itself more
    binding = rbac.notebook_role_binding(ws, "dlw-alice")
    validate_object(binding)
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "dlw-notebook", "namespace": "dlw-alice"}]


def test_helm_values_carry_profiles_storage_and_the_admin_yaml(tmp_path: Path) -> None:
    out = dlw("admin", "render", str(DEFAULT), "--all", "--out", str(tmp_path), "--hub-image", "dlw/hub:0.1.0")
    assert out.returncode == 0, out.stderr
    values = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert values["hub"]["image"] == {"name": "dlw/hub", "tag": "0.1.0"}
    assert "configure(c, cull=False)" in values["hub"]["extraConfig"]["dlw"]
    carried = values["hub"]["extraFiles"]["dlw-workspace"]
    assert carried["mountPath"] == "/etc/dlw/workspace.yaml" and carried["stringData"] == DEFAULT.read_text()
    assert [p["slug"] for p in values["singleuser"]["profileList"]] == ["cpu", "gpu", "gpu-research"]
    gpu = values["singleuser"]["profileList"][1]
    assert gpu["kubespawner_override"]["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert gpu["profile_options"]["gpus"]["choices"]["4"]["kubespawner_override"]["extra_resource_limits"] == {
        "nvidia.com/gpu": "4"}
    storage = values["singleuser"]["storage"]
    assert storage["type"] == "dynamic" and storage["capacity"] == "10Gi"
    assert storage["dynamic"]["pvcNameTemplate"] == "claim-{username}"
    assert storage["extraVolumes"][0]["configMap"]["name"] == "dlw-workspace"
    assert values["cull"] == {"enabled": True, "timeout": 3600, "every": 600, "users": False}
    assert (tmp_path / "manifests.yaml").is_file()


def test_helm_values_without_a_home_use_no_storage() -> None:
    ws = load_workspace(LAB)
    values = helm_values(ws, LAB.read_text())
    assert values["singleuser"]["storage"]["type"] == "none"
    assert values["hub"]["config"]["KubeSpawner"]["enable_user_namespaces"] is False
    assert values["hub"]["config"]["Authenticator"]["admin_users"] == ["root-admin"]


def test_blob_pv_and_pvc_validate_and_bind_to_each_other() -> None:
    ws = load_workspace(DEFAULT)
    vol = ws.volume("datasets")
    pv, pvc = blob_pv(vol, "dlw-alice"), blob_pvc(vol, "dlw-alice")
    validate_object(pv)
    validate_object(pvc)
    assert pv["spec"]["claimRef"] == {"namespace": "dlw-alice", "name": "dlw-blob-datasets"}
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["accessModes"] == ["ReadOnlyMany"] and "-o ro" in pv["spec"]["mountOptions"]
    assert pv["spec"]["csi"]["nodeStageSecretRef"] == {"name": "dlw-datasets-sas", "namespace": "dlw-alice"}
    assert "--file-cache-timeout-in-seconds=120" in pv["spec"]["mountOptions"]
    assert "--cache-size-mb=20480" in pv["spec"]["mountOptions"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_blob_with_managed_identity_has_no_secret_reference() -> None:
    ws = load_workspace(LAB)
    vol = ws.volume("results")
    pv = blob_pv(vol, "ml-users")
    validate_object(pv)
    attrs = pv["spec"]["csi"]["volumeAttributes"]
    assert attrs["AzureStorageAuthType"] == "MSI"
    assert attrs["AzureStorageIdentityClientID"] == "00000000-0000-0000-0000-000000000001"
    assert "nodeStageSecretRef" not in pv["spec"]["csi"]
    assert pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "--block-cache" in mount_options(vol)
    sc = blob_storage_class(vol)
    validate_object(sc)
    assert sc["parameters"]["AzureStorageAuthType"] == "MSI"


@pytest.mark.parametrize(("path", "name", "cache"), [(DEFAULT, "datasets", "file_cache"),
                                                      (LAB, "results", "block_cache")])
def test_blobfuse2_config_has_components_and_no_secret(path: Path, name: str, cache: str) -> None:
    vol = load_workspace(path).volume(name)
    text = blobfuse2_config(vol)
    cfg = yaml.safe_load(text)
    assert cfg["components"] == ["libfuse", cache, "attr_cache", "azstorage"]
    assert cfg["azstorage"]["account-name"] == vol.storage_account and cfg["azstorage"]["container"] == vol.container
    assert cfg["azstorage"]["mode"] == vol.auth.mode
    assert not {"account-key", "sas", "clientsecret"} & set(cfg["azstorage"])  # credentials come from env
    assert cfg["read-only"] is vol.read_only


def test_render_blobfuse_cli_and_wrong_volume_type(tmp_path: Path) -> None:
    out = dlw("admin", "render", str(DEFAULT), "--blobfuse", "datasets")
    assert out.returncode == 0 and "AZURE_STORAGE_SAS_TOKEN" in out.stdout
    bad = dlw("admin", "render", str(DEFAULT), "--blobfuse", "scratch")
    assert bad.returncode == 1
    assert bad.stderr.strip().endswith("volume 'scratch' is a hostPath volume, not a blob volume")
    unknown = dlw("admin", "render", str(DEFAULT), "--storage-class", "nope")
    assert unknown.returncode == 1 and "is not in the admin's catalogue" in unknown.stderr


def test_checked_in_deploy_files_match_the_default_workspace(tmp_path: Path) -> None:
    """deploy/values.yaml and deploy/manifests.yaml are what `dlw admin render` writes today."""
    out = dlw("admin", "render", "hub_config/workspace.yaml", "--all", "--out", str(tmp_path),
              "--hub-image", "dlw/hub:0.1.0")
    assert out.returncode == 0, out.stderr
    for name in ("values.yaml", "manifests.yaml"):
        assert (ROOT / "deploy" / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/{name} is stale: rerun `dlw admin render hub_config/workspace.yaml --all --out deploy "
            "--hub-image dlw/hub:0.1.0`")
    objects = [o for o in yaml.safe_load_all((ROOT / "deploy" / "manifests.yaml").read_text()) if o]
    assert validate_objects(objects) == len(objects)


def test_per_user_namespace_gets_its_quota_and_kueue_local_queues() -> None:
    from dlw_magic.hub.deploy import user_namespace_objects
    from dlw_magic.workspace import parse_workspace

    data = yaml.safe_load(DEFAULT.read_text())
    data["queueSystem"] = "kueue"
    ws = parse_workspace(data, "ws.yaml")
    objects = user_namespace_objects(ws, "dlw-bob", "bob", ["research"], DEFAULT.read_text())
    assert kinds(objects) == ["ServiceAccount", "Role", "RoleBinding", "ConfigMap", "ResourceQuota",
                              "LocalQueue", "LocalQueue"]
    assert all(o["metadata"]["namespace"] == "dlw-bob" for o in objects)
    quota = objects[4]
    assert quota["spec"]["hard"] == {"requests.nvidia.com/gpu": "32"}  # bob's group quota
    validate_objects(o for o in objects if o["kind"] != "LocalQueue")
    hub_role = rbac.hub_cluster_role(ws)
    assert {"apiGroups": ["kueue.x-k8s.io"], "resources": ["localqueues"], "verbs": ["create", "get"]} in (
        hub_role["rules"])
