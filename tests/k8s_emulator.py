"""kmock's KubernetesEmulator on a background thread, for code that uses the official (synchronous) client.

The emulator is a real HTTP server that stores objects; it runs no controllers, so tests move pods and
jobs through their states themselves (``set_pod_status``, ``set_status``) and give pods their logs
(``set_log``). It ignores label selectors: code under test filters client-side as well.

    with KubeEmulator(tmp_path) as kube:
        backend = KubernetesBackend(kubeconfig=str(kube.kubeconfig), namespace="dlw-alice")
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import kmock
import yaml

RESOURCES = [
    "v1/pods", "v1/configmaps", "v1/services", "v1/events",
    "batch/v1/jobs", "batch.volcano.sh/v1alpha1/jobs", "kubeflow.org/v1/pytorchjobs",
    "trainer.kubeflow.org/v1alpha1/trainjobs", "trainer.kubeflow.org/v1alpha1/trainingruntimes",
    "kueue.x-k8s.io/v1beta1/workloads", "scheduling.volcano.sh/v1beta1/podgroups",
]
PLURALS = {
    ("v1", "Pod"): "api/v1/namespaces/{ns}/pods",
    ("v1", "Event"): "api/v1/namespaces/{ns}/events",
    ("v1", "ConfigMap"): "api/v1/namespaces/{ns}/configmaps",
    ("v1", "Service"): "api/v1/namespaces/{ns}/services",
    ("batch/v1", "Job"): "apis/batch/v1/namespaces/{ns}/jobs",
    ("batch.volcano.sh/v1alpha1", "Job"): "apis/batch.volcano.sh/v1alpha1/namespaces/{ns}/jobs",
    ("kubeflow.org/v1", "PyTorchJob"): "apis/kubeflow.org/v1/namespaces/{ns}/pytorchjobs",
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"): "apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainjobs",
    ("trainer.kubeflow.org/v1alpha1", "TrainingRuntime"):
        "apis/trainer.kubeflow.org/v1alpha1/namespaces/{ns}/trainingruntimes",
    ("kueue.x-k8s.io/v1beta1", "Workload"): "apis/kueue.x-k8s.io/v1beta1/namespaces/{ns}/workloads",
    ("scheduling.volcano.sh/v1beta1", "PodGroup"): "apis/scheduling.volcano.sh/v1beta1/namespaces/{ns}/podgroups",
}


class KubeEmulator:
    def __init__(self, tmp_path: Path, namespace: str = "dlw-alice", resources: list[str] | None = None) -> None:
        self.tmp_path = tmp_path
        self.namespace = namespace
        self.resources = RESOURCES if resources is None else resources
        self.logs: dict[str, bytes] = {}
        self.log_times: dict[str, list[str] | None] = {}
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self.url = ""
        self.kubeconfig = tmp_path / "kubeconfig"

    # -- lifecycle --------------------------------------------------------------------------------------

    def __enter__(self) -> KubeEmulator:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(20) or self._error:
            raise RuntimeError(f"kmock emulator did not start: {self._error}")
        self.kubeconfig.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "kmock", "cluster": {"server": self.url}}],
            "users": [{"name": "alice", "user": {"token": "test-token"}}],
            "contexts": [{"name": "kmock", "context": {
                "cluster": "kmock", "user": "alice", "namespace": self.namespace}}],
            "current-context": "kmock",
        }))
        from kubernetes import config

        self.client = config.new_client_from_config(config_file=str(self.kubeconfig))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as err:  # noqa: BLE001 - reported by __enter__
            self._error = err
            self._ready.set()

    async def _serve(self) -> None:
        async with kmock.KubernetesEmulator() as k, kmock.Server(k) as server:
            for res in self.resources:
                k.resources[res] = {}
            k["get", kmock.resource("v1/pods"), kmock.subresource("log")] << self._log
            self.emulator = k
            self.url = str(server.url).rstrip("/")
            self._stop = asyncio.Event()
            self._ready.set()
            await self._stop.wait()

    # -- test-side moves (what controllers and kubelets would do) ---------------------------------------

    def _call(self, method: str, path: str, body: Any = None, content_type: str = "application/json") -> Any:
        import json

        resp = self.client.call_api(*self.client.param_serialize(
            method=method, resource_path="/" + path, body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
        ))
        resp.read()
        assert 200 <= resp.status < 300, (resp.status, resp.data[:300])
        return json.loads(resp.data) if resp.data else None

    def path(self, kind: tuple[str, str], name: str | None = None) -> str:
        base = PLURALS[kind].format(ns=self.namespace)
        return f"{base}/{name}" if name else base

    def get(self, kind: tuple[str, str], name: str) -> dict[str, Any]:
        return self._call("GET", self.path(kind, name))

    def items(self, kind: tuple[str, str]) -> list[dict[str, Any]]:
        return self._call("GET", self.path(kind))["items"]

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj.setdefault("metadata", {}).setdefault("namespace", self.namespace)
        return self._call("POST", self.path((obj["apiVersion"], obj["kind"])), obj)

    def set_status(self, kind: tuple[str, str], name: str, status: dict[str, Any]) -> None:
        self._call("PATCH", self.path(kind, name) + "/status", {"status": status},
                   content_type="application/merge-patch+json")

    def add_pod(
        self, job: dict[str, Any], name: str, status: dict[str, Any], labels: dict[str, str] | None = None,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        """A pod as the job's controller would create it: the job's labels plus the controller's own."""
        tpl_labels = _template_labels(job)
        pod = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": self.namespace, "labels": {**tpl_labels, **(labels or {})},
                         "annotations": annotations or {}},
            "spec": {"containers": [{"name": "trainer", "image": "img"}]},
            "status": status,
        }
        return self.create(pod)

    def set_pod_status(self, name: str, status: dict[str, Any]) -> None:
        self.set_status(("v1", "Pod"), name, status)

    def requests(self) -> list[tuple[str, str, Any]]:
        """(method, path, JSON body) of every request the server has seen, in order."""
        return [(str(r.method.value).upper(), r.url.path, r.data) for r in list(self.emulator)]

    def set_log(self, pod: str, text: str, times: list[str] | None = None) -> None:
        """A pod's log; ``times``: when each line was written (RFC 3339, UTC), else all at one instant."""
        self.logs[pod] = text.encode()
        self.log_times[pod] = times

    def _log(self, request: Any) -> bytes:
        data = self.logs.get(request.name, b"")
        if (request.params or {}).get("timestamps") != "true":
            return data
        lines = data.splitlines(keepends=True)
        times = self.log_times.get(request.name) or ["2026-01-01T00:00:00Z"] * len(lines)
        return b"".join(f"{t} ".encode() + line for t, line in zip(times, lines, strict=True))


def _template_labels(job: dict[str, Any]) -> dict[str, str]:
    spec = job.get("spec") or {}
    if "template" in spec:
        return dict(spec["template"]["metadata"]["labels"])
    if "tasks" in spec:
        return dict(spec["tasks"][0]["template"]["metadata"]["labels"])
    if "runtimeRef" in spec:  # a TrainJob: its pods carry the labels of the runtime's pod template
        return {k: v for k, v in job["metadata"]["labels"].items()} | {"dlw.dev/role": "node"}
    first = next(iter(spec["pytorchReplicaSpecs"].values()))
    return dict(first["template"]["metadata"]["labels"])


def serve_forever(tmp_path: Path, namespace: str = "dlw-alice") -> None:
    """Serve in this process until stdin closes; prints the kubeconfig path (benchmarks: a separate
    API server process, as in a real cluster, so client and server do not share one interpreter)."""
    import sys

    with KubeEmulator(tmp_path, namespace) as kube:
        print(kube.kubeconfig, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    import sys

    serve_forever(Path(sys.argv[1]))
