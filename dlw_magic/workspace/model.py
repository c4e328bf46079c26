"""The admin YAML: ``apiVersion: dlw/v1``, ``kind: Workspace``.

One description of a cluster read by the hub (notebook profiles), the notebooks (image, namespace) and
the job renderer (volumes, queues, priorities). camelCase in YAML, snake_case in Python, unknown keys are
errors (same conventions as the job spec in ``dlw_magic.spec.model``).

Sections: ``namespaces`` (per-user or shared), ``images`` (build registry), ``profiles`` (notebook
choices), ``volumes`` (the catalogue: home / blob / hostPath / dataset, discriminated by ``type``),
``hostPathAllowlist``, ``queues`` + ``queueSystem``, ``priorityClasses``, ``quotas``, ``hub``.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from ..spec.model import DNS1123_LABEL, ENV_NAME, check_quantity, parse_duration

GPU_RESOURCE = re.compile(r"^nvidia\.com/(gpu|mig-[0-9a-z.]+)$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


def _label(v: str, what: str = "name") -> str:
    if len(v) > 40 or not DNS1123_LABEL.match(v):
        raise ValueError(f"{v!r} is not a valid {what} (lowercase letters, digits and '-', at most 40 characters)")
    return v


def _abs_path(v: str) -> str:
    if not v.startswith("/"):
        raise ValueError(f"{v!r} is not an absolute path")
    if ".." in v.split("/"):
        raise ValueError(f"{v!r} must not contain '..'")
    return posixpath.normpath(v)


# ---------------------------------------------------------------------------------------------------------
# Namespaces, images, hub


class Namespaces(_Model):
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
        return _label(v, "namespace")


class Images(_Model):
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


class Hub(_Model):
    idle_timeout: int = Field(3600, description="Cull notebook servers idle this long (seconds or 1h).")
    cull_every: int = Field(600, description="How often the idle culler looks (seconds or 10m).")
    admin_users: list[str] = Field(default_factory=list)
    service_account: str = Field("dlw-notebook", description="Notebook pods' ServiceAccount (job RBAC).")

    @field_validator("idle_timeout", "cull_every", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> int:
        return parse_duration(v)

    @field_validator("service_account")
    @classmethod
    def _sa(cls, v: str) -> str:
        return _label(v, "service account name")


# ---------------------------------------------------------------------------------------------------------
# Volume catalogue


class _Volume(_Model):
    name: str = Field(description="Catalogue name; jobs and profiles refer to volumes by it.")
    mount_path: str = Field(description="Where the volume appears in notebooks and job containers.")
    read_only: bool = False
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _label(v, "volume name")

    @field_validator("mount_path")
    @classmethod
    def _mount(cls, v: str) -> str:
        return _abs_path(v)


class HomeVolume(_Volume):
    """The per-user home: a PVC per user, created by the hub (z2jh ``singleuser.storage``)."""

    type: Literal["home"]
    mount_path: str = "/home/jovyan"
    size: str = "10Gi"
    storage_class: str | None = None
    access_modes: list[Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]] = Field(
        default_factory=lambda: ["ReadWriteOnce"],
        description="ReadWriteMany lets jobs mount the home while the notebook runs.",
    )
    claim_name_template: str = Field("claim-{username}", description="z2jh's default PVC name.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> str:
        return check_quantity(v) or "10Gi"


class BlobCache(_Model):
    """blobfuse2 caching: ``file`` (whole files on local disk) or ``block`` (streamed blocks)."""

    kind: Literal["file", "block"] = "file"
    size_mb: int = Field(10240, ge=1, description="Cache size on the node, MiB.")
    timeout_sec: int = Field(120, ge=0, description="Seconds a cached file/attr stays valid.")
    path: str = Field("/mnt/blobfuse-cache", description="Cache directory on the node.")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _abs_path(v)


class BlobAuth(_Model):
    """How blobfuse2 authenticates. Secrets are referenced by name, never written here."""

    mode: Literal["key", "sas", "msi", "spn"]
    secret: str | None = Field(
        None,
        description="key: Secret with azurestorageaccountname/azurestorageaccountkey; sas: with "
        "azurestorageaccountsastoken; spn: with azurestoragespnclientsecret. Must exist in each user namespace.",
    )
    client_id: str | None = Field(None, description="msi: user-assigned identity client id; spn: app id.")
    object_id: str | None = None
    resource_id: str | None = None
    tenant_id: str | None = Field(None, description="spn: the Entra tenant.")

    @model_validator(mode="after")
    def _complete(self) -> BlobAuth:
        if self.mode in ("key", "sas", "spn") and not self.secret:
            raise ValueError(f"auth mode {self.mode!r} needs 'secret' (the Secret that holds the credential)")
        if self.mode == "msi" and not (self.client_id or self.object_id or self.resource_id):
            raise ValueError("auth mode 'msi' needs the managed identity: clientId, objectId or resourceId")
        if self.mode == "spn" and not (self.client_id and self.tenant_id):
            raise ValueError("auth mode 'spn' needs clientId and tenantId")
        return self


class BlobVolume(_Volume):
    """An Azure Blob container mounted with blobfuse2 through the Blob CSI driver (PV + PVC per namespace)."""

    type: Literal["blob"]
    read_only: bool = True
    storage_account: str
    container: str
    resource_group: str | None = None
    auth: BlobAuth | None = None
    cache: BlobCache = Field(default_factory=BlobCache)
    size: str = Field("1Ti", description="Nominal PV capacity (Blob has no real limit).")
    mount_options: list[str] = Field(default_factory=list, description="Extra blobfuse2 flags.")
    claim_name: str | None = Field(None, description="PVC name in each namespace; default dlw-blob-<name>.")

    @field_validator("storage_account")
    @classmethod
    def _account(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9]{3,24}$", v):
            raise ValueError(f"{v!r} is not a storage account name (3-24 lowercase letters and digits)")
        return v

    @field_validator("container")
    @classmethod
    def _container(cls, v: str) -> str:
        if not re.match(r"^[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]$", v):
            raise ValueError(f"{v!r} is not a blob container name (3-63 lowercase letters, digits, '-')")
        return v

    @model_validator(mode="after")
    def _needs_auth(self) -> BlobVolume:
        if self.auth is None:
            raise ValueError(
                f"blob volume {self.name!r} needs auth: a Secret (key, sas, spn) or a managed identity (msi)"
            )
        return self

    @property
    def pvc_name(self) -> str:
        return self.claim_name or f"dlw-blob-{self.name}"


class HostPathVolume(_Volume):
    """A node-local scratch disk. The path must sit under an entry of ``hostPathAllowlist``."""

    type: Literal["hostPath"]
    path: str = Field(description="Directory on the node.")
    host_path_type: Literal["Directory", "DirectoryOrCreate"] = "DirectoryOrCreate"
    per_user: bool = Field(True, description="Mount <path>/<user> so users don't see each other's files.")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _abs_path(v)


class NfsSource(_Model):
    server: str
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _abs_path(v)


class DatasetVolume(_Volume):
    """A shared data set: an existing PVC (in each user namespace) or an NFS export."""

    type: Literal["dataset"]
    read_only: bool = True
    claim_name: str | None = None
    nfs: NfsSource | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatasetVolume:
        if bool(self.claim_name) == bool(self.nfs):
            raise ValueError(f"dataset volume {self.name!r}: give exactly one of claimName or nfs")
        return self


VolumeDef = Annotated[HomeVolume | BlobVolume | HostPathVolume | DatasetVolume, Field(discriminator="type")]


# ---------------------------------------------------------------------------------------------------------
# Profiles


class Range(_Model):
    """Kubernetes guarantee (request) and limit."""

    guarantee: str | None = None
    limit: str | None = None

    @field_validator("guarantee", "limit", mode="before")
    @classmethod
    def _q(cls, v: Any) -> str | None:
        return check_quantity(v)


class Profile(_Model):
    name: str = Field(description="Slug: what a user picks and what notebooks see in DLW_PROFILE.")
    display_name: str
    description: str = ""
    image: str
    default: bool = False
    gpus: list[Annotated[int, Field(ge=0, le=64)]] = Field(
        default_factory=lambda: [0], description="GPU counts a user can choose; the first is the default."
    )
    gpu_type: str | None = Field(None, description="Node label nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3.")
    gpu_resource: str = "nvidia.com/gpu"
    cpu: Range = Field(default_factory=Range)
    memory: Range = Field(default_factory=Range)
    groups: list[str] = Field(default_factory=list, description="Groups allowed to use it; empty = everyone.")
    volumes: list[str] = Field(default_factory=list, description="Catalogue volumes mounted besides the home.")
    node_selector: dict[str, str] = Field(default_factory=dict)
    tolerations: list[dict[str, Any]] = Field(default_factory=list)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _label(v, "profile name")

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v: list[int]) -> list[int]:
        if not v:
            raise ValueError("give at least one GPU count (0 for a CPU profile)")
        if len(set(v)) != len(v):
            raise ValueError("GPU counts listed twice")
        return v

    @field_validator("gpu_resource")
    @classmethod
    def _gpu_resource(cls, v: str) -> str:
        if not GPU_RESOURCE.match(v):
            raise ValueError("must be nvidia.com/gpu or a MIG resource such as nvidia.com/mig-1g.10gb")
        return v

    @field_validator("env")
    @classmethod
    def _env(cls, v: dict[str, str]) -> dict[str, str]:
        for key in v:
            if not ENV_NAME.match(key):
                raise ValueError(f"{key!r} is not an environment variable name")
        return v

    @property
    def default_gpus(self) -> int:
        return self.gpus[0]

    def allowed_for(self, groups: list[str] | set[str]) -> bool:
        return not self.groups or bool(set(self.groups) & set(groups))


# ---------------------------------------------------------------------------------------------------------
# Scheduling


class Queue(_Model):
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
        return _label(v, "queue name")

    @field_validator("cpu", "memory", mode="before")
    @classmethod
    def _q(cls, v: Any) -> str | None:
        return check_quantity(v)


class PriorityClassDef(_Model):
    name: str
    value: int = Field(ge=-2147483648, le=1000000000, description="Higher preempts lower (Kubernetes limit 1e9).")
    description: str = ""
    default: bool = Field(False, description="The class for jobs that name none (not the cluster globalDefault).")
    preemption_policy: Literal["PreemptLowerPriority", "Never"] = "PreemptLowerPriority"

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if v.startswith("system-"):
            raise ValueError("names starting with 'system-' are reserved by Kubernetes")
        return _label(v, "priority class name")


class Quotas(_Model):
    """GPU quotas, enforced as a ResourceQuota in each per-user namespace. A user entry wins over groups."""

    default_user_gpus: int | None = Field(None, ge=0, description="GPUs for users with no entry; none = unlimited.")
    users: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)
    groups: dict[str, Annotated[int, Field(ge=0)]] = Field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------------
# The workspace


def _dups(names: list[str]) -> list[str]:
    return sorted({n for n in names if names.count(n) > 1})


class Workspace(_Model):
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

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return _label(v, "workspace name")

    @field_validator("host_path_allowlist")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        out = [_abs_path(p) for p in v]
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
        mounts = [v.mount_path for v in self.volumes]
        dup = _dups(mounts)
        if dup:
            raise ValueError(f"two volumes mount at {dup[0]}")
        return self

    # -- look-ups used by the hub and the job renderer ------------------------------------------------

    def volume(self, name: str) -> HomeVolume | BlobVolume | HostPathVolume | DatasetVolume:
        from ..errors import DLWError

        for v in self.volumes:
            if v.name == name:
                return v
        known = ", ".join(v.name for v in self.volumes) or "none"
        raise DLWError(f"volume {name!r} is not in the admin's catalogue (known: {known})")

    @property
    def home(self) -> HomeVolume | None:
        return next((v for v in self.volumes if isinstance(v, HomeVolume)), None)

    def profile(self, name: str) -> Profile:
        from ..errors import DLWError

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
        from .names import safe_name

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

    def queue(self, name: str) -> Queue:
        from ..errors import DLWError

        for q in self.queues:
            if q.name == name:
                return q
        known = ", ".join(q.name for q in self.queues) or "none"
        raise DLWError(f"queue {name!r} is not defined by the admin (known: {known})")

    @property
    def default_queue(self) -> str | None:
        return next((q.name for q in self.queues if q.default), None)

    def gpu_quota(self, user: str, groups: list[str] | set[str] = ()) -> int | None:
        """GPUs ``user`` may hold at once: their own entry, else the largest of their groups', else default."""
        q = self.quotas
        if user in q.users:
            return q.users[user]
        from_groups = [q.groups[g] for g in groups if g in q.groups]
        return max(from_groups) if from_groups else q.default_user_gpus


def _under_any(path: str, prefixes: list[str]) -> bool:
    return any(path == p or path.startswith(p.rstrip("/") + "/") for p in prefixes)
