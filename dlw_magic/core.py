"""The one core behind the CLI, the %dlw magics and the lab extension's REST API.

notebook -> job spec (``build_spec``) -> snapshot + convert (``snapshot.prepare``) -> [image build]
-> backend (``submit``) -> status / logs / cancel back to the faces.
Faces parse their own syntax into the keyword arguments here and format what comes back; nothing else.
"""

from __future__ import annotations

import getpass
import io
import os
import re
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .backends import Backend, GpuInfo, JobInfo, LogChunk, get_backend
from .errors import DLWError

# The spec (pydantic) and snapshot modules load lazily: `dlw jobs` and `dlw logs` never need them,
# and start-up time is most of their run time.
if TYPE_CHECKING:
    from .convert import ConvertedNotebook
    from .spec import TrainingJob


def current_user() -> str:
    return os.environ.get("JUPYTERHUB_USER") or os.environ.get("DLW_USER") or getpass.getuser()


def default_name(entry: str | Path) -> str:
    """``digits_ddp.ipynb`` -> ``digits-ddp-x7k2q``: a valid, almost surely unused job name."""
    stem = re.sub(r"[^a-z0-9]+", "-", Path(entry).stem.lower()).strip("-")[:40] or "job"
    alphabet = "bcdfghjklmnpqrstvwxz2456789"
    return f"{stem}-{''.join(secrets.choice(alphabet) for _ in range(5))}"


def parse_param(item: str) -> tuple[str, Any]:
    """``lr=0.05`` -> ('lr', 0.05); values read as YAML scalars/lists, so types survive the shell."""
    import yaml

    from .spec.validation import check_values, yaml_value

    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key.isidentifier():
        raise DLWError(f"--param {item[:80]!r}: expected NAME=VALUE with NAME a Python identifier")
    try:
        value = yaml_value(raw) if raw.strip() else ""  # the spec's rules: no aliases, tags, huge numbers
    except yaml.YAMLError:
        value = raw
    if isinstance(value, (dict, type(None))) and raw.strip() not in ("null", "None", "~"):
        value = raw  # "a: b" or other YAML mappings are meant as text
    check_values({key: value}, "--param")
    return key, value


def build_spec(
    target: str | Path | None = None,
    *,
    spec_text: str | None = None,
    name: str | None = None,
    workers: int | None = None,
    gpus: int | None = None,
    params: dict[str, Any] | None = None,
    **overrides: Any,
) -> TrainingJob:
    """A validated spec from a notebook, script or job YAML path (or inline YAML), plus face options.

    ``overrides`` take spec field names (``engine``, ``queue``, ``priority``, ``image``, ``timeout``,
    ``retries``, ``build``, ``processes_per_worker``, ``gpu_type``); None means "keep the spec's value".
    """
    from .spec import load_spec, parse_spec
    from .spec.validation import load_yaml

    if spec_text is not None:
        data = load_yaml(spec_text, "inline spec") or {}
        origin = "inline spec"
    elif target is None:
        raise DLWError("give a notebook, a script or a job YAML")
    else:
        path = Path(target)
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            data = load_spec(path).model_dump(by_alias=True, exclude_unset=True)
            origin = str(path)
        elif suffix in (".ipynb", ".py"):
            key = "notebook" if suffix == ".ipynb" else "script"
            data = {"source": {key: str(path)}}
            origin = str(path)
        else:
            raise DLWError(f"{target}: expected a .ipynb notebook, a .py script or a .yaml job spec")
    if not isinstance(data, dict):
        raise DLWError(f"{origin}: expected a mapping at the top level")
    if name:
        data["name"] = name
    else:
        data.setdefault("name", default_name(_entry_of(data) or "job"))
    if workers is not None:
        data["workers"] = workers
    for key in ("parameters", "resources"):  # merged with options below: must be mappings first
        if not isinstance(data.get(key) or {}, dict):
            raise DLWError(f"{origin}: {key}: expected a mapping, got {type(data[key]).__name__}")
    if params:
        data["parameters"] = {**(data.get("parameters") or {}), **params}
    resources = dict(data.get("resources") or {})
    if gpus is not None:
        resources["gpus"] = gpus
    gpu_type = overrides.pop("gpu_type", None)
    if gpu_type is not None:
        resources["gpuType"] = gpu_type
    if resources:
        data["resources"] = resources
    for key, value in overrides.items():
        if value is not None:
            data[key] = value
    return parse_spec(data, origin)


def _entry_of(data: dict[str, Any]) -> str | None:
    src = data.get("source") or {}
    return src.get("notebook") or src.get("script") if isinstance(src, dict) else None


def submit(spec: TrainingJob, backend: Backend | None = None, rerun_of: JobInfo | None = None) -> JobInfo:
    """Snapshot, convert, (build) and hand the job to the backend; returns once it is queued.

    With ``rerun_of``, the earlier job's kept snapshot is reused instead of reading the sources again.
    """
    from . import snapshot

    backend = backend or get_backend()
    backend.check_name_free(spec.name)
    user = current_user()
    old_snapshot = backend.snapshot_of(rerun_of.name) if rerun_of else None
    staging = backend.staging_dir(spec)
    try:
        if old_snapshot is not None and rerun_of is not None:
            prepared = snapshot.copy_of(spec, old_snapshot, staging, user, rerun_of.provenance)
            prepared.provenance["rerun_of"] = rerun_of.name
        else:
            prepared = snapshot.prepare(spec, staging, user)
        if spec.build.enabled:
            from .build import build_image

            prepared.image = build_image(prepared)
        return backend.submit(prepared)
    except BaseException:
        backend.discard_staging(staging)
        raise


def rerun(name: str, new_name: str | None = None, backend: Backend | None = None) -> JobInfo:
    """Submit a finished (or running) job again with the same spec, under a new name."""
    from .spec import parse_spec

    backend = backend or get_backend()
    old = backend.get(name)
    data = dict(old.spec)
    base = re.sub(r"-r\d+$", "", old.name)[:46]
    data["name"] = new_name or default_name(base)
    return submit(parse_spec(data, f"job {name}"), backend, rerun_of=old)


def list_jobs(backend: Backend | None = None) -> list[JobInfo]:
    return (backend or get_backend()).list_jobs()


def get_job(name: str, backend: Backend | None = None) -> JobInfo:
    return (backend or get_backend()).get(name)


def cancel(name: str, backend: Backend | None = None) -> JobInfo:
    return (backend or get_backend()).cancel(name)


def logs(
    name: str, rank: int | None = None, follow: bool = False, offset: int = 0, backend: Backend | None = None
) -> Iterator[LogChunk]:
    return (backend or get_backend()).logs(name, rank=rank, follow=follow, offset=offset)


def log_lines(
    name: str, rank: int | None = None, follow: bool = False, backend: Backend | None = None
) -> Iterator[tuple[int, str]]:
    """Whole lines as (rank, line-with-newline); partial lines are held back until complete or the end."""
    pending: dict[int, str] = {}
    for chunk in logs(name, rank=rank, follow=follow, backend=backend):
        text = pending.pop(chunk.rank, "") + chunk.text
        end = text.rfind("\n") + 1
        if end < len(text):
            pending[chunk.rank] = text[end:]
        # StringIO's line iterator splits in C, on "\n" only: twice as fast as str.split for big chunks.
        for line in io.StringIO(text[:end], newline="\n"):
            yield chunk.rank, line
    for r, rest in sorted(pending.items()):
        yield r, rest + "\n"


def wait(
    name: str,
    backend: Backend | None = None,
    timeout: float | None = None,
    on_change: Callable[[JobInfo], None] | None = None,
    interval: float = 0.02,
) -> JobInfo:
    """Block until the job has finished (or ``timeout`` seconds passed); returns its last state."""
    backend = backend or get_backend()
    start = time.monotonic()
    deadline = None if timeout is None else start + timeout
    while True:
        job = backend.get(name)
        if on_change:
            on_change(job)
        if job.state.finished or (deadline is not None and time.monotonic() > deadline):
            return job
        # Poll at about a tenth of the time waited so far: short jobs are seen finishing at once,
        # long ones cost one query a second.
        time.sleep(min(max(interval, (time.monotonic() - start) / 10), 1.0))


def gpus(backend: Backend | None = None) -> tuple[list[GpuInfo], str | None]:
    return (backend or get_backend()).gpus()


def convert(target: str | Path, params: dict[str, Any] | None = None) -> ConvertedNotebook:
    """The exact script a notebook job will run (``dlw convert``), with notes on what was dropped."""
    from .convert import convert_notebook

    path = Path(target)
    if path.suffix.lower() != ".ipynb":
        raise DLWError(f"{target}: dlw convert takes a .ipynb notebook")
    return convert_notebook(path, params or {})


def render(spec: TrainingJob, engine: str | None = None, workspace: str | None = None) -> str:
    """Multi-document YAML for ``kubectl apply`` (the Kubernetes engines)."""
    from . import snapshot
    from .render import render_yaml

    with tempfile.TemporaryDirectory(prefix="dlw-render-") as tmp:
        prepared = snapshot.prepare(spec, Path(tmp), current_user())
        return render_yaml(prepared, engine=engine or spec.engine, workspace=workspace)
