"""Logs of every rank: read once, or followed while the job runs (new and restarted pods included).

A pod's rank comes from the labels its engine's controller sets; with several processes per pod
(torchrun) a pod's log holds all of its local ranks and is reported under the pod's first rank.

Each pod's bootstrap also keeps its output in ``<output dir>/.dlw-logs/<job id>/rank-<N>.log``
(``render/bootstrap.py``); where this process sees that folder (a home volume shared with the jobs),
a rank whose pod is gone (evicted, deleted with the job) is read from there.
"""

from __future__ import annotations

import codecs
import contextlib
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from kubernetes.client.exceptions import ApiException

from ...engines.base import Engine
from ...errors import Unavailable
from ..base import LogChunk
from .api import Api

POLL_SECONDS = 1.0
REOPEN_SECONDS = 1.0  # between a broken log stream and the next try
SETTLE_LOOKS = 5  # a stream the server ended is reopened if its container still runs after this many looks
# A quiet log is no fault, so a followed stream's body has no read limit (a day); a half-open one (the API
# server, a proxy or a NAT dropped it without closing it) is found by ``_Watchdog``: a stream silent for
# DLW_K8S_SILENCE_SECONDS while the pod's log has grown is cut and reopened, from a new connection.
FOLLOW_READ_SECONDS = 86400.0
# Once the job is finished, a stream still open and silent this long is cut and read again (a finished
# container's stream ends by itself): what the pod's log holds past what was passed on comes from a new one.
DONE_QUIET_SECONDS = 5.0
# Once the job is finished, how long (plus DLW_K8S_SILENCE_SECONDS) its pods' streams may take to end: a stream
# that cannot be read again (the node is gone) is given up then, not waited on for ever.
DRAIN_SECONDS = 30.0
RECENT_BYTES = 4096  # of the bytes a stream passed on, what the watchdog compares with the pod log's last line
SAVED_LOGS_DIR = ".dlw-logs"  # inside DLW_OUTPUT_DIR: the name bootstrap.py writes to
_STARTED = {"Running", "Succeeded", "Failed"}


def _started(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in _STARTED


def _newest_per_rank(engine: Engine, pods: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """A retried rank has several pods: show the newest one that has started."""
    out: dict[int, dict[str, Any]] = {}
    for pod in sorted(pods, key=lambda p: (p.get("metadata") or {}).get("creationTimestamp") or ""):
        if _started(pod):
            out[engine.pod_rank(pod)] = pod
    return out


def saved_logs_dir(home: Path, name: str, job_id: str | None) -> Path | None:
    """The job's saved-log folder under the home mount; without a job id (the job object is gone), the
    newest one of that name."""
    from ...render.code import HOME_JOBS_DIR

    folder = home / HOME_JOBS_DIR / name / "output" / SAVED_LOGS_DIR
    if job_id:
        return folder / job_id
    runs = [p for p in folder.glob("*") if p.is_dir()] if folder.is_dir() else []
    return max(runs, key=lambda p: p.stat().st_mtime) if runs else None


def saved_ranks(folder: Path | None) -> dict[int, Path]:
    """The rank logs the pods' bootstrap kept in ``folder`` (rank -> file)."""
    if folder is None or not folder.is_dir():
        return {}
    out: dict[int, Path] = {}
    for path in folder.glob("rank-*.log"):
        tail = path.stem.removeprefix("rank-")
        if tail.isdigit():
            out[int(tail)] = path
    return out


def _chunk(r: int, data: bytes, offset: int) -> LogChunk | None:
    data = data[offset:] if offset else data
    return LogChunk(rank=r, text=data.decode("utf-8", errors="replace"), offset=offset + len(data)) if data else None


def read_saved(saved: Path | None, rank: int | None, offset: int) -> Iterator[LogChunk]:
    """The saved rank logs alone: the job object and its pods are gone."""
    for r, path in sorted(saved_ranks(saved).items()):
        if rank is None or r == rank:
            chunk = _chunk(r, path.read_bytes(), offset)
            if chunk:
                yield chunk


def read_logs(
    api: Api, namespace: str, engine: Engine, pods: list[dict[str, Any]],
    rank: int | None, offset: int, saved: Path | None = None,
) -> Iterator[LogChunk]:
    """Every rank's log from its newest started pod; from the saved file when the pod is gone or unreadable.
    All ranks of a job whose pods are all there come merged in the order their lines were written."""
    live = _newest_per_rank(engine, pods)
    files = saved_ranks(saved)
    if rank is None and len(live) > 1 and set(files) <= set(live):
        merged = _merged_by_time(api, namespace, engine, live)
        if merged is not None:
            yield from merged
            return
    for r in sorted(set(live) | set(files)):
        if rank is not None and r != rank:
            continue
        data: bytes | None = None
        if r in live:
            try:
                data = api.pod_log(namespace, live[r]["metadata"]["name"], engine.container).data
            except ApiException:
                data = None  # the container has not started or its node is gone
        if data is None and r in files:
            try:
                data = files[r].read_bytes()
            except OSError:
                data = None
        chunk = _chunk(r, data, offset) if data else None
        if chunk:
            yield chunk


def _stamp_key(line: bytes) -> tuple[bytes, int] | None:
    """A sortable key of the kubelet's ``2026-01-02T03:04:05.123456789Z `` line prefix (UTC), or None."""
    stamp = line[:line.find(b" ")]
    if len(stamp) < 20 or stamp[10:11] != b"T" or not stamp.endswith(b"Z"):
        return None
    whole, _, fraction = stamp[:-1].partition(b".")
    if len(whole) != 19 or (fraction and not fraction.isdigit()):
        return None
    return whole, int(fraction.ljust(9, b"0")[:9] or b"0")


def _merged_by_time(
    api: Api, namespace: str, engine: Engine, live: dict[int, dict[str, Any]]
) -> list[LogChunk] | None:
    """Every rank's lines in the order they were written (the API's timestamps), each run of one rank's
    lines one chunk, offsets counting bytes of the pod's log; None when a pod's log has no timestamps."""
    lines: list[tuple[tuple[bytes, int], int, int, bytes]] = []
    for r, pod in sorted(live.items()):
        try:
            data = api.pod_log(namespace, pod["metadata"]["name"], engine.container, timestamps=True).data
        except ApiException:
            return None  # the container has not started or its node is gone: rank by rank, as saved
        for i, line in enumerate(data.splitlines(keepends=True)):
            key = _stamp_key(line)
            if key is None:
                return None
            lines.append((key, r, i, line[line.find(b" ") + 1:]))
    lines.sort()
    out: list[LogChunk] = []
    offsets: dict[int, int] = {}
    run: list[bytes] = []
    for n, (_, r, _, text) in enumerate(lines):
        run.append(text)
        offsets[r] = offsets.get(r, 0) + len(text)
        if n + 1 == len(lines) or lines[n + 1][1] != r:
            out.append(LogChunk(rank=r, text=b"".join(run).decode("utf-8", errors="replace"), offset=offsets[r]))
            run = []
    return out


def _pod_key(pod: dict[str, Any]) -> str:
    """A pod recreated under the same name (Volcano, PyTorchJob restarts) is another pod: tell them apart."""
    meta = pod.get("metadata") or {}
    return meta.get("uid") or f"{meta.get('name')}@{meta.get('creationTimestamp')}"


def _still_running(api: Api, namespace: str, pod: str, container: str) -> bool:
    """Whether ``container`` of ``pod`` may still write: not terminated, pod not gone (unknown: yes)."""
    try:
        obj = api.call("GET", f"/api/v1/namespaces/{namespace}/pods/{pod}") or {}
    except Unavailable:
        return True
    except Exception:  # noqa: BLE001 - gone (404) or unreadable: nothing more to follow
        return False
    if (obj.get("metadata") or {}).get("deletionTimestamp") and (obj.get("status") or {}).get("phase") in (
            "Succeeded", "Failed"):
        return False
    for status in (obj.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            return "terminated" not in (status.get("state") or {})
    return (obj.get("status") or {}).get("phase") not in ("Succeeded", "Failed")


def _runs_on(api: Api, namespace: str, pod: str, container: str, stop: threading.Event) -> bool:
    """After the server ended its log stream: whether ``container`` still runs (the server let go: reopen).
    The kubelet ends the stream when the container exits and may report the exit a moment later, so this
    asks for a few seconds before saying yes (reopening reads the whole log again)."""
    for _ in range(SETTLE_LOOKS):
        if not _still_running(api, namespace, pod, container) or stop.wait(REOPEN_SECONDS):
            return False
    return True


def _socket(resp: Any) -> socket.socket | None:
    sock = getattr(getattr(resp, "connection", None), "sock", None)
    return sock if isinstance(sock, socket.socket) else None


class _Stream:
    """One pod's followed log stream, as its pump reads it and the watchdog checks it."""

    def __init__(self, pod: str) -> None:
        self.pod = pod
        self.resp: Any = None  # the open response, None between two
        self.heard = time.monotonic()  # when the stream opened or last passed bytes on
        self.checked = 0.0  # when the watchdog last checked it
        self.suspect = 0.0  # when the watchdog found the log grown past it (0: not)
        self.recent = b""  # the last bytes passed on
        self.mark: bytes | None = None  # the pod log's last line when the stream was last found quiet
        self._lock = threading.Lock()

    def opened(self, resp: Any) -> None:
        sock = _socket(resp)
        if sock is not None:  # the answer began within the read limit; its body may be quiet for long
            sock.settimeout(FOLLOW_READ_SECONDS)
        with self._lock:
            self.resp, self.heard, self.mark, self.suspect = resp, time.monotonic(), None, 0.0

    def passed(self, data: bytes) -> None:
        self.heard, self.mark, self.suspect = time.monotonic(), None, 0.0
        self.recent = (self.recent + data)[-RECENT_BYTES:]

    def closed(self) -> None:
        with self._lock:
            self.resp = None

    def cut(self, resp: Any) -> None:
        """Make the pump's read of ``resp`` fail now (a half-open stream never ends by itself): it reopens."""
        with self._lock:
            if resp is None or resp is not self.resp:
                return  # already closed (and maybe reopened)
            sock = _socket(resp)
            if sock is not None:
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)  # wakes the blocked read (close would not)
            else:
                with contextlib.suppress(Exception):
                    resp.close()


class _Watchdog:
    """Tells a quiet log stream from a half-open one. A stream silent for ``silence`` seconds is checked
    with one small request (the pod log's last line, timestamped): when that line is not the last one the
    stream passed on, or it changed since the stream was last found quiet (the same line written again),
    the log has grown while the stream said nothing. Still silent a poll later (a live stream passes a new
    line on within milliseconds), the stream is cut and its pump reopens it, skipping what it passed on.
    Once the job is finished, a stream quiet for ``DONE_QUIET_SECONDS`` is cut at once."""

    def __init__(self, api: Api, namespace: str, container: str, streams: dict[str, _Stream],
                 stop: threading.Event, job_done: threading.Event) -> None:
        self.api, self.namespace, self.container, self.streams = api, namespace, container, streams
        self.stop, self.job_done = stop, job_done
        threading.Thread(target=self._run, daemon=True, name="dlw-log-watchdog").start()

    def _run(self) -> None:
        while not self.stop.wait(POLL_SECONDS):
            for stream in list(self.streams.values()):
                resp, now = stream.resp, time.monotonic()
                if resp is None:
                    continue
                if stream.suspect and stream.heard < stream.suspect:
                    stream.cut(resp)
                    continue
                done = self.job_done.is_set()
                quiet = min(DONE_QUIET_SECONDS, self.api.silence) if done else self.api.silence
                if now - max(stream.heard, stream.checked) < quiet:
                    continue
                stream.checked = now
                if done:
                    stream.cut(resp)
                elif self._missed(stream):
                    stream.suspect = time.monotonic()

    def _missed(self, stream: _Stream) -> bool:
        try:
            last = self.api.pod_log(self.namespace, stream.pod, self.container, timestamps=True, tail=1).data or b""
        except Exception:  # noqa: BLE001 - unreadable now (the server is away, the pod is going): look later
            return False
        text = last.partition(b" ")[2]
        if stream.mark is None:
            stream.mark = last
            return bool(text) and not stream.recent.endswith(text[-RECENT_BYTES:])
        return last != stream.mark


def follow_logs(
    api: Api, namespace: str, engine: Engine,
    poll: Callable[[], tuple[list[dict[str, Any]], bool]], rank: int | None, offset: int,
) -> Iterator[LogChunk]:
    """Stream the newest started pod of every rank from a thread each, restarted pods included; stop once
    the job is finished and drained. Offsets count bytes of the pod's log, as ``read_logs`` does."""
    chunks: queue.Queue[tuple[str, int, bytes | None]] = queue.Queue()
    streamed: set[str] = set()
    streams: dict[str, _Stream] = {}
    stop = threading.Event()
    job_done = threading.Event()  # the job has finished: a stream that the server ends is not reopened
    offsets: dict[str, int] = {}
    # Resuming at ``offset`` applies to the first pod of the rank followed (the newest when following began).
    skip: dict[str, int] = {}
    skip_pending = rank is not None and offset > 0
    # A UTF-8 character may straddle two chunks: decode each pod's bytes incrementally.
    decoders: dict[str, Any] = {}

    def pump(key: str, pod_name: str, r: int) -> None:
        stream = streams[key] = _Stream(pod_name)
        seen = 0  # bytes of this pod's log passed on; a reopened stream starts over and skips them
        try:
            while not stop.is_set():
                got = 0
                ended = False  # the server ended the stream (rather than the connection breaking)
                try:
                    resp = api.pod_log(namespace, pod_name, engine.container, follow=True)
                except ApiException as err:
                    if err.status == 404 or job_done.is_set():
                        return  # the pod is gone, or its log cannot be read (its node is gone) and no more comes
                    resp = None
                except Exception:  # noqa: BLE001 - the server is away for now: try again below
                    resp = None
                if resp is not None:
                    stream.opened(resp)
                    try:
                        for data in resp.stream(4096, decode_content=False):
                            if stop.is_set():
                                return
                            if got < seen:
                                cut = min(seen - got, len(data))
                                got, data = got + cut, data[cut:]
                                if not data:
                                    continue
                            got += len(data)
                            seen = got
                            stream.passed(data)
                            chunks.put((key, r, data))
                        ended = True
                    except Exception:  # noqa: BLE001 - a broken stream: decided below
                        pass
                    finally:
                        stream.closed()
                        with contextlib.suppress(Exception):
                            resp.close()
                if stop.is_set():
                    return
                # Ended by the server: the container finished (its log is whole), unless it still runs (the
                # server let go: reopen). Broken (an API server restart, a half-open connection the watchdog
                # cut): reopened even once the job is done, so the rest of the log comes from a new connection.
                if ended and (job_done.is_set() or not _runs_on(api, namespace, pod_name, engine.container, stop)):
                    return
                stop.wait(REOPEN_SECONDS)
        finally:
            streams.pop(key, None)
            chunks.put((key, r, None))

    _Watchdog(api, namespace, engine.container, streams, stop, job_done)
    running = 0
    finished = False
    finished_at: float | None = None
    try:
        while True:
            try:
                pods, finished = poll()
            except Unavailable:  # the API server is away for now: keep streaming what is open, ask again
                pods, finished = [], False
            if finished:
                job_done.set()
            if finished and finished_at is None:
                finished_at = time.monotonic()
            for r, pod in sorted(_newest_per_rank(engine, pods).items()):
                key = _pod_key(pod)
                if key in streamed or (rank is not None and r != rank):
                    continue
                streamed.add(key)
                if skip_pending:
                    skip[key], skip_pending = offset, False
                running += 1
                threading.Thread(target=pump, args=(key, pod["metadata"]["name"], r), daemon=True).start()
            deadline = time.monotonic() + POLL_SECONDS
            while True:
                try:
                    key, r, data = chunks.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
                if data is None:
                    running -= 1
                    continue
                if skip.get(key):  # resume: drop what the caller has already seen
                    cut = min(skip[key], len(data))
                    skip[key] -= cut
                    offsets[key] = offsets.get(key, 0) + cut
                    data = data[cut:]
                    if not data:
                        continue
                offsets[key] = offsets.get(key, 0) + len(data)
                decoder = decoders.setdefault(key, codecs.getincrementaldecoder("utf-8")(errors="replace"))
                text = decoder.decode(data)
                if text:
                    yield LogChunk(rank=r, text=text, offset=offsets[key])
            drain = DRAIN_SECONDS + api.silence
            if finished and (running == 0 or time.monotonic() - (finished_at or 0.0) > drain):
                return
    finally:
        stop.set()
        for stream in list(streams.values()):
            stream.cut(stream.resp)
