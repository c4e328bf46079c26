"""The shipped example trains for real: ``dlw train examples/digits_ddp.ipynb --workers 2 --wait``."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "digits_ddp.ipynb"


def dlw(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The ``dlw`` command as a user runs it (from the project folder)."""
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.mark.slow
def test_digits_ddp_trains_on_two_workers(dlw_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = dlw("train", "examples/digits_ddp.ipynb", "--workers", "2", "--wait", "-o", "json", env=env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["state"] == "Succeeded" and job["world_size"] == 2

    log = dlw("logs", job["name"], "--rank", "0", env=env).stdout
    assert re.search(r"^epoch 1/\d+ loss \d+\.\d{4}$", log, re.M), log
    accuracy = float(re.search(r"^accuracy: (\d\.\d{4})$", log, re.M).group(1))
    assert accuracy > 0.9
    assert "rank 1: 719 of 1437 training samples" in dlw("logs", job["name"], "--rank", "1", env=env).stdout

    out = Path(job["output_dir"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["accuracy"] == pytest.approx(accuracy, abs=1e-4)
    import torch

    checkpoint = torch.load(out / "model.pt", weights_only=True)
    assert checkpoint["state_dict"]["2.weight"].shape == (10, checkpoint["hidden"])


@pytest.mark.slow
def test_digits_ddp_takes_parameters(dlw_home: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = dlw("train", str(EXAMPLE), "--param", "epochs=2", "--param", "hidden=16", "--wait", "-o", "json",
               env=env)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    log = dlw("logs", job["name"], env=env).stdout
    assert "epoch 2/2 loss" in log and "epoch 3/" not in log
    assert json.loads((Path(job["output_dir"]) / "metrics.json").read_text())["epochs"] == 2


@pytest.mark.slow
def test_digits_ddp_logs_metrics_and_resumes_from_its_checkpoint(tmp_path: Path) -> None:
    """Rank 0 of a job run as the launcher runs it; a second attempt with more epochs continues the first."""
    from dlw_magic import metrics
    from dlw_magic.convert import convert_notebook
    from dlw_magic.executed import executed_notebook_path

    shutil.copy(EXAMPLE, tmp_path / EXAMPLE.name)
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLW_OUTPUT_DIR": str(out), "RANK": "0", "WORLD_SIZE": "1"}
    env.pop("DLW_CHECKPOINT_DIR", None)
    logs = []
    for attempt, epochs in enumerate((2, 4)):  # the first attempt was preempted after epoch 2
        (tmp_path / "main.py").write_text(convert_notebook(EXAMPLE, {"epochs": epochs}).script)
        run = subprocess.run([sys.executable, "-m", "dlw_magic.launch", "main.py"], cwd=tmp_path, text=True,
                             env={**env, "DLW_ATTEMPT": str(attempt)}, capture_output=True, timeout=300)
        assert run.returncode == 0, run.stderr
        logs.append(run.stdout)
    assert "epoch 2/2 loss" in logs[0] and "resuming" not in logs[0]
    assert "rank 0: resuming after epoch 2\nepoch 3/4 loss" in logs[1] and "epoch 1/4" not in logs[1]
    logged = metrics.read(out)
    assert [step for step, _, _ in logged["loss"]] == [1, 2, 3, 4]
    assert logged["accuracy"][-1][1] == pytest.approx(json.loads((out / "metrics.json").read_text())["accuracy"])
    executed = json.loads(executed_notebook_path(out).read_text())
    training = next(c for c in executed["cells"] if "for epoch in range" in "".join(c["source"]))
    assert "epoch 4/4 loss" in "".join(training["outputs"][-1]["text"])
