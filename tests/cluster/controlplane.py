"""A real Kubernetes control plane for the tests: etcd, kube-apiserver, kube-controller-manager and
kube-scheduler (built from their Go modules by ``tests/cluster/build.sh``), all on 127.0.0.1.

RBAC, the Node authorizer and the default admission plugins (Pod Security, ValidatingAdmissionPolicy,
ResourceQuota, Priority, NodeRestriction, ...) are on, as on a kubeadm cluster. A PKI is made at each start.
There is no kubelet, container runtime or network: nodes are kwok's (``kwok.py``) or the process kubelet's
(``kubelet.py``), which runs pods as local processes.

    cp = ControlPlane(tmp).start()
    cp.kubectl("get", "nodes")                   # admin (system:masters)
    cp.kubectl("auth", "whoami", kubeconfig=cp.sa_kubeconfig("dlw-alice", "dlw-notebook"))
    cp.restart_apiserver()
    cp.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.pki import PKI, KeyPair

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KUBE_VERSION = "v1.36.3"
SERVICE_CIDR = "10.96.0.0/16"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def built(component: str) -> Path:
    """The folder holding ``component``'s binaries, building them first if this machine has not yet."""
    out = subprocess.run(["bash", str(HERE / "build.sh"), component], stdout=subprocess.PIPE, text=True,
                         check=False)
    if out.returncode:
        raise RuntimeError(f"tests/cluster/build.sh {component} failed (exit {out.returncode}); see its output above")
    return Path(out.stdout.split()[-1])


def kubectl_path() -> str:
    """kubectl from the PyPI wheel (scripts/k8s-tools.sh), else one on PATH."""
    mine = Path(sys.prefix) / "k8s-bin" / "kubectl"
    return str(mine) if mine.exists() else (shutil.which("kubectl") or "kubectl")


def helm_path() -> str:
    mine = Path(sys.prefix) / "k8s-bin" / "helm"
    return str(mine) if mine.exists() else (shutil.which("helm") or "helm")


def write_kubeconfig(path: Path, server: str, ca: Path, user: dict[str, str], namespace: str = "default") -> Path:
    cfg = {
        "apiVersion": "v1", "kind": "Config", "current-context": "dlw",
        "clusters": [{"name": "dlw", "cluster": {"server": server, "certificate-authority": str(ca)}}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "dlw", "context": {"cluster": "dlw", "user": "u", "namespace": namespace}}],
    }
    path.write_text(json.dumps(cfg))
    path.chmod(0o600)
    return path


class Gate:
    """The load balancer in front of the API server, as on any real cluster: it forwards connections only
    while the API server is ready (/readyz), so a restarting server refuses connections instead of
    answering 403 while its RBAC caches fill (what a client of a lone, unbalanced server would see)."""

    def __init__(self, backend_port: int) -> None:
        self.backend = backend_port
        self.open = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(256)
        self.port = int(self.sock.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True, name="apiserver-gate").start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if not self.open.is_set():
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.backend), timeout=5)
                upstream.settimeout(None)
            except OSError:
                conn.close()
                continue
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.sock.close()


class ControlPlane:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.bin = built("kube") / "dlw-kube"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.ports = {k: free_port() for k in ("etcd", "etcd-peer", "apiserver", "cm", "sched")}
        self.gate = Gate(self.ports["apiserver"])
        self.server = f"https://127.0.0.1:{self.gate.port}"  # clients go through the gate
        self.pki = PKI(workdir / "pki")
        self.serving = self.pki.issue(
            "apiserver", "kube-apiserver",
            hosts=("127.0.0.1", "localhost", "10.96.0.1", "kubernetes", "kubernetes.default",
                   "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"))
        self.sa_key = self.pki.signing_key("sa")
        self.kubelet_client = self.pki.issue("apiserver-kubelet-client", "kube-apiserver-kubelet-client",
                                             groups=("system:masters",))
        self.kubeconfig = self.client_kubeconfig("admin", "dlw-admin", ("system:masters",))
        self._cm_kc = self.client_kubeconfig("controller-manager", "system:kube-controller-manager")
        self._sched_kc = self.client_kubeconfig("scheduler", "system:kube-scheduler")

    # --- credentials ------------------------------------------------------------------------------------
    def client_kubeconfig(self, name: str, user: str, groups: tuple[str, ...] = ()) -> Path:
        pair = self.pki.issue(name, user, groups=groups)
        return write_kubeconfig(self.workdir / f"{name}.kubeconfig", self.server, self.pki.ca.cert,
                                {"client-certificate": str(pair.cert), "client-key": str(pair.key)})

    def client_cert(self, name: str, user: str, groups: tuple[str, ...] = ()) -> KeyPair:
        return self.pki.issue(name, user, groups=groups)

    def sa_token(self, namespace: str, name: str, seconds: int = 3600) -> str:
        return self.kubectl("create", "token", name, "-n", namespace, f"--duration={seconds}s").stdout.strip()

    def sa_kubeconfig(self, namespace: str, name: str) -> Path:
        """A kubeconfig holding a fresh token of ServiceAccount ``namespace/name`` (as its pod would)."""
        return write_kubeconfig(self.workdir / f"sa-{namespace}-{name}.kubeconfig", self.server,
                                self.pki.ca.cert, {"token": self.sa_token(namespace, name)}, namespace)

    # --- processes ----------------------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the child holds it
        self.procs[name] = subprocess.Popen([str(self.bin), name, *args], stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.workdir, start_new_session=True)

    def _log_tail(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def _etcd(self) -> None:
        p = self.ports
        self._spawn("etcd", [
            "--name=dlw", f"--data-dir={self.workdir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{p['etcd']}", f"--advertise-client-urls=http://127.0.0.1:{p['etcd']}",
            f"--listen-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{p['etcd-peer']}",
            f"--initial-cluster=dlw=http://127.0.0.1:{p['etcd-peer']}",
            "--unsafe-no-fsync", "--log-level=warn", "--listen-metrics-urls=",
        ])

    def _apiserver(self) -> None:
        pki = self.pki
        self._spawn("kube-apiserver", [
            f"--etcd-servers=http://127.0.0.1:{self.ports['etcd']}",
            "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", f"--secure-port={self.ports['apiserver']}",
            f"--tls-cert-file={self.serving.cert}", f"--tls-private-key-file={self.serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--service-account-key-file={self.sa_key.cert}", f"--service-account-signing-key-file={self.sa_key.key}",
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            "--api-audiences=https://kubernetes.default.svc.cluster.local",
            "--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            f"--kubelet-client-certificate={self.kubelet_client.cert}",
            f"--kubelet-client-key={self.kubelet_client.key}",
            "--kubelet-preferred-address-types=InternalIP", "--allow-privileged=true",
            "--etcd-compaction-interval=1m",  # (default 5m) resumed watches meet 410 Gone within the suite
            "--profiling=false", "--v=1",
        ])

    def _controller_manager(self) -> None:
        kc = str(self._cm_kc)
        self._spawn("kube-controller-manager", [
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['cm']}", "--leader-elect=false",
            f"--service-account-private-key-file={self.sa_key.key}", f"--root-ca-file={self.pki.ca.cert}",
            "--use-service-account-credentials=true",
            f"--cluster-signing-cert-file={self.pki.ca.cert}", f"--cluster-signing-key-file={self.pki.ca.key}",
            # No cloud, no node IPAM: pods get the kubelet's address. Nodes unheard of for 5 minutes are
            # NotReady as usual; pods on them are evicted after the default 300 s.
            "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller",
            "--profiling=false", "--v=1",
        ])

    def _scheduler(self) -> None:
        kc = str(self._sched_kc)
        self._spawn("kube-scheduler", [
            f"--kubeconfig={kc}", f"--authentication-kubeconfig={kc}", f"--authorization-kubeconfig={kc}",
            "--bind-address=127.0.0.1", f"--secure-port={self.ports['sched']}", "--leader-elect=false",
            "--profiling=false", "--v=1",
        ])

    def _ready(self, timeout: float = 120.0) -> None:
        ctx = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        admin = self.pki.folder / "admin"
        ctx.load_cert_chain(str(admin) + ".crt", str(admin) + ".key")
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited {proc.returncode}:\n{self._log_tail(name)}")
            try:
                direct = f"https://127.0.0.1:{self.ports['apiserver']}/readyz"
                with urllib.request.urlopen(direct, context=ctx, timeout=5) as r:
                    if r.status == 200:
                        self.gate.open.set()
                        return
            except OSError as err:
                last = str(err)
            time.sleep(0.3)
        raise RuntimeError(f"kube-apiserver not ready in {timeout:.0f} s ({last}):\n{self._log_tail('kube-apiserver')}")

    def start(self) -> ControlPlane:
        self._etcd()
        self._apiserver()
        self._ready()
        self._controller_manager()
        self._scheduler()
        # The ServiceAccount controller runs: the default namespace's `default` SA appears.
        self.wait_for(lambda: self.kubectl("get", "sa", "default", "-n", "default", check=False).returncode == 0,
                      "the ServiceAccount controller", 90)
        return self

    def restart_apiserver(self, down_for: float = 0.0) -> None:
        self.gate.open.clear()
        self._stop("kube-apiserver")
        time.sleep(down_for)
        self._apiserver()
        self._ready()

    def _stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def stop(self) -> None:
        self.gate.open.clear()
        self.gate.close()
        for name in ("kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd", *list(self.procs)):
            self._stop(name)

    # --- clients ------------------------------------------------------------------------------------------
    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                kubeconfig: Path | None = None) -> subprocess.CompletedProcess[str]:
        out = subprocess.run([kubectl_path(), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args],
                             input=input, capture_output=True, text=True, timeout=120, check=False)
        if check and out.returncode:
            raise AssertionError(f"kubectl {' '.join(args)} exited {out.returncode}: {out.stderr.strip()}")
        return out

    def apply(self, objects: list[dict[str, Any]] | str, kubeconfig: Path | None = None,
              server_side: bool = True) -> subprocess.CompletedProcess[str]:
        text = objects if isinstance(objects, str) else "\n---\n".join(json.dumps(o) for o in objects)
        extra = ["--server-side", "--force-conflicts"] if server_side else []
        return self.kubectl("apply", *extra, "-f", "-", input=text, kubeconfig=kubeconfig)

    def get(self, *args: str, kubeconfig: Path | None = None) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json", kubeconfig=kubeconfig).stdout)

    def wait_for(self, cond: Any, what: str, timeout: float = 60.0, every: float = 0.5) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = cond()
            if got:
                return got
            time.sleep(every)
        raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")

    def install_crds(self, component: str | None = None) -> None:
        from tests.cluster.crds import crd_paths

        for path in crd_paths(component):
            self.kubectl("apply", "--server-side", "-f", str(path))
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
