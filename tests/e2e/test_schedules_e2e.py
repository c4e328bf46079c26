"""End to end in a real browser: schedule a notebook from its toolbar ("Run on a schedule"), see the
definition in the DLW Jobs panel, pause it, run it now, diff its run with the notebook now, delete it."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page, expect
from test_lab_e2e import shot

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(420)]

SCHEDULE_BUTTON = ".jp-NotebookPanel-toolbar [data-command='dlw:schedule-notebook']"


@pytest.fixture(scope="module", autouse=True)
def no_background_scheduler() -> Iterator[None]:
    """The lab would start the local scheduler as its own long-lived process: not from a test."""
    before = os.environ.get("DLW_SCHEDULER_AUTOSTART")
    os.environ["DLW_SCHEDULER_AUTOSTART"] = "0"
    yield
    if before is None:
        os.environ.pop("DLW_SCHEDULER_AUTOSTART", None)
    else:
        os.environ["DLW_SCHEDULER_AUTOSTART"] = before


def test_create_pause_run_and_delete_a_schedule(page: Page, lab):
    page.goto(lab.lab_url("examples/digits_ddp.ipynb"))
    page.get_by_role("tabpanel", name="digits_ddp.ipynb").locator(SCHEDULE_BUTTON).click(timeout=90_000)
    form = page.locator(".dlw-ScheduleForm")
    expect(form).to_be_visible(timeout=30_000)
    form.locator("input[name='name']").fill("nightly-digits")
    form.locator("input[name='cron']").fill("0 0 30 2 *")  # never comes: the server says so, the form returns
    form.locator("input[name='timezone']").fill("Europe/Berlin")
    page.locator(".jp-Dialog").get_by_role("button", name="Schedule", exact=True).click()
    error = page.locator(".jp-Dialog").filter(has_text="Cannot create the schedule")
    expect(error).to_contain_text("never fires")
    error.get_by_role("button").last.click()
    expect(form.locator("input[name='cron']")).to_have_value("0 0 30 2 *")  # what the user typed is kept
    form.locator("input[name='cron']").fill("30 2 * * *")
    shot(page, "20-schedule-dialog")
    page.locator(".jp-Dialog").get_by_role("button", name="Schedule", exact=True).click()

    item = page.locator(".dlw-Schedule[data-name='nightly-digits']")
    expect(item).to_be_visible(timeout=30_000)
    expect(item).to_contain_text("30 2 * * * (Europe/Berlin)")
    shot(page, "21-schedule-in-panel")
    (listed,) = lab.api("schedules")["schedules"]
    assert (listed["name"], listed["paused"], listed["notebook"].endswith("digits_ddp.ipynb")) == (
        "nightly-digits", False, True)

    item.get_by_role("button", name="Pause").click()
    expect(item).to_contain_text("paused", timeout=30_000)
    assert lab.api("schedules/nightly-digits")["paused"] is True

    item.get_by_role("button", name="Run now").click()
    run = item.locator(".dlw-Schedule-run")
    expect(run).to_contain_text("nightly-digits-", timeout=30_000)  # the run, grouped under its definition
    job = lab.api("schedules/nightly-digits")["runs"][0]["job"]
    lab.api(f"jobs/{job}/cancel", "POST", {})
    shot(page, "22-schedule-run-now")

    # The run opens its log tab; "Diff with…" compares it with the notebook now.
    run.first.click()
    page.locator(".dlw-JobDetails-diff").click(timeout=30_000)
    page.locator(".jp-Dialog").get_by_role("button", name="Diff", exact=True).click()
    diff = page.locator(".dlw-Diff")
    expect(diff).to_contain_text(f"{job} -> now", timeout=60_000)
    shot(page, "23-diff-with-now")
    page.locator(".jp-Dialog").get_by_role("button", name="Ok").click()

    item.get_by_role("button", name="Delete").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(item).to_have_count(0, timeout=30_000)
    assert lab.api("schedules")["schedules"] == []
    assert any(j["name"] == job for j in lab.api("jobs")["jobs"])  # its run stays
