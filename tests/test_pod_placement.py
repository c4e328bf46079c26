"""Pod-level choices every engine shares: jobs land where the admin's profiles put notebooks (node
selector, tolerations beyond the GPU taint), multi-process or GPU pods get a real /dev/shm, and a
per-user scratch folder belongs to the pod user."""

from __future__ import annotations

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


def test_scratch_folder_is_the_users_sub_path_and_nothing_runs_as_root(project: Path) -> None:
    """The per-user root is mounted at ``subPath: <user>`` (the kubelet makes that folder with the root's mode,
    1777 from the chart's scratch-roots DaemonSet); no container runs as root to hand a folder over."""
    (pod,) = pod_specs(objects(project, "job", volumes=[{"name": "scratch"}]))
    assert "initContainers" not in pod
    (mount,) = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "dlw-scratch"]
    assert mount["subPath"] == "alice"
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0


def test_pods_without_per_user_host_paths_have_no_init_container(project: Path) -> None:
    (pod,) = pod_specs(objects(project, "job", volumes=[{"name": "datasets"}]))
    assert "initContainers" not in pod
