"""DLW on the real control plane (tests/cluster: kube-apiserver v1.36, controller-manager, scheduler, kwok).

1. Submit to all pods Running, for 1, 10 and 100 jobs: ``dlw train`` (as alice's ServiceAccount, one CLI
   run per job: spec, conversion, snapshot, render, API calls) against the very same manifests (``dlw
   render`` beforehand, not timed) applied by a bare client (one ``kubectl apply`` per job) in the same run.
   Pods start on kwok nodes (capacity and scheduling are real; nothing runs in them). The CLI runs as in
   the notebook image (tests/cluster/support.py: without the test-only kubernetes-validate).
2. API requests per followed job: the API server's own ``apiserver_request_total`` over a quiet window,
   with 0 and with N ``dlw logs -f`` followers of running jobs; the difference per follower per second.

    PYTHONPATH=. python benchmarks/bench_cluster.py [--counts 1,10,100] [--followers 5] [--seconds 30]

Prints one JSON line per figure. Hub spawn to pod scheduled is not measured here (no hub in this run).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]

from _common import report  # noqa: E402

from tests.cluster.controlplane import ControlPlane, kubectl_path  # noqa: E402
from tests.cluster.kubelet import ProcessKubelet  # noqa: E402
from tests.cluster.kwok import Kwok  # noqa: E402
from tests.cluster.support import AS_IN_IMAGE, alice_env, dlw, install_dlw, write_notebook  # noqa: E402


def _running(cp: ControlPlane, ns: str, prefix: str) -> int:
    """Pods of ``prefix*`` jobs that have started: Running, or already Succeeded (kwok's release stages
    complete a Job's pods at once)."""
    pods = cp.get("pods", "-n", ns)["items"]
    return sum(1 for p in pods if p["metadata"].get("labels", {}).get("dlw.dev/job", "").startswith(prefix)
               and p["status"].get("phase") in ("Running", "Succeeded"))


def _wait_running(cp: ControlPlane, ns: str, prefix: str, count: int, timeout: float = 900) -> None:
    cp.wait_for(lambda: _running(cp, ns, prefix) >= count, f"{count} pods of {prefix}* Running", timeout, 0.5)


def submit_dlw(cp: ControlPlane, env: dict[str, str], nb: Path, prefix: str, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        out = dlw("train", str(nb), "--name", f"{prefix}{i}", "--engine", "job", env=env)
        assert out.returncode == 0, out.stderr
    _wait_running(cp, env["DLW_NAMESPACE"], prefix, n)
    return time.perf_counter() - start


def submit_bare(cp: ControlPlane, env: dict[str, str], nb: Path, prefix: str, n: int) -> float:
    manifests = []
    for i in range(n):  # the same objects dlw would create, rendered beforehand (not timed)
        out = dlw("render", str(nb), "--name", f"{prefix}{i}", "--engine", "job", env=env)
        assert out.returncode == 0, out.stderr
        manifests.append(out.stdout)
    start = time.perf_counter()
    for text in manifests:
        subprocess.run([kubectl_path(), f"--kubeconfig={env['KUBECONFIG']}", "create", "-f", "-"], input=text,
                       text=True, check=True, capture_output=True)
    _wait_running(cp, env["DLW_NAMESPACE"], prefix, n)
    return time.perf_counter() - start


def requests_total(cp: ControlPlane) -> float:
    text = cp.kubectl("get", "--raw", "/metrics").stdout
    return sum(float(m.group(1)) for m in re.finditer(r"^apiserver_request_total\{[^}]*\} (\S+)$", text, re.M))


def follow_rate(cp: ControlPlane, env: dict[str, str], work: Path, followers: int, seconds: float) -> dict[str, float]:
    # Followed jobs must keep running (kwok completes a Job's pods at once): they run on a process kubelet,
    # with the kwok nodes cordoned.
    for node in cp.get("nodes")["items"]:
        cp.kubectl("cordon", node["metadata"]["name"])
    ProcessKubelet(cp, "proc-0", pythonpath=str(ROOT)).start()
    nb = write_notebook(work / "ticker.ipynb", ["import time\nfor i in range(600):\n    print(i, flush=True)\n"
                                                 "    time.sleep(1)"])
    names = [f"follow-{i}" for i in range(followers)]
    for name in names:
        assert dlw("train", str(nb), "--name", name, "--engine", "job", env=env).returncode == 0
    _wait_running(cp, env["DLW_NAMESPACE"], "follow-", followers)
    before = requests_total(cp)
    time.sleep(seconds)
    idle = (requests_total(cp) - before) / seconds
    procs = [subprocess.Popen([sys.executable, "-c", AS_IN_IMAGE, "logs", "-f", name],
                              env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name in names]
    time.sleep(10)  # started: their first list and watch requests are not the steady state
    before = requests_total(cp)
    time.sleep(seconds)
    busy = (requests_total(cp) - before) / seconds
    for p in procs:
        p.kill()
    return {"idle_requests_per_s": idle, "with_followers_requests_per_s": busy,
            "requests_per_s_per_follower": (busy - idle) / followers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--counts", default="1,10,100")
    ap.add_argument("--followers", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=30)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        cp = ControlPlane(work).start()
        kwok = Kwok(cp).start()
        try:
            for i in range(10):
                kwok.add_node(f"kwok-{i}", cpu="64", memory="512Gi")
            install_dlw(cp, work / "chart")
            env = alice_env(cp)
            nb = write_notebook(work / "bench.ipynb", ["print('hi')"])
            for n in (int(c) for c in args.counts.split(",")):
                t_dlw = submit_dlw(cp, env, nb, f"d{n}-", n)
                t_bare = submit_bare(cp, env, nb, f"b{n}-", n)
                report("cluster_submit_to_running", jobs=n, dlw_s=t_dlw, bare_kubectl_s=t_bare,
                       ratio=t_dlw / t_bare)
            report("cluster_follow_requests", followers=args.followers, seconds=args.seconds,
                   **follow_rate(cp, env, work, args.followers, args.seconds))
        finally:
            kwok.stop()
            cp.stop()


if __name__ == "__main__":
    main()
