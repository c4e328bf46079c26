"""The lab's REST API for schedules and diffs: create, list, pause, resume, run now, delete; bad input
is a 400 naming the field; a notebook outside the root is refused."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from dlw_magic import core
from tests.test_server_handlers import write_notebook

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop, dlw_home, monkeypatch):
    monkeypatch.setenv("DLW_SCHEDULER_AUTOSTART", "0")

    def call(*parts, **kwargs):
        response = jp_asyncio_loop.run_until_complete(jp_fetch("dlw", "api", *parts, **kwargs))
        return json.loads(response.body) if response.body else None

    return call


def _error(api, *parts, **kwargs) -> tuple[int, str]:
    with pytest.raises(HTTPClientError) as info:
        api(*parts, **kwargs)
    assert info.value.response is not None
    return info.value.code, json.loads(info.value.response.body)["message"]


def test_create_pause_resume_run_delete(api, jp_root_dir):
    write_notebook(jp_root_dir / "work" / "train.ipynb")
    body = {"notebook": "work/train.ipynb", "cron": "0 3 * * *", "timezone": "Europe/Berlin", "name": "nightly",
            "concurrency": "replace", "keep": 2, "options": {"parameters": {"lr": 0.5}}}
    created = api("schedules", method="POST", body=json.dumps(body))
    shown = (created["name"], created["concurrency"], created["keep"], created["paused"])
    assert shown == ("nightly", "Replace", 2, False)
    assert created["nextRun"] is not None
    assert [s["name"] for s in api("schedules")["schedules"]] == ["nightly"]
    assert api("schedules", "nightly", "pause", method="POST", body="{}")["paused"] is True
    assert api("schedules", "nightly", "resume", method="POST", body="{}")["paused"] is False
    edited = api("schedules", "nightly", method="POST", body=json.dumps({"cron": "@hourly"}))
    assert edited["cron"] == "@hourly"
    job = api("schedules", "nightly", "run", method="POST", body="{}")
    assert job["name"].startswith("nightly-")
    assert core.wait(job["name"], timeout=120).state.value == "Succeeded"
    runs = api("schedules", "nightly")["runs"]
    assert [(r["job"], r["state"]) for r in runs] == [(job["name"], "Succeeded")]
    api("schedules", "nightly", method="DELETE")
    assert api("schedules")["schedules"] == []
    code, message = _error(api, "schedules", "nightly")
    assert code == 404 and "no schedule named 'nightly'" in message


@pytest.mark.parametrize("body, status, words", [
    ({"cron": "0 0 30 2 *"}, 400, "never fires"),
    ({"cron": "* * * * * * *"}, 400, "has 7 fields"),
    ({"cron": "@daily", "timezone": "Atlantis/Capital"}, 400, "timezone: 'Atlantis/Capital' is not a time zone"),
    ({"cron": "@daily", "keep": "many"}, 400, "keep: expected a number"),
    ({}, 400, "cron: required"),
    ({"cron": "@daily", "notebook": "../outside.ipynb"}, 403, "outside the server root"),
    ({"cron": "@daily", "notebook": "missing.ipynb"}, 404, "not found"),
])
def test_bad_definitions_are_refused_naming_the_field(api, jp_root_dir, body, status, words):
    write_notebook(jp_root_dir / "nb.ipynb")
    code, message = _error(api, "schedules", method="POST", body=json.dumps({"notebook": "nb.ipynb", **body}))
    assert code == status and words in message and "\n" not in message
    assert api("schedules")["schedules"] == []


def test_diff_with_another_job_and_with_now(api, jp_root_dir):
    nb = write_notebook(jp_root_dir / "nb.ipynb")
    first = api("jobs", method="POST", body=json.dumps({"notebook": "nb.ipynb", "name": "first"}))
    write_notebook(nb, body="print('changed')")
    api("jobs", method="POST", body=json.dumps({"notebook": "nb.ipynb", "name": "second", "workers": 2}))
    d = api("jobs", first["name"], "diff", params={"other": "second"})
    assert d["same"] is False and "+print('changed')" in d["text"]
    assert [c["what"] for c in d["sections"]["run"]] == ["workers"]
    now = api("jobs", "first", "diff")
    assert now["b"] == "now" and "+print('changed')" in now["text"]
    code, message = _error(api, "jobs", "first", "diff", params={"other": "nope"})
    assert code == 404
