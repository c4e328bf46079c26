"""A job's outcome kept in its own folder, so a locked database or a full disk cannot lose it.

The runner reserves ``outcome.json`` (a fixed-size file of blanks) when it starts and overwrites it in
place when the job ends: writing needs no new disk block. Readers that find the runner gone take the
outcome from here before they consider the job lost (``LocalBackend.reconcile``).
"""

from __future__ import annotations

import errno
import json
import os
import time
from pathlib import Path
from typing import Any

FILE = "outcome.json"
SIZE = 4096
DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def reserve(job_dir: Path) -> None:
    fd = os.open(job_dir / FILE, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, b" " * SIZE)
        os.fsync(fd)
    finally:
        os.close(fd)


def write(job_dir: Path, state: str, exit_code: int | None, reason: str | None, message: str | None) -> bool:
    """Overwrite the reserved file with the outcome; False when it could not be written."""
    # when it ended, so a reader that records it later does not stretch the job's duration to its own time
    record: dict[str, Any] = {"state": state, "exit_code": exit_code, "reason": reason, "message": message,
                              "finished": time.time()}
    data = json.dumps(record).encode()
    if len(data) > SIZE:
        record["message"] = (message or "")[: SIZE // 2] + "..."
        data = json.dumps(record).encode()[:SIZE]
    try:
        fd = os.open(job_dir / FILE, os.O_WRONLY)
    except OSError:
        return False
    try:
        os.pwrite(fd, data.ljust(SIZE), 0)
        os.fsync(fd)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def read(job_dir: Path | str) -> dict[str, Any] | None:
    """The recorded outcome, or None when the runner ended without one."""
    try:
        data = (Path(job_dir) / FILE).read_bytes().strip()
    except OSError:
        return None
    if not data:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) and isinstance(record.get("state"), str) else None
