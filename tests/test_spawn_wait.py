"""Why a notebook (or a job) waits: the sentence the hub's spawn page and ``dlw status`` show.

``object_reason`` is fed the events a real cluster writes (message formats of kube-scheduler, the cluster
autoscaler and the kubelet). The spawn tests run KubeSpawner's own ``start``/``progress`` against kmock's
KubernetesEmulator: the test writes the pod's events as the cluster would, and the page must show each raw
event, then the sentence when it changed, and, when the spawn gives up, why it waited.
"""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest
import yaml

from dlw_magic.backends.kubernetes.waits import GpuAsk, event_reason, gpu_ask, object_reason
from tests.test_hub_kube import ROOT, Hub, User, hub_config, point_kubeconfig

H100 = "NVIDIA-H100-80GB-HBM3"
NO_GPU = ("0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available: "
          "3 No preemption victims found for incoming pod.")
SCALE_UP = "pod triggered scale-up: [{aks-gpuh100-27672801-vmss 0->1 (max: 3)}]"
NO_SCALE_UP = ("pod didn't trigger scale-up: 2 node(s) didn't match Pod's node affinity/selector, "
               "1 max node group size reached")
TAINT = ("0/5 nodes are available: 5 node(s) had untolerated taint {dedicated: infra}. preemption: 0/5 nodes "
         "are available: 5 Preemption is not helpful for scheduling.")
IMAGE = "registry.lab/dlw/notebook-gpu:0.1.0"
QUOTA = ('pods "jupyter-alice" is forbidden: exceeded quota: dlw-gpu-quota, requested: requests.nvidia.com/gpu=1, '
         "used: requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4")
_serial = itertools.count()


def event(reason: str, message: str, pod: str = "jupyter-alice", kind: str = "Pod", type_: str = "Normal",
          source: str = "default-scheduler") -> dict[str, Any]:
    """An Event as the API server stores it; each one a second after the previous."""
    n = next(_serial)
    return {"apiVersion": "v1", "kind": "Event", "metadata": {"name": f"{pod}.{n:08x}", "uid": f"uid-{n}"},
            "type": type_, "reason": reason, "message": message, "source": {"component": source},
            "involvedObject": {"kind": kind, "name": pod}, "eventTime": None,
            "lastTimestamp": f"2026-11-29T09:{n // 60 % 60:02d}:{n % 60:02d}Z"}


def failed_scheduling(message: str = NO_GPU, pod: str = "jupyter-alice") -> dict[str, Any]:
    return event("FailedScheduling", message, pod, type_="Warning")


def scaler(reason: str, message: str) -> dict[str, Any]:
    return event(reason, message, source="cluster-autoscaler")


# --- the sentence ---------------------------------------------------------------------------------------


def test_a_gpu_shortage_names_the_gpus_and_what_the_autoscaler_does() -> None:
    ask = GpuAsk("nvidia.com/gpu", 1, H100)
    events = [failed_scheduling()]
    assert object_reason(events, "your notebook", ask) == (
        "InsufficientGPU", f"Waiting for a node with a free GPU (nvidia.com/gpu: 1, type {H100}): {NO_GPU}")
    events.append(scaler("TriggeredScaleUp", SCALE_UP))
    events.append(failed_scheduling())  # the scheduler keeps retrying while the node boots
    assert object_reason(events, "your notebook", ask) == (
        "ScalingUp", f"Waiting for a node with a free GPU (nvidia.com/gpu: 1, type {H100}): the cluster "
                     f"autoscaler is adding one ({SCALE_UP})")
    events.append(scaler("NotTriggerScaleUp", NO_SCALE_UP))
    assert object_reason(events, "your notebook", GpuAsk("nvidia.com/gpu", 4)) == (
        "NoNodeGroup", f"Waiting for a node with 4 free GPUs (nvidia.com/gpu: 4): no node group can provide one "
                       f"({NO_SCALE_UP})")


# Karpenter (also AKS node auto-provisioning and EKS auto mode) records these on the pod.
KARPENTER_NOMINATED = "Pod should schedule on: nodeclaim/gpu-h100-x7k2q"
KARPENTER_FAILED = ('Failed to schedule pod, incompatible with nodepool "gpu", daemonset overhead={"cpu":"180m"}, '
                    "all available instance types exceed limits for nodepool \"gpu\"")


def test_karpenter_adding_a_node_or_refusing_is_said_like_the_autoscaler() -> None:
    ask = GpuAsk("nvidia.com/gpu", 1, H100)
    events = [failed_scheduling(), event("Nominated", KARPENTER_NOMINATED, source="karpenter")]
    assert object_reason(events, "your notebook", ask) == (
        "ScalingUp", f"Waiting for a node with a free GPU (nvidia.com/gpu: 1, type {H100}): Karpenter is adding "
                     "one (nodeclaim gpu-h100-x7k2q)")
    # Karpenter's own FailedScheduling is its answer, not the scheduler's: the scheduler's message stays.
    refused = [failed_scheduling(), event("FailedScheduling", KARPENTER_FAILED, type_="Warning", source="karpenter")]
    assert object_reason(refused, "your notebook", ask) == (
        "NoNodeGroup", f"Waiting for a node with a free GPU (nvidia.com/gpu: 1, type {H100}): no Karpenter node "
                       f"pool can provide one ({KARPENTER_FAILED})")


def test_without_a_known_request_the_scheduler_message_names_the_gpu_resource() -> None:
    mig = "0/2 nodes are available: 2 Insufficient nvidia.com/mig-1g.10gb."
    assert object_reason([failed_scheduling(mig)], "demo-0") == (
        "InsufficientGPU", f"Waiting for a node with a free GPU (nvidia.com/mig-1g.10gb): {mig}")


def test_a_gpu_type_no_node_has() -> None:
    message = "0/4 nodes are available: 4 node(s) didn't match Pod's node affinity/selector."
    reason, sentence = object_reason([failed_scheduling(message)], "x", GpuAsk("nvidia.com/gpu", 2, H100)) or ("", "")
    assert reason == "NoGPUOfType"
    assert sentence.startswith(f"Waiting for a node with 2 free GPUs (nvidia.com/gpu: 2, type {H100}): 0/4 nodes")


def test_taints_and_other_shortages_name_the_pod() -> None:
    assert object_reason([failed_scheduling(TAINT)], "your notebook") == (
        "Unschedulable", f"your notebook cannot be scheduled: {TAINT} (the nodes carry a taint the pod does not "
                         "tolerate; the admin sets tolerations)")
    memory = "0/3 nodes are available: 3 Insufficient memory."
    events = [failed_scheduling(memory), scaler("TriggeredScaleUp", SCALE_UP)]
    assert object_reason(events, "demo-0", GpuAsk("nvidia.com/gpu", 1)) == (
        "ScalingUp", f"demo-0 cannot be scheduled: {memory}; the cluster autoscaler is adding a node ({SCALE_UP})")
    events.append(scaler("NotTriggerScaleUp", NO_SCALE_UP))
    assert object_reason(events, "demo-0") == (
        "Unschedulable", f"demo-0 cannot be scheduled: {memory}; no node group can add a node that fits "
                         f"({NO_SCALE_UP})")


def test_image_pulls_after_the_pod_is_scheduled() -> None:
    events = [failed_scheduling(), scaler("TriggeredScaleUp", SCALE_UP),
              event("Scheduled", "Successfully assigned ml-users/jupyter-alice to aks-gpuh100-27672801-vmss000000"),
              event("Pulling", f'Pulling image "{IMAGE}"', source="kubelet")]
    assert object_reason(events, "your notebook") == (
        "PullingImage", f"Pulling image {IMAGE} (can take minutes for a large GPU image)")
    failed = (f'Failed to pull image "{IMAGE}": rpc error: code = NotFound desc = failed to pull and unpack image '
              f'"{IMAGE}": not found')
    pull_errors = [event("Failed", failed, type_="Warning", source="kubelet"),
                   event("Failed", "Error: ErrImagePull", type_="Warning", source="kubelet"),
                   event("BackOff", f'Back-off pulling image "{IMAGE}"', source="kubelet")]
    assert object_reason(events + pull_errors, "your notebook") == (
        "ImagePullBackOff", f"image {IMAGE} cannot be pulled ({failed}): check the image name and the registry's "
                            "pull secret")
    pulled = event("Pulled", f'Successfully pulled image "{IMAGE}" in 2m3.4s (2m3.4s including waiting). Image '
                             "size: 9876543210 bytes.", source="kubelet")
    assert object_reason([*events, pulled, event("Started", "Started container notebook")], "x") is None


def test_a_jobs_quota_refusal_and_the_pod_that_spoke_last() -> None:
    refused = event("FailedCreate", QUOTA.replace("jupyter-alice", "demo-0"), "demo", "Job", "Warning")
    assert event_reason([refused], {"demo"}) == (
        "QuotaExceeded", "the namespace's quota refuses the job's pods: exceeded quota: dlw-gpu-quota, requested: "
                         "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: "
                         "requests.nvidia.com/gpu=4 (stop a notebook or job that holds what the quota counts, or "
                         "ask for less)")
    # rank 1 waited on a taint, then got a node and runs; rank 0 waits for a GPU node: its sentence speaks
    events = [refused, failed_scheduling(pod="demo-0"), failed_scheduling(TAINT, pod="demo-1"),
              event("Scheduled", "Successfully assigned", "demo-1"),
              event("Started", "Started container trainer", "demo-1")]
    shuffled = [events[i] for i in (4, 3, 0, 2, 1)]  # the API's list order is not time order
    assert event_reason(shuffled, {"demo", "demo-0", "demo-1", "other"}, GpuAsk("nvidia.com/gpu", 8)) == (
        "InsufficientGPU", f"Waiting for a node with 8 free GPUs (nvidia.com/gpu: 8): {NO_GPU}")
    assert event_reason(shuffled, {"other"}) is None


def test_gpu_ask_reads_a_pod_manifest() -> None:
    pod = {"spec": {"nodeSelector": {"nvidia.com/gpu.product": H100}, "containers": [
        {"name": "a", "resources": {"limits": {"nvidia.com/gpu": "2", "cpu": "4"}}},
        {"name": "b", "resources": {"limits": {"nvidia.com/gpu": 2}}}]}}
    assert gpu_ask(pod) == GpuAsk("nvidia.com/gpu", 4, H100)
    assert gpu_ask({"spec": {"containers": [{"name": "a", "resources": {"limits": {"cpu": "1"}}}]}}) is None


# --- the spawn page -------------------------------------------------------------------------------------

RESOURCES = ["v1/pods", "v1/events", "v1/persistentvolumeclaims"]


@pytest.fixture
def kube(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from kmock._internal import parsing

    from tests.k8s_emulator import KubeEmulator

    # KubeSpawner's reflectors ask ?watch=True; the API server parses booleans leniently, kmock wants "true".
    strict = parsing.guess_k8s
    monkeypatch.setattr(parsing, "guess_k8s", lambda k8s, method, query: strict(
        k8s, method, {**query, "watch": str(query.get("watch", "")).lower()}))
    with KubeEmulator(tmp_path, namespace="ml-users", resources=RESOURCES) as k:
        point_kubeconfig(k.kubeconfig, monkeypatch)
        yield k


@pytest.fixture
def ws_file(tmp_path: Path) -> Path:
    """The shipped admin YAML in one shared namespace (the emulator stores no Namespaces)."""
    data = yaml.safe_load((ROOT / "hub_config" / "workspace.yaml").read_text())
    data["namespaces"] = {"scheme": "shared", "shared": "ml-users", "hub": "dlw"}
    path = tmp_path / "workspace.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _as_stored(spawner: Any, pod: Any) -> Any:
    """The API server fills in the namespace and a Pending status; the emulator stores what it gets."""
    from kubernetes_asyncio.client import V1PodStatus

    pod.metadata.namespace = spawner.namespace
    pod.status = V1PodStatus(phase="Pending")
    return pod


async def spawn_page(kube: Any, ws_file: Path, events: list[dict[str, Any]], start_timeout: int = 60,
                     shown: int | None = None, options: dict[str, str] | None = None) -> list[str]:
    """What the spawn page shows: KubeSpawner's progress messages while the pod waits, the cluster writing
    ``events`` once the pod exists, then "Spawn failed: ..." as JupyterHub words it. With ``shown``, the user
    cancels once that many messages are on the page (else the spawn runs into ``start_timeout``)."""
    from jupyterhub.utils import format_exception

    from dlw_magic.hub.kube import DLWKubeSpawner

    c = hub_config(ws_file)
    c.KubeSpawner.k8s_api_host = kube.url
    c.KubeSpawner.start_timeout = start_timeout
    c.KubeSpawner.modify_pod_hook = _as_stored
    spawner = DLWKubeSpawner(_mock=True, config=c, user=User("alice"), hub=Hub())
    spawner.user_options = options or {"profile": "gpu", "gpus": "1"}
    page: list[str] = []
    start = spawner.start()

    async def follow() -> None:
        async for update in spawner.progress():
            page.append(update["message"])

    following = asyncio.ensure_future(follow())
    try:
        while not start.done() and not await asyncio.to_thread(kube.items, ("v1", "Pod")):
            await asyncio.sleep(0.05)
        if not start.done():
            for e in events:
                await asyncio.to_thread(kube.create, e)
        while shown is not None and len(page) < shown and not start.done():
            await asyncio.sleep(0.05)
        if shown is not None:
            start.cancel()
        await asyncio.wait([start])
        await following
        if not start.cancelled():
            page.append(f"Spawn failed: {format_exception(start.exception())[0]}")
    finally:
        following.cancel()
        await DLWKubeSpawner._stop_all_reflectors()
    return page


def _raw(e: dict[str, Any]) -> str:
    return f"{e['lastTimestamp']} [{e['type']}] {e['message']}"


def test_spawn_page_gpu_shortage_then_scale_up_and_the_timeout_says_why(kube: Any, ws_file: Path) -> None:
    events = [failed_scheduling(), scaler("TriggeredScaleUp", SCALE_UP), failed_scheduling()]
    page = asyncio.run(spawn_page(kube, ws_file, events, start_timeout=10))
    waiting = f"Waiting for a node with a free GPU (nvidia.com/gpu: 1, type {H100})"
    scaling = f"{waiting}: the cluster autoscaler is adding one ({SCALE_UP})"
    assert page == [
        _raw(events[0]), f"{waiting}: {NO_GPU}",
        _raw(events[1]), scaling,
        _raw(events[2]),  # same sentence: not repeated
        f"Spawn failed: Your notebook did not start in 10 seconds. {scaling}",
    ]


def test_spawn_page_no_node_group_can_provide_the_gpus(kube: Any, ws_file: Path) -> None:
    events = [failed_scheduling(), scaler("NotTriggerScaleUp", NO_SCALE_UP)]
    page = asyncio.run(spawn_page(kube, ws_file, events, shown=4, options={"profile": "gpu", "gpus": "4"}))
    assert page[1::2] == [
        f"Waiting for a node with 4 free GPUs (nvidia.com/gpu: 4, type {H100}): {NO_GPU}",
        f"Waiting for a node with 4 free GPUs (nvidia.com/gpu: 4, type {H100}): no node group can provide one "
        f"({NO_SCALE_UP})",
    ]
    assert page[::2] == [_raw(e) for e in events]


def test_spawn_page_image_pull(kube: Any, ws_file: Path) -> None:
    events = [event("Scheduled", "Successfully assigned ml-users/jupyter-alice to aks-gpuh100-vmss000000"),
              event("Pulling", 'Pulling image "dlw/notebook-gpu:0.1.0"', source="kubelet")]
    page = asyncio.run(spawn_page(kube, ws_file, events, shown=3))
    assert page == [_raw(events[0]), _raw(events[1]),
                    "Pulling image dlw/notebook-gpu:0.1.0 (can take minutes for a large GPU image)"]


def test_spawn_page_quota_refusal(kube: Any, ws_file: Path) -> None:
    import kmock

    status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": QUOTA, "reason": "Forbidden",
              "details": {"name": "jupyter-alice", "kind": "pods"}, "code": 403}
    kube.emulator["post", kmock.resource("v1/pods")] << 403 << status
    page = asyncio.run(spawn_page(kube, ws_file, []))
    assert page == [
        "Spawn failed: The namespace's quota refuses the notebook: exceeded quota: dlw-gpu-quota, requested: "
        "requests.nvidia.com/gpu=1, used: requests.nvidia.com/gpu=4, limited: requests.nvidia.com/gpu=4 (stop a "
        "notebook or job that holds what the quota counts, or ask for less)"]
