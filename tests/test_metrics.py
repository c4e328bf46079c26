"""``dlw_magic.log_metrics`` in a job, and the readers ``dlw status``, the widget and the panel use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlw_magic import metrics

ROOT = Path(__file__).resolve().parents[1]


def run_rank(code: str, out: Path | None, rank: str = "0", **env: str) -> subprocess.CompletedProcess[str]:
    """``code`` as one rank of a job (DLW_OUTPUT_DIR = ``out``) runs it."""
    full = {k: v for k, v in os.environ.items() if k not in ("DLW_OUTPUT_DIR", "DLW_METRICS_STDOUT")}
    full.update(PYTHONPATH=str(ROOT), RANK=rank, **env)
    if out is not None:
        full["DLW_OUTPUT_DIR"] = str(out)
    result = subprocess.run([sys.executable, "-c", code], env=full, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def test_logged_points_come_back_by_name_with_step_and_time(tmp_path: Path) -> None:
    run_rank("import numpy, time\nfrom dlw_magic import log_metrics\n"
             "for step in range(3):\n"
             "    log_metrics(step=step, loss=1 / (step + 1), accuracy=numpy.float32(0.5))\n"
             "log_metrics(step=3, loss=float('nan'))\n", tmp_path)
    got = metrics.read(tmp_path)
    assert sorted(got) == ["accuracy", "loss"]
    assert [(s, v) for s, v, _ in got["loss"]] == [(0, 1.0), (1, 0.5), (2, 1 / 3), (3, None)]  # NaN: null
    assert [(s, v) for s, v, _ in got["accuracy"]] == [(0, 0.5), (1, 0.5), (2, 0.5)]
    times = [t for _, _, t in got["loss"]]
    assert times == sorted(times) and abs(times[0] - __import__("time").time()) < 600
    assert json.dumps(got)  # what `dlw status -o json` prints as is
    assert metrics.last_values(got)["accuracy"][:2] == [2, 0.5]


def test_a_partly_written_last_line_is_skipped(tmp_path: Path) -> None:
    run_rank("from dlw_magic import log_metrics\nlog_metrics(step=1, loss=0.5)\n", tmp_path)
    with open(metrics.metrics_file(tmp_path, 0), "a") as f:
        f.write('[2,1700000000.1,{"lo')  # the job is writing this one right now
    assert [p[:2] for p in metrics.read(tmp_path)["loss"]] == [[1, 0.5]]


def test_a_retried_attempt_replaces_the_steps_it_logs_again(tmp_path: Path) -> None:
    for steps in ("range(1, 5)", "range(3, 6)"):  # attempt 1 died after step 4, resumed from step 2's checkpoint
        run_rank(f"from dlw_magic import log_metrics\nfor s in {steps}:\n    log_metrics(step=s, loss=s * 10)\n",
                 tmp_path)
    assert [p[:2] for p in metrics.read(tmp_path)["loss"]] == [[1, 10], [2, 20], [3, 30], [4, 40], [5, 50]]


def test_each_name_comes_from_the_lowest_rank_that_logged_it(tmp_path: Path) -> None:
    run_rank("from dlw_magic import log_metrics\nlog_metrics(step=1, loss=0.1)\n", tmp_path, rank="0")
    run_rank("from dlw_magic import log_metrics\nlog_metrics(step=1, loss=0.9, grad_norm=2)\n", tmp_path, rank="1")
    got = metrics.read(tmp_path)
    assert got["loss"][0][1] == 0.1 and got["grad_norm"][0][1] == 2.0


def test_tagged_log_lines_for_a_backend_that_only_has_the_log(tmp_path: Path) -> None:
    result = run_rank("from dlw_magic import log_metrics\nprint('epoch 1')\nlog_metrics(step=1, loss=0.25)\n"
                      "print('epoch 2')\nlog_metrics(step=2, loss=0.125, **{'val/acc': 0.5})\n",
                      None, DLW_METRICS_STDOUT="1")
    lines = result.stdout.splitlines()
    assert lines[0] == "epoch 1" and lines[2] == "epoch 2"
    parsed = [metrics.parse_log_line(line) for line in lines]
    assert parsed[0] is None and parsed[2] is None
    assert parsed[1][0] == 1 and parsed[1][2] == {"loss": 0.25}
    got = metrics.read_log(lines)
    assert [p[:2] for p in got["loss"]] == [[1, 0.25], [2, 0.125]] and got["val/acc"][0][1] == 0.5
    assert not (tmp_path / "metrics").exists()


def test_outside_a_job_it_does_nothing(tmp_path: Path) -> None:
    result = run_rank(f"import os\nos.chdir({str(tmp_path)!r})\nfrom dlw_magic import log_metrics\n"
                      "log_metrics(step=1, loss=0.5)\n", None)
    assert result.stdout == "" and list(tmp_path.iterdir()) == []


def test_bad_values_name_the_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLW_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(metrics, "_recorder", None)
    with pytest.raises(TypeError, match="log_metrics: step must be an integer, got float"):
        metrics.log_metrics(step=1.5, loss=1.0)
    with pytest.raises(TypeError, match="log_metrics: loss: expected a number, got str"):
        metrics.log_metrics(step=1, loss="low")
    assert metrics.read(tmp_path / "elsewhere") == {}


def test_any_names_and_values_come_back_as_logged(tmp_path: Path) -> None:
    """Names with JSON or format characters, NaN and infinities, names that change from call to call."""
    run_rank("import numpy\nfrom dlw_magic import log_metrics\n"
             "log_metrics(step=0, loss=0.1, **{'val/acc (%)': 50, 'q\"uote': numpy.float32(0.25)})\n"
             "log_metrics(step=1, **{'q\"uote': 1e-300, 'val/acc (%)': float('inf'), 'loss': 1 / 3})\n"
             "log_metrics(step=2, loss=float('-inf'))\n"
             "log_metrics(step=3, loss=True)\n"
             "log_metrics(step=4)\n", tmp_path)
    got = metrics.read(tmp_path)
    assert [p[:2] for p in got["loss"]] == [[0, 0.1], [1, 1 / 3], [2, None], [3, 1.0]]
    assert [p[:2] for p in got["val/acc (%)"]] == [[0, 50.0], [1, None]]
    assert [p[:2] for p in got['q"uote']] == [[0, 0.25], [1, 1e-300]]
    assert len(metrics.metrics_file(tmp_path, 0).read_text().splitlines()) == 5


def test_points_logged_before_a_checkpoint_are_on_disk_when_it_is_saved(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from dlw_magic import checkpoint

    monkeypatch.setenv("DLW_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setattr(metrics, "_recorder", None)
    for step in range(3):
        metrics.log_metrics(step=step, loss=step / 10)
    checkpoint.save({"epoch": 2})
    assert [p[:2] for p in metrics.read(tmp_path)["loss"]] == [[0, 0.0], [1, 0.1], [2, 0.2]]


def test_points_logged_from_several_threads_are_all_kept(tmp_path: Path) -> None:
    run_rank("import threading\nfrom dlw_magic import log_metrics, metrics\nmetrics.FLUSH_LINES = 7\n"
             "def log(name):\n    for step in range(2000):\n        log_metrics(step=step, **{name: step / 2})\n"
             "threads = [threading.Thread(target=log, args=(f't{i}',)) for i in range(4)]\n"
             "[t.start() for t in threads]\n[t.join() for t in threads]\n", tmp_path)
    got = metrics.read(tmp_path)
    assert sorted(got) == ["t0", "t1", "t2", "t3"]
    assert all([p[:2] for p in points] == [[s, s / 2] for s in range(2000)] for points in got.values())
