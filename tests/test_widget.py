"""The %dlw widget's Cancel button, driven as a user clicks it (ipywidgets without a frontend)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from helpers import wait_until

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.widget import JobWidget, downsample


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



def test_widget_charts_the_metrics_a_job_logs_and_links_its_executed_notebook(dlw_home: Path, notebook) -> None:
    nb = notebook("curves.ipynb", [
        "import dlw_magic\nfor step in range(50):\n    dlw_magic.log_metrics(step=step, loss=1.0 / (step + 1))\n",
        "dlw_magic.log_metrics(step=49, **{'gpu.util': 87.0, 'gpu.mem_mib': 1024})\n",
    ])
    core.submit(core.build_spec(nb, name="curves"))
    assert core.wait("curves", timeout=60).state is JobState.SUCCEEDED
    view = JobWidget(core.get_job("curves"), show_logs=False)
    details = view.details.value
    chart = details[details.index('data-metric="loss"'):]
    assert "loss: <b>0.02</b> (step 49)" in chart
    assert len(chart[chart.index('points="') + 8:].split('"')[0].split()) == 50
    assert 'data-metric="gpu.util"' not in details  # GPU use is a line per rank, not a chart
    assert "GPU rank 0: 87% · 1024 MiB" in details
    assert "executed.ipynb" in details


def test_downsample_keeps_the_ends_and_a_spike_of_20000_points() -> None:
    points = [[i, (i % 100) / 100, 0.0] for i in range(20000)]
    points[12345][1] = 50.0
    out = downsample(points, 200)
    assert len(out) <= 800
    assert out[0] == (0.0, 0.0) and out[-1][0] == 19999.0
    assert (12345.0, 50.0) in out
    assert [x for x, _ in out] == sorted(x for x, _ in out)


def test_the_log_tail_leaves_out_metrics_lines_as_dlw_logs_does(dlw_home: Path, notebook) -> None:
    """On Kubernetes metrics travel as tagged log lines: the widget's log shows what the job printed."""
    from dlw_magic.metrics import TAG
    from dlw_magic.widget import LogTail

    nb = notebook("tagged.ipynb", [f"print('epoch 1')\nprint({TAG!r} + '[1,2.0,{{\"loss\":0.5}}]')\nprint('done')"])
    core.submit(core.build_spec(nb, name="tagged"))
    assert core.wait("tagged", timeout=60).state is JobState.SUCCEEDED
    tail = LogTail("tagged", 1, None)
    tail.poll()
    assert "epoch 1" in tail.tail() and "done" in tail.tail()
    assert not any(TAG.strip() in line for line in tail.tail())
