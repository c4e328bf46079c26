"""The Lab's GPU status item reads the user's GPU-hours and budget from ``GET /dlw/api/gpus`` (a real
jupyter_server, the local backend with a real finished GPU job)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from dlw_magic.cli import main

pytest_plugins = ["pytest_jupyter.jupyter_server"]
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    def call(*parts, **kwargs):
        return jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))

    return call


def test_gpu_status_carries_the_users_gpu_hours_and_budget(dlw_home: Path, tmp_path: Path, monkeypatch, api):
    monkeypatch.setenv("DLW_FAKE_GPUS", "1")
    monkeypatch.setenv("DLW_USER", "alice")
    monkeypatch.setenv("DLW_GROUPS", "research")
    data = yaml.safe_load((ROOT / "hub_config" / "workspace.yaml").read_text())
    data["budgets"] = {"period": "day", "warnAt": 0.5, "users": {"alice": 0.0001}}  # 0.36 GPU-seconds
    ws = tmp_path / "ws.yaml"
    ws.write_text(yaml.safe_dump(data))
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(ws))
    script = tmp_path / "t.py"
    script.write_text("import time; time.sleep(1)\n")
    assert main(["train", str(script), "--name", "g", "--gpus", "1", "--wait"]) == 0
    usage = json.loads(api("dlw/api/gpus").body)["usage"]
    assert usage["exhausted"] is True and usage["budget"] == 0.0001 and usage["entry"] == "user alice"
    assert usage["gpuHours"] > 0.0001 and usage["period"] == "day"
    assert usage["line"].startswith("used up: alice used 0.0 of 0.0001 GPU-hours today (budget: user alice)")
