"""End to end in a real browser: a sweep started from the "Train as job" dialog's Sweep choice, its trials
grouped under the experiment in the DLW Jobs panel, and jobs checked in the panel compared side by side."""

from __future__ import annotations

import json
import re
import time

import pytest
from labserver import open_side_panel, screenshot
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(420)]

TRAIN_BUTTON = ".jp-NotebookPanel-toolbar [data-command='dlw:train-notebook']"
JOBS_TAB = ".jp-SideBar.jp-mod-right li[data-id='dlw-jobs-panel']"
# A few seconds a trial: lr and the optimizer name are the parameters, accuracy the metric.
TINY = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "outputs": [], "execution_count": None,
         "source": "lr = 0.1\nepochs = 3\nopt = 'sgd'\n"},
        {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None,
         "source": "from dlw_magic import log_metrics\n"
                   "for step in range(1, epochs + 1):\n    log_metrics(step=step, accuracy=lr * step)\n"},
    ],
}


def wait_finished(lab, name: str, timeout: float = 240) -> dict:
    deadline = time.monotonic() + timeout
    while (exp := lab.api(f"experiments/{name}"))["state"] == "Running":
        assert time.monotonic() < deadline, exp
        time.sleep(0.5)
    return exp


@pytest.fixture(scope="module")
def sweep(lab) -> dict:
    """A finished sweep of three trials (through the REST API the dialog also uses)."""
    (lab.root / "tiny.ipynb").write_text(json.dumps(TINY))
    lab.api("experiments", "POST", {"notebook": "tiny.ipynb", "parameters": {"lr": [0.1, 0.3, 0.2]},
                                    "parallel": 3, "metric": "accuracy", "name": "grouped"})
    return wait_finished(lab, "grouped")


def jobs_panel(page: Page, lab):
    page.goto(lab.lab_url())
    open_side_panel(page, JOBS_TAB, "#dlw-jobs-panel")
    return page.locator("#dlw-jobs-panel")


def test_sweep_from_the_train_dialog_with_typed_value_lists(page: Page, lab) -> None:
    (lab.root / "dialog.ipynb").write_text(json.dumps(TINY))
    page.goto(lab.lab_url("dialog.ipynb"))
    page.get_by_role("tabpanel", name="dialog.ipynb").locator(TRAIN_BUTTON).click(timeout=90_000)
    form = page.locator(".dlw-TrainForm")
    expect(form).to_be_visible(timeout=30_000)
    expect(form.locator("input[name='parallel']")).to_be_hidden()  # "One job" first: no sweep fields
    form.locator("input[name='mode'][value='sweep']").check()
    expect(form.locator("input[name='parallel']")).to_be_visible()
    form.locator("input[name='name']").fill("dialog-sweep")
    lr = form.locator("input[name='param-lr']")
    lr.fill("0.1, fast")
    error = form.locator(".dlw-TrainForm-error").filter(has_text="parameter lr")
    expect(error).to_have_text('parameter lr: "fast" is not a valid number')
    submit = page.get_by_role("button", name="Submit")
    expect(submit).to_be_disabled()
    lr.fill("0.1, 0.5")
    expect(error).to_be_hidden()
    form.locator("input[name='param-epochs']").fill("2, 3")
    form.locator("input[name='param-opt']").fill("sgd, adam")
    form.locator("input[name='parallel']").fill("4")
    form.locator("input[name='metric']").fill("accuracy")
    screenshot(page, "experiments-dialog-sweep")
    expect(submit).to_be_enabled()
    submit.click()
    expect(page.locator(".jp-toast-message").filter(has_text="Started experiment dialog-sweep: 8 trials")) \
        .to_be_visible(timeout=30_000)
    # The trials ran with the values as the notebook types them; the panel groups them.
    exp = wait_finished(lab, "dialog-sweep")
    assert exp["state"] == "Succeeded", exp
    assert exp["parallel"] == 4 and exp["metric"] == "accuracy"
    points = sorted((t["parameters"]["lr"], t["parameters"]["epochs"], t["parameters"]["opt"]) for t in exp["trials"])
    assert points == sorted((lr, e, o) for lr in (0.1, 0.5) for e in (2, 3) for o in ("sgd", "adam"))
    assert exp["best"] is not None and next(t for t in exp["trials"] if t["name"] == exp["best"])["parameters"] \
        == {"lr": 0.5, "epochs": 3, "opt": "sgd"}
    group = page.locator("#dlw-jobs-panel .dlw-JobGroup[data-experiment='dialog-sweep']")
    expect(group).to_be_visible(timeout=30_000)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_jobs_panel_groups_trials_under_their_experiment(page: Page, lab, sweep) -> None:
    panel = jobs_panel(page, lab)
    group = panel.locator(".dlw-JobGroup[data-experiment='grouped']")
    expect(group).to_have_attribute("data-state", "Succeeded", timeout=30_000)
    expect(group).to_contain_text("3 trials (3 succeeded)")
    expect(group).to_contain_text("best: grouped-001", timeout=30_000)  # lr 0.3
    trial_rows = panel.locator(".dlw-JobRow.dlw-mod-trial[data-job^='grouped-']")
    expect(trial_rows).to_have_count(0)  # collapsed: one row, not three
    group.click()
    expect(group).to_have_attribute("aria-expanded", "true")
    expect(trial_rows).to_have_count(3)
    tops = [panel.locator(f".dlw-JobRow[data-job='grouped-00{i}']").bounding_box()["y"] for i in range(3)]
    assert group.bounding_box()["y"] < tops[0] < tops[1] < tops[2]  # under the group, in trial order
    screenshot(page, "experiments-jobs-grouped")
    group.click()
    expect(trial_rows).to_have_count(0)
    assert not page.errors, page.errors  # type: ignore[attr-defined]


def test_compare_checked_jobs_side_by_side(page: Page, lab, sweep) -> None:
    panel = jobs_panel(page, lab)
    group = panel.locator(".dlw-JobGroup[data-experiment='grouped']")
    group.click()
    compare = panel.locator(".dlw-JobsPanel-compare")
    expect(compare).to_be_disabled()
    for name in ("grouped-000", "grouped-001"):
        panel.locator(f".dlw-JobRow[data-job='{name}'] .dlw-JobRow-select").check()
    expect(compare).to_have_text("Compare (2)")
    compare.click()
    view = page.locator(".dlw-Compare")
    expect(view).to_be_visible(timeout=30_000)
    expect(page.locator(".lm-TabBar-tab").filter(has_text="Compare: grouped-000, grouped-001")).to_be_visible()
    expect(view.locator("tr[data-row='param:lr']")).to_have_class(re.compile("dlw-mod-differs"))
    expect(view.locator("tr[data-row='param:lr'] td")).to_have_text(["0.1", "0.3"])
    # the snapshot holds the job's YAML (name, parameters): each trial's code hash is its own
    expect(view.locator("tr[data-row='codeHash'] td")).to_have_text([re.compile("^sha256:")] * 2)
    expect(view.locator("tr[data-row='image']")).not_to_have_class(re.compile("dlw-mod-differs"))
    expect(view.locator(".dlw-Compare-same")).to_contain_text("image")
    lines = view.locator(".dlw-Compare-chart[data-metric='accuracy'] polyline")
    expect(lines).to_have_count(2)
    assert [lines.nth(i).get_attribute("data-job") for i in range(2)] == ["grouped-000", "grouped-001"]
    # the same function as `dlw compare`: the REST reply the tab shows
    same = lab.api("compare?jobs=grouped-000,grouped-001")
    assert same["parameters"] == ["lr"] and "image" in same["same"]
    screenshot(page, "experiments-compare")
    assert not page.errors, page.errors  # type: ignore[attr-defined]
