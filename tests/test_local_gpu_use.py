"""GPU use per rank of a local job: the runner samples each rank's GPUs into the job's metrics.

No GPU here: ``DLW_FAKE_GPUS`` gives the scheduler GPUs 0 and 1, and the sampler reads the NVML stand-in
(``DLW_NVML_STANDIN``, a JSON file ``[[util %, used MiB], ...]`` indexed like NVML's devices) that the
pod bootstrap's test uses too.
"""

from __future__ import annotations

import ctypes
import json
from pathlib import Path

import pytest

from dlw_magic import core
from dlw_magic.backends import JobState
from dlw_magic.cli import main
from dlw_magic.widget import gpu_use

# Each rank waits (up to 60 s) until the runner has sampled its GPUs at least twice, then ends.
WAIT_FOR_SAMPLES = """
import os, pathlib, time
kept = pathlib.Path(os.environ["DLW_OUTPUT_DIR"]) / "metrics" / f"gpu-rank-{os.environ['RANK']}.jsonl"
end = time.time() + 60
while time.time() < end and (not kept.exists() or kept.read_text().count("\\n") < 2):
    time.sleep(0.05)
print("gpus", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
"""


def _has_nvml() -> bool:
    try:
        ctypes.CDLL("libnvidia-ml.so.1")
    except OSError:
        return False
    return True


@pytest.fixture
def two_gpus(dlw_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    standin = tmp_path / "nvml.json"
    standin.write_text("[[40, 1000], [80, 3000]]")  # GPU 0: 40 %, 1000 MiB; GPU 1: 80 %, 3000 MiB
    monkeypatch.setenv("DLW_FAKE_GPUS", "2")
    monkeypatch.setenv("DLW_GPU_SAMPLE_SECONDS", "0.1")
    monkeypatch.setenv("DLW_NVML_STANDIN", str(standin))
    return standin


def _status_json(name: str, capsys: pytest.CaptureFixture[str]) -> dict:
    capsys.readouterr()
    assert main(["status", name, "-o", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_status_shows_each_ranks_gpu_use(two_gpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = tmp_path / "train.py"
    script.write_text(WAIT_FOR_SAMPLES)
    assert main(["train", str(script), "--name", "gpu-use", "--gpus", "1", "--workers", "2", "--wait"]) == 0
    job = _status_json("gpu-use", capsys)
    assert job["state"] == JobState.SUCCEEDED.value
    metrics = job["metrics"]
    # Rank 0 ran on GPU 0 and rank 1 on GPU 1: each sees its own device, as on Kubernetes.
    assert {p[1] for p in metrics["gpu.util"]} == {40} and {p[1] for p in metrics["gpu.mem_mib"]} == {1000}
    assert {p[1] for p in metrics["gpu.util@rank1"]} == {80} and {p[1] for p in metrics["gpu.mem_mib@rank1"]} == {3000}
    steps = [p[0] for p in metrics["gpu.util"]]
    assert len(steps) >= 2 and steps == sorted(steps)  # a series over time, as the charts need
    assert main(["status", "gpu-use"]) == 0
    assert "gpu.util 40" in capsys.readouterr().out
    assert gpu_use(core.get_job("gpu-use").metrics) == ["rank 0: 40% · 1000 MiB", "rank 1: 80% · 3000 MiB"]  # widget


def test_a_rank_with_several_gpus_reports_their_mean_use_and_total_memory(
    two_gpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = tmp_path / "train.py"
    script.write_text(WAIT_FOR_SAMPLES)
    assert main(["train", str(script), "--name", "both", "--gpus", "2", "--wait"]) == 0
    metrics = _status_json("both", capsys)["metrics"]
    assert metrics["gpu.util"][-1][1] == 60 and metrics["gpu.mem_mib"][-1][1] == 4000
    assert not [name for name in metrics if "@rank" in name]


@pytest.mark.skipif(_has_nvml(), reason="this machine has NVML: the fake GPU indices would be sampled for real")
def test_without_nvml_a_gpu_job_runs_and_reports_no_gpu_use(
    dlw_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DLW_FAKE_GPUS", "1")
    monkeypatch.setenv("DLW_GPU_SAMPLE_SECONDS", "0.1")
    script = tmp_path / "train.py"
    script.write_text("import dlw_magic, time\ndlw_magic.log_metrics(step=1, loss=0.5)\ntime.sleep(0.5)\n")
    assert main(["train", str(script), "--name", "no-nvml", "--gpus", "1", "--wait"]) == 0
    job = _status_json("no-nvml", capsys)
    assert job["state"] == JobState.SUCCEEDED.value
    assert list(job["metrics"]) == ["loss"]
    assert not (Path(job["output_dir"]) / "metrics" / "gpu-rank-0.jsonl").exists()
