"""Pod-level choices every engine shares: jobs land where the admin's profiles put notebooks (node
selector, tolerations beyond the GPU taint), multi-process or GPU pods get a real /dev/shm, and a
per-user scratch folder belongs to the pod user."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import test_render
import yaml
from test_render import objects, pod_specs, prepare

from dlw_magic.engines.objects import render_objects

project = test_render.project  # the fixture: a project folder as cwd

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def admin_workspace(tmp_path: Path) -> str:
    data = yaml.safe_load((ROOT / "hub_config" / "workspace.yaml").read_text())
    gpu = next(p for p in data["profiles"] if p["name"] == "gpu")
    gpu["nodeSelector"] = {"agentpool": "gpu"}
    gpu["tolerations"] = [{"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
                           "effect": "NoSchedule"}]
    cpu = next(p for p in data["profiles"] if p["name"] == "cpu")
    cpu["nodeSelector"] = {"agentpool": "cpu"}
    path = tmp_path / "ws.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def rendered(project: Path, workspace: str, engine: str, **fields: Any) -> list[dict[str, Any]]:
    return pod_specs(render_objects(prepare(project, **fields), engine, workspace=workspace))


@pytest.mark.parametrize("engine", ["job", "volcano", "pytorchjob"])
def test_gpu_jobs_get_the_gpu_profiles_placement(project: Path, admin_workspace: str, engine: str) -> None:
    for pod in rendered(project, admin_workspace, engine, workers=2,
                        resources={"gpus": 2, "gpuType": "NVIDIA-H100-80GB-HBM3"}):
        assert pod["nodeSelector"] == {"agentpool": "gpu", "nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"}
        assert {"key": "kubernetes.azure.com/scalesetpriority", "operator": "Equal", "value": "spot",
                "effect": "NoSchedule"} in pod["tolerations"]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]


def test_cpu_jobs_get_the_cpu_profiles_placement_and_no_gpu_toleration(project: Path, admin_workspace: str) -> None:
    (pod,) = rendered(project, admin_workspace, "job")
    assert pod["nodeSelector"] == {"agentpool": "cpu"}
    assert "tolerations" not in pod


@pytest.mark.parametrize(("fields", "shm"), [
    ({"processesPerWorker": 2}, {"medium": "Memory"}),
    ({"resources": {"gpus": 1}}, {"medium": "Memory"}),
    ({"resources": {"shm": "2Gi"}}, {"medium": "Memory", "sizeLimit": "2Gi"}),
    ({}, None),
])
def test_multi_process_and_gpu_pods_get_a_memory_dev_shm(project: Path, fields: dict[str, Any],
                                                          shm: dict[str, Any] | None) -> None:
    (pod,) = pod_specs(objects(project, "job", **fields))
    volume = next((v["emptyDir"] for v in pod["volumes"] if v["name"] == "dlw-shm"), None)
    assert volume == shm
    mounted = any(m["mountPath"] == "/dev/shm" for m in pod["containers"][0]["volumeMounts"])
    assert mounted == (shm is not None)


@pytest.mark.skipif(os.geteuid() != 0, reason="hands a root-owned folder to another user: needs root")
def test_scratch_folder_is_handed_to_the_pod_user(project: Path, tmp_path: Path) -> None:
    """The kubelet makes a per-user hostPath folder root-owned 0755; the init container (run here on a
    folder like it) gives it to the notebook/job user, who can then write there."""
    from dlw_magic.workspace import POD_GID, POD_UID

    (pod,) = pod_specs(objects(project, "job", volumes=[{"name": "scratch"}]))
    (init,) = pod["initContainers"]
    assert init["securityContext"]["runAsUser"] == 0 and "capabilities" not in init["securityContext"]
    assert [m["name"] for m in init["volumeMounts"]] == ["dlw-scratch"]
    folder = tmp_path / "scratch-alice"
    folder.mkdir(mode=0o755)
    command = [sys.executable if c == "python" else c for c in init["command"][:3]]
    subprocess.run([*command, str(folder)], check=True, timeout=30)
    st = folder.stat()
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (POD_UID, POD_GID, 0o700)


def test_pods_without_per_user_host_paths_have_no_init_container(project: Path) -> None:
    (pod,) = pod_specs(objects(project, "job", volumes=[{"name": "datasets"}]))
    assert "initContainers" not in pod
