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
    # The admin's classes and the notebooks'; the admin's Queues but `default` (volcano-scheduler makes it).
    assert kinds(objects)[:5] == ["PriorityClass"] * 4 + ["Queue"]
    assert {"ClusterRole", "ClusterRoleBinding", "Namespace", "ServiceAccount", "RoleBinding", "NetworkPolicy",
            "ConfigMap", "PersistentVolume", "PersistentVolumeClaim", "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding"} <= set(kinds(objects))
    assert "Role" not in kinds(objects)  # notebooks' rights: one ClusterRole, bound per namespace
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
    # A cap, not a share to borrow past (tests/cluster/test_kueue.py shows Kueue holding to it).
    assert gpu == {"name": "nvidia.com/gpu", "nominalQuota": "8", "borrowingLimit": "0"}
    # Shared scheme: the namespace is set up by the manifests, not by the hub; no ClusterRole for the hub.
    roles = [o["metadata"]["name"] for o in objects if o["kind"] == "ClusterRole"]
    assert roles == ["lab-notebook"]
    # ... but the hub spawns into the shared namespace, which z2jh's own Role does not cover.
    (hub_binding,) = [o for o in objects if o["kind"] == "RoleBinding" and o["roleRef"]["kind"] == "Role"]
    assert hub_binding["metadata"]["namespace"] == "ml-users"
    assert hub_binding["subjects"][0]["name"] == "hub"
    # Kueue admits only workloads from namespaces its ClusterQueues select: the shared one must match.
    (ns,) = [o for o in objects if o["kind"] == "Namespace"]
    assert cq["spec"]["namespaceSelector"]["matchLabels"].items() <= ns["metadata"]["labels"].items()
    assert validate_objects(objects) == len(objects)


def test_notebook_role_allows_jobs_in_its_namespace_only() -> None:
    ws = load_workspace(DEFAULT)
    role = rbac.notebook_cluster_role(ws)
    validate_object(role)
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
    # A RoleBinding grants a ClusterRole's rules in its own namespace only.
    assert binding["kind"] == "RoleBinding" and binding["metadata"]["namespace"] == "dlw-alice"
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": role["metadata"]["name"]}


def test_hub_binds_the_notebook_role_without_holding_its_rights() -> None:
    ws = load_workspace(DEFAULT)
    rules = rbac.hub_cluster_role(ws)["rules"]
    bind = [r for r in rules if "bind" in r["verbs"]]
    assert bind == [{"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["clusterroles"], "verbs": ["bind"],
                     "resourceNames": ["dlw-notebook", "dlw-hub-in-user-namespace"]}]
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert ("rbac.authorization.k8s.io", "roles") not in granted
    assert ("batch", "jobs") not in granted and ("batch.volcano.sh", "jobs") not in granted
    assert ("", "persistentvolumes") in granted  # the default workspace has a blob volume


def test_helm_values_carry_profiles_storage_and_the_admin_yaml(tmp_path: Path) -> None:
    out = dlw("admin", "render", str(DEFAULT), "--all", "--out", str(tmp_path), "--hub-image", "dlw/hub:0.1.0")
    assert out.returncode == 0, out.stderr
    values = yaml.safe_load((tmp_path / "jupyterhub-values.yaml").read_text())
    assert values["hub"]["image"] == {"name": "dlw/hub", "tag": "0.1.0"}
    assert "configure(c, cull=False)" in values["hub"]["extraConfig"]["dlw"]
    carried = values["hub"]["extraFiles"]["dlw-workspace"]
    assert carried["mountPath"] == "/etc/dlw/workspace.yaml" and carried["stringData"] == DEFAULT.read_text()
    assert [p["slug"] for p in values["singleuser"]["profileList"]] == ["cpu", "gpu", "gpu-research"]
    gpu = values["singleuser"]["profileList"][1]
    assert gpu["kubespawner_override"]["node_selector"] == {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
    assert gpu["profile_options"]["gpus"]["choices"]["4"]["kubespawner_override"]["extra_resource_limits"] == {
        "nvidia.com/gpu": "4"}
    # A profile with one GPU count offers no select: the count is part of the profile itself.
    cpu, research = values["singleuser"]["profileList"][0], values["singleuser"]["profileList"][2]
    assert "profile_options" not in cpu and "extra_resource_limits" not in cpu["kubespawner_override"]
    assert "profile_options" not in research
    assert research["kubespawner_override"]["extra_resource_limits"] == {"nvidia.com/gpu": "8"}
    storage = values["singleuser"]["storage"]
    assert storage["type"] == "dynamic" and storage["capacity"] == "10Gi"
    assert storage["dynamic"]["pvcNameTemplate"] == "claim-{username}"
    assert storage["extraVolumes"][0]["configMap"]["name"] == "dlw-workspace"
    assert values["cull"] == {"enabled": True, "timeout": 3600, "every": 600, "users": False}
    chart = yaml.safe_load((tmp_path / "values.yaml").read_text())
    assert kinds(chart["objects"])[:3] == ["PriorityClass"] * 3


def test_helm_values_without_a_home_use_no_storage() -> None:
    ws = load_workspace(LAB)
    values = helm_values(ws, LAB.read_text())
    assert values["singleuser"]["storage"]["type"] == "none"
    assert values["hub"]["config"]["KubeSpawner"]["enable_user_namespaces"] is False
    assert values["hub"]["config"]["Authenticator"]["admin_users"] == ["root-admin"]


def test_blob_pv_and_pvc_validate_and_bind_to_each_other() -> None:
    ws = load_workspace(DEFAULT)
    vol = ws.volume("datasets")
    pv, pvc = blob_pv(vol, "dlw-alice", "dlw"), blob_pvc(vol, "dlw-alice")
    validate_object(pv)
    validate_object(pvc)
    assert pv["spec"]["claimRef"] == {"namespace": "dlw-alice", "name": "dlw-blob-datasets"}
    assert pvc["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["accessModes"] == ["ReadOnlyMany"] and "-o ro" in pv["spec"]["mountOptions"]
    # The credential stays in the admin's (hub's) namespace: users cannot read it, nothing to copy.
    assert pv["spec"]["csi"]["nodeStageSecretRef"] == {"name": "dlw-datasets-sas", "namespace": "dlw"}
    # Each PV its own blobfuse2 cache folder (one shared --tmp-path would mix volumes and namespaces).
    other = blob_pv(vol, "dlw-bob", "dlw")
    tmp = {o for p in (pv, other) for o in p["spec"]["mountOptions"] if o.startswith("--tmp-path=")}
    assert tmp == {"--tmp-path=/mnt/blobfuse-cache/dlw-blob-datasets-dlw-alice",
                   "--tmp-path=/mnt/blobfuse-cache/dlw-blob-datasets-dlw-bob"}
    assert "--file-cache-timeout-in-seconds=120" in pv["spec"]["mountOptions"]
    assert "--cache-size-mb=20480" in pv["spec"]["mountOptions"]
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


def test_blob_with_managed_identity_has_no_secret_reference() -> None:
    ws = load_workspace(LAB)
    vol = ws.volume("results")
    pv = blob_pv(vol, "ml-users", "lab-hub")
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


def test_checked_in_deploy_chart_matches_the_default_workspace(tmp_path: Path) -> None:
    """deploy/ (the dlw-cluster chart and jupyterhub-values.yaml) is what `dlw admin render` writes today."""
    out = dlw("admin", "render", "hub_config/workspace.yaml", "--all", "--out", str(tmp_path),
              "--hub-image", "dlw/hub:0.1.0")
    assert out.returncode == 0, out.stderr
    written = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert written == [".helmignore", "Chart.yaml", "jupyterhub-values.yaml", "templates/objects.yaml",
                       "training-operator-initContainer.yaml", "values.yaml"]
    for name in written:
        assert (ROOT / "deploy" / name).read_text() == (tmp_path / name).read_text(), (
            f"deploy/{name} is stale: rerun `dlw admin render hub_config/workspace.yaml --all --out deploy "
            "--hub-image dlw/hub:0.1.0`")
    objects = yaml.safe_load((ROOT / "deploy" / "values.yaml").read_text())["objects"]
    assert validate_objects(objects) == len(objects)


def test_per_user_namespace_gets_everything_its_pods_need() -> None:
    """The default GPU profiles mount the blob volume: its PV/PVC must be in the user's namespace."""
    from dlw_magic.hub.deploy import namespace_objects
    from dlw_magic.workspace import parse_workspace

    data = yaml.safe_load(DEFAULT.read_text())
    data["queueSystem"] = "kueue"
    ws = parse_workspace(data, "ws.yaml")
    objects = namespace_objects(ws, "dlw-bob", DEFAULT.read_text(), "bob", ["research"])
    assert kinds(objects) == ["Namespace", "RoleBinding", "ServiceAccount", "RoleBinding", "ConfigMap",
                              "NetworkPolicy", "ResourceQuota", "LocalQueue", "LocalQueue", "PersistentVolume",
                              "PersistentVolumeClaim"]
    assert all(o["metadata"].get("namespace", "dlw-bob") == "dlw-bob" for o in objects)
    assert objects[6]["spec"]["hard"] == {"requests.nvidia.com/gpu": "32"}  # bob's group quota
    pvc = objects[-1]
    assert pvc["metadata"]["name"] == ws.volume("datasets").pvc_name
    assert validate_objects(objects) == len(objects)
    labels = objects[0]["metadata"]["labels"]
    assert labels["dlw.dev/user"] == "bob" and labels["dlw.dev/user-namespace"] == "true"
    hub_role = rbac.hub_namespace_role(ws)  # bound in the namespace by objects[1]
    assert {"apiGroups": ["kueue.x-k8s.io"], "resources": ["localqueues"], "verbs": ["create", "get", "patch"]} in (
        hub_role["rules"])


def test_user_namespace_network_policy_blocks_the_metadata_server() -> None:
    ws = load_workspace(DEFAULT)
    pol = rbac.network_policy(ws, "dlw-alice")
    validate_object(pol)
    assert pol["spec"]["podSelector"] == {} and set(pol["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    blocks = [to["ipBlock"] for rule in pol["spec"]["egress"] for to in rule["to"] if "ipBlock" in to]
    assert blocks and all("169.254.169.254/32" in b.get("except", []) for b in blocks)
    # Ingress: the namespace itself (DDP ranks) and the hub's namespace (proxy, hub); not other users.
    sources = pol["spec"]["ingress"][0]["from"]
    assert sources == [{"podSelector": {}},
                       {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dlw"}}}]


def test_helm_values_let_user_namespaces_reach_the_hub() -> None:
    values = helm_values(load_workspace(DEFAULT), DEFAULT.read_text())
    assert values["hub"]["networkPolicy"]["interNamespaceAccessLabels"] == "accept"
    # z2jh's privileged iptables init container would be refused in user namespaces (admission policy);
    # the user namespace NetworkPolicy blocks the metadata server instead.
    assert values["singleuser"]["cloudMetadata"] == {"blockWithIptables": False}
