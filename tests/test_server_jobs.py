"""The REST API driving real jobs on the real local backend: submit, list, logs (followed, resumed),
cancel, rerun, and the 404/409 answers a person gets for unknown or finished jobs."""

from __future__ import annotations

import json
import time

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # a real Jupyter server per test

pytestmark = [pytest.mark.timeout(180), pytest.mark.usefixtures("dlw_home")]


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    """Plain calls on the server's loop (pytest-asyncio would run async tests on another loop)."""

    def call(path, method="GET", body=None, **kwargs):
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        r = jp_asyncio_loop.run_until_complete(jp_fetch("dlw/api", path, method=method, body=body, **kwargs))
        return json.loads(r.body) if r.body and r.headers["Content-Type"].startswith("application/json") else r

    return call


@pytest.fixture
def api_error(api):
    def call(path, **kwargs):
        with pytest.raises(HTTPClientError) as info:
            api(path, **kwargs)
        return info.value.code, json.loads(info.value.response.body)["message"]

    return call


@pytest.fixture
def stream(jp_fetch, jp_asyncio_loop):
    """Follow a job's log as server-sent events; returns the parsed (event, data, id) list."""

    def call(name, headers=None, **params):
        buf = []
        jp_asyncio_loop.run_until_complete(jp_fetch(
            "dlw/api/jobs", name, "logs", params={"follow": "1", **params}, headers=headers,
            streaming_callback=buf.append, request_timeout=120,
        ))
        events = []
        for block in b"".join(buf).decode().split("\n\n"):
            fields = dict(line.split(": ", 1) for line in block.splitlines() if line and not line.startswith(":"))
            if fields:
                events.append((fields.get("event"), json.loads(fields["data"]), fields.get("id")))
        return events

    return call


def notebook(root, name, body, params="n = 3"):
    nb = {
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "source": params,
             "outputs": [], "execution_count": None},
            {"cell_type": "code", "metadata": {}, "source": body, "outputs": [], "execution_count": None},
        ],
    }
    (root / name).write_text(json.dumps(nb))
    return name


def wait_state(api, name, states, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api(f"jobs/{name}")
        if job["state"] in states:
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} stayed {job['state']}, expected {states}")


PRINT_LINES = "for i in range(n):\n    print(f'line {i}', flush=True)\n"


def test_submit_list_detail_and_logs_of_a_notebook_job(api, api_error, stream, jp_root_dir):
    notebook(jp_root_dir, "nb.ipynb", PRINT_LINES)
    job = api("jobs", "POST", {"notebook": "nb.ipynb", "name": "hello", "parameters": {"n": 5}})
    assert job["name"] == "hello" and job["state"] in ("Queued", "Running")
    assert job["output_path"] == "dlw-outputs/hello"  # DLW_HOME is outside the root: linked into it

    names = [j["name"] for j in api("jobs")["jobs"]]
    assert names == ["hello"]
    assert "spec" not in api("jobs")["jobs"][0]  # the list stays light for 1,000 jobs

    events = stream("hello", rank="0")
    assert events[-1][:2] == ("end", {"state": "Succeeded"})
    text = "".join(d["text"] for e, d, _ in events if e == "log")
    assert text == "".join(f"line {i}\n" for i in range(5))

    detail = api("jobs/hello")
    assert detail["state"] == "Succeeded" and detail["exit_code"] == 0
    assert "name: hello" in detail["yaml"] and "n: 5" in detail["yaml"]
    # One click away in the panel: the executed notebook, under the same link as the outputs.
    assert detail["executed_notebook_path"] == "dlw-outputs/hello/executed.ipynb"
    assert (jp_root_dir / detail["executed_notebook_path"]).is_file() and detail["metrics"] == {}
    assert "metrics" not in api("jobs")["jobs"][0]

    logs = api("jobs/hello/logs", params={"rank": "0"})
    assert "".join(c["text"] for c in logs["chunks"]) == text

    code, message = api_error("jobs", method="POST", body={"notebook": "nb.ipynb", "name": "hello"})
    assert code == 409 and "hello" in message
    code, message = api_error("jobs/hello/cancel", method="POST", body={})
    assert code == 409 and "hello" in message


def test_a_followed_log_resumes_from_an_offset(api, stream, jp_root_dir):
    notebook(jp_root_dir, "nb.ipynb", PRINT_LINES)
    api("jobs", "POST", {"notebook": "nb.ipynb", "name": "resume", "parameters": {"n": 4}})
    full = [d for e, d, _ in stream("resume", rank="0") if e == "log"]
    text = "".join(d["text"] for d in full)
    first_line = len("line 0\n")
    rest = [d for e, d, _ in stream("resume", rank="0", offset=str(first_line)) if e == "log"]
    assert "".join(d["text"] for d in rest) == text[first_line:]
    # EventSource-style resume: the last event id carries rank and offset.
    again = stream("resume", headers={"Last-Event-ID": f"0:{first_line}"})
    assert "".join(d["text"] for e, d, _ in again if e == "log") == text[first_line:]


@pytest.mark.slow
def test_a_chatty_job_streams_in_batches_and_the_server_stays_responsive(api, stream, jp_root_dir):
    notebook(jp_root_dir, "chatty.ipynb", PRINT_LINES, params="n = 20000")
    api("jobs", "POST", {"notebook": "chatty.ipynb", "name": "chatty"})
    events = stream("chatty", rank="0")
    logs = [d for e, d, _ in events if e == "log"]
    text = "".join(d["text"] for d in logs)
    assert text.count("\n") == 20000 and text.endswith("line 19999\n")
    assert len(logs) < 2000, f"{len(logs)} events for 20,000 lines: not batched"
    assert events[-1][0] == "end"


def test_cancel_a_running_job_then_cancel_again_is_a_conflict(api, api_error, jp_root_dir):
    notebook(jp_root_dir, "sleepy.ipynb", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    api("jobs", "POST", {"notebook": "sleepy.ipynb", "name": "sleepy"})
    wait_state(api, "sleepy", {"Running"})
    started = time.monotonic()
    gpus = api("gpus")  # the server answers while a job runs
    assert time.monotonic() - started < 5 and "gpus" in gpus
    job = api("jobs/sleepy/cancel", "POST", {})
    assert job["state"] in ("Cancelled", "Running")
    assert wait_state(api, "sleepy", {"Cancelled"})["state"] == "Cancelled"
    code, message = api_error("jobs/sleepy/cancel", method="POST", body={})
    assert code == 409


def test_unknown_jobs_are_404_with_a_message(api_error):
    for path, method in [("jobs/nope", "GET"), ("jobs/nope/cancel", "POST"), ("jobs/nope/logs", "GET"),
                         ("jobs/nope/rerun", "POST")]:
        code, message = api_error(path, method=method, body={} if method == "POST" else None)
        assert code == 404 and "nope" in message, (path, message)


def test_rank_beyond_the_jobs_world_size_is_a_400(api, api_error, jp_root_dir):
    notebook(jp_root_dir, "nb.ipynb", PRINT_LINES)
    api("jobs", "POST", {"notebook": "nb.ipynb", "name": "one-rank"})
    code, message = api_error("jobs/one-rank/logs", params={"rank": "3"})
    assert code == 400 and message.startswith("rank:")


def test_submit_a_pasted_spec_and_rerun_it(api, jp_root_dir):
    notebook(jp_root_dir, "nb.ipynb", PRINT_LINES)
    spec = "name: from-yaml\nsource:\n  notebook: nb.ipynb\nparameters:\n  n: 2\n"
    job = api("jobs", "POST", {"spec": spec})
    assert job["name"] == "from-yaml"
    assert wait_state(api, "from-yaml", {"Succeeded", "Failed"})["state"] == "Succeeded"
    again = api("jobs/from-yaml/rerun", "POST", {"name": "from-yaml-2"})
    assert again["name"] == "from-yaml-2"
    assert wait_state(api, "from-yaml-2", {"Succeeded", "Failed"})["state"] == "Succeeded"
    assert {j["name"] for j in api("jobs")["jobs"]} == {"from-yaml", "from-yaml-2"}


def test_delete_refuses_a_running_job_then_removes_a_finished_one_with_its_files(api, api_error, jp_root_dir):
    from dlw_magic.backends import get_backend

    notebook(jp_root_dir, "sleepy.ipynb", "import time\nprint('up', flush=True)\ntime.sleep(120)\n")
    api("jobs", "POST", {"notebook": "sleepy.ipynb", "name": "to-delete"})
    wait_state(api, "to-delete", {"Running"})
    job_dir = get_backend().snapshot_of("to-delete").parent
    code, message = api_error("jobs/to-delete", method="DELETE")
    assert code == 409 and "cancel it before deleting" in message
    api("jobs/to-delete/cancel", "POST", {})
    wait_state(api, "to-delete", {"Cancelled"})
    response = api("jobs/to-delete", "DELETE")
    assert response.code == 204
    assert api("jobs")["jobs"] == []
    assert not job_dir.exists()
    code, _ = api_error("jobs/to-delete")
    assert code == 404


def test_shipping_the_notebooks_folder_lets_the_job_read_files_by_relative_path(api, jp_root_dir, dlw_home):
    (jp_root_dir / "data").mkdir()
    (jp_root_dir / "data" / "numbers.txt").write_text("1 2 3\n")
    (jp_root_dir / ".secret").write_text("not shipped\n")
    notebook(jp_root_dir, "reader.ipynb", "import os\n"
             "open(os.path.join(os.environ['DLW_OUTPUT_DIR'], 'out.txt'), 'w').write('x')\n"
             "print(open('data/numbers.txt').read().split())\n"
             "print('hidden shipped:', os.path.exists('.secret'))\n"
             "print('outputs shipped:', os.path.exists('dlw-outputs'))\n")
    api("jobs", "POST", {"notebook": "reader.ipynb", "name": "alone"})
    failed = wait_state(api, "alone", {"Succeeded", "Failed"})
    assert (jp_root_dir / "dlw-outputs" / "alone" / "out.txt").is_file()
    assert failed["state"] == "Failed"
    log = "".join(c["text"] for c in api("jobs/alone/logs")["chunks"])
    assert "Ship the notebook's folder" in log
    api("jobs", "POST", {"notebook": "reader.ipynb", "name": "shipped", "files": ["**"]})
    assert wait_state(api, "shipped", {"Succeeded", "Failed"})["state"] == "Succeeded"
    log = "".join(c["text"] for c in api("jobs/shipped/logs")["chunks"])
    assert "['1', '2', '3']" in log and "hidden shipped: False" in log
    assert "outputs shipped: False" in log  # the earlier job's output, linked into the root, stays out


def test_outputs_outside_the_root_open_in_the_file_browser_through_a_link(api, jp_root_dir, jp_fetch,
                                                                         jp_asyncio_loop):
    notebook(jp_root_dir, "writer.ipynb", "import os\nopen(os.path.join(os.environ['DLW_OUTPUT_DIR'], "
             "'metrics.json'), 'w').write('{}')\n")
    job = api("jobs", "POST", {"notebook": "writer.ipynb", "name": "writer"})
    assert job["output_path"] == "dlw-outputs/writer"
    assert wait_state(api, "writer", {"Succeeded", "Failed"})["state"] == "Succeeded"
    assert api("jobs/writer/output", "POST", {}) == {"path": "dlw-outputs/writer"}
    listing = jp_asyncio_loop.run_until_complete(jp_fetch("api", "contents", "dlw-outputs", "writer"))
    assert sorted(f["name"] for f in json.loads(listing.body)["content"]) == ["executed.ipynb", "metrics.json"]
    api("jobs/writer", "DELETE")
    assert not (jp_root_dir / "dlw-outputs" / "writer").is_symlink()
