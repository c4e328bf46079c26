"""End to end through the local JupyterHub (``dlw hub``): log in, spawn the CPU profile, train the digits
example with the "Train as job" button in the spawned JupyterLab, and watch it succeed in the panel.

Alice's server runs the project's virtualenv, with the DLW server and lab extensions as the README's commands
install them there; the test only turns off JupyterLab's announcement toast in her Jupyter config.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from labserver import ARTIFACTS, ROOT, free_port, need_installed_extension, wait_until_up
from playwright.sync_api import Page, expect

PASSWORD = "e2e-horse-battery"

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(480)]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    if not shutil.which("configurable-http-proxy") and not (ROOT / "hub_config" / "node_modules").is_dir():
        pytest.skip("configurable-http-proxy is missing: run `npm ci --prefix hub_config`")
    need_installed_extension()
    home = tmp_path / "dlw-home"
    alice = home / "hub" / "users" / "alice"
    (alice / ".jupyter" / "labconfig").mkdir(parents=True)
    (alice / ".jupyter" / "labconfig" / "page_config.json").write_text(
        json.dumps({"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}})
    )
    shutil.copytree(ROOT / "examples", alice / "examples")

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "DLW_HOME": str(home), "DLW_HUB_PASSWORD": PASSWORD, "DLW_BACKEND": "local"}
    env.pop("DLW_WORKSPACE_CONFIG", None)
    env.pop("JUPYTERHUB_USER", None)
    log = tmp_path / "hub.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dlw_magic.cli", "hub", "--port", str(port), "--user", "alice"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(proc, f"{base}/hub/api", log, "dlw hub")
        yield base, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the hub stops its proxy and alice's server
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(log, ARTIFACTS / "hub.log")


def hub_log_records(text: str) -> list[str]:
    """The JupyterHub application's log records, each with its continuation lines (a traceback)."""
    records: list[str] = []
    for line in text.splitlines():
        if line.startswith("["):
            records.append(line)
        elif records:
            records[-1] += "\n" + line
    return [r for r in records if r.split(" ", 4)[3:4] == ["JupyterHub"]]


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def test_train_as_job_through_the_local_hub(page: Page, hub: tuple[str, Path]):
    from dlw_magic.gpus import visible_gpu_indices

    hub, log = hub
    page.goto(f"{hub}/hub/login")
    page.fill("input[name='username']", "alice")
    page.fill("input[name='password']", PASSWORD)
    page.click("[type='submit']")
    # The spawn form offers the workspace's profiles; the CPU one is enough here.
    page.wait_for_url(re.compile(r".*/hub/spawn.*"), timeout=30_000)
    if not visible_gpu_indices():  # a machine without GPUs: the GPU profile is shown, disabled, saying why
        expect(page.locator("input[value='gpu']")).to_be_disabled()
        expect(page.get_by_text("not available: this machine has no GPU")).to_be_visible()
    page.locator("input[value='cpu']").check()
    shot(page, "hub-01-spawn-form")
    page.locator("form [type='submit']").first.click()
    page.wait_for_url(re.compile(r".*/user/alice/lab.*"), timeout=150_000)

    page.goto(f"{hub}/user/alice/lab/tree/examples/digits_ddp.ipynb")
    page.locator(".jp-NotebookPanel-toolbar [data-command='dlw:train-notebook']").click(timeout=90_000)
    form = page.locator(".dlw-TrainForm")
    expect(form.locator("input[name='param-epochs']")).to_have_value("12", timeout=30_000)
    form.locator("input[name='name']").fill("hub-digits")
    form.locator("input[name='workers']").fill("2")
    form.locator("input[name='param-epochs']").fill("2")
    page.get_by_role("button", name="Submit").click()

    row = page.locator(".dlw-JobRow[data-job='hub-digits']")
    expect(row).to_have_attribute("data-state", "Succeeded", timeout=240_000)
    row.locator(".dlw-action-logs").click()
    expect(page.locator(".dlw-LogView")).to_contain_text(re.compile(r"accuracy: 0\.\d{4}"), timeout=30_000)
    shot(page, "hub-02-succeeded-with-logs")
    # The outputs open in the file browser (the job's folder is linked into alice's root).
    row.locator(".dlw-action-output").click()
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text("hub-digits", timeout=30_000)
    expect(page.locator(".jp-DirListing-content")).to_contain_text("metrics.json")
    shot(page, "hub-03-output-in-file-browser")
    assert not page.errors, page.errors
    hub_records = hub_log_records(log.read_text())  # the hub's own, not alice's server's (mixed in)
    assert not [r for r in hub_records if "Traceback" in r or "unhandled user_options" in r.lower()]
