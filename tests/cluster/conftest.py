"""Fixtures of the cluster suite: one real control plane per test session, process kubelets, and a DLW
installed on it the way an admin does (``dlw admin render --all`` + ``helm install``), with alice's
namespace made as the hub makes it at her first spawn.

The binaries are built once per machine by tests/cluster/build.sh (the README's test command runs it
first). Where this machine has no Go toolchain the suite skips with that one reason, except under CI.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.cluster.controlplane import ROOT, ControlPlane
from tests.cluster.kubeflow_trainer import JOBSET, TRAINER, Controller
from tests.cluster.kubelet import ProcessKubelet, claim_folder
from tests.cluster.kueue import Kueue
from tests.cluster.support import HOME_VOLUME, WORKSPACE, alice_env, install_dlw, workspace_variant
from tests.cluster.training_operator import TrainingOperator
from tests.cluster.volcano import Volcano

GPU_TYPE = "NVIDIA-H100-80GB-HBM3"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).resolve().parent
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.cluster)
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    if not shutil.which("go") and os.environ.get("CI") != "true":
        pytest.skip("no Go toolchain: the cluster suite builds Kubernetes from its Go modules (tests/cluster/build.sh)")
    cp = ControlPlane(tmp_path_factory.mktemp("cluster")).start()
    try:
        yield cp
    finally:
        cp.stop()


@pytest.fixture(scope="session")
def crds(control_plane: ControlPlane) -> None:
    """The engines' CRDs (tests/cluster/crds.py), as their releases install them."""
    control_plane.install_crds()


@pytest.fixture(scope="session")
def nodes(control_plane: ControlPlane) -> Iterator[dict[str, ProcessKubelet]]:
    """Two process kubelets: a CPU node, and a GPU node with 4 fake H100s, GPU feature discovery's labels
    and the GPU taint that the admin YAML's profiles tolerate."""
    pythonpath = str(ROOT)
    cpu = ProcessKubelet(control_plane, "cpu-0", cpu="8", memory="32Gi", pythonpath=pythonpath).start()
    gpu = ProcessKubelet(control_plane, "gpu-0", gpus=4, cpu="32", memory="256Gi", pythonpath=pythonpath,
                         labels={"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": GPU_TYPE,
                                 "nvidia.com/gpu.count": "4"}, taints=[GPU_TAINT]).start()
    control_plane.wait_for(lambda: all(_ready(control_plane, n) for n in ("cpu-0", "gpu-0")), "nodes Ready", 60)
    try:
        yield {"cpu": cpu, "gpu": gpu}
    finally:
        cpu.stop()
        gpu.stop()


def _ready(cp: ControlPlane, node: str) -> bool:
    got = cp.kubectl("get", "node", node, "-o", "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                     check=False)
    return got.stdout.strip() == "True"


@pytest.fixture(scope="session")
def installed(control_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DLW's cluster objects installed as docs/deploy.md says (``dlw admin render --all`` + helm install)."""
    return install_dlw(control_plane, tmp_path_factory.mktemp("chart") / "mycluster")


@pytest.fixture(scope="session")
def alice(control_plane: ControlPlane, installed: Path, nodes: dict[str, ProcessKubelet]) -> dict[str, str]:
    """Alice's notebook pod's environment (support.alice_env), on a cluster with DLW and two nodes."""
    return alice_env(control_plane)


@pytest.fixture(scope="session")
def training_operator(control_plane: ControlPlane, crds: None) -> Iterator[TrainingOperator]:
    """Kubeflow's training-operator (PyTorchJob controller and webhook), built from its module."""
    op = TrainingOperator(control_plane).start()
    try:
        yield op
    finally:
        op.stop()


@pytest.fixture(scope="session")
def kueue(control_plane: ControlPlane, crds: None, training_operator: TrainingOperator) -> Iterator[Kueue]:
    """Kueue (its controllers, scheduler and webhooks), built from its module; after the training-operator,
    whose PyTorchJobs it also queues."""
    k = Kueue(control_plane).start()
    try:
        yield k
    finally:
        k.stop()


@pytest.fixture(scope="session")
def alice_home(control_plane: ControlPlane, alice: dict[str, str], nodes: dict[str, ProcessKubelet]) -> Path:
    """Alice's ReadWriteMany home (``preemptible`` needs one: checkpoints must outlive the pod), for an admin
    YAML with HOME_VOLUME. No storage provisioner here: the admin's PersistentVolume and the claim the hub
    would make (``claim-alice``, z2jh's name) are made by hand; the real PV controller binds them. Returns
    the folder the process kubelets give pods for the claim, on every node (alice's ``DLW_HOME_MOUNT``)."""
    ns = alice["DLW_NAMESPACE"]
    pv = {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "alice-home"},
          "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteMany"], "storageClassName": "",
                   "persistentVolumeReclaimPolicy": "Retain", "hostPath": {"path": "/srv/homes/alice"},
                   "claimRef": {"namespace": ns, "name": "claim-alice"}}}
    pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "claim-alice", "namespace": ns},
           "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "", "volumeName": "alice-home",
                    "resources": {"requests": {"storage": "1Gi"}}}}
    control_plane.apply([pv, pvc])
    control_plane.wait_for(lambda: control_plane.get("pvc", "claim-alice", "-n", ns)["status"].get("phase") == "Bound",
                           "claim-alice Bound", 60)
    home = claim_folder(control_plane, ns, "claim-alice")
    home.mkdir(parents=True, exist_ok=True)
    return home


@pytest.fixture(scope="session")
def volcano(control_plane: ControlPlane, crds: None) -> Iterator[Volcano]:
    """Volcano's vc-controller-manager and vc-scheduler (scheduler name ``volcano``), built from its module."""
    vc = Volcano(control_plane).start()
    try:
        yield vc
    finally:
        vc.stop()


@pytest.fixture(scope="session")
def trainer(control_plane: ControlPlane, crds: None) -> Iterator[dict[str, Controller]]:
    """JobSet's and Kubeflow Trainer v2's controller managers and webhooks (tests/cluster/kubeflow_trainer.py),
    upstream's mains built from their modules: {"jobset": ..., "trainer": ...}."""
    with contextlib.ExitStack() as stack:
        running = {}
        for release in (JOBSET, TRAINER):  # Trainer makes JobSets: JobSet's webhook first
            controller = Controller(control_plane, release)
            stack.callback(controller.stop)  # also when it fails to start
            running[release.component] = controller.start()
        yield running


@pytest.fixture(scope="session")
def alice_rwx(alice: dict[str, str], alice_home: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Alice's notebook environment with a ReadWriteMany home in the admin YAML (conftest.alice_home)."""
    volumes = [*yaml.safe_load(WORKSPACE.read_text())["volumes"], HOME_VOLUME]
    config = workspace_variant(tmp_path_factory.mktemp("rwx"), volumes=volumes)
    return {**alice, "DLW_WORKSPACE_CONFIG": str(config), "DLW_HOME_MOUNT": str(alice_home)}
