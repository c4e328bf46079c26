"""Experiment records: one folder per experiment beside the local job records, owner-only.

    <data dir>/experiments/<name>/record.json   the experiment: spec, backend, trials and their states
    <data dir>/experiments/<name>/lock          flock'ed by whoever advances the experiment
    <data dir>/experiments/<name>/source/       the notebook as it was when the sweep started
    <data dir>/experiments/<name>/runner.log    the detached runner's own errors

The record is replaced atomically (write, fsync, rename): a reader never sees half of one, and a crash
leaves the last whole one. Only the holder of the lock writes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import Conflict, DLWError, NotFound

RECORD = "record.json"
TRIAL_ACTIVE = ("Queued", "Running")
TRIAL_FINAL = ("Succeeded", "Failed", "Cancelled", "Stopped")


def root() -> Path:
    from ..backends.local.backend import data_dir

    return data_dir() / "experiments"


def folder(name: str) -> Path:
    return root() / name


def create(record: dict[str, Any]) -> Path:
    """A new experiment's folder with its first record; Conflict when the name is taken."""
    base = root()
    base.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = base / record["name"]
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        raise Conflict(f"experiment {record['name']!r} already exists (pick another --name, or see: "
                       f"dlw sweep status {record['name']})") from None
    save(path, record)
    return path


def save(path: Path, record: dict[str, Any]) -> None:
    record["updated"] = time.time()
    tmp = path / f".{RECORD}.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        json.dump(record, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path / RECORD)


def load(name: str) -> dict[str, Any]:
    path = folder(name) / RECORD
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
            return data
    except FileNotFoundError:
        raise NotFound(f"no experiment named {name!r} (list them with: dlw experiments)") from None
    except (OSError, ValueError) as err:
        raise DLWError(f"{path}: cannot read the experiment record ({err})") from None


def names() -> list[str]:
    try:
        return sorted(e.name for e in os.scandir(root()) if (Path(e.path) / RECORD).is_file())
    except FileNotFoundError:
        return []


@contextlib.contextmanager
def locked(name: str, wait: float = 30.0) -> Iterator[dict[str, Any] | None]:
    """The record, held for writing: saved when the block ends without an error.

    Yields None when another process still holds it after ``wait`` seconds (0: do not wait)."""
    load(name)  # NotFound first
    path = folder(name)
    fd = os.open(path / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield None
                    return
                time.sleep(0.02)
        record = load(name)
        yield record
        save(path, record)
    finally:
        os.close(fd)  # releases the lock


def remove(name: str) -> None:
    import shutil

    shutil.rmtree(folder(name), ignore_errors=True)
