"""The ``%dlw`` widget in a real JupyterLab and Chromium: it draws, updates and its Cancel button works,
also while ``--wait`` keeps the kernel busy (the lab extension cancels through the REST API)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from labserver import jupyter_lab, need_chromium, screenshot


@pytest.fixture
def lab(tmp_path: Path, dlw_home: Path) -> Iterator[str]:
    """``jupyter lab`` on a root holding demo.ipynb; yields the notebook's URL (with the token)."""
    need_chromium()
    root = tmp_path / "root"
    root.mkdir()
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [
        nbformat.v4.new_code_cell("epochs = 2\npause = 0.0", metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell("import time\nfor i in range(epochs):\n"
                                  "    print(f'step {i}', flush=True)\n    time.sleep(pause)"),
        nbformat.v4.new_code_cell("%load_ext dlw_magic\n"
                                  "%dlw train --name in-lab --workers 2 --param epochs=60 --param pause=0.5 --wait"),
    ]
    nbformat.write(nb, root / "demo.ipynb")
    token = "magic-" + os.urandom(8).hex()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    with jupyter_lab(root, token, env, tmp_path / "lab.log") as url:
        yield f"{url}lab/tree/demo.ipynb?token={token}"


@pytest.mark.slow
@pytest.mark.browser
def test_widget_cancel_works_while_wait_blocks_the_kernel(lab: str, browser) -> None:
    from playwright.sync_api import expect

    from dlw_magic import core
    from dlw_magic.backends import JobState

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
        screenshot(page, "magics-widget-running")

        # --wait: the kernel is busy until the job ends, and the button is there to end it.
        prompt = page.locator(".jp-InputPrompt").nth(2)
        expect(prompt).to_contain_text("[*]")
        cancel = page.get_by_role("button", name="Cancel")
        expect(cancel).to_be_enabled()
        cancel.click()
        expect(title).to_contain_text("Cancelled", timeout=30_000)
        expect(cancel).to_be_disabled()
        # The waiting cell ends by itself (no kernel interrupt) with the final state line.
        expect(prompt).to_contain_text(re.compile(r"\[\d+\]"), timeout=30_000)
        expect(page.locator(".jp-OutputArea-output").filter(has_text=re.compile(r"in-lab: Cancelled"))
               ).to_be_visible()
        screenshot(page, "magics-widget-cancelled")
    except Exception:
        screenshot(page, "magics-widget-failure")
        raise
    finally:
        page.close()
    assert core.get_job("in-lab").state is JobState.CANCELLED
