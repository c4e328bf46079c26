"""Kubernetes submit overhead: ``dlw train`` (no build) vs creating the same manifests with the bare client.

Both talk to kmock's KubernetesEmulator (a real HTTP API server) running in its own process, as an API
server would, alternating run by run, so the ratio compares like with like. ``dlw`` covers the whole
path a user waits for: spec, notebook conversion, snapshot, render, policy check, and the API calls
(name check + creates). The baseline creates the very objects dlw rendered (renamed per run) with the
official typed client.
Goal: median ratio <= 2.

Also reports, without a builder, whether a code-only change leaves the image's dependency-layer inputs
(Dockerfile steps and requirements) byte-identical, which is what lets any layer cache skip them.

    PYTHONPATH=. python benchmarks/bench_k8s_submit.py [--runs 30] [--notebook examples/digits_ddp.ipynb]
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from dlw_magic import core  # noqa: E402
from dlw_magic.backends import _cache  # noqa: E402
from dlw_magic.backends.kubernetes import KubernetesBackend  # noqa: E402


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(len(ordered) * 0.9) - 1] * 1000, 2),
        "min_ms": round(ordered[0] * 1000, 2),
    }


class ApiServer:
    """kmock's emulator in a child process; ``kubeconfig`` points the official client at it."""

    def __enter__(self) -> ApiServer:
        self.tmp = tempfile.TemporaryDirectory(prefix="dlw-bench-")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "k8s_emulator.py"), self.tmp.name],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        self.kubeconfig = self.proc.stdout.readline().strip()
        from kubernetes import config

        self.client = config.new_client_from_config(config_file=self.kubeconfig)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.stdin.close()
        self.proc.wait(10)
        self.tmp.cleanup()

    def delete_all(self, namespace: str) -> None:
        """Untimed cleanup between runs: the emulator does not filter lists by label, so leftovers would
        make every later list (dlw's name check) slower than on a real API server."""
        for path in (f"/api/v1/namespaces/{namespace}/configmaps", f"/apis/batch/v1/namespaces/{namespace}/jobs",
                     f"/api/v1/namespaces/{namespace}/services"):
            for obj in self.items(path):
                resp = self.client.call_api(*self.client.param_serialize(
                    method="DELETE", resource_path=f"{path}/{obj['metadata']['name']}",
                    header_params={"Accept": "application/json"}))
                resp.read()

    def items(self, plural_path: str) -> list[dict[str, Any]]:
        resp = self.client.call_api(*self.client.param_serialize(
            method="GET", resource_path=plural_path, header_params={"Accept": "application/json"}))
        resp.read()
        return json.loads(resp.data)["items"]


def _bare_create(server: ApiServer, objs: list[dict[str, Any]]) -> None:
    from kubernetes import client

    core_api, batch = client.CoreV1Api(server.client), client.BatchV1Api(server.client)
    for obj in objs:
        ns = obj["metadata"]["namespace"]
        if obj["kind"] == "ConfigMap":
            core_api.create_namespaced_config_map(ns, obj)
        elif obj["kind"] == "Service":
            core_api.create_namespaced_service(ns, obj)
        else:
            batch.create_namespaced_job(ns, obj)


def _renamed(objs: list[dict[str, Any]], suffix: str) -> list[dict[str, Any]]:
    out = copy.deepcopy(objs)
    for obj in out:
        obj["metadata"]["name"] += suffix
        obj["metadata"].pop("ownerReferences", None)
    return out


def bench_submit(target: Path, runs: int, workers: int) -> dict[str, Any]:
    with ApiServer() as server:
        _cache.clear()
        backend = KubernetesBackend(kubeconfig=server.kubeconfig)
        # Warm imports and connections on both paths before timing.
        core.submit(core.build_spec(target, name="warm", workers=workers, image="img:1"), backend)
        ns = backend.namespace
        sample = [o for path in (f"/api/v1/namespaces/{ns}/configmaps", f"/apis/batch/v1/namespaces/{ns}/jobs",
                                 f"/api/v1/namespaces/{ns}/services")
                  for o in server.items(path) if o["metadata"]["labels"].get("dlw.dev/job") == "warm"]
        _bare_create(server, _renamed(sample, "-w"))
        dlw_times, bare_times = [], []
        for i in range(runs):
            t0 = time.perf_counter()
            core.submit(core.build_spec(target, name=f"dlw-{i}", workers=workers, image="img:1"), backend)
            dlw_times.append(time.perf_counter() - t0)
            objs = _renamed(sample, f"-b{i}")
            t0 = time.perf_counter()
            _bare_create(server, objs)
            bare_times.append(time.perf_counter() - t0)
            server.delete_all(ns)
        dlw, bare = _stats(dlw_times), _stats(bare_times)
        ratio = round(dlw["median_ms"] / bare["median_ms"], 2)
        return {
            "target": str(target.relative_to(ROOT) if target.is_relative_to(ROOT) else target.name),
            "workers": workers, "runs": runs, "objects_per_job": len(sample),
            "dlw_train": dlw, "bare_client_same_manifests": bare,
            "ratio_median": ratio, "goal_ratio": 2.0, "meets_goal": ratio <= 2.0,
        }


def bench_rebuild_inputs(target: Path) -> dict[str, Any]:
    from dlw_magic import snapshot
    from dlw_magic.build import engine_answers
    from dlw_magic.build.dockerfile import write_context
    from dlw_magic.spec import parse_spec

    with tempfile.TemporaryDirectory(prefix="dlw-bench-build-") as tmp:
        root = Path(tmp)
        script = root / "train.py"
        contexts = []
        for version in ("v1", "v2"):  # a code-only change between the two builds
            script.write_text(f"print('{version}')\n")
            spec = parse_spec({"name": "rebuild", "source": {"script": str(script)}, "build": True})
            prepared = snapshot.prepare(spec, root / f"snap-{version}", "bench")
            contexts.append(write_context(prepared, "base:1", root / f"ctx-{version}"))
        same = all((contexts[0] / n).read_bytes() == (contexts[1] / n).read_bytes()
                   for n in ("Dockerfile", "requirements.txt"))
    builder = next((t for t in ("docker", "podman") if engine_answers(t)), None)
    return {
        "builder": builder or "none (no docker/podman engine, no cluster builder here)",
        "dependency_layer_inputs_identical_after_code_change": same,
        "layers_rebuilt_after_code_change": "code layer only" if same else "dependencies too",
        "measured_with_builder": False,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--notebook", default=str(ROOT / "examples" / "digits_ddp.ipynb"))
    args = parser.parse_args()
    os.environ.setdefault("DLW_USER", "alice")
    for var in ("DLW_NAMESPACE", "DLW_WORKSPACE_CONFIG", "KUBERNETES_SERVICE_HOST", "JUPYTERHUB_USER"):
        os.environ.pop(var, None)
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "train.py"
        script.write_text("print('hello')\n")
        result = {
            "benchmark": "k8s_submit",
            "notebook": bench_submit(Path(args.notebook), args.runs, args.workers),
            "script": bench_submit(script, args.runs, args.workers),
            "rebuild": bench_rebuild_inputs(script),
        }
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
