"""Starting a real JupyterLab and a real Chromium for the browser tests (one place for both)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
CHROMIUM = "/usr/bin/chromium"
# Flags that keep Chromium off the network (this machine has none) and working as root.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run",
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")


def need_installed_extension() -> None:
    """Fail unless the DLW lab extension is installed and enabled where this Python's `jupyter` looks."""
    out = subprocess.run([sys.executable, "-m", "jupyter", "labextension", "list"], capture_output=True, text=True)
    line = next((ln for ln in (out.stdout + out.stderr).splitlines() if "dlw-labextension" in ln), "")
    if "enabled" not in line or "OK" not in line:
        pytest.fail(f"the DLW lab extension is not installed in {sys.prefix}: run `bash scripts/test.sh`")


def screenshot(page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def open_side_panel(page, tab_selector: str, content_selector: str) -> None:
    """Show a sidebar panel. Its tab toggles it, and JupyterLab may restore it open from the last session's
    layout while or after the tab appears: click until the content shows, never a fixed number of times."""
    from playwright.sync_api import expect

    tab = page.locator(tab_selector)
    tab.wait_for(timeout=90_000)
    content = page.locator(content_selector)
    for _ in range(5):
        if "lm-mod-current" not in (tab.get_attribute("class") or ""):
            tab.click()
        try:
            expect(content).to_be_visible(timeout=3_000)
            return
        except AssertionError:
            continue
    expect(content).to_be_visible()


def wait_until_up(proc: subprocess.Popen, url: str, log: Path, what: str, timeout: float = 60) -> None:
    """Poll ``url`` until it answers; fail with the log's tail if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)


@contextlib.contextmanager
def jupyter_lab(root: Path, token: str, env: dict[str, str], log: Path, *extra: str) -> Iterator[str]:
    """``jupyter lab`` serving ``root`` on a free loopback port; yields its base URL once it answers."""
    port = free_port()
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))}
    cmd = [
        sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser", f"--port={port}",
        "--ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}", *extra,
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_until_up(proc, f"{url}api/status?token={token}", log, "jupyter lab")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
