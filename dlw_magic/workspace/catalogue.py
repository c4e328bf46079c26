"""The volume catalogue: the only volumes notebooks and jobs can mount, discriminated by ``type``.

``home`` (a PVC per user), ``blob`` (Azure Blob through blobfuse2 / the Blob CSI driver), ``hostPath``
(node-local scratch under the admin's allowlist) and ``dataset`` (a shared PVC or NFS export). How each
mounts in a pod is decided in ``volumes.py``; the Blob CSI objects and blobfuse2 config in ``blob.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from ..spec.model import check_quantity
from .base import WsModel, abs_path, label


class _Volume(WsModel):
    name: str = Field(description="Catalogue name; jobs and profiles refer to volumes by it.")
    mount_path: str = Field(description="Where the volume appears in notebooks and job containers.")
    read_only: bool = False
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return label(v, "volume name")

    @field_validator("mount_path")
    @classmethod
    def _mount(cls, v: str) -> str:
        return abs_path(v)


class HomeVolume(_Volume):
    """The per-user home: a PVC per user, created by the hub (z2jh ``singleuser.storage``)."""

    type: Literal["home"]
    mount_path: str = "/home/jovyan"
    size: str = "10Gi"
    storage_class: str | None = None
    access_modes: list[Literal["ReadWriteOnce", "ReadWriteMany", "ReadWriteOncePod"]] = Field(
        default_factory=lambda: ["ReadWriteOnce"],  # type: ignore[arg-type]
        description="ReadWriteMany lets jobs mount the home while the notebook runs.",
    )
    claim_name_template: str = Field("claim-{username}", description="z2jh's default PVC name.")

    @field_validator("size", mode="before")
    @classmethod
    def _size(cls, v: Any) -> str:
        return check_quantity(v) or "10Gi"


class BlobCache(WsModel):
    """blobfuse2 caching: ``file`` (whole files on local disk) or ``block`` (streamed blocks)."""

    kind: Literal["file", "block"] = "file"
    size_mb: int = Field(10240, ge=1, description="Cache size on the node, MiB.")
    timeout_sec: int = Field(120, ge=0, description="Seconds a cached file/attr stays valid.")
    path: str = Field("/mnt/blobfuse-cache", description="Cache directory on the node.")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return abs_path(v)


class BlobAuth(WsModel):
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
        return abs_path(v)


class NfsSource(WsModel):
    server: str
    path: str

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return abs_path(v)


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
