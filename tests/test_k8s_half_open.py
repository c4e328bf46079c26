"""A half-open connection (the API server, a node or a proxy gone without closing the socket) must not hang
``dlw train --wait`` or ``dlw logs -f``: a server here accepts connections and never answers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from dlw_magic import engines
from dlw_magic.backends.kubernetes import logs, watch
from dlw_magic.backends.kubernetes.api import Api


@pytest.fixture
def silent() -> Iterator[str]:
    """http://127.0.0.1:<port> of a server that accepts, reads and never writes a byte."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                held.append(conn)  # kept open, never answered
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    thread.join(5)
    for conn in held:
        conn.close()
    server.close()


def _api(url: str) -> Api:
    cfg = client.Configuration()
    cfg.host = url
    return Api(client.ApiClient(cfg))


def _finishes(target: Any, within: float) -> bool:
    """Whether ``target()`` returns (or raises) before ``within`` seconds; it runs on a daemon thread."""
    done = threading.Event()

    def run() -> None:
        try:
            target()
        except Exception:  # noqa: BLE001 - failing is fine: hanging is the fault
            pass
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done.wait(within)


def test_a_watch_on_a_silent_connection_gives_up(silent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLW_K8S_SILENCE_SECONDS", "2")
    w = watch.ObjectWatch(_api(silent), ("v1", "Pod"), "dlw-alice", {"dlw.dev/job": "x"}, threading.Condition())
    assert _finishes(lambda: w._open(timeout_seconds=1), within=30)


def test_log_follow_ends_once_the_job_is_done_even_if_a_stream_never_closes(
        silent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLW_K8S_SILENCE_SECONDS", "2")
    monkeypatch.setattr(logs, "DRAIN_SECONDS", 1.0)
    pod = {"metadata": {"name": "demo-0", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "status": {"phase": "Running"}}

    def poll() -> tuple[list[dict[str, Any]], bool]:
        return [pod], True  # the job finished; its pod's log stream hangs on the silent server

    follow = logs.follow_logs(_api(silent), "dlw-alice", engines.get("job"), poll, None, 0)
    assert _finishes(lambda: list(follow), within=30)
