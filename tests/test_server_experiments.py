"""Sweeps and comparisons through the lab's REST API (a real jupyter_server, the real local backend)."""

from __future__ import annotations

import json
import time

import pytest
from test_server_handlers import write_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.usefixtures("dlw_home")

BODY = "from dlw_magic import log_metrics\nlog_metrics(step=1, accuracy=lr * epochs)\n"


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    def call(*parts, **kwargs):
        return json.loads(jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs)).body)

    return call


@pytest.fixture
def api_error(jp_fetch, jp_asyncio_loop):
    from tornado.httpclient import HTTPClientError

    def call(*parts, **kwargs):
        with pytest.raises(HTTPClientError) as info:
            jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))
        return info.value.code, json.loads(info.value.response.body)

    return call


def test_a_sweep_from_the_lab_runs_lists_compares_and_promotes(api, jp_root_dir) -> None:
    write_notebook(jp_root_dir / "sub" / "nb.ipynb", body=BODY)
    created = api("dlw/api/experiments", method="POST", body=json.dumps({
        "notebook": "sub/nb.ipynb", "parameters": {"lr": [0.1, 0.2], "epochs": [3]}, "parallel": 2,
        "metric": "accuracy", "name": "lab"}))
    assert created["name"] == "lab" and len(created["trials"]) == 2
    deadline = time.monotonic() + 120
    while (data := api("dlw/api/experiments/lab"))["state"] == "Running" and time.monotonic() < deadline:
        time.sleep(0.3)
    assert data["state"] == "Succeeded" and data["best"] == "lab-001"
    assert data["trials"][1]["curve"] == [[1, pytest.approx(0.6)]]
    assert [e["name"] for e in api("dlw/api/experiments")["experiments"]] == ["lab"]
    diff = api("dlw/api/compare", params={"jobs": "lab-000,lab-001"})
    assert diff["parameters"] == ["lr"] and "image" in diff["same"] and "param epochs" in diff["same"]
    assert [j["lastMetrics"]["accuracy"][1] for j in diff["jobs"]] == [pytest.approx(0.3), pytest.approx(0.6)]
    job = api("dlw/api/experiments/lab/promote", method="POST", body="{}")
    assert job["name"] != "lab-001" and job["state"] in ("Queued", "Running", "Succeeded")


def test_bad_sweeps_are_400_with_the_field(api_error, jp_root_dir) -> None:
    write_notebook(jp_root_dir / "nb.ipynb", body=BODY)
    code, body = api_error("dlw/api/experiments", method="POST", body=json.dumps(
        {"notebook": "nb.ipynb", "parameters": {"lr": ["fast"]}}))
    assert code == 400 and "parameter 'lr' expects float" in body["message"]
    code, body = api_error("dlw/api/experiments", method="POST", body=json.dumps(
        {"notebook": "../nb.ipynb", "parameters": {"lr": [1.0]}}))
    assert code == 403
    code, body = api_error("dlw/api/experiments/nope")
    assert code == 404 and "nope" in body["message"]
