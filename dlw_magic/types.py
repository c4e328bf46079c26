"""The neutral data types every layer shares: job states, prepared jobs, job info, log chunks, GPUs.

They live apart from the backends so that faces, the core, the builders and the renderers can name them
without importing a backend (``dlw_magic.backends.base`` re-exports them for older imports).
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import TrainingJob

__all__ = ["GpuInfo", "JobInfo", "JobState", "LogChunk", "PreparedJob"]


class JobState(str, enum.Enum):
    QUEUED = "Queued"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    CANCELLED = "Cancelled"

    @property
    def finished(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED)


@dataclass
class PreparedJob:
    """A job ready to hand to a backend: the spec plus its immutable code snapshot."""

    spec: TrainingJob
    user: str
    snapshot_dir: Path  # holds main.py (or the script), the notebook copy, extra files, job.yaml
    entrypoint: list[str]  # argv relative to snapshot_dir, e.g. ["python", "-m", "dlw_magic.launch", "main.py"]
    snapshot_hash: str  # sha256 over the snapshot's files (names and contents)
    provenance: dict[str, Any] = field(default_factory=dict)  # notebook, parameters, image, git commit
    image: str | None = None  # resolved image (built digest or the notebook's)
    # The code was built into ``image``: manifests then carry labels only, no code ConfigMap.
    code_in_image: bool = False


@dataclass
class JobInfo:
    """What every face shows about a job. JSON-serialisable through ``to_dict``."""

    name: str
    user: str
    state: JobState
    backend: str
    engine: str = "job"
    id: str = ""
    workers: int = 1
    world_size: int = 1
    gpus: int = 0  # per worker
    created: float | None = None  # unix seconds
    started: float | None = None
    finished: float | None = None
    exit_code: int | None = None
    reason: str | None = None  # short CamelCase cause: OOMKilled, Unschedulable, Cancelled, ...
    message: str | None = None  # one line a researcher can act on
    attempt: int = 0
    output_dir: str | None = None
    priority: int = 0
    queue: str | None = None
    provenance: dict[str, Any] = field(default_factory=dict)
    spec: dict[str, Any] = field(default_factory=dict)
    # Filled by ``core.get_job`` only (one job's details, not lists): what the job logged with
    # ``dlw_magic.log_metrics`` ({name: [[step, value, time], ...]}) and its executed notebook's path.
    metrics: dict[str, list[list[Any]]] = field(default_factory=dict)
    executed_notebook: str | None = None
    # Preemptions, oldest first: {"attempt", "preemptedAt", "by", "resumedAt", "resumedFrom", "checkpoint"}
    # (times in unix seconds; "resumed*" once the job runs again; "checkpoint": the newest file then, or None).
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration(self) -> float | None:
        import time

        if self.started is None:
            return None
        return (self.finished or time.time()) - self.started

    def to_dict(self) -> dict[str, Any]:
        # A shallow copy: asdict()'s recursive deep copy made `dlw jobs -o json` 5x slower on 10k jobs.
        d = dict(self.__dict__)
        d["state"] = self.state.value
        d["duration"] = self.duration
        return d


@dataclass
class LogChunk:
    """A piece of one rank's log. ``offset`` is the byte offset just after ``text`` (resume from it)."""

    rank: int
    text: str
    offset: int


@dataclass
class GpuInfo:
    index: int
    name: str
    uuid: str
    memory_total_mib: int
    memory_used_mib: int
    utilization_pct: int | None = None
    temperature_c: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
