"""A half-open connection (the API server, a node or a proxy gone without closing the socket) must not hang
``dlw train --wait`` or ``dlw logs -f``: a server here accepts connections and never answers."""

from __future__ import annotations

import http.server
import json
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


LINES = [f"line {i}\n".encode() for i in range(10)]


@pytest.fixture
def goes_half_open() -> Iterator[tuple[str, dict[str, int]]]:
    """A pod's log server whose first followed stream passes 5 of the log's 10 lines on and then goes silent
    without closing (half-open); streams opened later pass the whole log on and end (the container has
    finished). ``served`` counts the follow requests and the last-line looks."""
    served = {"follow": 0, "tail": 0}
    release = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if not self.path.split("?")[0].endswith("/log"):
                self._send(json.dumps({"metadata": {"name": "demo-0"}, "status": {"phase": "Succeeded"}}).encode(),
                           "application/json")
                return
            if "tailLines=1" in self.path:
                served["tail"] += 1
                self._send(b"2026-01-01T00:00:09Z " + LINES[-1])
                return
            served["follow"] += 1
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for line in LINES if served["follow"] > 1 else LINES[:5]:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            if served["follow"] == 1:
                release.wait(60)  # half-open: nothing more, and no end
                self.close_connection = True
                return
            self.wfile.write(b"0\r\n\r\n")

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", served
    release.set()
    server.shutdown()
    server.server_close()


def test_a_followed_stream_that_goes_half_open_is_reopened_and_loses_no_line(
        goes_half_open: tuple[str, dict[str, int]], monkeypatch: pytest.MonkeyPatch) -> None:
    url, served = goes_half_open
    monkeypatch.setenv("DLW_K8S_SILENCE_SECONDS", "2")
    pod = {"metadata": {"name": "demo-0", "uid": "u1", "creationTimestamp": "2026-01-01T00:00:00Z"},
           "status": {"phase": "Running"}}

    def poll() -> tuple[list[dict[str, Any]], bool]:
        return [pod], served["follow"] > 1  # finished once the log could be read whole

    got: list[str] = []
    follow = logs.follow_logs(_api(url), "dlw-alice", engines.get("job"), poll, None, 0)
    assert _finishes(lambda: got.extend(chunk.text for chunk in follow), within=30)
    assert "".join(got) == b"".join(LINES).decode()  # every line once: the 5 seen are not shown again
    assert served["follow"] == 2  # the silent stream was given up for one new one
    assert served["tail"] >= 1  # after a look at the log's last line
