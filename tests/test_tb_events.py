"""``log_metrics`` writes TensorBoard event files with DLW_TENSORBOARD=1, read back by TensorBoard's own reader."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

LOG = ("from dlw_magic import log_metrics\n"
       "for s in range(5):\n    log_metrics(step=s, loss=1.0 / (s + 1), acc=s / 10)\n")


def run(tmp_path: Path, **env: str) -> Path:
    out = tmp_path / "out"
    subprocess.run([sys.executable, "-c", LOG], env={**os.environ, "DLW_OUTPUT_DIR": str(out), **env}, check=True)
    return out / "tensorboard"


def test_tensorboard_reads_the_metrics_log_metrics_wrote(tmp_path: Path) -> None:
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    folder = run(tmp_path, DLW_TENSORBOARD="1", RANK="0")
    acc = EventAccumulator(str(folder))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["acc", "loss"]
    assert [(e.step, round(e.value, 4)) for e in acc.Scalars("loss")] == [
        (0, 1.0), (1, 0.5), (2, 0.3333), (3, 0.25), (4, 0.2)]


def test_no_event_files_unless_asked_and_only_from_rank_0(tmp_path: Path) -> None:
    assert not run(tmp_path / "a").exists()
    assert not run(tmp_path / "b", DLW_TENSORBOARD="1", RANK="1").exists()
    assert (tmp_path / "b" / "out" / "metrics" / "rank-1.jsonl").is_file()  # DLW's own metrics still written
