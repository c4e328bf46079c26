"""Following a job on the real API server while it restarts, and through a connection that goes half-open:
`dlw logs -f` and `dlw train --wait` go on where they were, neither hanging nor losing or repeating a line.
The API server compacts etcd every minute here (``--etcd-compaction-interval``), so a watch resumed after
the restart may also meet a 410. A half-open connection (``relay.Relay.black_hole``: a NAT or a node that
dropped it without closing it) is noticed after DLW_K8S_SILENCE_SECONDS, set short here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster.controlplane import ROOT, ControlPlane
from tests.cluster.relay import Relay
from tests.cluster.support import AS_IN_IMAGE, dlw, write_notebook

LINES = 60
SILENCE = 3  # DLW_K8S_SILENCE_SECONDS of the commands behind the relay


def _follow(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[str], list[str]]:
    proc = subprocess.Popen([sys.executable, "-c", AS_IN_IMAGE, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env={**os.environ, **env}, cwd=ROOT)
    seen: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            seen.append(line)

    threading.Thread(target=read, daemon=True).start()
    return proc, seen


def test_logs_follow_and_wait_survive_an_api_server_restart(control_plane: ControlPlane, alice: dict[str, str],
                                                              tmp_path: Path) -> None:
    cell = f"import time\nfor i in range({LINES}):\n    print(f'line {{i}}', flush=True)\n    time.sleep(0.5)"
    nb = write_notebook(tmp_path / "ticker.ipynb", [cell])
    follow, followed = _follow(["train", str(nb), "--name", "ticker", "--engine", "job", "--follow"], alice)
    control_plane.wait_for(lambda: any("line 5" in x for x in followed), "the first lines", 180)
    control_plane.restart_apiserver(down_for=3)
    try:
        rc = follow.wait(240)
    finally:
        follow.kill()
    lines = [x.split("line ", 1)[1].strip() for x in followed if "line " in x]
    assert rc == 0, "".join(followed)[-3000:]
    assert lines == [str(i) for i in range(LINES)], "".join(followed)[-3000:]


def test_train_wait_survives_an_api_server_restart(control_plane: ControlPlane, alice: dict[str, str],
                                                   tmp_path: Path) -> None:
    nb = write_notebook(tmp_path / "nap.ipynb", ["import time\ntime.sleep(20)\nprint('woke', flush=True)"])
    waiter, out = _follow(["train", str(nb), "--name", "nap", "--engine", "job", "--wait"], alice)
    running = lambda: control_plane.get("pods", "-n", alice["DLW_NAMESPACE"], "-l", "dlw.dev/job=nap")["items"]  # noqa: E731
    control_plane.wait_for(running, "the nap pod", 120)
    time.sleep(2)
    control_plane.restart_apiserver(down_for=5)
    try:
        rc = waiter.wait(240)
    finally:
        waiter.kill()
    assert rc == 0, "".join(out)[-3000:]
    assert "Succeeded" in "".join(out), "".join(out)[-3000:]


@pytest.fixture
def relayed(control_plane: ControlPlane, alice: dict[str, str],
            tmp_path: Path) -> Iterator[tuple[Relay, dict[str, str]]]:
    """A relay in front of the API server (its load balancer) and alice's environment pointing at it."""
    relay = Relay(control_plane.gate.port)
    cfg = json.loads(Path(alice["DLW_KUBECONFIG"]).read_text())
    cfg["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{relay.port}"
    kubeconfig = tmp_path / "relayed.kubeconfig"
    kubeconfig.write_text(json.dumps(cfg))
    try:
        yield relay, {**alice, "DLW_KUBECONFIG": str(kubeconfig), "KUBECONFIG": str(kubeconfig),
                      "DLW_K8S_SILENCE_SECONDS": str(SILENCE)}
    finally:
        relay.close()


def _numbers(out: list[str]) -> list[str]:
    return [x.split("line ", 1)[1].strip() for x in out if "line " in x]


def test_logs_follow_rides_out_a_half_open_connection(control_plane: ControlPlane, alice: dict[str, str],
                                                      relayed: tuple[Relay, dict[str, str]], tmp_path: Path) -> None:
    relay, env = relayed
    cell = f"import time\nfor i in range({LINES}):\n    print(f'line {{i}}', flush=True)\n    time.sleep(0.5)"
    nb = write_notebook(tmp_path / "ticker.ipynb", [cell])
    out = dlw("train", str(nb), "--name", "ticker-ho", "--engine", "job", env=alice)
    assert out.returncode == 0, out.stderr
    follow, followed = _follow(["logs", "-f", "ticker-ho"], env)
    try:
        control_plane.wait_for(lambda: len(_numbers(followed)) > 5, "the first lines", 180)
        accepted = relay.accepted
        assert relay.black_hole() >= 3  # the log stream and the two watches (job, pods) at least
        before = len(_numbers(followed))
        # The log stream is silent for SILENCE seconds while the pod's log grows: cut, reopened on a new
        # connection, going on from where it stopped; well before the job's last line (half a minute away).
        control_plane.wait_for(lambda: len(_numbers(followed)) > before + 1, "lines after the black hole",
                               6 * SILENCE)
        rc = follow.wait(90)
    finally:
        follow.kill()
    assert rc == 0, "".join(followed)[-3000:]
    assert _numbers(followed) == [str(i) for i in range(LINES)], "".join(followed)[-3000:]
    assert relay.dropped > 0  # the old stream really went on carrying lines that never arrived
    assert relay.accepted > accepted  # what arrived after came over new connections


def test_train_wait_rides_out_a_half_open_connection(control_plane: ControlPlane, alice: dict[str, str],
                                                     relayed: tuple[Relay, dict[str, str]], tmp_path: Path) -> None:
    relay, env = relayed
    nb = write_notebook(tmp_path / "nap.ipynb", ["import time\ntime.sleep(15)\nprint('woke', flush=True)"])
    waiter, out = _follow(["train", str(nb), "--name", "nap-ho", "--engine", "job", "--wait"], env)
    try:
        running = lambda: control_plane.get("pods", "-n", alice["DLW_NAMESPACE"], "-l", "dlw.dev/job=nap-ho")["items"]  # noqa: E731
        control_plane.wait_for(running, "the nap pod", 120)
        accepted = relay.accepted
        assert relay.black_hole() >= 1  # the connection `--wait` polls over, kept alive between polls
        # Each poll that meets the dead connection fails after SILENCE seconds and is retried on a new one:
        # done soon after the job (15 s), not after the two minutes a default read limit would take.
        rc = waiter.wait(60)
    finally:
        waiter.kill()
    assert rc == 0, "".join(out)[-3000:]
    assert "Succeeded" in "".join(out), "".join(out)[-3000:]
    assert relay.accepted > accepted


def test_a_quiet_log_stream_is_not_read_again(control_plane: ControlPlane, alice: dict[str, str],
                                              relayed: tuple[Relay, dict[str, str]], tmp_path: Path) -> None:
    """Silence alone is no fault: a job quiet for several DLW_K8S_SILENCE_SECONDS keeps its one log stream
    (the watchdog's look finds the log unchanged) instead of reading its whole log again each time."""
    relay, env = relayed
    blocks, width = 1000, 1000  # a 1 MB log: much more than the job and pod objects the watches bring
    cell = (f"import time\nfor i in range({blocks}):\n    print(f'block {{i}} ' + 'x' * {width}, flush=True)\n"
            f"time.sleep({4 * SILENCE})\nprint('line tail', flush=True)\ntime.sleep(3)")
    nb = write_notebook(tmp_path / "quiet.ipynb", [cell])
    out = dlw("train", str(nb), "--name", "quiet-ho", "--engine", "job", env=alice)
    assert out.returncode == 0, out.stderr
    follow, followed = _follow(["logs", "-f", "quiet-ho"], env)
    try:
        control_plane.wait_for(lambda: any("line tail" in x for x in followed), "the line after the quiet", 180,
                               every=0.1)
        came = relay.down  # while the job still runs: what the quiet time cost
        rc = follow.wait(120)
    finally:
        follow.kill()
    assert rc == 0, "".join(followed)[-3000:]
    got = [x.split("block ", 1)[1].split()[0] for x in followed if "block " in x]
    assert got == [str(i) for i in range(blocks)], "".join(followed)[-3000:]
    assert sum("line tail" in x for x in followed) == 1, "".join(followed)[-3000:]
    assert came < 1.5 * blocks * width  # the log came once: reading it again would double this
