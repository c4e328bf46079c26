"""The one interface every backend fills in (local processes, Kubernetes).

Faces never talk to a backend directly: they call ``dlw_magic.core``, which runs the pipeline
notebook -> spec -> snapshot (convert) -> [build] -> backend.submit and hands status and logs back.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import DLWError

# The data types moved to dlw_magic.types; re-exported here for code that still imports them from base.
from ..types import GpuInfo, JobInfo, JobState, LogChunk, PreparedJob

if TYPE_CHECKING:
    from ..spec import TrainingJob

__all__ = ["Backend", "GpuInfo", "JobInfo", "JobState", "LogChunk", "PreparedJob"]


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

    def metrics(self, job: JobInfo) -> dict[str, list[list[Any]]]:
        """What the job logged with ``dlw_magic.log_metrics``; read from its output folder where this
        machine sees it (the local backend, a shared home), else nothing."""
        from ..metrics import read

        out = job.output_dir
        return read(out) if out and Path(out).is_dir() else {}

    def executed_notebook(self, job: JobInfo) -> str | None:
        """Where rank 0 wrote the executed notebook, when this machine sees it."""
        from ..executed import executed_notebook_path

        path = executed_notebook_path(job.output_dir) if job.output_dir else None
        return str(path) if path else None

    def snapshot_of(self, name: str) -> Path | None:
        """The kept code snapshot of a job, for ``rerun``; None where the backend keeps none locally."""
        return None

    def gpus(self) -> tuple[list[GpuInfo], str | None]:
        """GPUs this backend can give jobs, and a reason when there are none."""
        from ..gpus import local_gpus

        return local_gpus()
