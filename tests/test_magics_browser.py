"""The ``%dlw`` widget in a real JupyterLab and Chromium: it draws, updates and its Cancel button works."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "e2e" / "artifacts"
CHROMIUM = "/usr/bin/chromium"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def lab(tmp_path: Path, dlw_home: Path) -> Iterator[str]:
    """``jupyter lab`` on a root holding demo.ipynb; yields the notebook's URL (with the token)."""
    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("epochs = 2\npause = 0.0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\nfor i in range(epochs):\n"
                                  "    print(f'step {i}', flush=True)\n    time.sleep(pause)"),
        nbformat.v4.new_code_cell("%load_ext dlw_magic\n"
                                  "%dlw train --name in-lab --workers 2 --param epochs=60 --param pause=0.5"),
    ]
    nbformat.write(nb, root / "demo.ipynb")
    token, port = "magic-" + os.urandom(8).hex(), _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    log = tmp_path / "lab.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--allow-root", "--no-browser", f"--port={port}",
             "--ip=127.0.0.1", f"--ServerApp.token={token}", f"--ServerApp.root_dir={root}"],
            cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}api/status?token={token}", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield f"{url}lab/tree/demo.ipynb?token={token}"
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
@pytest.mark.browser
def test_widget_in_jupyterlab(lab: str) -> None:
    from playwright.sync_api import expect, sync_playwright

    from dlw_magic import core
    from dlw_magic.backends import JobState

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1300, "height": 900})
        try:
            page.goto(lab)
            expect(page.locator(".jp-Notebook")).to_be_visible(timeout=60_000)
            # run all cells once the kernel is up (a click while it starts can be lost on a busy machine)
            expect(page.get_by_text("Python 3 (ipykernel) | Idle")).to_be_visible(timeout=60_000)
            for _ in range(3):
                page.get_by_role("menuitem", name="Run", exact=True).click()
                page.get_by_text("Run All Cells", exact=True).click()
                try:
                    expect(page.locator(".jp-InputPrompt").first).to_contain_text("[1]", timeout=20_000)
                    break
                except AssertionError:
                    page.keyboard.press("Escape")

            title = page.locator(".widget-html").filter(has_text="in-lab")
            expect(title).to_contain_text("Running", timeout=60_000)
            expect(page.locator(".widget-html pre")).to_contain_text("[rank 1] step 1", timeout=30_000)
            expect(page.get_by_text(re.compile(r"Submitted in-lab: a snapshot of demo\.ipynb"))).to_be_visible()
            page.screenshot(path=str(ARTIFACTS / "magics-widget-running.png"))

            page.get_by_role("button", name="Cancel").click()
            expect(title).to_contain_text("Cancelled", timeout=30_000)
            expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
            page.screenshot(path=str(ARTIFACTS / "magics-widget-cancelled.png"))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / "magics-widget-failure.png"))
            raise
        finally:
            browser.close()
    assert core.get_job("in-lab").state is JobState.CANCELLED
