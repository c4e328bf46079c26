"""The one interface every backend fills in (local processes, Kubernetes).

Faces never talk to a backend directly: they call ``dlw_magic.core``, which runs the pipeline
notebook -> spec -> snapshot (convert) -> [build] -> backend.submit and hands status and logs back.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DLWError

if TYPE_CHECKING:
    from ..spec import TrainingJob


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


class Backend(ABC):
    """Runs prepared jobs. Every method raises DLWError subclasses for anything the user can fix."""

    name: str = "base"

    @abstractmethod
    def staging_dir(self, spec: TrainingJob) -> Path:
        """An empty folder the pipeline writes the job's snapshot into (kept by the local backend)."""

    def discard_staging(self, staging: Path) -> None:
        """Remove what ``staging_dir`` made when a submission fails part-way: a failed submit leaves nothing."""
        import shutil

        shutil.rmtree(staging, ignore_errors=True)

    @abstractmethod
    def check_name_free(self, name: str) -> None:
        """Raise Conflict when the user already has a job of this name."""

    @abstractmethod
    def submit(self, job: PreparedJob) -> JobInfo:
        """Start (or queue) the job; return at once, before it runs."""

    @abstractmethod
    def list_jobs(self) -> list[JobInfo]:
        """The current user's jobs, newest first."""

    @abstractmethod
    def get(self, name: str) -> JobInfo:
        """Raise NotFound for a name the user has no job of."""

    @abstractmethod
    def cancel(self, name: str) -> JobInfo:
        """Stop every process or pod of the job. Cancelling a finished job raises Conflict."""

    @abstractmethod
    def logs(
        self, name: str, rank: int | None = None, follow: bool = False, offset: int = 0
    ) -> Iterator[LogChunk]:
        """Log text of one rank (or all ranks, interleaved by arrival, when rank is None).

        With follow, keeps yielding until the job has finished and its logs are drained.
        ``offset`` resumes one rank's log at a byte offset (only with a rank).
        """

    def events(self, name: str) -> list[dict[str, Any]]:
        """Cluster events of the job and its pods (type, reason, object, message, time); none locally.

        Callers look the job up first (``get``), so an unknown name has already raised NotFound.
        """
        return []

    def delete(self, name: str) -> None:
        """Forget a finished job and remove its files (snapshot, logs, output)."""
        raise DLWError(f"the {self.name} backend cannot delete jobs; remove {name!r} with its own tools")

    def snapshot_of(self, name: str) -> Path | None:
        """The kept code snapshot of a job, for ``rerun``; None where the backend keeps none locally."""
        return None

    def gpus(self) -> tuple[list[GpuInfo], str | None]:
        """GPUs this backend can give jobs, and a reason when there are none."""
        from ..gpus import local_gpus

        return local_gpus()
