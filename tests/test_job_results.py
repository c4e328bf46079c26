"""What jupyter-scheduler gives beside a run, on the real local backend: the executed notebook as HTML,
the output folder as one zip, tags to find jobs by, start and end times, and parameters the notebook's
parameters cell does not define. Through the REST API (a real jupyter_server) and the real `dlw` command."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
from tornado.httpclient import HTTPClientError

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # a real Jupyter server per test

pytestmark = [pytest.mark.timeout(240), pytest.mark.usefixtures("dlw_home")]


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    def call(path, method="GET", body=None, **kwargs):
        if body is not None and not isinstance(body, str):
            body = json.dumps(body)
        r = jp_asyncio_loop.run_until_complete(jp_fetch("dlw/api", path, method=method, body=body, **kwargs))
        return json.loads(r.body) if r.headers.get("Content-Type", "").startswith("application/json") else r

    return call


def write_notebook(root: Path, name: str, body: str, params: str = "n = 3") -> str:
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


def wait_finished(api, name: str, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api(f"jobs/{name}")
        if job["state"] in ("Succeeded", "Failed", "Cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"{name} did not finish")


def dlw(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=os.environ.copy(), timeout=120)


def test_html_export_zip_download_tags_and_times_through_the_rest_api(api, jp_root_dir):
    write_notebook(jp_root_dir, "nb.ipynb",
                   "import os\nprint(f'seed is {seed}, n is {n}')\n"
                   "open(os.path.join(os.environ['DLW_OUTPUT_DIR'], 'model.txt'), 'w').write('weights')\n")
    job = api("jobs", "POST", {"notebook": "nb.ipynb", "name": "tagged", "tags": ["baseline", "v2"],
                               "parameters": {"seed": 7}})
    assert job["tags"] == ["baseline", "v2"]
    # seed is not in the parameters cell: injected after it, and the reply says so (the dialog shows it)
    assert job["notes"] == ["parameter 'seed' is not in the parameters cell: set as a new variable after it"]
    api("jobs", "POST", {"notebook": "nb.ipynb", "name": "untagged"})
    done = wait_finished(api, "tagged")
    assert done["state"] == "Succeeded", done
    # start and end times for the UI
    assert done["started"] <= done["finished"] and done["created"] <= done["started"]

    assert [j["name"] for j in api("jobs", params={"tag": "baseline"})["jobs"]] == ["tagged"]
    page = api("jobs", params={"tag": "baseline", "limit": "1"})  # paging counts only the tagged jobs
    assert (page["total"], page["more"]) == (1, False)
    assert api("jobs", params={"tag": "baseline", "offset": "1"})["jobs"] == []
    page = api("jobs", params={"limit": "1"})
    assert (len(page["jobs"]), page["total"], page["more"]) == (1, 2, True)
    assert api("jobs", params={"tag": "nope"})["jobs"] == []
    assert {j["name"] for j in api("jobs")["jobs"]} == {"tagged", "untagged"}

    # The executed notebook as HTML, made beside it, served sandboxed.
    r = api("jobs/tagged/html")
    assert r.headers["Content-Type"].startswith("text/html")
    assert r.headers["Content-Security-Policy"] == "sandbox allow-scripts"
    assert "seed is 7, n is 3" in r.body.decode()
    assert (jp_root_dir / "dlw-outputs" / "tagged" / "executed.html").is_file()

    # The whole output folder in one zip, files under the job's name.
    r = api("jobs/tagged/download")
    assert r.headers["Content-Type"] == "application/zip"
    assert 'filename="tagged-output.zip"' in r.headers["Content-Disposition"]
    names = zipfile.ZipFile(io.BytesIO(r.body)).namelist()
    assert "tagged/model.txt" in names and "tagged/executed.ipynb" in names
    assert zipfile.ZipFile(io.BytesIO(r.body)).read("tagged/model.txt") == b"weights"


def test_unauthenticated_html_and_download_are_refused(api, jp_root_dir):
    write_notebook(jp_root_dir, "nb.ipynb", "print('x')")
    api("jobs", "POST", {"notebook": "nb.ipynb", "name": "private"})
    wait_finished(api, "private")
    for what in ("html", "download"):
        with pytest.raises(HTTPClientError) as info:
            api(f"jobs/private/{what}", headers={"Authorization": ""})
        assert info.value.code == 403, what


def test_a_bad_tag_is_a_one_line_error_naming_the_field(api, jp_root_dir):
    write_notebook(jp_root_dir, "nb.ipynb", "print('x')")
    with pytest.raises(HTTPClientError) as info:
        api("jobs", "POST", {"notebook": "nb.ipynb", "tags": ["has space"]})
    assert info.value.code == 400
    assert json.loads(info.value.response.body)["message"].startswith("tags: ")


def test_dialog_gets_parameter_types_and_the_job_name_rule(api, jp_root_dir):
    write_notebook(jp_root_dir, "nb.ipynb", "pass", params="epochs = 12  # passes\nlr = 0.05\nname = 'x'")
    params = api("parameters", params={"path": "nb.ipynb"})
    assert params["parameters"] == {"epochs": 12, "lr": 0.05, "name": "x"}
    assert {k: v["type"] for k, v in params["types"].items()} == {"epochs": "int", "lr": "float", "name": "str"}
    assert params["types"]["epochs"]["help"] == "passes"
    rule = api("options")["rules"]["name"]
    import re

    assert re.match(rule["pattern"], "my-job") and not re.match(rule["pattern"], "My_Job")
    assert rule["maxLength"] == 52


def test_cli_tag_filter_status_html_and_download(tmp_path: Path) -> None:
    write_notebook(tmp_path, "nb.ipynb", "import os\nprint('hello html')\n"
                   "open(os.path.join(os.environ['DLW_OUTPUT_DIR'], 'out.txt'), 'w').write('ok')\n")
    r = dlw("train", "nb.ipynb", "--name", "cli-tagged", "--tag", "exp1", "-p", "extra=5", "--wait", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    # a parameter the cell does not define: accepted, with a one-line notice
    assert "dlw: note: parameter 'extra' is not in the parameters cell: set as a new variable after it" in r.stderr
    r = dlw("train", "nb.ipynb", "--name", "cli-other", "--wait", cwd=tmp_path)
    assert r.returncode == 0, r.stderr

    listed = dlw("jobs", "--tag", "exp1")
    assert "cli-tagged" in listed.stdout and "cli-other" not in listed.stdout
    assert "filtered by --tag nope" in dlw("jobs", "--tag", "nope").stdout

    status = dlw("status", "cli-tagged")
    assert status.returncode == 0, status.stderr
    lines = dict(line.split(":", 1) for line in status.stdout.splitlines() if ":" in line)
    assert lines["Tags"].strip() == "exp1"
    assert lines["Started"].strip() and lines["Finished"].strip()
    html = Path(lines["HTML"].strip())
    assert html.name == "executed.html" and "hello html" in html.read_text()

    r = dlw("download", "cli-tagged", "-o", str(tmp_path / "out.zip"))
    assert r.returncode == 0, r.stderr
    assert "cli-tagged/out.txt" in zipfile.ZipFile(tmp_path / "out.zip").namelist()
    missing = dlw("download", "no-such-job", "-o", str(tmp_path / "x.zip"))
    assert missing.returncode != 0 and "no-such-job" in missing.stderr
    assert not (tmp_path / "x.zip").exists() and not (tmp_path / ".x.zip.part").exists()
