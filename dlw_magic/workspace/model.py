"""The admin YAML: ``apiVersion: dlw/v1``, ``kind: Workspace``.

One description of a cluster read by the hub (notebook profiles), the notebooks (image, namespace) and
the job renderer (volumes, queues, priorities). camelCase in YAML, snake_case in Python, unknown keys are
errors (same conventions as the job spec in ``dlw_magic.spec.model``).

Sections: ``namespaces`` (per-user or shared), ``images`` (build registry), ``profiles`` (notebook
choices), ``volumes`` (the catalogue: home / blob / hostPath / dataset, discriminated by ``type``),
``hostPathAllowlist``, ``queues`` + ``queueSystem``, ``priorityClasses``, ``quotas``, ``hub``, ``auth``
(sign-in, ``auth.py``), ``budgets`` (GPU-hours, ``budgets.py``).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..errors import DLWError
from ..spec.model import EnvMap, GpuResourceName, check_quantity, parse_duration
from .auth import Auth
from .base import WsModel, abs_path, label
from .budgets import Budgets
from .catalogue import (  # noqa: F401 - re-exported: the catalogue is part of the workspace model
    BlobAuth,
    BlobCache,
    BlobVolume,
    DatasetVolume,
    HomeVolume,
    HostPathVolume,
    NfsSource,
    VolumeDef,
)
from .names import safe_name

# ---------------------------------------------------------------------------------------------------------
# Namespaces, images, hub


class Namespaces(WsModel):
    """Where each user's notebooks and jobs run. ``per-user`` confines a user by RBAC; ``shared`` cannot."""

    scheme: Literal["per-user", "shared"] = "per-user"
    prefix: str = Field("dlw-", description="per-user: namespace = prefix + safe user name.")
    shared: str = Field("dlw-users", description="shared: the one namespace every user's pods run in.")
    hub: str = Field("dlw", description="Namespace the hub (Helm release) runs in.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9]([-a-z0-9]{0,20})$", v):
            raise ValueError(f"{v!r}: a namespace prefix is up to 21 lowercase letters, digits or '-'")
        return v

    @field_validator("shared", "hub")
    @classmethod
    def _ns(cls, v: str) -> str:
        return label(v, "namespace")


class Images(WsModel):
    registry: str = Field(
        "localhost:5000/dlw", description="Where `dlw train --build` pushes images (repository prefix)."
    )
    pull_secret: str | None = Field(None, description="Image pull Secret name, present in user namespaces.")
    default: str = Field("dlw/notebook:0.1.0", description="Image for jobs whose notebook image is unknown.")

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str) -> str:
        if not v or " " in v or v.endswith("/"):
            raise ValueError(f"{v!r} is not an image repository prefix such as host:5000/team")
        return v


class Hub(WsModel):
    idle_timeout: int = Field(3600, description="Cull notebook servers idle this long (seconds or 1h).")
    cull_every: int = Field(600, description="How often the idle culler looks (seconds or 10m).")
    start_timeout: int = Field(
        900, ge=60, description="How long a notebook may take to start on the cluster (seconds or 15m): "
        "a GPU node the autoscaler adds and a large image pull take minutes.")
    admin_users: list[str] = Field(default_factory=list)
    service_account: str = Field("dlw-notebook", description="Notebook pods' ServiceAccount (job RBAC).")
    gpu_idle_timeout: int | None = Field(
        None, description="Act on GPU notebook servers whose GPUs stay below gpuIdleThreshold this long "
        "(seconds or 2h; each profile's gpuIdleAction says how); none: off.")
    gpu_idle_threshold: int = Field(5, ge=0, le=100, description="GPU utilization (%) below which a GPU is idle.")
    gpu_idle_warning: int = Field(600, description="Warn the user in JupyterLab this long before the stop.")
    notebook_priority: int | None = Field(
        None, ge=-2147483648, le=1000000000,
        description="Priority of notebook pods (PriorityClass <workspace>-notebook, which never preempts); "
        "default: one above the default job class, so normal jobs never preempt a running notebook.")
    cluster_domain: str = Field("cluster.local", description="The cluster's DNS domain (kubelet clusterDomain): "
                                "notebooks in user namespaces reach the hub at hub.<ns>.svc.<domain>.")

    @field_validator("idle_timeout", "cull_every", "start_timeout", "gpu_idle_timeout", "gpu_idle_warning",
                     mode="before")
    @classmethod
    def _duration(cls, v: Any) -> int | None:
        return None if v is None else parse_duration(v)

    @field_validator("service_account")
    @classmethod
    def _sa(cls, v: str) -> str:
        return label(v, "service account name")

    @field_validator("cluster_domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", v):
            raise ValueError(f"{v!r} is not a DNS domain such as cluster.local")
        return v


# ---------------------------------------------------------------------------------------------------------
# Profiles


class Range(WsModel):
    """Kubernetes guarantee (request) and limit."""

    guarantee: str | None = None
    limit: str | None = None

    @field_validator("guarantee", "limit", mode="before")
    @classmethod
    def _q(cls, v: Any) -> str | None:
        return check_quantity(v)


class Profile(WsModel):
    name: str = Field(description="Slug: what a user picks and what notebooks see in DLW_PROFILE.")
    display_name: str
    description: str = ""
    image: str
    default: bool = False
    gpus: list[Annotated[int, Field(ge=0, le=64)]] = Field(
        default_factory=lambda: [0], description="GPU counts a user can choose; the first is the default."
    )
    gpu_type: str | None = Field(None, description="Node label nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3.")
    gpu_resource: GpuResourceName = "nvidia.com/gpu"
    cpu: Range = Field(default_factory=Range)
    memory: Range = Field(default_factory=Range)
    groups: list[str] = Field(default_factory=list, description="Groups allowed to use it; empty = everyone.")
    volumes: list[str] = Field(default_factory=list, description="Catalogue volumes mounted besides the home.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    gpu_idle_action: Literal["stop", "warn"] = Field(
        "stop", description="After hub.gpuIdleTimeout of idle GPUs: stop the server (warned first), or only warn.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return label(v, "profile name")

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one GPU count (0 for a CPU profile)")
        if len(set(v)) != len(v):
            raise ValueError("GPU counts listed twice")
        return v

    @property
    def default_gpus(self) -> int:
        return self.gpus[0]

    def allowed_for(self, groups: list[str] | set[str]) -> bool:
        return not self.groups or bool(set(self.groups) & set(groups))


# ---------------------------------------------------------------------------------------------------------
# Scheduling


class Queue(WsModel):
    """A Volcano Queue (or Kueue LocalQueue + ClusterQueue) jobs name in ``queue:``."""

    name: str
    weight: int = Field(1, ge=1, le=65535)
    gpus: int | None = Field(None, ge=0, description="GPU capability of the queue; none = unlimited.")
    cpu: str | None = None
    memory: str | None = None
    reclaimable: bool = True
    default: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return label(v, "queue name")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _q(cls, v: Any) -> str | None:
        return check_quantity(v)


class PriorityClassDef(WsModel):
    name: str
    value: int = Field(ge=-2147483648, le=1000000000, description="Higher preempts lower (Kubernetes limit 1e9).")
    description: str = ""
    default: bool = Field(False, description="The class for jobs that name none (not the cluster globalDefault).")
    preemption_policy: Literal["PreemptLowerPriority", "Never"] = "PreemptLowerPriority"
    preemptible: bool = Field(False, description="The class of jobs with preemptible: true (at most one class).")
    workload_priority_class: str | None = Field(
        None, description="queueSystem kueue: a Kueue WorkloadPriorityClass for jobs of this class (label "
        "kueue.x-k8s.io/priority-class); without it Kueue reads the pods' PriorityClass."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v.startswith("system-"):
            raise ValueError("names starting with 'system-' are reserved by Kubernetes")
        return label(v, "priority class name")

    @field_validator("workload_priority_class")
    @classmethod
    def _wpc(cls, v: str | None) -> str | None:
        return None if v is None else label(v, "workload priority class name")


class Quotas(WsModel):
    """GPU quotas, enforced as a ResourceQuota in each per-user namespace. A user entry wins over groups."""

    default_user_gpus: int | None = Field(None, ge=0, description="GPUs for users with no entry; none = unlimited.")
    users: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    groups: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# The workspace


def _dups(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


class Workspace(WsModel):
    api_version: Literal["dlw/v1"] = "dlw/v1"
    kind: Literal["Workspace"] = "Workspace"
    name: str = Field("dlw", description="Workspace name; labels and Helm release names derive from it.")
    namespaces: Namespaces = Field(default_factory=Namespaces)
    images: Images = Field(default_factory=Images)
    hub: Hub = Field(default_factory=Hub)
    profiles: list[Profile] = Field(min_length=1)
    volumes: list[VolumeDef] = Field(default_factory=list)
    host_path_allowlist: list[str] = Field(
        default_factory=list, description="Node directories hostPath volumes may use (prefixes)."
    )
    queue_system: Literal["volcano", "kueue", "none"] = "volcano"
    queues: list[Queue] = Field(default_factory=list)
    priority_classes: list[PriorityClassDef] = Field(default_factory=list)
    quotas: Quotas = Field(default_factory=Quotas)
    auth: Auth = Field(default_factory=Auth, description="Who may sign in to the hub and where groups come from.")
    budgets: Budgets = Field(default_factory=Budgets, description="GPU-hours per user and period.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return label(v, "workspace name")

    @field_validator("host_path_allowlist")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        out = [abs_path(p) for p in v]
        if "/" in out:
            raise ValueError("'/' would allow every node path; list specific directories")
        return out

    @model_validator(mode="after")
    def _consistent(self) -> Workspace:
        for what, names in (
            ("profile", [p.name for p in self.profiles]),
            ("volume", [v.name for v in self.volumes]),
            ("queue", [q.name for q in self.queues]),
            ("priority class", [p.name for p in self.priority_classes]),
        ):
            dup = _dups(names)
            if dup:
                raise ValueError(f"{what} name {dup[0]!r} is listed twice")
        if sum(p.default for p in self.profiles) > 1:
            raise ValueError("more than one profile has default: true")
        if sum(q.default for q in self.queues) > 1:
            raise ValueError("more than one queue has default: true")
        if sum(p.default for p in self.priority_classes) > 1:
            raise ValueError("more than one priority class has default: true")
        if sum(p.preemptible for p in self.priority_classes) > 1:
            raise ValueError("more than one priority class has preemptible: true")
        if sum(isinstance(v, HomeVolume) for v in self.volumes) > 1:
            raise ValueError("only one volume may have type: home")
        known = {v.name for v in self.volumes}
        for p in self.profiles:
            for ref in p.volumes:
                if ref not in known:
                    raise ValueError(f"profile {p.name!r} mounts volume {ref!r}, which is not in volumes")
        for v in self.volumes:
            if isinstance(v, HostPathVolume) and not _under_any(v.path, self.host_path_allowlist):
                allowed = ", ".join(self.host_path_allowlist) or "none"
                raise ValueError(f"hostPath volume {v.name!r}: {v.path} is not under hostPathAllowlist ({allowed})")
        grouped = ([f"profiles[{i}].groups" for i, p in enumerate(self.profiles) if p.groups]
                   + ["quotas.groups"] * bool(self.quotas.groups) + ["budgets.groups"] * bool(self.budgets.groups))
        if self.auth.kind == "google" and grouped:
            # GoogleOAuthenticator gives no JupyterHub groups (auth.py): such rules would match nobody.
            raise ValueError(f"{grouped[0]} names groups, but auth.kind google gives users no groups: nobody "
                             "would match it")
        mounts = [v.mount_path for v in self.volumes]
        dup = _dups(mounts)
        if dup:
            raise ValueError(f"two volumes mount at {dup[0]}")
        return self

    # -- look-ups used by the hub and the job renderer ------------------------------------------------

    def volume(self, name: str) -> HomeVolume | BlobVolume | HostPathVolume | DatasetVolume:
        for v in self.volumes:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.volumes) or "none"
        raise DLWError(f"volume {name!r} is not in the admin's catalogue (known: {known})")

    @property
    def home(self) -> HomeVolume | None:
        return next((v for v in self.volumes if isinstance(v, HomeVolume)), None)

    def profile(self, name: str) -> Profile:
        for p in self.profiles:
            if p.name == name:
                return p
        raise DLWError(f"profile {name!r} is not in the workspace (known: {', '.join(p.name for p in self.profiles)})")

    @property
    def default_profile(self) -> Profile:
        return next((p for p in self.profiles if p.default), self.profiles[0])

    def profiles_for(self, groups: list[str] | set[str]) -> list[Profile]:
        """The profiles a member of ``groups`` may start (profiles without groups are open to all)."""
        return [p for p in self.profiles if p.allowed_for(groups)]

    def namespace_for(self, user: str) -> str:
        if self.namespaces.scheme == "shared":
            return self.namespaces.shared
        prefix = self.namespaces.prefix
        return prefix + safe_name(user, 63 - len(prefix))

    @property
    def priority_values(self) -> dict[str, int]:
        """Priority class name -> value (what a job's ``priority: high`` means)."""
        return {p.name: p.value for p in self.priority_classes}

    @property
    def default_priority_class(self) -> str | None:
        return next((p.name for p in self.priority_classes if p.default), None)

    @property
    def notebook_priority_class(self) -> tuple[str, int]:
        """(name, value) of the PriorityClass notebook pods run at (``hub.notebookPriority``)."""
        if self.hub.notebook_priority is not None:
            return f"{self.name}-notebook", self.hub.notebook_priority
        default = next((p.value for p in self.priority_classes if p.default), 0)
        return f"{self.name}-notebook", default + 1

    @property
    def preemptible_priority_class(self) -> str | None:
        return next((p.name for p in self.priority_classes if p.preemptible), None)

    def priority_class(self, name: str) -> PriorityClassDef | None:
        return next((p for p in self.priority_classes if p.name == name), None)

    def queue(self, name: str) -> Queue:
        for q in self.queues:
            if q.name == name:
                return q
        known = ", ".join(q.name for q in self.queues) or "none"
        raise DLWError(f"queue {name!r} is not defined by the admin (known: {known})")

    def host_path_roots(self) -> tuple[list[str], list[str]]:
        """(node paths a pod may mount exactly as they are, per-user roots a pod may mount only with
        ``subPath: <user>``). Shared: each shared hostPath volume's path and each allowlisted root that holds
        no per-user root (mounting a parent would show every user's folder)."""
        per_user = sorted({v.path for v in self.volumes if isinstance(v, HostPathVolume) and v.per_user})
        shared = {v.path for v in self.volumes if isinstance(v, HostPathVolume) and not v.per_user}
        shared |= {a for a in self.host_path_allowlist if not any(_under_any(r, [a]) for r in per_user)}
        return sorted(shared - set(per_user)), per_user

    @property
    def default_queue(self) -> str | None:
        return next((q.name for q in self.queues if q.default), None)

    def gpu_quota(self, user: str, groups: Collection[str] = ()) -> int | None:
        """GPUs ``user`` may hold at once: their own entry, else the largest of their groups', else default."""
        q = self.quotas
        if user in q.users:
            return q.users[user]
        from_groups = [q.groups[g] for g in groups if g in q.groups]
        return max(from_groups) if from_groups else q.default_user_gpus


def _under_any(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)
