"""Pipeline stage 1: freeze what will run into the job's own folder.

The user's notebook is only read. The snapshot holds the notebook copy, the converted ``main.py``,
the extra files matched by ``source.files`` and the resolved ``job.yaml``; its hash goes into the
job's provenance so two runs can be compared.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from . import settings
from .errors import DiskFull, DLWError
from .spec import TrainingJob
from .types import PreparedJob

SCRIPT_NAME = "main.py"
MAX_SNAPSHOT_BYTES = 512 * 1024 * 1024


def source_paths(spec: TrainingJob) -> tuple[Path, Path]:
    """(workdir, entry file) as absolute paths; raises DLWError when the entry file is missing."""
    src = spec.source
    entry = Path(src.notebook or src.script or "")
    workdir = Path(src.workdir) if src.workdir else (Path.cwd() / entry).parent
    if not entry.is_absolute():
        entry = (Path.cwd() / entry) if src.workdir is None else (workdir / entry)
    entry = entry.resolve()
    if not entry.is_file():
        kind = "notebook" if src.notebook else "script"
        if entry.exists():  # a folder, a device such as /dev/zero, a pipe
            raise DLWError(f"source.{kind}: {src.notebook or src.script!r} is not a regular file")
        raise DLWError(f"{src.notebook or src.script}: {kind} not found")
    return workdir.resolve(), entry


def _job_data_dirs() -> list[Path]:
    """Where jobs keep their snapshots and outputs: never shipped again when it lies in the folder."""
    from .backends.local.backend import data_dir

    return [data_dir().resolve()]


def _resolve(path: Path, pattern: str) -> Path:
    try:
        return path.resolve()
    except (RuntimeError, OSError):  # a symlink loop (RuntimeError before Python 3.13)
        raise DLWError(f"source.files: {pattern!r}: {path.name} is a symlink loop") from None


def _inside(path: Path, root: Path, pattern: str = "") -> bool:
    resolved = _resolve(path, pattern or str(path))
    return resolved == root or root in resolved.parents


def _file_size(path: Path, rel: str, pattern: str) -> int:
    """Bytes ``path`` adds to the snapshot (its size, sparse or not: refused before anything is copied);
    a pipe, socket or device is refused rather than read forever."""
    import stat

    try:
        st = path.stat()
    except OSError as err:
        raise DLWError(f"source.files: {pattern!r}: cannot read {rel} ({err.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise DLWError(f"source.files: {pattern!r}: {rel} is not a regular file (a pipe, socket or device)")
    return st.st_size


def _check_size(total: int, pattern: str) -> None:
    if total > MAX_SNAPSHOT_BYTES:
        raise DLWError(f"source.files: {pattern!r}: the files are over {MAX_SNAPSHOT_BYTES >> 20} MiB: "
                       "ship data as a volume")


def _check_tree(src: Path, workdir: Path, pattern: str) -> int:
    """Every symlink under ``src`` must stay inside ``workdir`` and must not lead back up (a loop); every
    file must be a regular one. Returns the bytes under ``src``."""
    total = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=False):
        for name in filenames:
            path = Path(dirpath) / name
            if path.is_symlink() and not _inside(path, workdir, pattern):
                continue  # reported below with the link's name
            total += _file_size(path, str(path.relative_to(workdir)), pattern)
        for name in (*dirnames, *filenames):
            path = Path(dirpath) / name
            if not path.is_symlink():
                continue
            target = _resolve(path, pattern)
            if not _inside(path, workdir):
                raise DLWError(f"source.files: {pattern!r}: {path.relative_to(workdir)} links outside the "
                               f"working directory {workdir}")
            if target.is_dir() and (target == path.parent or target in path.parents):
                raise DLWError(f"source.files: {pattern!r}: {path.relative_to(workdir)} links to a folder above it")
    return total


def _copy_files(patterns: list[str], workdir: Path, dest: Path) -> list[str]:
    """Copy what ``source.files`` matches; nothing outside ``workdir``, symlinks included."""
    copied: list[str] = []
    total = 0
    skip = _job_data_dirs()  # also reached through the lab's dlw-outputs/ links
    for pattern in patterns:
        if Path(pattern).is_absolute() or ".." in Path(pattern).parts or "\0" in pattern:
            raise DLWError(f"source.files: {pattern!r} must be a relative path inside the working directory")
        matches = sorted(glob.glob(pattern, root_dir=workdir, recursive=True))
        if not matches:
            raise DLWError(f"source.files: {pattern!r} matches no file in {workdir}")
        for rel in matches:
            src = workdir / rel
            real = _resolve(src, pattern)
            if any(d == real or d in real.parents for d in skip):
                continue  # earlier jobs' snapshots and outputs
            if not _inside(src, workdir, pattern):
                raise DLWError(f"source.files: {rel!r} links outside the working directory {workdir}")
            target = dest / rel
            if src.is_dir():
                if "**" in pattern:
                    continue  # a recursive pattern matches the files below it one by one (hidden ones not)
                total += _check_tree(src, workdir, pattern)
                _check_size(total, pattern)
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                total += _file_size(src, rel, pattern)
                _check_size(total, pattern)
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, target)
            copied.append(rel)
    return copied


def tree_hash(root: Path) -> str:
    """sha256 over file names and contents: equal for equal code (job.yaml, which names the job, left out)."""
    h = hashlib.sha256()
    total = 0
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name != "job.yaml"):
        data = path.read_bytes()
        total += len(data)
        if total > MAX_SNAPSHOT_BYTES:
            raise DLWError(f"snapshot of {root} is over {MAX_SNAPSHOT_BYTES >> 20} MiB: ship data as a volume")
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(data).digest())
    return "sha256:" + h.hexdigest()


def git_commit(folder: Path) -> str | None:
    """The commit of the repository holding ``folder`` (with '+dirty' when it has changes), if any."""
    try:
        out = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if out.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=5,
        ).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def current_image() -> str | None:
    """The image this notebook runs in: set by the hub (DLW_IMAGE) or by the image itself (JUPYTER_IMAGE)."""
    return settings.current().image


def prepare(spec: TrainingJob, dest: Path, user: str) -> PreparedJob:
    """Write the snapshot of ``spec`` into the empty folder ``dest``."""
    try:
        return _prepare(spec, dest, user)
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the disk holding {dest} is full: free some space and submit again") from None
        if isinstance(err, shutil.Error) or err.filename:
            raise DLWError(f"snapshot: cannot copy {err.filename or ''} ({err.strerror or err})") from None
        raise


def _prepare(spec: TrainingJob, dest: Path, user: str) -> PreparedJob:
    workdir, entry = source_paths(spec)
    dest.mkdir(parents=True, exist_ok=True)
    provenance: dict[str, Any] = {"workdir": str(workdir), "git_commit": git_commit(entry.parent),
                                  "python": platform.python_version()}  # for `dlw diff`
    if spec.tags:  # in the provenance, which job listings carry (the spec is for one job's details)
        provenance["tags"] = list(spec.tags)
    _copy_files(spec.source.files, workdir, dest)
    if spec.source.notebook:
        from .convert import convert_notebook

        converted = convert_notebook(entry, spec.parameters)
        shutil.copy2(entry, dest / entry.name)
        (dest / SCRIPT_NAME).write_text(converted.script, encoding="utf-8")
        entrypoint = ["python", "-m", "dlw_magic.launch", SCRIPT_NAME]
        provenance.update(notebook=str(entry), parameters=converted.parameters, conversion_notes=converted.notes)
    else:
        if spec.parameters:
            raise DLWError("parameters: only a notebook source takes parameters (pass script args instead)")
        if entry.parent != workdir and workdir not in entry.parents:
            raise DLWError(f"source.script: {entry} is outside the working directory {workdir}")
        rel = entry.relative_to(workdir).as_posix()
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(entry, target)
        entrypoint = ["python", rel, *spec.source.args]
        provenance.update(script=str(entry), parameters={})
    image = spec.image or current_image()
    provenance["image"] = image
    (dest / "job.yaml").write_text(yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False), encoding="utf-8")
    digest = tree_hash(dest)
    provenance["snapshot_hash"] = digest
    return PreparedJob(
        spec=spec, user=user, snapshot_dir=dest, entrypoint=entrypoint,
        snapshot_hash=digest, provenance=provenance, image=image,
    )


def copy_of(spec: TrainingJob, old_snapshot: Path, dest: Path, user: str, old: dict[str, Any]) -> PreparedJob:
    """A snapshot identical to an earlier job's (``dlw rerun``): same code, whatever the user edited since."""
    if not old_snapshot.is_dir() or "entrypoint" not in old:
        raise DLWError(f"rerun: the earlier job's snapshot {old_snapshot} is gone (deleted or moved); "
                       "submit the notebook again with dlw train")
    shutil.copytree(old_snapshot, dest, dirs_exist_ok=True)
    (dest / "job.yaml").write_text(yaml.safe_dump(spec.to_yaml_dict(), sort_keys=False), encoding="utf-8")
    provenance = {k: v for k, v in old.items() if k not in ("pip_freeze", "entrypoint")}
    provenance["python"] = platform.python_version()  # same code, this environment
    provenance["snapshot_hash"] = digest = tree_hash(dest)
    return PreparedJob(
        spec=spec, user=user, snapshot_dir=dest, entrypoint=list(old["entrypoint"]),
        snapshot_hash=digest, provenance=provenance, image=old.get("image"),
    )
