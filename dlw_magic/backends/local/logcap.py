"""Each rank's output, copied from a pipe to ``logs/rank-N.log`` up to a cap, with when it was written.

A rank printing without end must not fill the disk, and a full disk must not go unexplained: past the
cap (``DLW_LOG_MAX_BYTES``, default 1 GiB per rank) the output is dropped and the log says so once;
when the disk is full the runner notes it, keeps draining the pipe (a blocked rank would hang) and
the job's record names the reason.

Beside each log, ``logs/rank-N.times`` records when its bytes were written: 16-byte records (byte
offset in the log, Unix time), one per piece read from the pipe but at most one every ``MARK_EVERY``
seconds, each written before the bytes it dates (no fsync). ``WriteTimes`` reads them back, so the
"all ranks" view merges the ranks' output in the order it was written (``LocalBackend.logs``). The log
itself stays plain text: reading one rank costs what it did.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import struct
import threading
import time
from array import array
from pathlib import Path

from ... import settings

_CHUNK = 1 << 16
MARK_EVERY = 0.005  # seconds: a rank printing a line per millisecond costs one record per five
_RECORD = struct.Struct("=Qd")  # (offset, time), native order: array("Q") and array("d") read it back


def times_path(log: Path) -> Path:
    """``rank-N.times`` beside ``rank-N.log``."""
    return log.with_suffix(".times")


def log_cap() -> int:
    return settings.current().log_max_bytes


class RankLog:
    def __init__(self, path: Path, rank: int, cap: int):
        self.path = path
        self.rank = rank
        self.cap = cap
        try:  # before the log: a log never has bytes its times file could not date
            self.times_fd = os.open(times_path(path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            self.times_fd = -1
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.offset = os.fstat(self.fd).st_size  # the next byte's place in the log (attempts append)
        self.marked = -MARK_EVERY
        self.written = self.offset  # the cap is the job's, not each attempt's: earlier attempts count
        self.dropped = 0
        self.disk_full = False
        self._thread: threading.Thread | None = None
        self._read_fd = -1

    def note(self, text: str) -> None:
        """A line of DLW's own (attempt headers, drop markers); best effort."""
        self._mark()
        with contextlib.suppress(OSError):
            self.offset += os.write(self.fd, text.encode())

    def _mark(self) -> None:
        """Date the bytes about to be written (unless the last record is recent enough to cover them)."""
        now = time.time()
        if now - self.marked < MARK_EVERY or self.times_fd < 0:
            return
        self.marked = now
        with contextlib.suppress(OSError):  # undated bytes take the previous record's time
            os.write(self.times_fd, _RECORD.pack(self.offset, now))

    def start(self, read_fd: int) -> None:
        self._read_fd = read_fd
        thread = threading.Thread(target=self._pump, name=f"dlw-rank-{self.rank}-log", daemon=True)
        thread.start()  # may fail (no thread left): close() must then not join it and hide the real error
        self._thread = thread

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
        room = max(self.cap - self.written, 0)
        part = data[:room] if room < len(data) else data
        self._mark()
        try:
            view = memoryview(part)
            while view:
                n = os.write(self.fd, view)
                view = view[n:]
                self.written += n
                self.offset += n
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
        if self.times_fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.times_fd)


class WriteTimes:
    """When the bytes of one rank's log were written, from its ``.times`` file, read as it grows."""

    def __init__(self, path: Path):
        self.path = path
        self.offsets: array[int] = array("Q")
        self.times: array[float] = array("d")
        self.read_upto = 0  # bytes of the times file taken so far (whole records)

    def refresh(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.read_upto)
                data = f.read()
        except OSError:
            return  # no times file (a log from before them): its bytes take time 0
        data = data[:len(data) - len(data) % _RECORD.size]  # a record being written is read next time
        if data:
            self.read_upto += len(data)
            self.offsets.extend(array("Q", data)[0::2])
            self.times.extend(array("d", data)[1::2])

    def pieces(self, start: int, data: bytes) -> list[tuple[float, int, bytes]]:
        """``data`` (the log's bytes from offset ``start``) cut where its records say, as (time written,
        offset after the piece, bytes); bytes before the first record take time 0."""
        self.refresh()
        offsets, end = self.offsets, start + len(data)
        i = bisect.bisect_right(offsets, start)  # the first record after ``start``
        time_now = self.times[i - 1] if i else 0.0
        out = []
        at = start
        while i < len(offsets) and offsets[i] < end:
            cut = offsets[i]
            if cut > at:
                out.append((time_now, cut, data[at - start:cut - start]))
                at = cut
            time_now = self.times[i]
            i += 1
        out.append((time_now, end, data[at - start:]))
        return out
