"""The admin YAML: the shipped default is valid, every kind of mistake is one clear line naming the field,
and the look-ups the hub and the job renderer share (volumes, namespaces, priorities, quotas) agree."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlw_magic.errors import DLWError
from dlw_magic.spec import VolumeRef
from dlw_magic.workspace import (
    check_workspace,
    default_workspace_path,
    load_workspace,
    parse_workspace,
    pod_volume,
    pod_volumes,
    safe_name,
    workspace_json_schema,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "hub_config" / "workspace.yaml"
TEST_YAMLS = sorted((ROOT / "tests" / "data" / "workspaces").glob("*.yaml"))


def default_data() -> dict[str, Any]:
    return yaml.safe_load(DEFAULT.read_text())


def test_default_workspace_is_found_and_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLW_WORKSPACE_CONFIG", raising=False)
    assert default_workspace_path() == DEFAULT
    ws = load_workspace()
    assert [p.name for p in ws.profiles] == ["cpu", "gpu", "gpu-research"]
    assert ws.default_profile.name == "cpu"
    assert ws.home is not None and ws.home.mount_path == "/home/jovyan"


def test_env_var_picks_the_clusters_own_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = default_data()
    data["name"] = "elsewhere"
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(path))
    assert load_workspace().name == "elsewhere"
    assert load_workspace(DEFAULT).name == "dlw"  # an explicit path wins


@pytest.mark.parametrize("path", TEST_YAMLS, ids=lambda p: p.name)
def test_test_workspaces_are_valid(path: Path) -> None:
    assert check_workspace(path) == []


def _mutate(data: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    target: Any = data
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target[part]
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


BAD = [
    ("unknown key", "profiles.0.gpuCount", 2, "profiles[0].gpuCount: unknown field"),
    ("negative GPU count", "profiles.1.gpus", [1, -2],
      "profiles[1].gpus[1]: Input should be greater than or equal to 0"),
    ("no GPU choice", "profiles.1.gpus", [], "profiles[1].gpus: give at least one GPU count"),
    ("hostPath not absolute", "volumes.1.path", "mnt/scratch",
      "volumes[1].path: 'mnt/scratch' is not an absolute path"),
    ("mount path not absolute", "volumes.2.mountPath", "data", "volumes[2].mountPath: 'data' is not an absolute path"),
    ("blob without secret or identity", "volumes.2.auth", None, "needs auth: a Secret"),
    ("sas without the Secret", "volumes.2.auth", {"mode": "sas"}, "auth mode 'sas' needs 'secret'"),
    ("msi without identity", "volumes.2.auth", {"mode": "msi"}, "auth mode 'msi' needs the managed identity"),
    ("unknown auth mode", "volumes.2.auth", {"mode": "password", "secret": "x"},
      "volumes[2].auth.mode: Input should be"),
    ("bad memory quantity", "profiles.0.memory.limit", "4 GB",
      "profiles[0].memory.limit: '4 GB' is not a Kubernetes quantity"),
    ("unknown volume type", "volumes.1.type", "s3", "volumes[1]: Input tag 's3' found using 'type' does not match"),
    ("priority above the Kubernetes limit", "priorityClasses.0.value", 2000000000, "priorityClasses[0].value"),
    ("bad namespace scheme", "namespaces.scheme", "per-group",
      "namespaces.scheme: Input should be 'per-user' or 'shared'"),
]


@pytest.mark.parametrize(("what", "field", "value", "message"), BAD, ids=[b[0] for b in BAD])
def test_bad_workspace_gives_one_clear_line(what: str, field: str, value: Any, message: str) -> None:
    data = default_data()
    _mutate(data, field, value)
    with pytest.raises(DLWError) as err:
        parse_workspace(data, "ws.yaml")
    line = str(err.value)
    assert "\n" not in line
    assert line.startswith("ws.yaml: ")
    assert message in line


@pytest.mark.parametrize(
    ("what", "change", "message"),
    [
        ("duplicate profile", lambda d: d["profiles"].append(copy.deepcopy(d["profiles"][0])),
         "profile name 'cpu' is listed twice"),
        ("duplicate volume", lambda d: d["volumes"].append({**d["volumes"][1], "mountPath": "/other"}),
         "volume name 'scratch' is listed twice"),
        ("duplicate queue", lambda d: d["queues"].append({"name": "default"}), "queue name 'default' is listed twice"),
        ("two defaults", lambda d: d["profiles"][1].update(default=True), "more than one profile has default: true"),
        ("hostPath outside the allowlist", lambda d: d["volumes"][1].update(path="/etc"),
         "hostPath volume 'scratch': /etc is not under hostPathAllowlist (/var/lib/dlw)"),
        ("allowlist of /", lambda d: d.update(hostPathAllowlist=["/"]), "'/' would allow every node path"),
        ("profile mounts an unknown volume", lambda d: d["profiles"][0].update(volumes=["nope"]),
         "profile 'cpu' mounts volume 'nope', which is not in volumes"),
        ("two homes", lambda d: d["volumes"].append({"name": "home2", "type": "home", "mountPath": "/h2"}),
         "only one volume may have type: home"),
        ("two volumes on one path", lambda d: d["volumes"][1].update(mountPath="/home/jovyan"),
         "two volumes mount at /home/jovyan"),
        ("no profiles", lambda d: d.update(profiles=[]), "profiles: List should have at least 1 item"),
    ],
    ids=lambda x: x if isinstance(x, str) and " " in x else "",
)
def test_inconsistent_workspace_is_refused(what: str, change: Any, message: str) -> None:
    data = default_data()
    change(data)
    with pytest.raises(DLWError, match="^ws.yaml: ") as err:
        parse_workspace(data, "ws.yaml")
    assert message in str(err.value)


def _dlw(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=ROOT, timeout=60)


def test_admin_check_prints_every_error_and_exits_non_zero(tmp_path: Path) -> None:
    data = default_data()
    data["profiles"][0]["gpuCount"] = 1
    data["profiles"][1]["gpus"] = [-1]
    data["volumes"][1]["path"] = "relative"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    out = _dlw("admin", "check", str(bad))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert any(f"{bad}: profiles[0].gpuCount: unknown field" == line for line in lines)
    assert any("profiles[1].gpus[0]" in line for line in lines)
    assert any("volumes[1].path" in line for line in lines)
    assert lines[-1] == f"{bad}: 3 errors"


def test_admin_check_accepts_the_default_and_reports_invalid_yaml(tmp_path: Path) -> None:
    ok = _dlw("admin", "check", str(DEFAULT))
    assert ok.returncode == 0, ok.stderr
    assert "OK (3 profiles" in ok.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("profiles: [\n")
    out = _dlw("admin", "check", str(broken))
    assert out.returncode == 1
    assert out.stderr.startswith(f"dlw admin: {broken}: line") and "invalid YAML" in out.stderr
    missing = _dlw("admin", "check", str(tmp_path / "none.yaml"))
    assert missing.returncode == 1 and "workspace config not found" in missing.stderr


def test_schema_describes_the_yaml_keys() -> None:
    schema = json.loads(workspace_json_schema())
    assert schema["title"] == "DLW Workspace (dlw/v1)"
    assert {"profiles", "volumes", "hostPathAllowlist", "priorityClasses", "queues"} <= set(schema["properties"])
    out = _dlw("admin", "schema")
    assert out.returncode == 0 and json.loads(out.stdout)["$id"].endswith("workspace-v1.json")


def test_unknown_volume_names_the_catalogue() -> None:
    ws = load_workspace(DEFAULT)
    known = r"\(known: home, scratch, datasets\)$"
    with pytest.raises(DLWError, match=r"^volume 'imagenet' is not in the admin's catalogue " + known):
        ws.volume("imagenet")


def test_same_volume_mounts_the_same_way_for_a_user() -> None:
    ws = load_workspace(DEFAULT)
    vol, mount = pod_volume(ws.volume("scratch"), "alice")
    # The per-user root, the user's folder by subPath (which the kubelet keeps inside the volume).
    assert vol == {"name": "dlw-scratch", "hostPath": {"path": "/var/lib/dlw/scratch", "type": "DirectoryOrCreate"}}
    assert mount == {"name": "dlw-scratch", "mountPath": "/scratch", "readOnly": False, "subPath": "alice"}
    vols, mounts = pod_volumes(ws, [VolumeRef(name="datasets"), "home", VolumeRef(name="scratch", mount_path="/s")],
                               "bob")
    assert vols[0] == {"name": "dlw-datasets", "persistentVolumeClaim": {"claimName": "dlw-blob-datasets",
                                                                          "readOnly": True}}
    assert vols[1] == {"name": "dlw-home", "persistentVolumeClaim": {"claimName": "claim-bob"}}
    assert [m["mountPath"] for m in mounts] == ["/data/datasets", "/home/jovyan", "/s"]


def test_read_only_volume_cannot_be_widened() -> None:
    ws = load_workspace(DEFAULT)
    with pytest.raises(DLWError, match="volume 'datasets' is read-only in the admin's catalogue"):
        pod_volumes(ws, [VolumeRef(name="datasets", read_only=False)], "alice")
    _, mount = pod_volume(ws.volume("scratch"), "alice", read_only=True)  # narrowing is fine
    assert mount["readOnly"] is True


def test_odd_user_names_get_distinct_safe_names() -> None:
    ws = load_workspace(DEFAULT)
    assert ws.namespace_for("alice") == "dlw-alice"
    a, b = ws.namespace_for("Alice.Smith@x.org"), ws.namespace_for("alice-smith@x.org")
    assert a != b and a.startswith("dlw-alice-smith-x-org-") and len(a) <= 63
    long = ws.namespace_for("x" * 200)
    assert len(long) <= 63
    vol, mount = pod_volume(ws.volume("scratch"), "../../etc")
    assert vol["hostPath"]["path"] == "/var/lib/dlw/scratch"
    assert "/" not in mount["subPath"] and ".." not in mount["subPath"]
    assert safe_name("bob") == "bob"


def test_priorities_queues_and_quotas() -> None:
    ws = load_workspace(DEFAULT)
    assert ws.priority_values == {"dlw-low": 100, "dlw-normal": 1000, "dlw-high": 10000}
    assert ws.default_priority_class == "dlw-normal"
    assert ws.default_queue == "default" and ws.queue("research").gpus == 32
    with pytest.raises(DLWError, match="queue 'gold' is not defined by the admin"):
        ws.queue("gold")
    assert ws.gpu_quota("alice") == 8
    assert ws.gpu_quota("bob", ["research"]) == 32
    lab = load_workspace(ROOT / "tests/data/workspaces/shared_kueue.yaml")
    assert lab.gpu_quota("alice", ["vision"]) == 2  # a user's own entry wins over the group's
    assert lab.gpu_quota("carol") is None
    assert lab.namespace_for("anyone") == "ml-users"
    assert lab.images.registry == "registry.lab.internal:5000/ml"


def test_profiles_are_filtered_by_group() -> None:
    ws = load_workspace(DEFAULT)
    assert [p.name for p in ws.profiles_for([])] == ["cpu", "gpu"]
    assert [p.name for p in ws.profiles_for(["research"])] == ["cpu", "gpu", "gpu-research"]


def test_reference_page_documents_every_key_and_the_schema_file_is_current() -> None:
    from dlw_magic.workspace import model

    page = (ROOT / "docs" / "workspace.md").read_text()
    missing = []
    for cls in (model.Workspace, model.Namespaces, model.Images, model.Hub, model.Profile, model.Range,
                model.HomeVolume, model.BlobVolume, model.BlobAuth, model.BlobCache, model.HostPathVolume,
                model.DatasetVolume, model.NfsSource, model.Queue, model.PriorityClassDef, model.Quotas):
        for name, field in cls.model_fields.items():
            if f"`{field.alias or name}" not in page and f"{field.alias or name}`" not in page:
                missing.append(f"{cls.__name__}.{field.alias or name}")
    assert missing == []
    assert (ROOT / "docs" / "workspace.schema.json").read_text() == workspace_json_schema()
