"""End to end in a real browser: train the digits example from JupyterLab and watch it in the panel.

Chromium (Debian's) drives a real JupyterLab whose jobs run on the real local backend.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from labserver import open_side_panel
from playwright.sync_api import Page, expect

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(420)]

TRAIN_BUTTON = ".jp-NotebookPanel-toolbar [data-command='dlw:train-notebook']"


def train_button(page: Page, notebook: str):
    """The button of this notebook's tab: the lab restores tabs a previous test opened."""
    return page.get_by_role("tabpanel", name=Path(notebook).name).locator(TRAIN_BUTTON)


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def open_train_dialog(page: Page, lab, notebook: str) -> None:
    page.goto(lab.lab_url(notebook))
    train_button(page, notebook).click(timeout=90_000)
    expect(page.locator(".dlw-TrainForm")).to_be_visible(timeout=30_000)


def fill_dialog(page: Page, name: str, workers: int, params: dict[str, str]) -> None:
    form = page.locator(".dlw-TrainForm")
    form.locator("input[name='name']").fill(name)
    form.locator("input[name='workers']").fill(str(workers))
    for key, value in params.items():
        form.locator(f"input[name='param-{key}']").fill(value)


def job_row(page: Page, name: str):
    return page.locator(f".dlw-JobRow[data-job='{name}']")


def test_train_notebook_as_job_watch_it_succeed_and_read_its_logs(page: Page, lab):
    open_train_dialog(page, lab, "examples/digits_ddp.ipynb")
    form = page.locator(".dlw-TrainForm")
    # Prefilled from the notebook's parameters cell and the admin's catalogue.
    expect(form.locator("input[name='param-epochs']")).to_have_value("12")
    expect(form.locator("input[name='param-lr']")).to_have_value("0.05")
    fill_dialog(page, "digits-e2e", workers=2, params={"epochs": "3"})
    shot(page, "01-train-dialog")
    page.get_by_role("button", name="Submit").click()

    row = job_row(page, "digits-e2e")
    expect(row).to_be_visible(timeout=30_000)
    shot(page, "02-panel-submitted")
    expect(row).to_have_attribute("data-state", "Succeeded", timeout=240_000)
    expect(row.locator(".dlw-JobRow-meta")).to_contain_text("2×job")
    expect(row.locator(".dlw-action-cancel")).to_be_disabled()
    shot(page, "03-panel-succeeded")

    row.locator(".dlw-action-logs").click()
    viewer = page.locator(".dlw-LogViewer").filter(has=page.locator(".dlw-LogViewer-status"))
    expect(viewer.locator(".dlw-LogView")).to_contain_text(re.compile(r"accuracy: 0\.\d{4}"), timeout=30_000)
    expect(viewer.locator(".dlw-LogViewer-status")).to_contain_text("Succeeded", timeout=30_000)
    expect(viewer.locator(".dlw-LogView")).to_contain_text("epoch 3/3")
    # Above the log: live charts of what the notebook logs (loss and accuracy per epoch).
    for metric in ("loss", "accuracy"):
        chart = viewer.locator(f".dlw-Chart[data-metric='{metric}']")
        expect(chart.locator(".dlw-Chart-label")).to_contain_text(f"{metric}: ", timeout=30_000)
        expect(chart.locator("polyline")).to_have_attribute("points", re.compile(r"\S+ \S+ \S+"))
    shot(page, "04-logs-rank0")
    # Rank 1 has its own log: it starts, trains its shard, and never prints the accuracy.
    viewer.locator("select.dlw-LogViewer-rank").select_option("1")
    expect(viewer.locator(".dlw-LogView")).to_contain_text("rank 1/2 starting", timeout=30_000)
    expect(viewer.locator(".dlw-LogView")).not_to_contain_text("accuracy")
    shot(page, "05-logs-rank1")

    # The output folder lives in DLW_HOME, outside the root: a dlw-outputs/ link opens it in the browser.
    row.locator(".dlw-action-output").click()
    expect(page.locator(".jp-BreadCrumbs")).to_contain_text("digits-e2e", timeout=30_000)
    listing = page.locator(".jp-DirListing-content")
    expect(listing).to_contain_text("metrics.json")
    expect(listing).to_contain_text("model.pt")
    shot(page, "05b-output-in-file-browser")
    # Notebook opens the notebook as rank 0 executed it, with its outputs.
    row.locator(".dlw-action-notebook").click()
    expect(page.locator(".lm-TabBar-tab").filter(has_text="executed.ipynb")).to_be_visible(timeout=30_000)
    outputs = page.locator(".jp-NotebookPanel:visible .jp-OutputArea")
    expect(outputs.filter(has_text=re.compile(r"accuracy: 0\.\d{4}")).first).to_be_visible(timeout=30_000)
    shot(page, "05c-executed-notebook")
    # Copy YAML puts the job's spec on the clipboard.
    row.locator(".dlw-action-yaml").click()
    expect(page.locator(".jp-toast-message").filter(has_text="Copied the YAML")).to_be_visible()
    clip = page.evaluate("navigator.clipboard.readText()")
    assert "name: digits-e2e" in clip and "epochs: 3" in clip, clip

    # The status bar tells why there is no GPU on this machine instead of showing nothing.
    expect(page.locator(".dlw-GpuStatus")).to_have_text(re.compile(r"GPU"))
    assert lab.api("jobs/digits-e2e")["state"] == "Succeeded"
    assert not page.errors, page.errors


def test_cancel_a_long_job_from_the_panel_rerun_it_and_delete_both(page: Page, lab):
    open_train_dialog(page, lab, "examples/digits_ddp.ipynb")
    fill_dialog(page, "long-e2e", workers=1, params={"epochs": "100000"})
    page.get_by_role("button", name="Submit").click()
    row = job_row(page, "long-e2e")
    expect(row).to_have_attribute("data-state", "Running", timeout=60_000)
    shot(page, "06-long-running")

    row.locator(".dlw-action-cancel").click()
    page.get_by_role("button", name="Cancel job").click()
    expect(row).to_have_attribute("data-state", "Cancelled", timeout=60_000)
    expect(row.locator(".dlw-action-cancel")).to_be_disabled()
    shot(page, "07-long-cancelled")
    assert lab.api("jobs/long-e2e")["state"] == "Cancelled"

    # Rerun: the same job under a new name, Running in its own row.
    row.locator(".dlw-action-rerun").click()
    rerun = page.locator(".dlw-JobRow[data-job^='long-e2e-']")
    expect(rerun).to_have_attribute("data-state", re.compile("Queued|Running"), timeout=60_000)
    rerun_name = rerun.get_attribute("data-job")
    expect(rerun.locator(".dlw-action-delete")).to_be_disabled()  # running jobs are cancelled first

    # One log tab, pointed at each job whose Logs is clicked.
    row.locator(".dlw-action-logs").click()
    rerun.locator(".dlw-action-logs").click()
    expect(page.locator(".dlw-LogViewer")).to_have_count(1)
    expect(page.locator(".lm-TabBar-tab").filter(has_text="Logs:")).to_have_count(1)
    expect(page.locator(".lm-TabBar-tab").filter(has_text=f"Logs: {rerun_name}")).to_be_visible()
    shot(page, "07b-rerun-and-one-log-tab")
    lab.api(f"jobs/{rerun_name}/cancel", "POST", {})

    # Delete: asked first, then the row, the record and the files are gone.
    row.locator(".dlw-action-delete").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Delete").click()
    expect(row).to_have_count(0, timeout=30_000)
    assert not any(j["name"] == "long-e2e" for j in lab.api("jobs")["jobs"])


def test_a_bad_name_and_a_fraction_for_an_int_are_refused_as_typed_with_the_rule(page: Page, lab):
    open_train_dialog(page, lab, "examples/digits_ddp.ipynb")
    form = page.locator(".dlw-TrainForm")
    submit = page.get_by_role("button", name="Submit")
    form.locator("input[name='name']").fill("My_Job")
    expect(form.locator(".dlw-TrainForm-error")).to_have_text(
        'Job name: "My_Job" is not a valid job name (lowercase letters, digits and \'-\', starting and '
        "ending with a letter or digit, at most 52 characters)")
    expect(submit).to_be_disabled()
    form.locator("input[name='name']").fill("my-job")
    expect(submit).to_be_enabled()
    # epochs = 12 in the notebook: an int, so 5.5 is refused while typing (the server would refuse it too)
    form.locator("input[name='param-epochs']").fill("5.5")
    expect(form.locator(".dlw-TrainForm-error:visible")).to_have_text(
        'parameter epochs: expected a whole number (int), got "5.5"')
    expect(submit).to_be_disabled()
    shot(page, "08-bad-name-and-fraction-marked")
    form.locator("input[name='param-epochs']").fill("5")
    expect(submit).to_be_enabled()
    page.locator(".jp-Dialog").get_by_role("button", name="Cancel").click()
    expect(form).to_have_count(0)
    assert not page.errors, page.errors


def write_notebook(path: Path, cells: list[str]) -> None:
    import nbformat

    nb = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)


def open_panel(page: Page, lab) -> None:
    page.goto(lab.lab_url())
    open_side_panel(page, ".jp-SideBar .lm-TabBar-tab[data-id='dlw-jobs-panel']", ".dlw-JobsList")


def test_the_log_says_what_it_waits_for_and_a_failed_row_says_why(page: Page, lab):
    write_notebook(lab.root / "quiet.ipynb", ["import time\ntime.sleep(12)\nprint('first words', flush=True)"])
    write_notebook(lab.root / "broken.ipynb", ["x = 1", "print(undefined_name)"])
    lab.api("jobs", "POST", {"notebook": "quiet.ipynb", "name": "quiet-e2e", "workers": 2, "tags": ["e2e-tag"]})
    lab.api("jobs", "POST", {"notebook": "broken.ipynb", "name": "broken-e2e"})
    open_panel(page, lab)

    quiet = job_row(page, "quiet-e2e")
    expect(quiet).to_have_attribute("data-state", "Running", timeout=60_000)
    quiet.locator(".dlw-action-logs").click()
    viewer = page.locator(".dlw-LogViewer").filter(has=page.locator(".dlw-LogViewer-status"))
    waiting = viewer.locator(".dlw-LogViewer-waiting")
    expect(waiting).to_have_text("rank 0: starting 2 ranks… no output yet")
    shot(page, "10-log-waiting")
    expect(viewer.locator(".dlw-LogView")).to_contain_text("first words", timeout=60_000)
    expect(waiting).to_be_hidden()

    broken = job_row(page, "broken-e2e")
    expect(broken).to_have_attribute("data-state", "Failed", timeout=60_000)
    # The reason is in the row itself, not only in a tooltip.
    expect(broken.locator(".dlw-JobRow-why")).to_be_visible()
    expect(broken.locator(".dlw-JobRow-why")).to_contain_text("NameError")
    expect(broken.locator(".dlw-JobRow-why")).to_contain_text("undefined_name")
    # ... and readable there: inside the row, above its buttons, not under them.
    why_box = broken.locator(".dlw-JobRow-why").bounding_box()
    row_box, buttons_box = broken.bounding_box(), broken.locator(".dlw-JobRow-actions").bounding_box()
    assert why_box and row_box and buttons_box
    assert row_box["y"] <= why_box["y"] and why_box["y"] + why_box["height"] <= buttons_box["y"] + 1
    assert buttons_box["y"] + buttons_box["height"] <= row_box["y"] + row_box["height"] + 1
    # When it ran: start–end times on the row.
    expect(broken.locator(".dlw-JobRow-meta")).to_contain_text(re.compile(r"\d\d:\d\d:\d\d–\d\d:\d\d:\d\d"))
    shot(page, "11-failed-row-says-why")

    # jupyter-scheduler's extras: tags to filter by, the executed notebook as HTML, the outputs as a zip.
    expect(quiet.locator(".dlw-JobRow-tags")).to_have_text("#e2e-tag")
    page.locator(".dlw-JobsPanel-filter").fill("#e2e-tag")
    expect(page.locator(".dlw-JobRow")).to_have_count(1)
    expect(quiet).to_be_visible()
    expect(quiet).to_have_attribute("data-state", "Succeeded", timeout=60_000)
    with page.context.expect_page() as popup_info:
        quiet.locator(".dlw-action-html").click()
    popup = popup_info.value
    expect(popup.locator("body")).to_contain_text("first words", timeout=60_000)
    popup.close()
    with page.expect_download(timeout=60_000) as download_info:
        quiet.locator(".dlw-action-download").click()
    download = download_info.value
    assert download.suggested_filename == "quiet-e2e-output.zip"
    import zipfile

    assert "quiet-e2e/executed.ipynb" in zipfile.ZipFile(download.path()).namelist()
    assert not page.errors, page.errors


def test_a_wrong_typed_value_is_marked_in_place_and_submit_waits_for_a_fix(page: Page, lab):
    open_train_dialog(page, lab, "examples/digits_ddp.ipynb")
    form = page.locator(".dlw-TrainForm")
    # The local backend runs processes: no Kubernetes engines, no queue; volumes say why.
    expect(form.locator("select[name='engine'] option")).to_have_count(1)
    expect(form.locator("select[name='engine']")).to_be_disabled()
    expect(form.locator("[name='queue']")).to_have_count(0)
    expect(form).to_contain_text("Not available: the local backend does not mount catalogue volumes")
    expect(form.locator("input[name='ship-folder']")).not_to_be_checked()

    epochs = form.locator("input[name='param-epochs']")
    epochs.fill("eighty")
    expect(form.locator(".dlw-TrainForm-error")).to_have_text('parameter epochs: "eighty" is not a valid number')
    submit = page.get_by_role("button", name="Submit")
    expect(submit).to_be_disabled()
    epochs.press("Enter")  # Enter does not submit either
    expect(form).to_be_visible()
    expect(epochs).to_have_value("eighty")
    shot(page, "09-bad-value-marked")

    epochs.fill("80")
    expect(form.locator(".dlw-TrainForm-error")).to_be_hidden()
    expect(submit).to_be_enabled()
    page.locator(".jp-Dialog").get_by_role("button", name="Cancel").click()
    expect(form).to_have_count(0)
    assert not page.errors, page.errors
