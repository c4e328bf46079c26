"""The one core behind the CLI, the %dlw magics and the lab extension's REST API.

notebook -> job spec (``build_spec``) -> snapshot + convert (``snapshot.prepare``) -> [image build]
-> backend (``submit``) -> status / logs / cancel back to the faces.
Faces parse their own syntax into ``JobOptions`` (``dlw_magic.options``), call these functions with the
backend they were told to use, and format what comes back (``dlw_magic.format``); no face calls a backend.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from . import settings
from .backends import Backend, default_backend_name, get_backend
from .errors import DLWError, NotFound, Unavailable
from .export import notebook_html, write_zip
from .format import rank_prefix
from .types import GpuInfo, JobInfo, LogChunk

# The spec (pydantic) and snapshot modules load lazily: `dlw jobs` and `dlw logs` never need them,
# and start-up time is most of their run time.
if TYPE_CHECKING:
    from .convert import ConvertedNotebook
    from .options import JobOptions
    from .spec import TrainingJob


def current_user() -> str:
    return settings.current().user


def backend_name_for(name: str | None = None, kubeconfig: str | None = None, namespace: str | None = None) -> str:
    """The backend a face's options select: a kubeconfig or namespace implies Kubernetes."""
    return name or ("kubernetes" if kubeconfig or namespace else default_backend_name())


def backend_for(name: str | None = None, kubeconfig: str | None = None, namespace: str | None = None,
                workspace: str | None = None) -> Backend:
    """That backend, built with the options it takes (the admin YAML only tells Kubernetes how to render)."""
    chosen = backend_name_for(name, kubeconfig, namespace)
    options = {k: v for k, v in (("kubeconfig", kubeconfig), ("namespace", namespace)) if v}
    if workspace and chosen == "kubernetes":
        options["workspace"] = workspace
    return get_backend(chosen, **options)


def default_name(entry: str | Path) -> str:
    """``digits_ddp.ipynb`` -> ``digits-ddp-x7k2q``, ``01_mnist.ipynb`` -> ``nb-01-mnist-x7k2q``: a name
    every engine accepts, almost surely unused."""
    stem = re.sub(r"[^a-z0-9]+", "-", Path(entry).stem.lower()).strip("-")[:40] or "job"
    if not stem[0].isalpha():  # `01_mnist`: Services and most controllers need a letter first (DNS-1035)
        stem = f"nb-{stem}"
    import secrets  # here: `dlw jobs` and `dlw logs` need not import it (hmac, hashlib)

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
    options: JobOptions | None = None,
    base_dir: str | Path | None = None,
    **overrides: Any,
) -> TrainingJob:
    """A validated spec from a notebook, script or job YAML path (or inline YAML), plus the face's options.

    ``options`` (or, for Python callers, ``overrides`` named like its fields: ``workers=2``) replace the
    spec's values; None keeps them. Relative paths mean ``base_dir`` (default: the working directory):
    a relative ``target``, and the ``workdir`` of inline YAML. A YAML file's paths are relative to its folder.
    """
    from .options import parse_options
    from .spec import parse_spec
    from .spec.validation import load_yaml, read_text

    if options is None or overrides:
        given = options.model_dump(exclude_unset=True) if options is not None else {}
        options = parse_options({**given, **overrides})
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if spec_text is not None:
        data = load_yaml(spec_text, "inline spec")
        data = {} if data is None else data
        origin, spec_dir = "inline spec", base
        resolve = True
    elif target is None:
        raise DLWError("give a notebook, a script or a job YAML")
    else:
        path = Path(target) if base_dir is None else base / target  # as given: errors name it so
        suffix = path.suffix.lower()
        if suffix in (".yaml", ".yml"):
            origin = str(target)
            data = load_yaml(read_text(path, "job spec"), origin)
            spec_dir, resolve = path.resolve().parent, True
        elif suffix in (".ipynb", ".py"):
            key = "notebook" if suffix == ".ipynb" else "script"
            data = {"source": {key: str(path)}}
            origin, spec_dir, resolve = str(target), base, False
        else:
            raise DLWError(f"{target}: expected a .ipynb notebook, a .py script or a .yaml job spec")
    if not isinstance(data, dict):
        raise DLWError(f"{origin}: expected a mapping at the top level")
    if resolve:
        _resolve_workdir(data, spec_dir)
    return parse_spec(merge_options(data, options, origin), origin)


def _resolve_workdir(data: dict[str, Any], spec_dir: Path) -> None:
    """A spec's relative paths mean the folder it lives in (its file's, or the face's base for inline text)."""
    src = data.get("source")
    if not isinstance(src, dict):
        return
    workdir = src.get("workdir")
    if workdir is None:
        src["workdir"] = str(spec_dir)
    elif isinstance(workdir, str) and not Path(workdir).is_absolute():
        src["workdir"] = str((spec_dir / workdir).resolve())


def merge_options(data: dict[str, Any], options: JobOptions, origin: str = "spec") -> dict[str, Any]:
    """The spec mapping with the options applied (parameters and resources merged key by key)."""
    merged = dict(data)
    for key in ("parameters", "resources"):  # merged key by key below: must be mappings first
        if not isinstance(merged.get(key) or {}, dict):
            raise DLWError(f"{origin}: {key}: expected a mapping, got {type(merged[key]).__name__}")
    for key, value in options.spec_overrides().items():
        if key in ("parameters", "resources"):
            merged[key] = {**(merged.get(key) or {}), **value}
        elif key == "source":  # extra files add to the spec's own, once each
            source = dict(merged.get("source") or {})
            known = list(source.get("files") or [])
            source["files"] = [*known, *(f for f in value["files"] if f not in known)]
            merged[key] = source
        else:
            merged[key] = value
    if not merged.get("name"):
        merged["name"] = default_name(_entry_of(merged) or "job")
    return merged


def _entry_of(data: dict[str, Any]) -> str | None:
    src = data.get("source") or {}
    return src.get("notebook") or src.get("script") if isinstance(src, dict) else None


def submit(spec: TrainingJob, backend: Backend | None = None, rerun_of: JobInfo | None = None,
           provenance: dict[str, Any] | None = None) -> JobInfo:
    """Snapshot, convert, (build) and hand the job to the backend; returns once it is queued.

    With ``rerun_of``, the earlier job's kept snapshot is reused instead of reading the sources again.
    ``provenance`` adds (None: removes) keys of the job's provenance, e.g. the experiment of a trial.
    """
    from . import snapshot

    backend = backend or get_backend()
    backend.check_name_free(spec.name)
    user = current_user()
    if spec.resources.gpus:  # the admin's GPU-hour budget: refused past it, warned near it
        from .usage import enforce_budget

        warning = enforce_budget(backend, user, time.time())
        if warning:
            sys.stderr.write(f"dlw: {warning}\n")
    old_snapshot = backend.snapshot_of(rerun_of.name) if rerun_of else None
    staging = backend.staging_dir(spec)
    try:
        if old_snapshot is not None and rerun_of is not None:
            prepared = snapshot.copy_of(spec, old_snapshot, staging, user, rerun_of.provenance)
            prepared.provenance["rerun_of"] = rerun_of.name
        else:
            prepared = snapshot.prepare(spec, staging, user)
        for key, value in (provenance or {}).items():
            if value is None:
                prepared.provenance.pop(key, None)
            else:
                prepared.provenance[key] = value
        if spec.build.enabled:
            from .build import build_image

            prepared.image = build_image(prepared, backend)
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


def list_jobs(backend: Backend | None = None, tag: str | None = None) -> list[JobInfo]:
    """The user's jobs; with ``tag``, only those tagged so."""
    jobs = (backend or get_backend()).list_jobs()
    return [j for j in jobs if tag in job_tags(j)] if tag else jobs


def job_tags(job: JobInfo) -> list[str]:
    """A job's tags (its provenance carries them in listings, its spec in details)."""
    return list(job.provenance.get("tags") or job.spec.get("tags") or [])


def list_page(backend: Backend | None = None, limit: int | None = None, offset: int = 0,
              tag: str | None = None) -> tuple[list[JobInfo], int]:
    """(one page of the user's jobs, newest first; how many there are in all; with ``tag``, of those tagged
    so). The local backend pages in SQLite; another backend, or a tag filter, lists everything and is cut here."""
    backend = backend or get_backend()
    paged = getattr(backend, "list_page", None)
    if paged is not None and not tag:
        result: tuple[list[JobInfo], int] = paged(limit, offset)
        return result
    jobs = list_jobs(backend, tag)
    return jobs[offset: None if limit is None else offset + limit], len(jobs)


def get_job(name: str, backend: Backend | None = None, details: bool = True) -> JobInfo:
    """One job; with ``details`` also the metrics it logged and its executed notebook (which read its
    files, or on Kubernetes its pods' logs: callers that only need the state leave them out)."""
    backend = backend or get_backend()
    job = backend.get(name)
    return add_details(job, backend) if details else job


def add_details(job: JobInfo, backend: Backend | None = None) -> JobInfo:
    """Fill in ``job``'s metrics and executed notebook."""
    backend = backend or get_backend()
    job.metrics = backend.metrics(job)
    job.executed_notebook = backend.executed_notebook(job)
    return job


def executed_html(name: str, backend: Backend | None = None) -> Path:
    """The job's executed notebook as HTML, beside it (made by nbconvert when asked, once it is newer)."""
    backend = backend or get_backend()
    job = backend.get(name)
    notebook = backend.executed_notebook(job)
    if not notebook:
        raise NotFound(f"job {name} has no executed notebook on this machine (yet)")
    return notebook_html(Path(notebook))


def output_zip(name: str, out: BinaryIO, backend: Backend | None = None) -> int:
    """Write the job's output folder to ``out`` as one zip (files under ``<name>/``); returns the file count."""
    backend = backend or get_backend()
    job = backend.get(name)
    if not job.output_dir or not Path(job.output_dir).is_dir():
        raise NotFound(f"job {name} has no output folder on this machine")
    return write_zip(Path(job.output_dir), out, name)


def events(name: str, backend: Backend | None = None) -> list[dict[str, Any]]:
    """Cluster events of the job and its pods (none locally); NotFound for an unknown job."""
    backend = backend or get_backend()
    backend.get(name)
    return backend.events(name)


def cancel(name: str, backend: Backend | None = None) -> JobInfo:
    return (backend or get_backend()).cancel(name)


def delete(name: str, backend: Backend | None = None) -> None:
    """Forget a finished job and remove its files."""
    (backend or get_backend()).delete(name)


def logs(
    name: str, rank: int | None = None, follow: bool = False, offset: int = 0, backend: Backend | None = None
) -> Iterator[LogChunk]:
    return (backend or get_backend()).logs(name, rank=rank, follow=follow, offset=offset)


def log_lines(
    name: str, rank: int | None = None, follow: bool = False, backend: Backend | None = None
) -> Iterator[tuple[int, str]]:
    """Whole lines as (rank, line-with-newline); partial lines are held back until complete or the end."""
    for r, block in _log_blocks(name, rank, follow, backend):
        # StringIO's line iterator splits in C, on "\n" only: twice as fast as str.split for big chunks.
        for line in io.StringIO(block, newline="\n"):
            yield r, line


LONG_LINE = 1 << 20


def _log_blocks(name: str, rank: int | None, follow: bool, backend: Backend | None) -> Iterator[tuple[int, str]]:
    """(rank, whole lines) per chunk read; a rank's partial last line waits for its end or the log's end,
    but a line longer than ``LONG_LINE`` is shown in pieces of that size (a log without newlines would
    otherwise be held whole, and copied once per chunk)."""
    pending: dict[int, str] = {}
    for chunk in logs(name, rank=rank, follow=follow, backend=backend):
        text = pending.pop(chunk.rank, "") + chunk.text
        end = text.rfind("\n") + 1
        if len(text) - end >= LONG_LINE:
            text, end = text + "\n", len(text) + 1
        if end < len(text):
            pending[chunk.rank] = text[end:]
        if end:
            yield chunk.rank, text[:end]
    for r, rest in sorted(pending.items()):
        yield r, rest + "\n"


def printable_text(
    name: str, rank: int | None = None, follow: bool = False, backend: Backend | None = None,
    world_size: int | None = None,
) -> Iterator[str]:
    """Log text ready to print, in blocks of whole lines as they are read: ``[rank N]``-prefixed when all
    ranks of a multi-rank job are shown, and terminal-safe (a rank's escape sequences cannot move the
    cursor or forge another rank's prefix); metrics lines are left out."""
    from .metrics import TAG as METRICS_TAG
    from .textsafe import is_plain, sanitize_terminal

    backend = backend or get_backend()
    if rank is not None:
        size = 1
    elif world_size is not None:
        size = world_size
    else:
        size = backend.get(name).world_size
    for r, block in _log_blocks(name, rank, follow, backend):
        prefix = rank_prefix(r, size)
        tagged = "#" in block and METRICS_TAG in block  # "#" first: a memchr, the tag's search is slower
        if not tagged and is_plain(block):  # the common case: the block as it is, all in C
            yield prefix + block[:-1].replace("\n", "\n" + prefix) + "\n" if prefix else block
            continue
        text = "".join(prefix + sanitize_terminal(line) for line in io.StringIO(block, newline="\n")
                       # metrics lines are for `dlw status` and the charts, not for reading
                       if not line.startswith(METRICS_TAG))
        if text:
            yield text


def printable_lines(
    name: str, rank: int | None = None, follow: bool = False, backend: Backend | None = None,
    world_size: int | None = None,
) -> Iterator[str]:
    """``printable_text`` line by line."""
    for text in printable_text(name, rank, follow, backend, world_size):
        yield from io.StringIO(text, newline="\n")


def watch(
    name: str,
    backend: Backend | None = None,
    *,
    follow: bool = False,
    on_text: Callable[[str], None] | None = None,
    on_change: Callable[[JobInfo], None] | None = None,
    world_size: int | None = None,
) -> JobInfo:
    """Follow-then-wait: with ``follow``, the logs (whole lines, prefixed, as ``printable_text`` gives them:
    one write and flush per block, not per line) go to ``on_text`` until the job ends and its logs are
    drained; then wait for the final state, calling ``on_change`` on each poll."""
    backend = backend or get_backend()
    if follow:
        for text in printable_text(name, follow=True, backend=backend, world_size=world_size):
            if on_text is not None:
                on_text(text)
    return wait(name, backend=backend, on_change=on_change)


# How long `wait` (and so `dlw train --wait`, `%dlw ... --wait`) rides out a backend it cannot reach.
UNAVAILABLE_SECONDS = 300.0


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
    away_since: float | None = None
    while True:
        try:
            job = backend.get(name)
            away_since = None
        except Unavailable:
            # A restarting API server is no reason to give up on a job; a server away for minutes is.
            away_since = away_since or time.monotonic()
            if time.monotonic() - away_since > UNAVAILABLE_SECONDS:
                raise
            time.sleep(1.0)
            continue
        if on_change:
            on_change(job)
        if job.state.finished or (deadline is not None and time.monotonic() > deadline):
            return job
        # Poll at about a twentieth of the time waited so far: short jobs are seen finishing within a
        # few hundredths of a second, long ones cost one query a second.
        time.sleep(min(max(interval, (time.monotonic() - start) / 20), 1.0))


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
    from .engines.objects import render_yaml

    with tempfile.TemporaryDirectory(prefix="dlw-render-") as tmp:
        prepared = snapshot.prepare(spec, Path(tmp), current_user())
        return render_yaml(prepared, engine=engine or spec.engine, workspace=workspace)
