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

from tests.cluster.controlplane import ROOT, ControlPlane

WORKSPACE = Path(__file__).resolve().parent / "workspace.yaml"


def dlw(*args: str, env: dict[str, str] | None = None, timeout: float = 600,
        cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The ``dlw`` CLI of this checkout, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout, cwd=cwd or ROOT, check=False)


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
