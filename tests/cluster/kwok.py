"""kwok (sigs.k8s.io/kwok, built from its module) for nodes at scale: Nodes it manages look Ready and their
pods go Running (and Succeeded, when a pod is marked so) without running anything. Capacity and
scheduling are real (kube-scheduler binds pods to them); use the process kubelet where a job must train.

Its stages (what it does to nodes and pods) are the ones its release ships, read from its module zip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

from tests.cluster.controlplane import ControlPlane, built, free_port
from tests.cluster.crds import module_dir, pinned

MANAGED = "kwok.x-k8s.io/node"
STAGES = ["node/fast/node-initialize.yaml", "node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
          "pod/fast/pod-ready.yaml", "pod/fast/pod-complete.yaml", "pod/fast/pod-delete.yaml"]


class Kwok:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.bin = built("kwok") / "kwok"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Kwok:
        root = module_dir(pinned("kwok", "sigs.k8s.io/kwok")) / "kustomize" / "stage"
        args = [str(self.bin), f"--kubeconfig={self.cp.kubeconfig}", "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={MANAGED}=fake", "--cidr=10.244.0.0/16",
                "--node-ip=127.0.0.1", f"--node-port={free_port()}", f"--server-address=127.0.0.1:{free_port()}",
                "--node-lease-duration-seconds=40", *[f"--config={root / s}" for s in STAGES]]
        log = open(self.cp.workdir / "kwok.log", "ab")  # noqa: SIM115 - the child holds it
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                     env={**os.environ, "HOME": str(self.cp.workdir)})
        return self

    def add_node(self, name: str, *, gpus: int = 0, cpu: str = "32", memory: str = "256Gi",
                 labels: dict[str, str] | None = None, taints: list[dict[str, str]] | None = None) -> None:
        cap = {"cpu": cpu, "memory": memory, "pods": "110"}
        if gpus:
            cap["nvidia.com/gpu"] = str(gpus)
        node: dict[str, Any] = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": {MANAGED: "fake"},
                         "labels": {"kubernetes.io/hostname": name, "type": "kwok", **(labels or {})}},
            "spec": {"taints": taints or []},
        }
        self.cp.kubectl("apply", "-f", "-", input=json.dumps(node))
        self.cp.kubectl("patch", "node", name, "--subresource=status", "--type=merge",
                        "-p", json.dumps({"status": {"capacity": cap, "allocatable": cap}}))

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(15)


def log_tail(cp: ControlPlane) -> str:
    path = Path(cp.workdir / "kwok.log")
    return path.read_text(errors="replace")[-2000:] if path.exists() else ""
