"""API server load of following jobs: requests per second per follower, by watch vs by polling.

``dlw logs -f`` (and the panel's live log) follow a job until it ends. Polling asks the API server about the
job and its pods every second; watching lists once and then holds one long request per kind. This counts
the requests kmock's KubernetesEmulator (in its own process, as an API server would be) receives while 1 and
50 followers follow a running 2-pod job for ``--seconds``, after the followers have started. The baseline is
the polling implementation (``KubernetesBackend(watch=False)``) in the same run.
Goal: at most 0.2 requests per second per follower in steady state, by watch.

    PYTHONPATH=. python benchmarks/bench_k8s_follow.py [--seconds 10] [--followers 1,50]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dlw_magic import core  # noqa: E402
from dlw_magic.backends.kubernetes import KubernetesBackend  # noqa: E402

GOAL = 0.2
# The emulator in a child process; a line "log POD TEXT" on stdin gives a pod its log, any other line asks
# for the number of requests it has received.
SERVER = """
import sys
from pathlib import Path
from k8s_emulator import KubeEmulator
with KubeEmulator(Path(sys.argv[1])) as kube:
    print(kube.kubeconfig, flush=True)
    for line in sys.stdin:
        if line.startswith("log "):
            _, pod, text = line.split(" ", 2)
            kube.set_log(pod, text)
        print(len(list(kube.emulator)), flush=True)
"""


class ApiServer:
    def __enter__(self) -> ApiServer:
        self.tmp = tempfile.TemporaryDirectory(prefix="dlw-bench-follow-")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, self.tmp.name], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])},
        )
        self.kubeconfig = self.proc.stdout.readline().strip()
        from kubernetes import config

        self.client = config.new_client_from_config(config_file=self.kubeconfig)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.stdin.close()
        self.proc.wait(30)
        self.tmp.cleanup()

    def count(self, line: str = "") -> int:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline())

    def call(self, method: str, path: str, body: Any = None, patch: bool = False) -> None:
        resp = self.client.call_api(*self.client.param_serialize(
            method=method, resource_path=path, body=body,
            header_params={"Accept": "application/json",
                           "Content-Type": "application/merge-patch+json" if patch else "application/json"}))
        resp.read()


def _running_job(server: ApiServer, backend: KubernetesBackend, script: Path, name: str) -> None:
    """A submitted job with two running pods, as its controller and the kubelet would leave it."""
    core.submit(core.build_spec(script, name=name, workers=2, image="img:1"), backend)
    ns = backend.namespace
    labels = backend._selector(**{"dlw.dev/job": name, "dlw.dev/job-id": backend.get(name).id})
    for rank in range(2):
        server.count(f"log {name}-{rank} rank {rank} started")
        server.call("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{rank}", "namespace": ns, "uid": f"{name}-{rank}", "labels": labels,
                         "annotations": {"batch.kubernetes.io/job-completion-index": str(rank)}},
            "spec": {"containers": [{"name": "trainer", "image": "img:1"}]},
            "status": {"phase": "Running"}})
    server.call("PATCH", f"/apis/batch/v1/namespaces/{ns}/jobs/{name}/status", {"status": {"active": 2}}, patch=True)


def measure(script: Path, followers: int, watch: bool, seconds: float) -> dict[str, Any]:
    # A fresh emulator each time: it keeps every request it has served and slows down as they pile up.
    with ApiServer() as server:
        return _measure(server, script, followers, watch, seconds)


def _measure(server: ApiServer, script: Path, followers: int, watch: bool, seconds: float) -> dict[str, Any]:
    name = f"follow-{'watch' if watch else 'poll'}-{followers}"
    backends = [KubernetesBackend(kubeconfig=server.kubeconfig, watch=watch) for _ in range(followers)]
    _running_job(server, backends[0], script, name)
    started = threading.Semaphore(0)

    def follow(backend: KubernetesBackend) -> None:
        for i, _ in enumerate(backend.logs(name, follow=True)):
            if i == 0:
                started.release()  # past its lists, watches (or first poll) and log streams

    threads = [threading.Thread(target=follow, args=(b,), daemon=True) for b in backends]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 180
    for _ in threads:
        started.acquire(timeout=max(0.1, deadline - time.monotonic()))
    time.sleep(2.0)  # the last watches open
    before = server.count()
    time.sleep(seconds)
    received = server.count() - before
    server.call("PATCH", f"/apis/batch/v1/namespaces/{backends[0].namespace}/jobs/{name}/status",
                {"status": {"active": 0, "conditions": [{"type": "Complete", "status": "True"}]}}, patch=True)
    deadline = time.monotonic() + 120
    for t in threads:
        t.join(max(0.1, deadline - time.monotonic()))
    print(f"{name}: {received} requests in {seconds} s", file=sys.stderr, flush=True)
    per = received / seconds / followers
    return {"followers": followers, "seconds": seconds, "requests": received,
            "requests_per_s_per_follower": round(per, 3), "all_ended": not any(t.is_alive() for t in threads)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--followers", default="1,50")
    parser.add_argument("--modes", default="watch,poll", help="watch, poll (the baseline) or both")
    args, _ = parser.parse_known_args()  # run_all.py passes every benchmark the same arguments
    os.environ["DLW_USER"] = "alice"
    for var in ("DLW_NAMESPACE", "DLW_WORKSPACE_CONFIG", "KUBERNETES_SERVICE_HOST", "JUPYTERHUB_USER",
                "DLW_KUBECONFIG"):
        os.environ.pop(var, None)
    counts = [int(n) for n in args.followers.split(",")]
    results: dict[str, Any] = {"benchmark": "k8s_follow", "goal_requests_per_s_per_follower": GOAL}
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train.py"
        script.write_text("print('hello')\n")
        modes = args.modes.split(",")
        for n in counts:
            results[f"followers_{n}"] = {
                **({"watch": measure(script, n, True, args.seconds)} if "watch" in modes else {}),
                **({"poll_baseline": measure(script, n, False, args.seconds)} if "poll" in modes else {}),
            }
    if "watch" in modes:
        results["meets_goal"] = all(
            results[f"followers_{n}"]["watch"]["requests_per_s_per_follower"] <= GOAL for n in counts)
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
