"""``%dlw sweep``'s widget: the sweep's results table, updated as its trials finish (ipywidgets without a
frontend, and a real Jupyter kernel running the magic)."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from helpers import wait_until, write_notebook

from dlw_magic import experiments
from dlw_magic.sweep_widget import SweepWidget

# accuracy = lr * step; each step takes `pause` seconds, so the trials end one after another
TRAIN = ("import time\nfrom dlw_magic import log_metrics\nfor step in range(1, 4):\n"
         "    log_metrics(step=step, accuracy=lr * step)\n    time.sleep(pause)\n")


def rows(table: str) -> dict[str, str]:
    """trial name -> its row's state."""
    return dict(re.findall(r'<tr data-trial="([^"]+)" data-state="([^"]+)"', table))


def test_the_table_updates_as_trials_finish_and_marks_the_best(tmp_path: Path, dlw_home: Path) -> None:
    nb = write_notebook(tmp_path / "train.ipynb", [("lr = 0.1\npause = 0.4\n", ["parameters"]), TRAIN])
    exp = experiments.build_experiment(nb, {"lr": [0.1, 0.3, 0.2]}, name="live", parallel=1, metric="accuracy")
    view = SweepWidget(experiments.create(exp)).start()
    first = rows(view.table.value)
    assert list(first) == ["live-000", "live-001", "live-002"]
    assert "Waiting" in first.values()  # parallel 1: the others wait in DLW
    seen: list[dict[str, str]] = []

    def snapshot() -> bool:
        now = rows(view.table.value)
        if not seen or seen[-1] != now:
            seen.append(now)
        return view.done.is_set()

    assert wait_until(snapshot, timeout=120, interval=0.05)
    # a state in between: one trial done while another had not finished, shown without re-running the cell
    assert any("Succeeded" in s.values() and set(s.values()) - {"Succeeded"} for s in seen), seen
    assert seen[-1] == {"live-000": "Succeeded", "live-001": "Succeeded", "live-002": "Succeeded"}
    table = view.table.value
    best = re.search(r'<tr data-trial="live-001"[^>]*class="dlw-best"', table)
    assert best, table  # lr 0.3: the best accuracy
    header = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert header == ["trial", "lr", "state", "best accuracy", "last accuracy", "duration"]
    assert re.search(r"live-001 ★</td><td[^>]*>0.3</td>.*?Succeeded.*?<td[^>]*>0.9</td><td[^>]*>0.9</td>", table)
    assert view.text() == "live: Succeeded, 3/3 trials done, parallel 1, best live-001 (accuracy 0.9)"
    assert "Succeeded" in view.title.value and "sweep cancel" not in view.title.value


@pytest.mark.slow
def test_dlw_sweep_in_a_kernel_shows_the_table_live(tmp_path: Path, dlw_home: Path) -> None:
    from test_magics import ROOT, Kernel, text_of, widget_updates

    nb = write_notebook(tmp_path / "train.ipynb", [("lr = 0.1\npause = 0.2\n", ["parameters"]), TRAIN])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JPY_SESSION_NAME": str(nb)}
    k = Kernel(tmp_path, env)
    try:
        k.run("%load_ext dlw_magic")
        msgs: list[dict[str, Any]] = k.run("%dlw sweep -p lr=0.1,0.2 --metric accuracy --name ksweep --wait",
                                          timeout=180)
        assert "Traceback" not in text_of(msgs, "stderr"), text_of(msgs, "stderr")
        shown = [m for m in msgs if m["msg_type"] == "display_data"]
        assert shown and "application/vnd.jupyter.widget-view+json" in shown[0]["content"]["data"]
        assert shown[0]["content"]["data"]["text/plain"].startswith("ksweep: Running")
        updates = widget_updates(msgs)
        # the table went out while trials ran, and again with their final states
        assert 'data-trial="ksweep-001" data-state="Waiting"' in updates or \
            'data-trial="ksweep-001" data-state="Running"' in updates, updates
        assert 'data-trial="ksweep-001" data-state="Succeeded" class="dlw-best"' in updates
        assert "ksweep: Succeeded, 2/2 trials done, parallel 1, best ksweep-001 (accuracy 0.6)" in text_of(msgs)
    finally:
        k.stop()
