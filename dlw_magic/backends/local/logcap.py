"""Each rank's output, copied from a pipe to ``logs/rank-N.log`` up to a cap.

A rank printing without end must not fill the disk, and a full disk must not go unexplained: past the
cap (``DLW_LOG_MAX_BYTES``, default 1 GiB per rank) the output is dropped and the log says so once;
when the disk is full the runner notes it, keeps draining the pipe (a blocked rank would hang) and
the job's record names the reason.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from pathlib import Path

DEFAULT_CAP = 1 << 30
_CHUNK = 1 << 16


def log_cap() -> int:
    raw = os.environ.get("DLW_LOG_MAX_BYTES", "")
    try:
        value = int(raw)
    except ValueError:
        return DEFAULT_CAP
    return value if value > 0 else DEFAULT_CAP


class RankLog:
    def __init__(self, path: Path, rank: int, cap: int):
        self.path = path
        self.rank = rank
        self.cap = cap
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.written = 0
        self.dropped = 0
        self.disk_full = False
        self._thread: threading.Thread | None = None
        self._read_fd = -1

    def note(self, text: str) -> None:
        """A line of DLW's own (attempt headers, drop markers); best effort."""
        with contextlib.suppress(OSError):
            os.write(self.fd, text.encode())

    def start(self, read_fd: int) -> None:
        self._read_fd = read_fd
        self._thread = threading.Thread(target=self._pump, name=f"dlw-rank-{self.rank}-log", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        fd = self._read_fd
        try:
            while True:
                try:
                    data = os.read(fd, _CHUNK)
                except InterruptedError:
                    continue
                if not data:
                    return
                self._keep(data)
        finally:
            os.close(fd)

    def _keep(self, data: bytes) -> None:
        if self.dropped or self.disk_full:
            self.dropped += len(data)
            return
        room = self.cap - self.written
        part = data[:room] if room < len(data) else data
        try:
            view = memoryview(part)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
                self.written += n
        except OSError as err:
            self.dropped += len(data)
            if err.errno not in (errno.ENOSPC, errno.EDQUOT):
                return  # the log was closed under us (a process that escaped the group): drop the rest
            self.disk_full = True
            self.note(f"\n[dlw: the disk is full; output of rank {self.rank} from here on was dropped]\n")
            return
        if len(part) < len(data):
            self.dropped += len(data) - len(part)
            self.note(
                f"\n[dlw: rank {self.rank} wrote more than the log cap of {self.cap} bytes "
                "(DLW_LOG_MAX_BYTES); output from here on was dropped]\n"
            )

    def close(self, timeout: float) -> None:
        """Wait for the pipe to drain (every writer gone); a process that escaped the group is left."""
        if self._thread is not None:
            self._thread.join(timeout)
        if self.dropped and not self.disk_full:
            self.note(f"[dlw: {self.dropped} bytes of rank {self.rank}'s output dropped]\n")
        with contextlib.suppress(OSError):
            os.close(self.fd)
