"""Kubernetes backend (``DLW_BACKEND=kubernetes``, or automatic inside a cluster pod / with DLW_KUBECONFIG)."""

from __future__ import annotations

from .backend import KubernetesBackend

__all__ = ["KubernetesBackend"]
