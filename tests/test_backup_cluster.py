"""The cluster half of ``dlw admin backup --cluster`` / ``restore --cluster``, against kmock's Kubernetes
emulator (a real HTTP API server that stores objects): DLW's objects from one cluster re-created in an empty
one, twice without change; Secrets and other people's objects are never taken; no secret value is in the
archive or in a ConfigMap. The emulator cannot store Namespaces, so (as for a kind without its CRD) they
are reported as not served; on a real cluster they are backed up first and restored first."""

from __future__ import annotations

import base64
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from dlw_magic.cli import main
from dlw_magic.hub.cluster_backup import KINDS
from dlw_magic.hub.deploy import cluster_manifests
from dlw_magic.workspace import load_workspace
from tests.k8s_emulator import KubeEmulator

ROOT = Path(__file__).resolve().parents[1]
PULL_SECRET_VALUE = "cluster-backup-registry-password-0b7d"
RESOURCES = ["v1/secrets"] + [
    f"{v}/{p}" for v, k, p, _ in KINDS if k != "Namespace"
]
PLURAL = {(v, k): (p, ns) for v, k, p, ns in KINDS}


def path_of(obj: dict[str, Any], name: bool = False) -> str:
    version = obj["apiVersion"]
    plural, namespaced = PLURAL.get((version, obj["kind"]), ("secrets", True))
    base = f"api/{version}" if "/" not in version else f"apis/{version}"
    ns = f"/namespaces/{obj['metadata']['namespace']}" if namespaced else ""
    return f"{base}{ns}/{plural}" + (f"/{obj['metadata']['name']}" if name else "")


def dlw_objects(kube: KubeEmulator) -> dict[str, dict[str, Any]]:
    """Every object the emulator holds of DLW's kinds, keyed kind/namespace/name, without server fields."""
    out = {}
    for version, kind, plural, _ in KINDS:
        if kind == "Namespace":
            continue
        base = f"api/{version}" if "/" not in version else f"apis/{version}"
        for obj in kube._call("GET", f"{base}/{plural}")["items"]:
            meta = obj["metadata"]
            key = f"{kind}/{meta.get('namespace', '')}/{meta['name']}"
            out[key] = {k: v for k, v in obj.items() if k not in ("metadata", "status")} | {
                "labels": meta.get("labels"), "annotations": meta.get("annotations")}
    return out


@pytest.fixture
def source(tmp_path: Path):
    (tmp_path / "src").mkdir()
    with KubeEmulator(tmp_path / "src", resources=RESOURCES) as kube:
        yield kube


@pytest.fixture
def target(tmp_path: Path):
    (tmp_path / "dst").mkdir()
    with KubeEmulator(tmp_path / "dst", resources=RESOURCES) as kube:
        yield kube


def test_cluster_objects_round_trip_into_an_empty_cluster(
    source: KubeEmulator, target: KubeEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    ws_file = ROOT / "hub_config" / "workspace.yaml"
    ws = load_workspace(ws_file)
    made = [o for o in cluster_manifests(ws, ws_file.read_text(), ["dlw-alice", "dlw-bob"]) if o["kind"] != "Namespace"]
    for obj in made:
        source._call("POST", path_of(obj), obj)
    # The hub's copy of the image pull Secret carries DLW's label too: it must never be taken.
    secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
              "metadata": {"name": "regcred", "namespace": "dlw-alice", "labels": made[0]["metadata"]["labels"]},
              "data": {"password": base64.b64encode(PULL_SECRET_VALUE.encode()).decode()}}
    source._call("POST", path_of(secret), secret)
    other = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "not-dlw", "namespace": "dlw-alice"},
             "data": {"x": "y"}}
    source._call("POST", path_of(other), other)
    before = dlw_objects(source)
    assert len(before) == len(made) + 1  # DLW's objects and the foreign ConfigMap

    monkeypatch.setenv("DLW_KUBECONFIG", str(source.kubeconfig))
    archive = tmp_path / "backup.tar.gz"
    capsys.readouterr()
    assert main(["admin", "backup", str(archive), "--workspace", str(ws_file), "--home", str(tmp_path / "none"),
                 "--cluster"]) == 0
    assert f"{len(made)} cluster objects" in capsys.readouterr().out
    with tarfile.open(archive) as tar:
        saved = json.loads(tar.extractfile("cluster/objects.json").read())  # type: ignore[union-attr]
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest["cluster"]["kindsNotServed"] == ["Namespace"]
    assert not [o for o in saved if o["kind"] == "Secret" or o["metadata"]["name"] == "not-dlw"]
    raw = archive.read_bytes()
    import gzip

    encoded = base64.b64encode(PULL_SECRET_VALUE.encode())
    assert PULL_SECRET_VALUE.encode() not in gzip.decompress(raw) and encoded not in gzip.decompress(raw)

    monkeypatch.setenv("DLW_KUBECONFIG", str(target.kubeconfig))
    assert main(["admin", "restore", str(archive), "--home", str(tmp_path / "home"), "--cluster"]) == 0
    assert f"cluster: {len(made)} created, 0 updated, 0 already there" in capsys.readouterr().out
    after = dlw_objects(target)
    assert after == {k: v for k, v in before.items() if "/not-dlw" not in k}
    configmaps = target._call("GET", "api/v1/configmaps")["items"]
    assert configmaps and not [c for c in configmaps if PULL_SECRET_VALUE in json.dumps(c)]
    assert target._call("GET", "api/v1/secrets")["items"] == []

    # Twice: nothing changes. An object changed since is merged back to the archive's version.
    assert main(["admin", "restore", str(archive), "--home", str(tmp_path / "home"), "--cluster"]) == 0
    assert f"cluster: 0 created, 0 updated, {len(made)} already there" in capsys.readouterr().out
    quota = next(o for o in made if o["kind"] == "ResourceQuota")
    target._call("PATCH", path_of(quota, name=True), {"spec": {"hard": {"requests.nvidia.com/gpu": "99"}}},
                 content_type="application/merge-patch+json")
    assert main(["admin", "restore", str(archive), "--home", str(tmp_path / "home"), "--cluster"]) == 0
    assert f"cluster: 0 created, 1 updated, {len(made) - 1} already there" in capsys.readouterr().out
    assert dlw_objects(target) == after
