"""End to end in a real browser: a sweep's results in the DLW Experiments panel (sortable table, overlay
chart, best trial) and its TensorBoard opened through the lab's own login."""

from __future__ import annotations

import json
import time

import pytest
from labserver import ARTIFACTS, open_side_panel
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(420)]

# log_metrics reads DLW_TENSORBOARD at its first call: the trials write TensorBoard event files too.
TINY = {
    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": None,
         "source": "lr = 0.1\n"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "import os\nos.environ['DLW_TENSORBOARD'] = '1'\nfrom dlw_magic import log_metrics\n"
                   "for step in range(1, 4):\n    log_metrics(step=step, accuracy=lr * step)\n"},
    ],
}


def test_sweep_results_in_the_panel_and_tensorboard_behind_the_lab_login(page: Page, lab) -> None:
    (lab.root / "tiny.ipynb").write_text(json.dumps(TINY))
    lab.api("experiments", "POST", {"notebook": "tiny.ipynb", "parameters": {"lr": [0.2, 0.1, 0.3]},
                                    "parallel": 2, "metric": "accuracy", "name": "e2e-sweep"})
    deadline = time.monotonic() + 180
    while lab.api("experiments/e2e-sweep")["state"] == "Running" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert lab.api("experiments/e2e-sweep")["best"] == "e2e-sweep-002"

    page.goto(lab.lab_url())
    open_side_panel(page, ".jp-SideBar.jp-mod-right li[data-id='dlw-experiments-panel']", "#dlw-experiments-panel")
    panel = page.locator("#dlw-experiments-panel")
    rows = panel.locator("tr[data-trial]")
    expect(rows).to_have_count(3, timeout=30_000)
    expect(panel.locator("tr.dlw-mod-best")).to_have_attribute("data-trial", "e2e-sweep-002")
    panel.locator("th[data-column='param:lr']").click()
    expect(rows.first).to_have_attribute("data-trial", "e2e-sweep-001")  # lr 0.1 first
    expect(panel.locator(".dlw-Experiment-overlay polyline")).to_have_count(3)
    expect(panel.locator(".dlw-Experiment-scatter circle")).to_have_count(3)

    with page.context.expect_page(timeout=120_000) as opened:
        panel.get_by_role("button", name="TensorBoard").click()
    board = opened.value
    board.wait_for_url("**/dlw/api/tensorboard/*/**", timeout=120_000)
    expect(board.locator("tb-webapp")).to_be_attached(timeout=60_000)  # TensorBoard's own page, proxied
    # its data requests go through the same proxy, with the lab's login cookie only
    runs = board.evaluate("fetch('data/runs').then(r => r.json())")
    assert sorted(r.split("/")[0] for r in runs) == ["e2e-sweep-000", "e2e-sweep-001", "e2e-sweep-002"]
    board.screenshot(path=str(ARTIFACTS / "experiments-tensorboard.png"))
    page.screenshot(path=str(ARTIFACTS / "experiments-panel.png"))
    assert page.errors == []  # type: ignore[attr-defined]
