"""Kubeflow Trainer v2 and JobSet, built from their modules and run against the test control plane.

Both controller managers are upstream's own mains (``cmd/trainer-controller-manager`` and JobSet's root
``main.go``), built in one wrapper module (``tests/cluster/trainer``: one ``k8s.io`` tree, one build) at the
versions its go.mod pins, and installed as their releases' manifests install them: ServiceAccount,
ClusterRole and binding from the module zips (with the namespace and name prefix the releases' kustomize
overlays give them), the CRDs (``tests/cluster/crds.py``) and the webhook configurations with the release's
patches applied. Each runs from its release's configuration file with what this control plane needs
changed, through options upstream offers: no leader election, no metrics server, the health probes and the
webhook server on 127.0.0.1 with a serving certificate from the suite's PKI and the internal certificate
management off (it issues certificates for a Service name, which the API server cannot reach here without
kube-proxy), and the webhooks registered by URL. Trainer's configuration has no webhook certificate folder:
it uses controller-runtime's default, ``$TMPDIR/k8s-webhook-server/serving-certs``, so the process gets
its own TMPDIR.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane, built, free_port
from tests.cluster.crds import SOURCES, module_dir, pinned
from tests.cluster.process import Process

BUILD = "trainer"  # the wrapper module building both


@dataclass(frozen=True)
class Release:
    """Where one controller's release manifests are in its module zip, and how its kustomize overlay
    names them."""

    component: str  # crds.SOURCES key
    binary: str
    namespace: str
    prefix: str  # kustomize namePrefix
    rbac: tuple[str, ...]
    webhook: str  # the webhook configurations' manifest
    patches: dict[str, str]  # kind -> the JSON patch its kustomize overlay applies


JOBSET = Release("jobset", "jobset", "jobset-system", "jobset-",
                 tuple(f"config/components/rbac/{f}" for f in ("service_account.yaml", "role.yaml",
                                                               "role_binding.yaml")),
                 "config/components/webhook/manifests.yaml",
                 {"MutatingWebhookConfiguration": "config/components/webhook/patches/mutating-patch.yaml",
                  "ValidatingWebhookConfiguration": "config/components/webhook/patches/validating-patch.yaml"})
TRAINER = Release("trainer", "trainer-controller-manager", "kubeflow-system", "",
                  tuple(f"manifests/base/rbac/{f}" for f in ("service_account.yaml", "role.yaml",
                                                             "role_binding.yaml")),
                  "manifests/base/webhook/manifests.yaml",
                  {"MutatingWebhookConfiguration": "manifests/base/webhook/patch_mutating.yaml",
                   "ValidatingWebhookConfiguration": "manifests/base/webhook/patch_validating.yaml"})


def _root(release: Release) -> Path:
    return module_dir(pinned(release.component, SOURCES[release.component][0]))


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def json_patch(obj: dict[str, Any], ops: list[dict[str, Any]]) -> dict[str, Any]:
    """``obj`` with the JSON patch operations ``add`` and ``replace`` (what the releases' kustomize patches use)."""
    out = copy.deepcopy(obj)
    for op in ops:
        if op["op"] not in ("add", "replace"):
            raise ValueError(f"JSON patch op {op['op']} not supported here")
        *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].lstrip("/").split("/")]
        target: Any = out
        for p in parents:
            target = target[int(p)] if isinstance(target, list) else target[p]
        if isinstance(target, list):
            target[int(last)] = copy.deepcopy(op["value"])
        else:
            target[last] = copy.deepcopy(op["value"])
    return out


def rbac(release: Release) -> list[dict[str, Any]]:
    """The release's Namespace, ServiceAccount, ClusterRole and ClusterRoleBinding, named as it names them."""
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": release.namespace}}]
    for f in release.rbac:
        for obj in _docs(_root(release) / f):
            obj["metadata"]["name"] = release.prefix + obj["metadata"]["name"]
            if obj["kind"] == "ServiceAccount":
                obj["metadata"]["namespace"] = release.namespace
            if "roleRef" in obj:
                obj["roleRef"]["name"] = release.prefix + obj["roleRef"]["name"]
            for subject in obj.get("subjects") or []:
                subject["name"] = release.prefix + subject["name"]
                subject["namespace"] = release.namespace
            out.append(obj)
    return out


def service_account(release: Release) -> str:
    return next(o["metadata"]["name"] for o in rbac(release) if o["kind"] == "ServiceAccount")


def webhooks(release: Release, port: int, ca: bytes) -> list[dict[str, Any]]:
    """The release's webhook configurations (its patches applied), each webhook by URL at 127.0.0.1:port."""
    out = []
    for obj in _docs(_root(release) / release.webhook):
        if obj["kind"] in release.patches:
            obj = json_patch(obj, yaml.safe_load((_root(release) / release.patches[obj["kind"]]).read_text()))
        obj["metadata"]["name"] = release.prefix + obj["metadata"]["name"]
        for hook in obj["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca).decode()}
        out.append(obj)
    return out


def _config(release: Release, webhook_port: int, probe_port: int, certs: Path) -> dict[str, Any]:
    common = {"webhook": {"port": webhook_port, "host": "127.0.0.1"},
              "health": {"healthProbeBindAddress": f"127.0.0.1:{probe_port}"},
              "metrics": {"bindAddress": "0"},  # off: nothing scrapes it here
              "leaderElection": {"leaderElect": False}}
    if release is JOBSET:
        return {"apiVersion": "config.jobset.x-k8s.io/v1alpha1", "kind": "Configuration", **common,
                "webhook": {**common["webhook"], "certDir": str(certs)}, "internalCertManagement": {"enable": False}}
    return {"apiVersion": "config.trainer.kubeflow.org/v1alpha1", "kind": "Configuration", **common,
            "certManagement": {"enable": False}}


class Controller:
    """One controller manager process (JobSet's or Trainer's) with its webhooks."""

    def __init__(self, cp: ControlPlane, release: Release) -> None:
        self.cp = cp
        self.release = release
        self.bin = built(BUILD) / release.binary
        self.dir = cp.workdir / release.binary
        self.proc: Process | None = None
        self.names: list[tuple[str, str]] = []

    def start(self, timeout: float = 180.0) -> Controller:
        r = self.release
        self.dir.mkdir(exist_ok=True)
        self.cp.apply(rbac(r))
        pair = self.cp.pki.issue(f"{r.binary}-webhook", f"{r.binary}.{r.namespace}.svc", hosts=("127.0.0.1",))
        tmp = self.dir / "tmp"
        certs = tmp / "k8s-webhook-server" / "serving-certs"  # controller-runtime's default under $TMPDIR
        certs.mkdir(parents=True, exist_ok=True)
        (certs / "tls.crt").write_bytes(pair.cert.read_bytes())
        (certs / "tls.key").write_bytes(pair.key.read_bytes())
        webhook_port, probe_port = free_port(), free_port()
        config = self.dir / "config.yaml"
        config.write_text(json.dumps(_config(r, webhook_port, probe_port, certs)))
        kubeconfig = self.cp.sa_kubeconfig(r.namespace, service_account(r))
        args = [str(self.bin), f"--config={config}", f"--kubeconfig={kubeconfig}", "--zap-log-level=info"]
        if r is JOBSET:
            args.append("--metrics-bind-address=0")  # its flag's default wins over the file's otherwise
        self.proc = Process(r.binary, args, self.dir / "manager.log",
                            env={"HOME": str(self.dir), "TMPDIR": str(tmp)})
        self.proc.wait_ready(f"http://127.0.0.1:{probe_port}/readyz", timeout)
        hooks = webhooks(r, webhook_port, self.cp.pki.ca.cert.read_bytes())
        self.cp.apply(hooks)
        self.names = [(h["kind"].lower(), h["metadata"]["name"]) for h in hooks]
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return self.proc.log_tail(chars) if self.proc else ""

    def stop(self) -> None:
        for kind, name in self.names:
            self.cp.kubectl("delete", kind, name, "--ignore-not-found", check=False)
        if self.proc:
            self.proc.stop()
