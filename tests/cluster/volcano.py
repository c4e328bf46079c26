"""Volcano's vc-controller-manager and vc-scheduler, built from ``volcano.sh/volcano`` v1.10.0 (the newest
release the Go module proxy serves) by tests/cluster/build.sh and run against the test control plane.

Installed as the release installs them (``installer/volcano-development.yaml`` of the module zip, which the
release's Helm chart renders): the ``volcano-controllers`` and ``volcano-scheduler`` ServiceAccounts,
ClusterRoles and bindings, run with their own tokens; the scheduler with the release's configuration
(``volcano-scheduler-configmap``: actions ``enqueue, allocate, backfill``, the gang plugin among others) and
scheduler name ``volcano``, which DLW renders. Leader election is off, the health endpoints listen on
127.0.0.1 and the scheduler's metrics server is off (it would bind every interface).

vc-webhook-manager is not run: its mutations only default what DLW always sets (queue, schedulerName,
maxRetry, minAvailable; a task's minAvailable and maxRetry, which the job controller reads as "all
replicas" and 3 when unset), and its validations refuse what DLW never renders. A Job that it would
refuse (a closed queue, a duplicate task name) is therefore accepted here; docs/kubernetes.md says so.
"""

from __future__ import annotations

from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane, built, free_port
from tests.cluster.crds import SOURCES, module_dir, pinned
from tests.cluster.process import Process

NAMESPACE = "volcano-system"
CONTROLLERS, SCHEDULER = "volcano-controllers", "volcano-scheduler"
SCHEDULER_CONFIGMAP = "volcano-scheduler-configmap"


def _release() -> list[dict[str, Any]]:
    path = module_dir(pinned("volcano", SOURCES["volcano"][0])) / "installer" / "volcano-development.yaml"
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _rbac(objs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The release's namespace and both components' ServiceAccounts, ClusterRoles and bindings."""
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    for obj in objs:
        kind, name = obj["kind"], obj["metadata"]["name"]
        if kind == "ServiceAccount" and name in (CONTROLLERS, SCHEDULER) or \
                kind in ("ClusterRole", "ClusterRoleBinding") and name.startswith((CONTROLLERS, SCHEDULER)):
            out.append(obj)
    return out


def scheduler_conf(objs: list[dict[str, Any]]) -> str:
    """The release's vc-scheduler configuration (its ConfigMap's ``volcano-scheduler.conf``)."""
    cm = next(o for o in objs if o["kind"] == "ConfigMap" and o["metadata"]["name"] == SCHEDULER_CONFIGMAP)
    return str(cm["data"]["volcano-scheduler.conf"])


class Volcano:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        folder = built("volcano")
        self.bins = {CONTROLLERS: folder / "controller-manager", SCHEDULER: folder / "scheduler"}
        self.dir = cp.workdir / "volcano"
        self.procs: dict[str, Process] = {}

    def start(self, timeout: float = 120.0) -> Volcano:
        self.dir.mkdir(exist_ok=True)
        release = _release()
        self.cp.apply(_rbac(release))
        # In a folder of its own, as the release mounts its ConfigMap: vc-scheduler reloads its configuration on
        # every write to that folder (its logs beside it would reload it on every line).
        conf = self.dir / "conf" / "volcano-scheduler.conf"
        conf.parent.mkdir(exist_ok=True)
        conf.write_text(scheduler_conf(release))
        ports = {CONTROLLERS: free_port(), SCHEDULER: free_port()}
        common = ["--logtostderr", "--leader-elect=false", "--enable-healthz=true", "-v=3"]
        self._spawn(CONTROLLERS, [*common, f"--healthz-address=127.0.0.1:{ports[CONTROLLERS]}"])
        self._spawn(SCHEDULER, [*common, f"--healthz-address=127.0.0.1:{ports[SCHEDULER]}",
                                f"--scheduler-conf={conf}", "--scheduler-name=volcano", "--enable-metrics=false",
                                f"--cache-dump-dir={self.dir}"])
        for name, port in ports.items():
            self.procs[name].wait_ready(f"http://127.0.0.1:{port}/healthz", timeout)
        # vc-scheduler makes its default Queue at start (DLW's chart must not own it).
        self.cp.wait_for(lambda: self.cp.kubectl("get", "queues.scheduling.volcano.sh", "default",
                                                 check=False).returncode == 0, "Volcano's default Queue", timeout)
        return self

    def _spawn(self, name: str, args: list[str]) -> None:
        kubeconfig = self.cp.sa_kubeconfig(NAMESPACE, name)
        self.procs[name] = Process(name, [str(self.bins[name]), f"--kubeconfig={kubeconfig}", *args],
                                   self.dir / f"{name}.log", cwd=self.dir,
                                   # KUBECONFIG: its vGPU device code makes a client of its own from it
                                   env={"HOME": str(self.dir), "KUBECONFIG": str(kubeconfig)})

    def log_tail(self, name: str, chars: int = 3000) -> str:
        return self.procs[name].log_tail(chars) if name in self.procs else ""

    def logs(self) -> str:
        return "\n".join(f"--- {n} ---\n{self.log_tail(n)}" for n in (CONTROLLERS, SCHEDULER))

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()
