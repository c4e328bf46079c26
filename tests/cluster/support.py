"""What the cluster tests share besides fixtures: the admin YAML, the CLI as a user runs it, a user's
namespace as the hub makes it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.cluster.controlplane import ROOT, ControlPlane, helm_path

WORKSPACE = Path(__file__).resolve().parent / "workspace.yaml"


# The CLI as it runs in the notebook image, where kubernetes-validate (a test-only dependency here) is not
# installed: the kubernetes client imports it whenever it is (kubernetes.dynamic), ~2.8 s of CPU per command.
AS_IN_IMAGE = ("import sys; sys.modules['kubernetes_validate'] = None; from dlw_magic.cli import main; "
               "sys.exit(main(sys.argv[1:]))")


def dlw(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The ``dlw`` CLI of this checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-c", AS_IN_IMAGE, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd or ROOT, check=False)


# A ReadWriteMany home for the admin YAML (``preemptible`` needs one); conftest.alice_home provides alice's.
HOME_VOLUME = {"name": "home", "type": "home", "mountPath": "/home/jovyan", "size": "1Gi",
               "accessModes": ["ReadWriteMany"], "storageClass": ""}


def workspace_variant(folder: Path, **changes: Any) -> Path:
    """The suite's admin YAML with top-level ``changes`` (e.g. ``queueSystem``), written into ``folder``."""
    ws = yaml.safe_load(WORKSPACE.read_text())
    ws.update(changes)
    path = folder / "workspace.yaml"
    path.write_text(yaml.safe_dump(ws))
    return path


def install_dlw(cp: ControlPlane, chart: Path) -> Path:
    """DLW's cluster objects installed as docs/deploy.md says: the admin renders the dlw-cluster chart
    from the admin YAML and installs it with helm (a real install, through the real API server)."""
    out = dlw("admin", "render", "--all", "--out", str(chart), str(WORKSPACE))
    assert out.returncode == 0, out.stderr
    res = subprocess.run([helm_path(), "install", "dlw-cluster", str(chart), "--namespace", "dlw",
                          "--create-namespace", "--wait", "--timeout", "120s", f"--kubeconfig={cp.kubeconfig}"],
                         capture_output=True, text=True, timeout=180, check=False)
    assert res.returncode == 0, res.stderr
    return chart


def alice_env(cp: ControlPlane) -> dict[str, str]:
    """The environment of alice's notebook pod: her ServiceAccount's own token (not admin), her namespace,
    the admin YAML."""
    from dlw_magic.workspace import load_workspace

    ns = user_namespace(cp, "alice")
    kubeconfig = cp.sa_kubeconfig(ns, load_workspace(WORKSPACE).hub.service_account)
    return {
        "DLW_BACKEND": "kubernetes", "DLW_KUBECONFIG": str(kubeconfig), "KUBECONFIG": str(kubeconfig),
        "DLW_NAMESPACE": ns, "DLW_WORKSPACE_CONFIG": str(WORKSPACE), "DLW_USER": "alice",
        "JUPYTERHUB_USER": "alice", "DLW_IMAGE": "dlw/notebook:0.1.0",
    }


def hub_kubeconfig(cp: ControlPlane) -> Path:
    """The hub's ServiceAccount (as z2jh makes it: ``hub`` in the hub's namespace), with its own token."""
    from dlw_magic.workspace import load_workspace

    ns = load_workspace(WORKSPACE).namespaces.hub
    cp.kubectl("create", "namespace", ns, check=False)
    cp.kubectl("create", "serviceaccount", "hub", "-n", ns, check=False)
    return cp.sa_kubeconfig(ns, "hub")


def user_namespace(cp: ControlPlane, user: str) -> str:
    """Alice's namespace and everything the hub puts there at her first spawn (the hub's own code)."""
    from dlw_magic.hub.deploy import namespace_objects
    from dlw_magic.workspace import load_workspace

    text = WORKSPACE.read_text()
    ws = load_workspace(WORKSPACE)
    namespace = f"{ws.namespaces.prefix}{user}"
    objs: list[dict[str, Any]] = namespace_objects(ws, namespace, text, user=user)
    cp.apply(objs, kubeconfig=hub_kubeconfig(cp))
    cp.wait_for(lambda: cp.kubectl("get", "sa", ws.hub.service_account, "-n", namespace, check=False).returncode == 0,
                f"ServiceAccount {ws.hub.service_account} in {namespace}")
    return namespace


def yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def write_notebook(path: Path, cells: list[str]) -> Path:
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {"kernelspec": {"name": "python3", "language": "python",
                                                                          "display_name": "Python 3"}},
          "cells": [{"cell_type": "code", "execution_count": None, "outputs": [], "source": c, "metadata": {}}
                    for c in cells]}
    path.write_text(json.dumps(nb))
    return path
