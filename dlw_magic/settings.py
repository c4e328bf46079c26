"""Every ``DLW_*`` environment variable in one place, with its meaning and default.

Modules ask ``settings.current()`` instead of reading ``os.environ`` themselves, so the variables are
documented once and a test (or a notebook that sets one) changes them in one place. ``current()`` reads
the environment at each call: it is a handful of dictionary lookups, and a value set after import counts.
Not here: the variables a runner or controller hands to a job's ranks (``DLW_OUTPUT_DIR``,
``DLW_CHECKPOINT_DIR``, ``DLW_ATTEMPT``, ...; docs/job-spec.md), the job's contract, read where the job
uses them (``launch``, ``metrics``, ``checkpoint``, ``executed``), which stay light to import.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    """The environment as DLW understands it; ``None`` means "not set"."""

    backend: str | None = None  # DLW_BACKEND: local | kubernetes
    kubeconfig: str | None = None  # DLW_KUBECONFIG: a kubeconfig file (implies the kubernetes backend)
    namespace: str | None = None  # DLW_NAMESPACE: the Kubernetes namespace jobs go to
    in_cluster: bool = False  # KUBERNETES_SERVICE_HOST is set: this process runs in a pod
    pod_name: str | None = None  # DLW_POD_NAME: the notebook pod whose image jobs run on
    home_mount: str | None = None  # DLW_HOME_MOUNT: where this pod mounts the home claim
    workspace_config: str | None = None  # DLW_WORKSPACE_CONFIG: the admin YAML
    home: str | None = None  # DLW_HOME: the local backend's data folder
    secrets_dir: str | None = None  # DLW_SECRETS_DIR: local stand-ins for Kubernetes Secrets
    image: str | None = None  # DLW_IMAGE, else JUPYTER_IMAGE_SPEC / JUPYTER_IMAGE: the notebook's image
    builder: str | None = None  # DLW_BUILDER: kaniko | docker | podman
    builder_image: str | None = None  # DLW_BUILDER_IMAGE: the Kaniko executor image
    build_timeout: int = 1800  # DLW_BUILD_TIMEOUT: seconds a cluster build may take
    jupyterhub_user: str | None = None  # JUPYTERHUB_USER: set by the hub in every notebook server
    dlw_user: str | None = None  # DLW_USER: the user name outside a hub
    groups: tuple[str, ...] = ()  # DLW_GROUPS: the user's hub groups, comma-separated (set by the spawners)
    fake_no_nvml: bool = False  # DLW_FAKE_NO_NVML: behave as if there were no NVIDIA driver (tests)
    hub_password: str | None = None  # DLW_HUB_PASSWORD: the local hub's password (else a generated file)
    notebook_gpus: str | None = None  # DLW_GPUS: GPUs the hub gave this notebook server ("0": none)
    fake_gpus: int | None = None  # DLW_FAKE_GPUS: the local backend schedules on N pretend GPUs 0..N-1 (tests)
    gpu_sample_seconds: float = 5.0  # DLW_GPU_SAMPLE_SECONDS: how often the local runner samples ranks' GPUs (0: never)
    nvml_standin: str | None = None  # DLW_NVML_STANDIN: a JSON file [[util, MiB], ...] read in place of NVML (tests)
    log_max_bytes: int = 1 << 30  # DLW_LOG_MAX_BYTES: each local rank's log is cut off past this size
    db_busy_seconds: float = 60.0  # DLW_DB_BUSY_SECONDS: how long the local job database may stay locked
    scheduler_autostart: bool = True  # DLW_SCHEDULER_AUTOSTART=0: the lab and `dlw schedule create` start no scheduler
    # DLW_K8S_SILENCE_SECONDS: the longest silence on a connection to the Kubernetes API server before DLW takes it
    # for dead (half-open: a NAT, a load balancer or a node dropped it without closing it) and opens a new one
    k8s_silence_seconds: float = 120.0

    @property
    def user(self) -> str:
        """Whose jobs these are: the hub's user, else DLW_USER, else the login name."""
        return self.jupyterhub_user or self.dlw_user or getpass.getuser()

    @property
    def default_backend(self) -> str:
        """DLW_BACKEND wins; inside a cluster pod (or with a kubeconfig named by DLW_KUBECONFIG) Kubernetes."""
        if self.backend:
            return self.backend
        return "kubernetes" if self.in_cluster or self.kubeconfig else "local"


def _positive(raw: str | None, default: float) -> float:
    """A positive finite number, else the default (a typo in a tunable must not stop a job)."""
    try:
        value = float(raw) if raw else default
    except ValueError:
        return default
    return value if 0 < value < 1e18 else default


def from_env(environ: Mapping[str, str]) -> Settings:
    def get(key: str) -> str | None:
        return environ.get(key) or None

    timeout = get("DLW_BUILD_TIMEOUT")
    fake_gpus = (get("DLW_FAKE_GPUS") or "").strip()
    try:
        sample = float(get("DLW_GPU_SAMPLE_SECONDS") or 5.0)
    except ValueError:
        sample = 5.0
    return Settings(
        backend=get("DLW_BACKEND"),
        kubeconfig=get("DLW_KUBECONFIG"),
        namespace=get("DLW_NAMESPACE"),
        in_cluster=bool(get("KUBERNETES_SERVICE_HOST")),
        pod_name=get("DLW_POD_NAME"),
        home_mount=get("DLW_HOME_MOUNT"),
        workspace_config=get("DLW_WORKSPACE_CONFIG"),
        home=get("DLW_HOME"),
        secrets_dir=get("DLW_SECRETS_DIR"),
        image=get("DLW_IMAGE") or get("JUPYTER_IMAGE_SPEC") or get("JUPYTER_IMAGE"),
        builder=get("DLW_BUILDER"),
        builder_image=get("DLW_BUILDER_IMAGE"),
        build_timeout=int(timeout) if timeout and timeout.isdigit() else 1800,
        jupyterhub_user=get("JUPYTERHUB_USER"),
        dlw_user=get("DLW_USER"),
        groups=tuple(g for g in (get("DLW_GROUPS") or "").split(",") if g),
        fake_no_nvml=bool(get("DLW_FAKE_NO_NVML")),
        hub_password=get("DLW_HUB_PASSWORD"),
        notebook_gpus=get("DLW_GPUS"),
        fake_gpus=int(fake_gpus) if fake_gpus.isdigit() and len(fake_gpus) < 4 else None,
        gpu_sample_seconds=sample if 0 <= sample < 1e6 else 5.0,  # NaN and negatives: the default
        nvml_standin=get("DLW_NVML_STANDIN"),
        log_max_bytes=int(_positive(get("DLW_LOG_MAX_BYTES"), 1 << 30)),
        db_busy_seconds=_positive(get("DLW_DB_BUSY_SECONDS"), 60.0),
        k8s_silence_seconds=max(_positive(get("DLW_K8S_SILENCE_SECONDS"), 120.0), 2.0),
        scheduler_autostart=(get("DLW_SCHEDULER_AUTOSTART") or "1").lower() not in ("0", "false", "no", "off"),
    )


def current() -> Settings:
    """The settings of this process's environment, now."""
    return from_env(os.environ)
