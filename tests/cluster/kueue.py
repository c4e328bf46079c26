"""Kueue, built from its module (tests/cluster/kueue/) and run against the test control plane.

Installed as its release's kustomization installs it (namespace ``kueue-system``, names prefixed ``kueue-``):
the controller's ServiceAccount, ClusterRole and binding from the module zip, its webhooks, and the
conversion webhook on its CRDs (Kueue serves ``v1beta1`` and stores ``v1beta2``; without the conversion a
``v1beta1`` ClusterQueue's ``cohort`` would not become ``v1beta2``'s ``cohortName``). What differs, because
there is no kube-proxy here: the webhooks are registered by URL (https://127.0.0.1:<port>, a serving
certificate from the suite's PKI) instead of through the ``kueue-webhook-service`` Service, with Kueue's
internal certificate management off; that makes Kueue read its metrics certificate from a fixed folder,
which tests/cluster/kueue/overlay.sh turns into ``$KUEUE_METRICS_CERT_DIR`` at build time. Only the
webhooks of what this configuration enables are registered (Kueue's own kinds, batch/v1 Jobs,
PyTorchJobs): a registered webhook whose integration is off would refuse every such object.
"""

from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import ControlPlane, built, free_port
from tests.cluster.crds import SOURCES, module_dir, pinned
from tests.cluster.process import Process

NAMESPACE = "kueue-system"
SERVICE_ACCOUNT = "kueue-controller-manager"
FRAMEWORKS = ["batch/job", "kubeflow.org/pytorchjob"]
# Webhook paths of what FRAMEWORKS enables, plus Kueue's own kinds.
HOOK_PATHS = ("-kueue-x-k8s-io-", "-batch-v1-job", "-kubeflow-org-v1-pytorchjob")
# The CRDs the release gives a conversion webhook (config/components/crd/kustomization.yaml).
CONVERTED = ("localqueues", "clusterqueues", "cohorts", "workloads")


def _config_dir() -> Path:
    return module_dir(pinned("kueue", SOURCES["kueue"][0])) / "config" / "components"


def _rbac() -> list[dict[str, Any]]:
    """The controller's ServiceAccount and its roles from the release's rbac folder, named as its kustomization
    names them (prefix ``kueue-``, namespace ``system`` -> ``kueue-system``)."""
    out: list[dict[str, Any]] = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}]
    for f in ("service_account.yaml", "role.yaml", "role_binding.yaml", "manager_secrets_role.yaml",
              "manager_secrets_role_binding.yaml"):
        for obj in yaml.safe_load_all((_config_dir() / "rbac" / f).read_text()):
            meta = obj["metadata"]
            meta["name"] = "kueue-" + meta["name"]
            if "namespace" in meta:
                meta["namespace"] = NAMESPACE
            if "roleRef" in obj:
                obj["roleRef"]["name"] = "kueue-" + obj["roleRef"]["name"]
                obj["subjects"] = [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": NAMESPACE}]
            out.append(obj)
    return out


def _client_config(port: int, ca: bytes, path: str) -> dict[str, Any]:
    return {"url": f"https://127.0.0.1:{port}{path}", "caBundle": base64.b64encode(ca).decode()}


def webhooks(port: int, ca: bytes) -> list[dict[str, Any]]:
    """The release's webhook configurations, the enabled frameworks' and Kueue's own entries, by URL."""
    out = []
    for config in yaml.safe_load_all((_config_dir() / "webhook" / "manifests.yaml").read_text()):
        hooks = []
        for hook in config["webhooks"]:
            path = hook["clientConfig"]["service"]["path"]
            if any(p in path for p in HOOK_PATHS):
                hook = copy.deepcopy(hook)
                hook["clientConfig"] = _client_config(port, ca, path)
                hooks.append(hook)
        name = "kueue-" + config["metadata"]["name"]
        out.append({**config, "metadata": {"name": name}, "webhooks": hooks})
    return out


def _configuration(health: int, metrics: int, webhook: int, certs: Path) -> dict[str, Any]:
    return {
        "apiVersion": "config.kueue.x-k8s.io/v1beta2", "kind": "Configuration",
        "namespace": NAMESPACE,
        "health": {"healthProbeBindAddress": f"127.0.0.1:{health}"},
        "metrics": {"bindAddress": f"127.0.0.1:{metrics}"},
        "webhook": {"host": "127.0.0.1", "port": webhook, "certDir": str(certs)},
        "leaderElection": {"leaderElect": False},
        "internalCertManagement": {"enable": False},
        "manageJobsWithoutQueueName": False,
        "integrations": {"frameworks": FRAMEWORKS},
    }


class Kueue:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.bin = built("kueue") / "kueue"
        self.dir = cp.workdir / "kueue"
        self.proc: Process | None = None
        self.hooks: list[dict[str, Any]] = []

    def start(self, timeout: float = 120.0) -> Kueue:
        self.dir.mkdir(exist_ok=True)
        self.cp.apply(_rbac())
        pair = self.cp.pki.issue("kueue-webhook", f"kueue-webhook-service.{NAMESPACE}.svc", hosts=("127.0.0.1",))
        certs = self.dir / "certs"
        certs.mkdir(exist_ok=True)
        (certs / "tls.crt").write_bytes(pair.cert.read_bytes())
        (certs / "tls.key").write_bytes(pair.key.read_bytes())
        health, metrics, webhook = free_port(), free_port(), free_port()
        config = self.dir / "config.yaml"
        config.write_text(yaml.safe_dump(_configuration(health, metrics, webhook, certs)))
        kubeconfig = self.cp.sa_kubeconfig(NAMESPACE, SERVICE_ACCOUNT)
        # The visibility API server would need an APIService and its own certificates; DLW does not use it.
        args = [str(self.bin), f"--config={config}", "--feature-gates=VisibilityOnDemand=false",
                "--zap-log-level=info"]
        self.proc = Process("Kueue", args, self.dir / "kueue.log", env={
            "HOME": str(self.dir), "KUBECONFIG": str(kubeconfig), "KUEUE_METRICS_CERT_DIR": str(certs)})
        self.proc.wait_ready(f"http://127.0.0.1:{health}/readyz", timeout)
        ca = self.cp.pki.ca.cert.read_bytes()
        self.hooks = webhooks(webhook, ca)
        self.cp.apply(self.hooks)
        for plural in CONVERTED:
            patch = {"spec": {"conversion": {"strategy": "Webhook", "webhook": {
                "clientConfig": _client_config(webhook, ca, "/convert"), "conversionReviewVersions": ["v1"]}}}}
            self.cp.kubectl("patch", "crd", f"{plural}.kueue.x-k8s.io", "--type=merge", "-p",
                            yaml.safe_dump(patch))
        return self

    def log_tail(self, chars: int = 3000) -> str:
        return self.proc.log_tail(chars) if self.proc else ""

    def stop(self) -> None:
        for hook in self.hooks:
            self.cp.kubectl("delete", hook["kind"].lower(), hook["metadata"]["name"], "--ignore-not-found",
                            check=False)
        if self.proc:
            self.proc.stop()
