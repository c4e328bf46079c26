"""The job spec: ``apiVersion: dlw/v1``, ``kind: TrainingJob``.

One pydantic model is the contract between every face (CLI, magics, lab extension) and every engine
(local runner, Kubernetes Job, Volcano, PyTorchJob). Field names are camelCase in YAML, snake_case in
Python. Unknown fields are errors.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# A job name: a DNS-1123 label short enough for the suffixes engines add to its pods and Services.
JOB_NAME_MAX = 52
JOB_NAME_RULE = (
    f"lowercase letters, digits and '-', starting and ending with a letter or digit, at most {JOB_NAME_MAX} characters"
)
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Kubernetes resource quantities: "2", "500m", "4Gi", "1.5", "1e3".
QUANTITY = re.compile(r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
MAX_TIMEOUT = 366 * 24 * 3600
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")

# Kubernetes names: a Secret is a DNS-1123 subdomain, a key is [-._a-zA-Z0-9]+. Names, never paths.
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
GPU_RESOURCE = re.compile(r"^nvidia\.com/(gpu|mig-[0-9a-z.]+)$")


def _env_names(env: dict[str, str]) -> dict[str, str]:
    for key in env:
        if not ENV_NAME.match(key):
            raise ValueError(f"{key!r} is not an environment variable name")
    return env


def _gpu_resource(name: str) -> str:
    if not GPU_RESOURCE.match(name):
        raise ValueError("must be nvidia.com/gpu or a MIG resource such as nvidia.com/mig-1g.10gb")
    return name


# Shared with the admin YAML (dlw_magic.workspace), so jobs and notebook profiles check them alike.
EnvMap = Annotated[dict[str, str], AfterValidator(_env_names)]
GpuResourceName = Annotated[str, AfterValidator(_gpu_resource)]

def _engine(name: str) -> str:
    from ..engine_names import names  # built-ins and entry points, by name

    if name not in names():
        raise ValueError(f"{name!r} is not an engine (choose from {', '.join(names())})")
    return name


def _engine_choices(schema: dict[str, Any]) -> None:
    from ..engine_names import names

    schema["enum"] = names()  # the JSON schema (and the lab's types) list what is registered


Engine = Annotated[str, AfterValidator(_engine), Field(json_schema_extra=_engine_choices)]
# Strict members: with plain `bool` first, pydantic would turn 1, 1.0 and "1" into True.
# A tag on a job (``dlw jobs --tag``, the panel's filter): a Kubernetes label value, so it may become one.
TAG_PATTERN = r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
TAG_RULE = "letters, digits, '-', '_', '.', starting and ending with a letter or digit; at most 63 characters"
Tag = Annotated[str, Field(pattern=TAG_PATTERN, description=TAG_RULE)]

ParamValue = Annotated[
    StrictBool | StrictInt | StrictFloat | StrictStr | list[Any] | dict[str, Any] | None,
    Field(union_mode="left_to_right"),
]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=False
    )


def parse_duration(value: int | str) -> int:
    """Seconds from ``3600``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1d2h"``."""
    if isinstance(value, bool):
        raise ValueError("expected seconds or a duration such as 30m, 2h")
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("must be positive")
        if value > MAX_TIMEOUT:
            raise ValueError("must be at most a year (366d)")
        return value
    text = str(value).strip()
    if len(text) > 40:
        raise ValueError(f"{text[:40]!r}... is not a duration (use seconds or 30m, 2h, 1d)")
    if text.isdigit():
        return parse_duration(int(text))
    m = _DURATION.match(text)
    if not text or not m or not any(m.groups()):
        raise ValueError(f"{value!r} is not a duration (use seconds or 30m, 2h, 1d)")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return parse_duration(((d * 24 + h) * 60 + mi) * 60 + s)


def check_quantity(value: str | int | float | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a quantity such as 2, 500m, 4Gi")
    text = str(value)
    if not QUANTITY.match(text):
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 2, 500m, 4Gi)")
    return text


class Source(_Model):
    """What runs: a notebook (converted to a script) or a script, plus files shipped beside it."""

    notebook: str | None = None
    script: str | None = None
    args: list[str] = Field(default_factory=list, description="Arguments passed to a script.")
    workdir: str | None = Field(
        None, description="Directory the paths are relative to; default the notebook's or script's."
    )
    files: list[str] = Field(
        default_factory=list, description="Glob patterns (relative to workdir) copied into the snapshot."
    )

    @model_validator(mode="after")
    def _one_entry(self) -> Source:
        if bool(self.notebook) == bool(self.script):
            raise ValueError("give exactly one of source.notebook or source.script")
        return self


class Resources(_Model):
    """Per worker. GPUs become ``nvidia.com/gpu`` limits (or the MIG resource named by gpuResource)."""

    gpus: int = Field(0, ge=0, le=64)
    gpu_type: str | None = Field(None, description="Node label nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3")
    gpu_resource: GpuResourceName = Field(
        "nvidia.com/gpu", description="Extended resource name; MIG: nvidia.com/mig-1g.10gb"
    )
    cpu: str | None = None
    memory: str | None = None
    shm: str | None = Field(None, description="Size of /dev/shm (a memory-backed emptyDir).")

    @field_validator("cpu", "memory", "shm", mode="before")
    @classmethod
    def _quantity(cls, v: Any) -> str | None:
        return check_quantity(v)


class VolumeRef(_Model):
    """A volume by name from the admin's catalogue (workspace.yaml); the job cannot define its own."""

    name: str
    mount_path: str | None = Field(None, description="Override the catalogue's mount path.")
    read_only: bool | None = None

    @field_validator("mount_path")
    @classmethod
    def _abs(cls, v: str | None) -> str | None:
        if v is not None and not v.startswith("/"):
            raise ValueError("must be an absolute path")
        return v


class SecretRef(_Model):
    """An environment variable filled from a Kubernetes Secret; the value never appears in the spec."""

    env: str
    secret: str
    key: str

    @field_validator("env")
    @classmethod
    def _env(cls, v: str) -> str:
        if not ENV_NAME.match(v):
            raise ValueError(f"{v!r} is not an environment variable name")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: str) -> str:
        if len(v) > 253 or not DNS1123_SUBDOMAIN.match(v):
            raise ValueError(f"{v!r} is not a Secret name (lowercase letters, digits, '-' and '.')")
        return v

    @field_validator("key")
    @classmethod
    def _key(cls, v: str) -> str:
        if len(v) > 253 or not SECRET_KEY.match(v) or v in (".", ".."):
            raise ValueError(f"{v!r} is not a Secret key (letters, digits, '-', '_' and '.')")
        return v


class Preemption(_Model):
    """How a preemptible job is stopped when a higher-priority job takes its GPUs."""

    grace_period: int = Field(
        30, ge=0, le=3600, description="Seconds (or a duration such as 2m) between SIGTERM to every rank and "
        "SIGKILL: time to write a checkpoint."
    )

    @field_validator("grace_period", mode="before")
    @classmethod
    def _grace(cls, v: Any) -> int:
        return 0 if v == 0 and not isinstance(v, bool) or v == "0" else parse_duration(v)


class Build(_Model):
    """Build an image for the job instead of running on the notebook's image."""

    enabled: bool = False
    base_image: str | None = None
    requirements: str | None = Field(None, description="requirements file; default: pinned from the notebook env")


class TrainingJob(_Model):
    api_version: Literal["dlw/v1"] = "dlw/v1"
    kind: Literal["TrainingJob"] = "TrainingJob"
    name: str = Field(description="DNS-1123 label, unique among the user's jobs.")
    source: Source
    parameters: dict[str, ParamValue] = Field(
        default_factory=dict, description="Override the notebook's parameters cell (typed)."
    )
    image: str | None = Field(None, description="Default: the image the notebook runs in.")
    build: Build = Field(default_factory=Build)
    resources: Resources = Field(default_factory=Resources)
    workers: int = Field(1, ge=1, le=1024, description="Pods (or local process groups) in the job.")
    processes_per_worker: int = Field(1, ge=1, le=64, description="Ranks per worker (torchrun nproc).")
    engine: Engine = "job"
    queue: str | None = None
    priority: int | str | None = Field(None, description="A priority class name or an integer.")
    tags: list[Tag] = Field(
        default_factory=list, max_length=32, description="Labels to find the job by (dlw jobs --tag)."
    )
    preemptible: bool = Field(
        False, description="May be preempted: runs at the workspace's preemptible priority class and resumes "
        "from its checkpoint (DLW_CHECKPOINT_DIR) when restarted."
    )
    preemption: Preemption = Field(default_factory=Preemption)
    volumes: list[VolumeRef] = Field(default_factory=list)
    env: EnvMap = Field(default_factory=dict)
    secrets: list[SecretRef] = Field(default_factory=list)
    retries: int = Field(0, ge=0, le=100)
    timeout: int | None = Field(None, description="Seconds, or a duration such as 30m, 2h.")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if len(v) > JOB_NAME_MAX or not DNS1123_LABEL.match(v):
            raise ValueError(f"{v!r} is not a valid job name ({JOB_NAME_RULE})")
        return v

    @field_validator("priority")
    @classmethod
    def _priority_range(cls, v: int | str | None) -> int | str | None:
        # A Kubernetes PriorityClass value is a 32-bit integer; 2**63 also overflowed the local job database.
        if isinstance(v, int) and not -(2**31) <= v < 2**31:
            raise ValueError("an integer priority must lie between -2147483648 and 2147483647")
        return v

    @field_validator("timeout", mode="before")
    @classmethod
    def _timeout(cls, v: Any) -> int | None:
        return None if v is None else parse_duration(v)

    @field_validator("build", mode="before")
    @classmethod
    def _build_shorthand(cls, v: Any) -> Any:
        return {"enabled": v} if isinstance(v, bool) else v

    @model_validator(mode="after")
    def _unique_volumes(self) -> TrainingJob:
        names = [v.name for v in self.volumes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"volume {sorted(dup)[0]!r} listed twice")
        return self

    @property
    def world_size(self) -> int:
        return self.workers * self.processes_per_worker

    def to_yaml_dict(self) -> dict[str, Any]:
        """The spec as a user would write it: camelCase, defaults left out."""
        data = self.model_dump(by_alias=True, exclude_defaults=True, mode="json")
        return {"apiVersion": self.api_version, "kind": self.kind, **data}
