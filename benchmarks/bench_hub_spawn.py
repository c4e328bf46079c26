"""Hub spawn to pod scheduled, on the real control plane (tests/cluster: kube-apiserver v1.36,
controller-manager, kube-scheduler, process kubelets cpu-0 and gpu-0 with 4 fake GPUs).

A real JupyterHub with DLW's KubeSpawner (tests/cluster/hub.py, the hub's own ServiceAccount) starts a
user's GPU notebook (1 GPU) through the hub's REST API; a watch on the pods stamps when kube-scheduler
bound the pod (spec.nodeName) and when the process kubelet reported it Running. The baseline, in the same
run: the very same pod (the hub's manifest, read back, under a new name) created by a bare client as the
hub's ServiceAccount in the same namespace: ``kubectl create`` (a process per pod, as an admin would), and
the Python client in a process already running (as the hub is: no process start, no discovery). The first
spawn of a user also creates her namespace and what DLW puts there; it is reported apart from later spawns.

    PYTHONPATH=. python benchmarks/bench_hub_spawn.py [--repeat 5]

Prints one JSON line per figure (medians; seconds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from _common import report  # noqa: E402
from kubernetes import client, config, watch  # noqa: E402

from tests.cluster.conftest import GPU_TAINT, GPU_TYPE  # noqa: E402
from tests.cluster.controlplane import ControlPlane, kubectl_path  # noqa: E402
from tests.cluster.hub import Hub  # noqa: E402
from tests.cluster.kubelet import ProcessKubelet, admin_api  # noqa: E402
from tests.cluster.support import hub_kubeconfig, install_dlw  # noqa: E402

USER = "bench"


class PodClock:
    """Watches every pod; stamps (perf_counter) when each pod was first bound to a node and first Running."""

    def __init__(self, cp: ControlPlane) -> None:
        self.core = client.CoreV1Api(admin_api(cp))
        self.scheduled: dict[str, float] = {}  # by uid
        self.running: dict[str, float] = {}
        self.names: dict[str, str] = {}  # uid -> name
        self.done: set[str] = set()  # uids already measured (a deleted pod's late events are not a new pod's)
        self.stop = threading.Event()
        threading.Thread(target=self._watch, daemon=True).start()

    def _watch(self) -> None:
        while not self.stop.is_set():
            try:
                for ev in watch.Watch().stream(self.core.list_pod_for_all_namespaces, timeout_seconds=30):
                    now, pod = time.perf_counter(), ev["object"]
                    uid = pod.metadata.uid
                    if uid in self.done or ev["type"] == "DELETED":
                        continue
                    self.names[uid] = pod.metadata.name
                    if pod.spec.node_name:
                        self.scheduled.setdefault(uid, now)
                    if pod.status.phase == "Running":
                        self.running.setdefault(uid, now)
            except Exception:  # noqa: BLE001 - reopen the watch
                time.sleep(0.2)

    def wait(self, name: str, timeout: float = 300) -> tuple[float, float]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for uid, n in list(self.names.items()):
                if n == name and uid not in self.done and uid in self.scheduled and uid in self.running:
                    self.done.add(uid)
                    return self.scheduled[uid], self.running[uid]
            time.sleep(0.02)
        raise AssertionError(f"pod {name} not Running in {timeout:.0f} s")

    def gone(self, cp: ControlPlane, ns: str, name: str) -> None:
        cp.wait_for(lambda: cp.kubectl("get", "pod", name, "-n", ns, check=False).returncode != 0,
                    f"pod {name} deleted", 120, 0.2)


def hub_spawn(hub: Hub, clock: PodClock, ns: str) -> dict[str, float]:
    start = time.perf_counter()
    hub.api("POST", f"/users/{USER}/server", {"profile": "gpu", "gpus": "1"})
    scheduled, running = clock.wait(f"jupyter-{USER}")
    while not hub.api("GET", f"/users/{USER}")["servers"].get("", {}).get("ready"):
        time.sleep(0.05)
    ready = time.perf_counter()
    return {"scheduled": scheduled - start, "running": running - start, "ready": ready - start}


def bare_pod(cp: ControlPlane, ns: str) -> dict[str, Any]:
    """The hub's pod manifest as created (read back, server-set fields removed), for the baseline."""
    pod = cp.get("pod", f"jupyter-{USER}", "-n", ns)
    meta = pod["metadata"]
    spec = pod["spec"]
    spec.pop("nodeName", None)
    for vol in list(spec.get("volumes") or []):  # the ServiceAccount admission adds its token volume again
        if vol["name"].startswith("kube-api-access-"):
            spec["volumes"].remove(vol)
    for c in spec["containers"]:
        c["volumeMounts"] = [m for m in c.get("volumeMounts") or [] if not m["name"].startswith("kube-api-access-")]
    return {"apiVersion": "v1", "kind": "Pod", "spec": spec,
            "metadata": {"name": "", "namespace": ns, "labels": {**meta.get("labels", {}), "component": "bench"},
                         "annotations": meta.get("annotations", {})}}


def bare_create(clock: PodClock, manifest: dict[str, Any], name: str, kubeconfig: Path) -> dict[str, float]:
    manifest["metadata"]["name"] = name
    start = time.perf_counter()
    subprocess.run([kubectl_path(), f"--kubeconfig={kubeconfig}", "create", "-f", "-"], input=json.dumps(manifest),
                   text=True, check=True, capture_output=True)
    scheduled, running = clock.wait(name)
    return {"scheduled": scheduled - start, "running": running - start}


def client_create(clock: PodClock, api: client.CoreV1Api, manifest: dict[str, Any], name: str) -> dict[str, float]:
    """The same pod from a client already running (no process start, no discovery): the hub's own position."""
    manifest["metadata"]["name"] = name
    start = time.perf_counter()
    api.create_namespaced_pod(manifest["metadata"]["namespace"], manifest)
    scheduled, running = clock.wait(name)
    return {"scheduled": scheduled - start, "running": running - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cp = ControlPlane(work / "cluster").start()
        kubelets = [
            ProcessKubelet(cp, "cpu-0", cpu="8", memory="32Gi", pythonpath=str(ROOT)).start(),
            ProcessKubelet(cp, "gpu-0", gpus=4, cpu="32", memory="256Gi", pythonpath=str(ROOT), taints=[GPU_TAINT],
                           labels={"nvidia.com/gpu.present": "true", "nvidia.com/gpu.product": GPU_TYPE}).start(),
        ]
        hub = None
        try:
            install_dlw(cp, work / "chart")
            clock = PodClock(cp)
            hub = Hub(cp, work / "hub", users=(USER,)).start()
            ns = f"dlw-{USER}"
            first = hub_spawn(hub, clock, ns)
            manifest = bare_pod(cp, ns)
            hub.stop_server(USER)
            clock.gone(cp, ns, f"jupyter-{USER}")
            warm: list[dict[str, float]] = []
            bare: list[dict[str, float]] = []
            warm_client: list[dict[str, float]] = []
            kubeconfig = hub_kubeconfig(cp)
            hub_api = client.CoreV1Api(config.new_client_from_config(str(kubeconfig)))
            for i in range(args.repeat):
                warm.append(hub_spawn(hub, clock, ns))
                hub.stop_server(USER)
                clock.gone(cp, ns, f"jupyter-{USER}")
                bare.append(bare_create(clock, manifest, f"bare-{i}", kubeconfig))
                cp.kubectl("delete", "pod", f"bare-{i}", "-n", ns, "--wait=false")
                clock.gone(cp, ns, f"bare-{i}")
                warm_client.append(client_create(clock, hub_api, manifest, f"client-{i}"))
                cp.kubectl("delete", "pod", f"client-{i}", "-n", ns, "--wait=false")
                clock.gone(cp, ns, f"client-{i}")

            def med(runs: list[dict[str, float]], key: str) -> float:
                return statistics.median(r[key] for r in runs)

            report("hub_spawn_first", namespace_created=True, to_scheduled_s=first["scheduled"],
                   to_running_s=first["running"], to_ready_s=first["ready"])
            for stage in ("scheduled", "running"):
                report(f"hub_spawn_to_{stage}", repeat=args.repeat, hub_s=med(warm, stage),
                       bare_kubectl_s=med(bare, stage), ratio=med(warm, stage) / med(bare, stage),
                       bare_client_s=med(warm_client, stage), ratio_client=med(warm, stage) / med(warm_client, stage))
            report("hub_spawn_to_ready", repeat=args.repeat, hub_s=med(warm, "ready"))
        finally:
            if hub is not None:
                hub.stop()
            for k in kubelets:
                k.stop()
            cp.stop()


if __name__ == "__main__":
    main()
