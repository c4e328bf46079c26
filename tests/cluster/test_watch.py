"""Following a job on the real API server while it restarts: `dlw logs -f` and `dlw train --wait` go on
where they were, neither hanging nor losing or repeating a line. The API server compacts etcd every
minute here (``--etcd-compaction-interval``), so a watch resumed after the restart may also meet a 410."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests.cluster.controlplane import ROOT, ControlPlane
from tests.cluster.support import AS_IN_IMAGE, write_notebook

LINES = 60


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
