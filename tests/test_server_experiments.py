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
        response = info.value.response
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return info.value.code, (json.loads(response.body) if is_json else {})

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
    # the Jobs panel groups trials by the experiment each job names; the promoted job is an ordinary one
    listed = {j["name"]: j["experiment"] for j in api("dlw/api/jobs")["jobs"]}
    assert listed == {"lab-000": "lab", "lab-001": "lab", job["name"]: None}


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


def test_tensorboard_of_a_job_opens_through_the_lab_login(api, api_error, jp_fetch, jp_asyncio_loop, jp_root_dir,
                                                          jp_base_url) -> None:
    pytest.importorskip("tensorboard")
    from dlw_magic import core

    (jp_root_dir / "train.py").write_text(
        "from dlw_magic import log_metrics\nfor s in range(3):\n    log_metrics(step=s, loss=1.0 / (s + 1))\n")
    spec = core.build_spec(spec_text="name: tb\nsource: {script: train.py}\nenv: {DLW_TENSORBOARD: '1'}\n",
                           base_dir=jp_root_dir)
    core.submit(spec)
    assert core.wait("tb", timeout=60).state.value == "Succeeded"
    code, body = api_error("dlw/api/tensorboard", method="POST", body=json.dumps({"jobs": ["nope"]}))
    assert code == 404
    # TensorBoard takes seconds to start (15 s on a loaded 2-core machine)
    view = api("dlw/api/tensorboard", method="POST", body=json.dumps({"jobs": ["tb"]}), request_timeout=180)
    assert view["url"].startswith(jp_base_url) and view["url"].endswith(f"/dlw/api/tensorboard/{view['view']}/")
    path = view["url"][len(jp_base_url):]
    page = jp_asyncio_loop.run_until_complete(jp_fetch(path))
    assert b"<tf-tensorboard" in page.body or b"tensorboard" in page.body.lower()
    runs = api(path + "data/runs")
    assert [r.split("/")[0] for r in runs] == ["tb"]  # the run is named after the job
    tags = api(path + "data/plugin/scalars/tags")
    assert "loss" in tags[runs[0]]
    code, _ = api_error(path + "data/runs", headers={"Authorization": ""})
    assert code == 403
