"""Kubeflow's training-operator (PyTorchJob), built from its module and run against the test control plane.

Installed as its release's manifests install it: its ServiceAccount, ClusterRole and binding from the module
zip (tests/cluster/crds.py finds it), its own CRD, and its validating webhook. Two differences, both because
there is no kube-proxy here: the webhook is registered by URL (https://127.0.0.1:<port>, a serving
certificate from the suite's PKI) instead of through its Service, and the process runs beside the API server
(tests/cluster/training-operator/main.go wires upstream's controller and webhook packages; see there).

The workers' init container is DLW's (``dlw_magic.engines.pytorchjob.INIT_CONTAINER_TEMPLATE``), the template
docs/deploy.md tells admins to give the operator: upstream's default has no securityContext and is refused by
DLW's pod policy in user namespaces.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from dlw_magic.engines.pytorchjob import INIT_CONTAINER_TEMPLATE
from tests.cluster.controlplane import ControlPlane, built, free_port
from tests.cluster.crds import SOURCES, module_dir, pinned
from tests.cluster.process import Process

NAMESPACE = "kubeflow"
NAME = "training-operator"
WEBHOOK = "validator.training-operator.kubeflow.org"


def _manifests() -> Path:
    return module_dir(pinned("training-operator", SOURCES["training-operator"][0])) / "manifests" / "base"


def _rbac() -> list[dict[str, Any]]:
    """The release's ServiceAccount, ClusterRole and ClusterRoleBinding, in the release's namespace."""
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    for f in ("service-account.yaml", "role.yaml", "cluster-role-binding.yaml"):
        for obj in yaml.safe_load_all((_manifests() / "rbac" / f).read_text()):
            if obj["kind"] == "ServiceAccount":
                obj["metadata"]["namespace"] = NAMESPACE
            for subject in obj.get("subjects") or []:
                subject["namespace"] = NAMESPACE
            out.append(obj)
    return out


def _webhook(port: int, ca: bytes) -> dict[str, Any]:
    """The release's ValidatingWebhookConfiguration, PyTorchJob's entry, pointed at 127.0.0.1 by URL."""
    vwc = yaml.safe_load((_manifests() / "webhook" / "manifests.yaml").read_text())
    hook = copy.deepcopy(next(w for w in vwc["webhooks"] if w["name"].startswith("validator.pytorchjob.")))
    path = hook["clientConfig"]["service"]["path"]
    hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca).decode()}
    return {**vwc, "metadata": {"name": WEBHOOK}, "webhooks": [hook]}


class TrainingOperator:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.bin = built("training-operator") / "dlw-training-operator"
        self.dir = cp.workdir / NAME
        self.proc: Process | None = None

    def start(self, timeout: float = 120.0) -> TrainingOperator:
        self.dir.mkdir(exist_ok=True)
        self.cp.apply(_rbac())
        pair = self.cp.pki.issue("training-operator-webhook", f"{NAME}.{NAMESPACE}.svc", hosts=("127.0.0.1",))
        certs = self.dir / "certs"
        certs.mkdir(exist_ok=True)
        (certs / "tls.crt").write_bytes(pair.cert.read_bytes())
        (certs / "tls.key").write_bytes(pair.key.read_bytes())
        template = self.dir / "initContainer.yaml"
        template.write_text(INIT_CONTAINER_TEMPLATE)
        webhook_port, probe_port = free_port(), free_port()
        args = [str(self.bin), f"--kubeconfig={self.cp.sa_kubeconfig(NAMESPACE, NAME)}",
                f"--health-probe-bind-address=127.0.0.1:{probe_port}", "--webhook-host=127.0.0.1",
                f"--webhook-server-port={webhook_port}", f"--webhook-cert-dir={certs}",
                f"--pytorch-init-container-template-file={template}", "--zap-log-level=info"]
        self.proc = Process(NAME, args, self.dir / "operator.log", env={"HOME": str(self.dir)})
        self.proc.wait_ready(f"http://127.0.0.1:{probe_port}/readyz", timeout)
        self.cp.apply([_webhook(webhook_port, self.cp.pki.ca.cert.read_bytes())])
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return self.proc.log_tail(chars) if self.proc else ""

    def stop(self) -> None:
        self.cp.kubectl("delete", "validatingwebhookconfiguration", WEBHOOK, "--ignore-not-found", check=False)
        if self.proc:
            self.proc.stop()
