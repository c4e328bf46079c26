"""The %dlw widget's Cancel button, driven as a user clicks it (ipywidgets without a frontend)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpers import wait_until

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.widget import JobWidget


def test_cancel_on_a_job_that_ended_meanwhile_leaves_the_button_disabled(dlw_home: Path, notebook) -> None:
    nb = notebook("quick.ipynb", ["print('done')"])
    job = core.submit(core.build_spec(nb, name="quick"))
    finished = core.wait("quick", timeout=60)
    assert finished.state is JobState.SUCCEEDED
    # The widget last saw it running (its poll had not come round yet) and the user clicks Cancel.
    stale = dataclasses.replace(job, state=JobState.RUNNING)
    view = JobWidget(stale, show_logs=False)
    assert not view.cancel_button.disabled
    view.cancel_button.click()
    assert wait_until(lambda: view.cancel_button.description == "Cancel", timeout=30)
    assert view.cancel_button.disabled
    assert "Succeeded" in view.title.value
    assert "already finished" in (view.error or "")

