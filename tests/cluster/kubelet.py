"""A process kubelet: one Node of the real control plane whose pods run as local processes.

It does what the tests need of a kubelet and says plainly what it cannot do:
- registers its Node (capacity incl. ``nvidia.com/gpu``, labels, taints), renews its Lease, with the
  node's own credentials (``system:node:<name>``), so the Node authorizer and NodeRestriction apply;
- runs each pod bound to it: init containers in order, then the containers, as processes of the host's
  Python environment (the image is not pulled: there is no container runtime), with the container's command,
  args, working directory and environment (values, downward API, ConfigMap/Secret refs, ``$(VAR)``
  expansion) and its volumes as folders (emptyDir, ConfigMap, Secret, downward API, projected token,
  hostPath under this kubelet's root, never the machine's own paths; a PVC is one folder shared by the
  nodes, as network storage is). Paths of mounts are mapped in the environment, working directory and
  arguments, and the ServiceAccount folder for the kubernetes client's in-cluster config (SITECUSTOMIZE), so
  a pod that calls the API server (``KUBERNETES_SERVICE_HOST`` is set) does so with its own token;
- reports pod status through the API (phase, container states, exit codes, restarts, Ready), honours
  restartPolicy, graceful deletion (SIGTERM, then SIGKILL after the grace period);
- serves ``containerLogs`` over TLS so that ``kubectl logs``/``dlw logs`` read the output through the API
  server (follow, tailLines, timestamps, limitBytes, sinceTime).
Not shown: network (no CNI, no cluster DNS: every pod's address is 127.0.0.1, and a rendezvous address,
``MASTER_ADDR``/``PET_MASTER_ADDR``, points at 127.0.0.1; an ``nslookup`` stand-in on the pods' PATH answers
as cluster DNS would whether a Service name exists, which is what operators' init containers wait for),
images, cgroups and resource limits. GPUs are
capacity on the Node; a pod given GPUs gets ``NVIDIA_VISIBLE_DEVICES`` and an NVML stand-in file
(``DLW_NVML_STANDIN``) reporting them busy, which DLW's GPU sampler reads.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import http.server
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from tests.cluster.controlplane import KUBE_VERSION, ControlPlane, free_port

RENDEZVOUS = ("MASTER_ADDR", "PET_MASTER_ADDR")


# Cluster DNS stand-in for init containers that wait for a Service's name (training-operator's workers run
# ``nslookup <job>-master-0``): succeeds once the Service exists in the pod's namespace (names as
# <svc>, <svc>.<ns>, <svc>.<ns>.svc[.cluster.local]), read with the node's credentials.
NSLOOKUP = """#!{python}
import json, ssl, sys, urllib.error, urllib.request
cfg = json.loads({cfg!r})
parts = sys.argv[-1].split(".")
ns = parts[1] if len(parts) > 1 else cfg["namespace"]
ctx = ssl.create_default_context(cafile=cfg["ca"])
ctx.load_cert_chain(cfg["cert"], cfg["key"])
try:
    urllib.request.urlopen(f"{{cfg['server']}}/api/v1/namespaces/{{ns}}/services/{{parts[0]}}", context=ctx, timeout=5)
except urllib.error.HTTPError:
    print(f"** server can't find {{sys.argv[-1]}}: NXDOMAIN")
    sys.exit(1)
print(f"Name:\\t{{sys.argv[-1]}}\\nAddress: 127.0.0.1")
"""


# A container's volumes are folders here, and its paths are mapped where the kubelet sees them (environment,
# arguments, working directory); a path fixed inside a program is not. The one every in-cluster client reads
# is the ServiceAccount folder (token, ca.crt, namespace) the API server's ServiceAccount admission mounts:
# a pod that mounts it gets this sitecustomize, which points the kubernetes client's in-cluster config at
# the pod's own projected token when (and only if) the program imports it.
SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
SITECUSTOMIZE = """import importlib.machinery, sys
SA = {sa!r}
class _Loader(importlib.machinery.SourceFileLoader):
    def exec_module(self, module):
        super().exec_module(module)
        module.SERVICE_TOKEN_FILENAME, module.SERVICE_CERT_FILENAME = SA + "/token", SA + "/ca.crt"
class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "kubernetes.config.incluster_config":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.origin:
            spec.loader = _Loader(name, spec.origin)
        return spec
sys.meta_path.insert(0, _Finder)
"""


def claim_folder(cp: ControlPlane, namespace: str, claim: str) -> Path:
    """The folder a PersistentVolumeClaim's pods see, on every node (a ReadWriteMany home is one volume)."""
    return cp.workdir / "kubelet" / "claims" / namespace / claim


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _stamp() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Container:
    """One container's process and log."""

    def __init__(self, spec: dict[str, Any], log: Path) -> None:
        self.spec = spec
        self.name: str = spec["name"]
        self.log = log
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        self.started = ""
        self.finished = ""
        self.exit_code: int | None = None
        self.reason = ""
        self.pump: threading.Thread | None = None

    def start(self, argv: list[str], env: dict[str, str], cwd: Path) -> None:
        self.exit_code = None
        self.started = _now()
        try:
            self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        except OSError as err:  # as a runtime says "executable file not found": exit 127 (126: not runnable)
            self.proc = None
            self.exit_code = 127 if isinstance(err, FileNotFoundError) else 126
            self.reason, self.finished = "StartError", _now()
            with open(self.log, "a", encoding="utf-8") as f:
                f.write(f"{_stamp()} {err}\n")
            return
        self.pump = threading.Thread(target=self._copy, args=(self.proc,), daemon=True)
        self.pump.start()

    def _copy(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        with open(self.log, "ab") as f:
            for line in iter(proc.stdout.readline, b""):
                f.write(_stamp().encode() + b" " + (line if line.endswith(b"\n") else line + b"\n"))
                f.flush()

    def poll(self) -> int | None:
        if self.exit_code is not None:
            return self.exit_code
        if self.proc is None or self.proc.poll() is None:
            return None
        if self.pump:
            self.pump.join(5)
        rc = self.proc.returncode
        self.exit_code = 128 - rc if rc < 0 else rc  # killed by a signal: 128 + signal, as a runtime reports
        self.reason = "Completed" if self.exit_code == 0 else "Error"
        self.finished = _now()
        return self.exit_code

    def signal(self, sig: int) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def state(self) -> dict[str, Any]:
        if self.exit_code is not None:
            return {"terminated": {"exitCode": self.exit_code, "reason": self.reason, "startedAt": self.started or None,
                                   "finishedAt": self.finished}}
        if self.proc is not None:
            return {"running": {"startedAt": self.started}}
        return {"waiting": {"reason": "PodInitializing"}}


class PodRun:
    """One pod on this node: its folders, containers and status."""

    def __init__(self, kubelet: ProcessKubelet, pod: Any) -> None:
        self.k = kubelet
        self.pod = pod
        self.ns, self.name, self.uid = pod.metadata.namespace, pod.metadata.name, pod.metadata.uid
        self.dir = kubelet.root / "pods" / self.uid
        self.dir.mkdir(parents=True, exist_ok=True)
        self.bin = self.dir / "bin"
        self.bin.mkdir(exist_ok=True)
        lookup = self.bin / "nslookup"
        cfg = json.dumps({**kubelet.creds, "namespace": self.ns})
        lookup.write_text(NSLOOKUP.format(python=sys.executable, cfg=cfg))
        lookup.chmod(0o755)
        self.raw: dict[str, Any] = client.ApiClient().sanitize_for_serialization(pod)
        spec = self.raw["spec"]
        self.init = [Container(c, self.dir / f"{c['name']}.log") for c in spec.get("initContainers") or []]
        self.main = [Container(c, self.dir / f"{c['name']}.log") for c in spec["containers"]]
        self.deleting = threading.Event()
        self.grace = 30
        self.phase = "Pending"
        self.message = ""
        self.gpus: list[int] = []
        self.thread = threading.Thread(target=self._run, name=f"pod-{self.name}", daemon=True)

    # --- volumes and environment ---------------------------------------------------------------------------
    def _volumes(self) -> dict[str, Path]:
        out: dict[str, Path] = {}
        core = self.k.core
        for vol in self.raw["spec"].get("volumes") or []:
            name = vol["name"]
            path = self.dir / "volumes" / name
            if "hostPath" in vol:  # the node's folder, here under the kubelet's root (never the machine's)
                path = self.k.root / "host" / vol["hostPath"]["path"].strip("/")
            elif "persistentVolumeClaim" in vol:  # one volume wherever its pods run, as network storage is
                path = claim_folder(self.k.cp, self.ns, vol["persistentVolumeClaim"]["claimName"])
            path.mkdir(parents=True, exist_ok=True)
            if "configMap" in vol:
                cm = core.read_namespaced_config_map(vol["configMap"]["name"], self.ns)
                self._write_keys(path, cm.data or {}, cm.binary_data or {}, vol["configMap"].get("items"))
            elif "secret" in vol:
                sec = core.read_namespaced_secret(vol["secret"]["secretName"], self.ns)
                self._write_keys(path, {}, sec.data or {}, vol["secret"].get("items"))
            elif "downwardAPI" in vol:
                for item in vol["downwardAPI"].get("items") or []:
                    if "fieldRef" in item:
                        (path / item["path"]).write_text(self._field(item["fieldRef"]["fieldPath"]))
            elif "projected" in vol:
                for src in vol["projected"].get("sources") or []:
                    if "serviceAccountToken" in src:
                        (path / src["serviceAccountToken"]["path"]).write_text(self._token(src["serviceAccountToken"]))
                    elif "configMap" in src:
                        cm = core.read_namespaced_config_map(src["configMap"]["name"], self.ns)
                        self._write_keys(path, cm.data or {}, cm.binary_data or {}, src["configMap"].get("items"))
                    elif "downwardAPI" in src:
                        for item in src["downwardAPI"].get("items") or []:
                            if "fieldRef" in item:
                                (path / item["path"]).write_text(self._field(item["fieldRef"]["fieldPath"]))
            out[name] = path
        return out

    @staticmethod
    def _write_keys(path: Path, data: dict[str, str], binary: dict[str, str],
                    items: list[dict[str, Any]] | None) -> None:
        wanted = items or [{"key": k, "path": k} for k in [*data, *binary]]
        for item in wanted:
            target = path / item["path"]
            target.parent.mkdir(parents=True, exist_ok=True)
            if item["key"] in data:
                target.write_text(data[item["key"]])
            elif item["key"] in binary:
                target.write_bytes(base64.b64decode(binary[item["key"]]))

    def _token(self, src: dict[str, Any]) -> str:
        sa = self.raw["spec"].get("serviceAccountName") or "default"
        body = client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(
            audiences=[src["audience"]] if src.get("audience") else [],
            expiration_seconds=src.get("expirationSeconds") or 3600,
            bound_object_ref=client.V1BoundObjectReference(kind="Pod", name=self.name, uid=self.uid, api_version="v1")))
        return str(self.k.core.create_namespaced_service_account_token(sa, self.ns, body).status.token)

    def _field(self, path: str) -> str:
        meta = self.raw["metadata"]
        m = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
        if m:
            return str((meta.get(m.group(1)) or {}).get(m.group(2), ""))
        return str({
            "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
            "spec.nodeName": self.k.name, "spec.serviceAccountName": self.raw["spec"].get("serviceAccountName", ""),
            "status.podIP": "127.0.0.1", "status.hostIP": "127.0.0.1", "status.podIPs": "127.0.0.1",
            "status.hostIPs": "127.0.0.1",
        }.get(path, ""))

    def _env(self, c: dict[str, Any], mounts: list[tuple[str, Path]]) -> dict[str, str]:
        core = self.k.core
        env: dict[str, str] = {}
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "configMapRef" in src:
                env.update({prefix + k: v for k, v in (core.read_namespaced_config_map(
                    src["configMapRef"]["name"], self.ns).data or {}).items()})
            elif "secretRef" in src:
                env.update({prefix + k: base64.b64decode(v).decode() for k, v in (core.read_namespaced_secret(
                    src["secretRef"]["name"], self.ns).data or {}).items()})
        for e in c.get("env") or []:
            if "valueFrom" not in e:
                env[e["name"]] = _expand(e.get("value", ""), env)
                continue
            vf = e["valueFrom"]
            try:
                if "fieldRef" in vf:
                    env[e["name"]] = self._field(vf["fieldRef"]["fieldPath"])
                elif "configMapKeyRef" in vf:
                    ref = vf["configMapKeyRef"]
                    env[e["name"]] = (core.read_namespaced_config_map(ref["name"], self.ns).data or {})[ref["key"]]
                elif "secretKeyRef" in vf:
                    ref = vf["secretKeyRef"]
                    env[e["name"]] = base64.b64decode(
                        (core.read_namespaced_secret(ref["name"], self.ns).data or {})[ref["key"]]).decode()
                elif "resourceFieldRef" in vf:
                    env[e["name"]] = "1"
            except (ApiException, KeyError):
                optional = next((r.get("optional") for r in vf.values() if isinstance(r, dict)), False)
                if not optional:
                    raise
        for k in RENDEZVOUS:
            if k in env:
                env[k] = "127.0.0.1"
        if self.gpus:
            env["NVIDIA_VISIBLE_DEVICES"] = ",".join(map(str, self.gpus))
            standin = self.dir / "nvml.json"
            standin.write_text(json.dumps([[87.0, 30000] for _ in self.gpus]))
            env["DLW_NVML_STANDIN"] = str(standin)
        env = {k: _map_paths(v, mounts) for k, v in env.items()}
        pythonpath = self.k.pythonpath
        sa = dict(mounts).get(SERVICE_ACCOUNT_DIR)
        if sa is not None:  # the in-cluster config's fixed path, pointed at the pod's token (see SITECUSTOMIZE)
            site = self.dir / "site"
            site.mkdir(exist_ok=True)
            (site / "sitecustomize.py").write_text(SITECUSTOMIZE.format(sa=str(sa)))
            pythonpath = os.pathsep.join(p for p in (str(site), pythonpath) if p)
        base = {
            "PATH": f"{self.bin}:{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.dir / "home"), "HOSTNAME": self.name, "PYTHONPATH": pythonpath,
            "KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": self.k.cp.server.rsplit(":", 1)[1],
            "OMP_NUM_THREADS": "1",
        }
        (self.dir / "home").mkdir(exist_ok=True)
        return {**base, **env}

    def _argv(self, c: dict[str, Any], env: dict[str, str], mounts: list[tuple[str, Path]]) -> tuple[list[str], Path]:
        argv = [_map_paths(_expand(a, env), mounts) for a in [*(c.get("command") or []), *(c.get("args") or [])]]
        if not argv:  # the image's entrypoint is not known here (no images): a pause-like stand-in runs
            argv = ["sleep", "infinity"]
        cwd = Path(_map_paths(c.get("workingDir") or str(self.dir / "home"), mounts))
        cwd.mkdir(parents=True, exist_ok=True)
        return argv, cwd

    def _mounts(self, c: dict[str, Any], volumes: dict[str, Path]) -> list[tuple[str, Path]]:
        out = []
        for m in c.get("volumeMounts") or []:
            path = volumes[m["name"]]
            if m.get("subPath"):
                path = path / m["subPath"]
                path.mkdir(parents=True, exist_ok=True)
            out.append((m["mountPath"].rstrip("/") or "/", path))
        return sorted(out, key=lambda m: -len(m[0]))

    # --- lifecycle --------------------------------------------------------------------------------------------
    def _start(self, c: Container, volumes: dict[str, Path]) -> None:
        mounts = self._mounts(c.spec, volumes)
        env = self._env(c.spec, mounts)
        argv, cwd = self._argv(c.spec, env, mounts)
        c.start(argv, env, cwd)

    def _with_retries(self, make: Any, seconds: float = 120.0) -> Any:
        """As the kubelet retries a mount whose ConfigMap or Secret is not there yet (FailedMount)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                return make()
            except ApiException as err:
                if err.status not in (403, 404) or time.monotonic() > deadline or self.deleting.is_set():
                    raise
                time.sleep(1)

    def _run(self) -> None:
        try:
            self._allocate_gpus()
            volumes = self._with_retries(self._volumes)
            for c in self.init:
                self._report()
                self._with_retries(lambda c=c: self._start(c, volumes))
                while c.poll() is None and not self.deleting.is_set():
                    time.sleep(0.2)
                if self.deleting.is_set():
                    c.signal(signal.SIGKILL)
                    return self._finish()
                if c.exit_code:
                    self.phase, self.message = "Failed", f"init container {c.name} exited {c.exit_code}"
                    return self._finish()
            for c in self.main:
                self._with_retries(lambda c=c: self._start(c, volumes))
            self.phase = "Running"
            self._report()
            self._supervise(volumes)
        except Exception as err:  # noqa: BLE001 - a pod the kubelet cannot start fails with the reason, as on a node
            self.phase, self.message = "Failed", f"{type(err).__name__}: {err}"
            for c in self.main:
                c.signal(signal.SIGKILL)
        self._finish()

    def _supervise(self, volumes: dict[str, Path]) -> None:
        policy = self.raw["spec"].get("restartPolicy", "Always")
        while True:
            if self.deleting.is_set():
                self._terminate()
                return
            changed = False
            for c in self.main:
                before = c.exit_code
                rc = c.poll()
                if rc is not None and before is None:
                    changed = True
                    if policy == "Always" or (policy == "OnFailure" and rc != 0):
                        c.restarts += 1
                        time.sleep(min(10, c.restarts))  # back-off, short
                        self._start(c, volumes)
            if all(c.exit_code is not None for c in self.main):
                self.phase = "Succeeded" if all(c.exit_code == 0 for c in self.main) else "Failed"
                return
            if changed:
                self._report()
            time.sleep(0.2)

    def _terminate(self) -> None:
        for c in self.main:
            c.signal(signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline and any(c.poll() is None for c in self.main):
            time.sleep(0.2)
        for c in self.main:
            c.signal(signal.SIGKILL)
            if c.proc:
                c.proc.wait()
            c.poll()
        self.phase = "Failed" if any(c.exit_code for c in self.main) else "Succeeded"

    def _finish(self) -> None:
        self.k.release(self)
        self._report()
        if self.deleting.is_set():  # the kubelet's final delete: the object goes once the processes are gone
            try:
                self.k.core.delete_namespaced_pod(
                    self.name, self.ns, body=client.V1DeleteOptions(
                        grace_period_seconds=0, preconditions=client.V1Preconditions(uid=self.uid)))
            except ApiException as err:
                if err.status != 404:
                    (self.dir / "kubelet-errors.log").write_text(f"final delete: {err.status} {err.body}\n")

    def _allocate_gpus(self) -> None:
        want = 0
        for c in self.raw["spec"]["containers"]:
            limits = (c.get("resources") or {}).get("limits") or {}
            want += int(limits.get("nvidia.com/gpu", 0))
        self.gpus = self.k.allocate(self, want)

    def _report(self) -> None:
        def statuses(cs: list[Container]) -> list[dict[str, Any]]:
            return [{"name": c.name, "image": c.spec.get("image", ""), "imageID": "", "restartCount": c.restarts,
                     "ready": c.exit_code is None and c.proc is not None, "started": c.proc is not None,
                     "state": c.state()} for c in cs]

        ready = self.phase == "Running" and all(c.exit_code is None for c in self.main)
        now = _now()
        status: dict[str, Any] = {
            "phase": self.phase, "hostIP": "127.0.0.1", "hostIPs": [{"ip": "127.0.0.1"}],
            "podIP": "127.0.0.1", "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.raw["status"].get("startTime") or now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Initialized", "status": str(self.phase != "Pending"), "lastTransitionTime": now},
                {"type": "ContainersReady", "status": str(ready), "lastTransitionTime": now},
                {"type": "Ready", "status": str(ready), "lastTransitionTime": now},
            ],
            "containerStatuses": statuses(self.main),
            "initContainerStatuses": statuses(self.init),
        }
        if self.message:
            status["message"] = self.message
        self.raw["status"]["startTime"] = status["startTime"]
        deadline = time.monotonic() + 180  # a status is never dropped while the API server restarts
        while time.monotonic() < deadline and not self.k.stopping.is_set():
            try:
                self.k.core.patch_namespaced_pod_status(self.name, self.ns, {"status": status})
                return
            except ApiException as err:
                if err.status == 404:
                    return
                time.sleep(0.5)
            except Exception:  # noqa: BLE001 - the API server may be restarting: try again
                time.sleep(1)


def _expand(value: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: a known variable is replaced, $$ escapes, anything else stays."""
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)",
                  lambda m: "$" if m.group(0) == "$$" else env.get(m.group(1), m.group(0)), value)


def _map_paths(value: str, mounts: list[tuple[str, Path]]) -> str:
    """``value`` with each container path under a mount replaced by the mount's folder here."""
    for target, path in mounts:
        if target == "/":
            continue
        value = re.sub(rf"(?<![\w./-]){re.escape(target)}(?=/|$|[^\w.-])", str(path), value)
    return value


class _LogHandler(http.server.BaseHTTPRequestHandler):
    kubelet: ProcessKubelet
    # The log is sent chunked, which HTTP/1.0 (http.server's default) does not have: the API server would pass
    # the chunks' framing on as part of the log, and a log read twice would not have the same bytes.
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, ssl.SSLError):  # the API server hung up: no traceback
            super().handle()

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        url = urllib.parse.urlparse(self.path)
        q = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
        parts = url.path.strip("/").split("/")
        if len(parts) != 4 or parts[0] != "containerLogs":
            self.send_error(404)
            return
        _, ns, pod, container = parts
        run = self.kubelet.find(ns, pod)
        c = next((c for c in (run.main + run.init) if c.name == container), None) if run else None
        if run is None or c is None:
            self.send_error(404, f"container {container} of pod {ns}/{pod} not found on this node")
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        stamps = q.get("timestamps") == "true"
        limit = int(q["limitBytes"]) if q.get("limitBytes") else None
        since = q.get("sinceTime")
        sent = 0

        def send(line: bytes) -> bool:
            nonlocal sent
            stamp, _, text = line.partition(b" ")
            if since and stamp.decode() < since:
                return True
            out = line if stamps else text
            if limit is not None:
                out = out[: max(0, limit - sent)]
            if out:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(out), out))
                self.wfile.flush()
                sent += len(out)
            return limit is None or sent < limit

        try:
            lines = c.log.read_bytes().splitlines(keepends=True) if c.log.exists() else []
            if q.get("tailLines"):
                lines = lines[-int(q["tailLines"]):] if int(q["tailLines"]) else []
            complete = b"".join(lines)
            for line in lines:
                if not send(line):
                    break
            if q.get("follow") == "true":
                offset = c.log.stat().st_size if c.log.exists() else 0
                if not q.get("tailLines"):
                    offset = len(complete)
                pending = b""
                while True:
                    data = b""
                    if c.log.exists():
                        with open(c.log, "rb") as f:
                            f.seek(offset)
                            data = f.read()
                    offset += len(data)
                    pending += data
                    *whole, pending = pending.split(b"\n")
                    for line in whole:
                        if not send(line + b"\n"):
                            raise BrokenPipeError
                    if not data and c.exit_code is not None:
                        break
                    if not data:
                        time.sleep(0.1)
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True


class ProcessKubelet:
    def __init__(self, cp: ControlPlane, name: str = "proc-0", *, gpus: int = 0, cpu: str = "16",
                 memory: str = "64Gi", labels: dict[str, str] | None = None,
                 taints: list[dict[str, str]] | None = None, pythonpath: str = "") -> None:
        self.cp = cp
        self.name = name
        self.gpus = gpus
        self.root = cp.workdir / "kubelet" / name
        self.root.mkdir(parents=True, exist_ok=True)
        self.pythonpath = pythonpath
        self.runs: dict[str, PodRun] = {}
        self.gpu_owner: dict[int, str] = {}
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        creds = cp.client_cert(f"kubelet-{name}", f"system:node:{name}", groups=("system:nodes",))
        cfg = client.Configuration()
        cfg.host = cp.server
        cfg.ssl_ca_cert = str(cp.pki.ca.cert)
        cfg.cert_file, cfg.key_file = str(creds.cert), str(creds.key)
        self.creds = {"server": cp.server, "ca": str(cp.pki.ca.cert), "cert": str(creds.cert), "key": str(creds.key)}
        cfg.retries = False  # the watch loop retries; urllib3 retrying too only fills logs during restarts
        self.api = client.ApiClient(cfg)
        self.core = client.CoreV1Api(self.api)
        self.coord = client.CoordinationV1Api(self.api)
        self.port = free_port()
        serving = cp.pki.issue(f"kubelet-serving-{name}", f"system:node:{name}", hosts=("127.0.0.1",))
        handler = type("Handler", (_LogHandler,), {"kubelet": self})
        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(serving.cert), str(serving.key))
        ctx.load_verify_locations(str(cp.pki.ca.cert))
        ctx.verify_mode = ssl.CERT_REQUIRED  # only the API server (its kubelet client certificate) reads logs
        self.http.socket = ctx.wrap_socket(self.http.socket, server_side=True)
        self.labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                       **(labels or {})}
        self.taints = taints or []
        self.cpu, self.memory = cpu, memory

    # --- node --------------------------------------------------------------------------------------------------
    def _node_status(self) -> dict[str, Any]:
        cap = {"cpu": self.cpu, "memory": self.memory, "pods": "110", "ephemeral-storage": "100Gi"}
        if self.gpus:
            cap["nvidia.com/gpu"] = str(self.gpus)
        now = _now()
        return {
            "capacity": cap, "allocatable": cap,
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                            "message": "process kubelet is posting ready status", "lastHeartbeatTime": now,
                            "lastTransitionTime": now}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "nodeInfo": {"kubeletVersion": KUBE_VERSION, "kubeProxyVersion": "", "operatingSystem": "linux",
                         "architecture": "amd64", "containerRuntimeVersion": "process://dlw", "osImage": "host",
                         "kernelVersion": os.uname().release, "machineID": "", "systemUUID": "", "bootID": ""},
        }

    def start(self) -> ProcessKubelet:
        node = client.V1Node(metadata=client.V1ObjectMeta(name=self.name, labels=self.labels),
                             spec=client.V1NodeSpec(taints=[client.V1Taint(**t) for t in self.taints] or None))
        try:
            self.core.create_node(node)
        except ApiException as err:
            if err.status != 409:
                raise
        self.core.patch_node_status(self.name, {"status": self._node_status()})
        for target in (self._serve, self._heartbeat, self._watch):
            threading.Thread(target=target, daemon=True, name=f"kubelet-{self.name}-{target.__name__}").start()
        return self

    def _serve(self) -> None:
        self.http.serve_forever(poll_interval=0.2)

    def _heartbeat(self) -> None:
        body = client.V1Lease(metadata=client.V1ObjectMeta(name=self.name, namespace="kube-node-lease"),
                              spec=client.V1LeaseSpec(holder_identity=self.name, lease_duration_seconds=40))
        while not self.stopping.is_set():
            try:  # the API server may be restarting: a missed renewal is retried 10 s later (lease: 40 s)
                try:
                    body = self.coord.read_namespaced_lease(self.name, "kube-node-lease")
                    body.spec.renew_time = datetime.datetime.now(datetime.UTC)
                    self.coord.replace_namespaced_lease(self.name, "kube-node-lease", body)
                except ApiException as err:
                    if err.status != 404:
                        raise
                    body.spec.renew_time = datetime.datetime.now(datetime.UTC)
                    self.coord.create_namespaced_lease("kube-node-lease", body)
                self.core.patch_node_status(self.name, {"status": self._node_status()})
            except Exception:  # noqa: BLE001
                pass
            self.stopping.wait(10)

    def _watch(self) -> None:
        while not self.stopping.is_set():
            try:
                w = watch.Watch()
                for ev in w.stream(self.core.list_pod_for_all_namespaces, field_selector=f"spec.nodeName={self.name}",
                                   timeout_seconds=60):
                    if self.stopping.is_set():
                        return
                    self._seen(ev["type"], ev["object"])
            except Exception:  # noqa: BLE001 - restart the watch, as the kubelet's informer does
                time.sleep(1)

    def _seen(self, kind: str, pod: Any) -> None:
        uid = pod.metadata.uid
        with self.lock:
            run = self.runs.get(uid)
            if run is None:
                if kind == "DELETED" or pod.status.phase in ("Succeeded", "Failed"):
                    return
                run = self.runs[uid] = PodRun(self, pod)
                run.thread.start()
        if pod.metadata.deletion_timestamp is not None and not run.deleting.is_set():
            run.grace = pod.metadata.deletion_grace_period_seconds or 0
            run.deleting.set()

    def find(self, ns: str, name: str) -> PodRun | None:
        with self.lock:
            found = [r for r in self.runs.values() if r.ns == ns and r.name == name]
        return found[-1] if found else None

    def allocate(self, run: PodRun, count: int) -> list[int]:
        with self.lock:
            free = [i for i in range(self.gpus) if i not in self.gpu_owner]
            if count > len(free):
                raise RuntimeError(f"UnexpectedAdmissionError: {count} nvidia.com/gpu wanted, {len(free)} free")
            got = free[:count]
            for i in got:
                self.gpu_owner[i] = run.uid
            return got

    def release(self, run: PodRun) -> None:
        with self.lock:
            for i in [i for i, uid in self.gpu_owner.items() if uid == run.uid]:
                del self.gpu_owner[i]

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            runs = list(self.runs.values())
        for run in runs:
            for c in run.init + run.main:
                c.signal(signal.SIGKILL)
        self.http.shutdown()
        shutil.rmtree(self.root / "pods", ignore_errors=True)


def admin_api(cp: ControlPlane) -> client.ApiClient:
    return config.new_client_from_config(str(cp.kubeconfig))
