"""Logs over HTTP: pages of a finished read, and a bridge from a followed log into the event loop.

``read_page`` bounds an answer without ``follow`` (a 150 MB log must not become one JSON body). For
``follow``, a thread drains the iterator into a bounded buffer; the handler takes everything pending at once and
merges consecutive pieces of one rank, so a job printing 100,000 short lines becomes a few hundred
events instead of 100,000 writes and flushes. The bound makes a slow client slow the reader, never
grow memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator

from ..backends import LogChunk
from ..errors import DLWError

MAX_PENDING_CHARS = 4 * 1024 * 1024
PAGE_CHARS = 1024 * 1024
MAX_PAGE_CHARS = 16 * 1024 * 1024


def read_page(chunks: Iterator[LogChunk], max_chars: int) -> tuple[list[LogChunk], dict[int, int], bool]:
    """Whole chunks up to about ``max_chars`` of text (at least one), each rank's next offset, and
    whether more remains. The iterator is closed either way."""
    page: list[LogChunk] = []
    after: dict[int, int] = {}
    size = 0
    try:
        for chunk in chunks:
            if page and size + len(chunk.text) > max_chars:
                return page, after, True
            page.append(chunk)
            after[chunk.rank] = chunk.offset
            size += len(chunk.text)
        return page, after, False
    finally:
        close = getattr(chunks, "close", None)
        if close is not None:
            close()


class LogPump:
    def __init__(self, open_iter: Callable[[], Iterator[LogChunk]], loop: asyncio.AbstractEventLoop):
        self._open_iter = open_iter
        self._loop = loop
        self._cond = threading.Condition()
        self._pending: list[LogChunk] = []
        self._pending_chars = 0
        self._wake = asyncio.Event()
        self._stop = threading.Event()
        self.done = False
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="dlw-log-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """The client went away: let the reader thread finish at its next chunk."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()

    def _notify(self) -> None:
        self._loop.call_soon_threadsafe(self._wake.set)

    def _run(self) -> None:
        it: Iterator[LogChunk] | None = None
        try:
            it = self._open_iter()
            for chunk in it:
                with self._cond:
                    while self._pending_chars > MAX_PENDING_CHARS and not self._stop.is_set():
                        self._cond.wait(0.5)
                    if self._stop.is_set():
                        break
                    was_empty = not self._pending
                    self._pending.append(chunk)
                    self._pending_chars += len(chunk.text)
                if was_empty:
                    self._notify()
        except DLWError as err:
            self.error = str(err)
        except Exception as err:  # a backend bug must end the stream with a message, not hang it
            self.error = f"log stream failed: {type(err).__name__}: {err}"
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):  # already ending; the generator's cleanup is best effort
                    close()
            self.done = True
            self._notify()

    async def next_batch(self, timeout: float, max_chars: int) -> list[LogChunk] | None:
        """Merged chunks pending now (waiting up to ``timeout``); [] on timeout, None when finished."""
        if not self._pending and not self.done:
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                return []
        self._wake.clear()
        with self._cond:
            taken, self._pending = self._pending, []
            self._pending_chars = 0
            self._cond.notify_all()
        if not taken:
            return None if self.done else []
        return merge_chunks(taken, max_chars)


def merge_chunks(chunks: list[LogChunk], max_chars: int) -> list[LogChunk]:
    """Join consecutive chunks of the same rank, up to ``max_chars`` of text per result."""
    out: list[LogChunk] = []
    parts: list[str] = []
    size = 0
    rank = offset = -1
    for c in chunks:
        if parts and (c.rank != rank or size + len(c.text) > max_chars):
            out.append(LogChunk(rank=rank, text="".join(parts), offset=offset))
            parts, size = [], 0
        parts.append(c.text)
        size += len(c.text)
        rank, offset = c.rank, c.offset
    if parts:
        out.append(LogChunk(rank=rank, text="".join(parts), offset=offset))
    return out
