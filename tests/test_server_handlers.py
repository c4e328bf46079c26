"""The lab extension's REST API against a real jupyter_server (pytest-jupyter), no backend needed.

Authentication, XSRF, bad input, paths outside the root, GPUs, dialog options and parameters.
Job submission against the real local backend is in test_server_jobs.py.
"""

from __future__ import annotations

import json
import warnings

import nbformat
import pytest
from jupyter_server.serverapp import ServerWebApplication
from tornado.httpclient import HTTPClientError

from dlw_magic.server import HANDLERS, JOB_NAME

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # a real Jupyter server per test

pytestmark = pytest.mark.usefixtures("dlw_home")  # every test gets its own DLW data directory


def _example_url(pattern: str) -> str:
    from dlw_magic.server.tensorboard import VIEW

    return "dlw/api/" + pattern.replace(JOB_NAME, "some-job").replace(VIEW, "0123456789ab").replace("(?P<path>.*)", "x")


def write_notebook(path, params_source="lr = 0.1\nepochs = 2", body="print('hello')"):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(params_source)
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell(body)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


# pytest-asyncio (asyncio_mode=auto) would run async tests on its own loop, not the server's: tests are
# plain functions that drive the server's loop.
@pytest.fixture
def api(jp_fetch, jp_asyncio_loop):
    def call(*parts, **kwargs):
        return jp_asyncio_loop.run_until_complete(jp_fetch(*parts, **kwargs))

    return call


@pytest.fixture
def api_error(api):
    def call(*parts, **kwargs) -> tuple[int, dict]:
        with pytest.raises(HTTPClientError) as info:
            api(*parts, **kwargs)
        assert info.value.response is not None, info.value
        response = info.value.response
        is_json = response.headers.get("Content-Type", "").startswith("application/json")
        return info.value.code, (json.loads(response.body) if is_json else {})

    return call


def test_every_handler_method_is_authenticated():
    """The extension template's CI check: jupyter_server lists methods lacking @web.authenticated."""
    missing = []
    for pattern, handler in HANDLERS:
        missing += ServerWebApplication._check_handler_auth(None, pattern, handler)  # type: ignore[arg-type]
    assert missing == []
    assert all(HANDLERS), "handler table is empty"


def test_loading_the_extension_warns_about_no_anonymous_handler(jp_serverapp):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        jp_serverapp.web_app.add_handlers(".*$", [(f"/x/{p}", h) for p, h in HANDLERS])


@pytest.mark.parametrize("pattern,handler", HANDLERS, ids=[p for p, _ in HANDLERS])
def test_unauthenticated_requests_are_refused(api, api_error, pattern, handler):
    url = _example_url(pattern)
    methods = [m for m in ("GET", "POST", "PUT", "PATCH", "DELETE") if m.lower() in handler.__dict__]
    assert methods
    for method in methods:
        kwargs = {"body": "{}"} if method == "POST" else {}
        code, body = api_error(url, method=method, headers={"Authorization": ""}, **kwargs)
        assert code == 403, (method, url)


def test_post_with_login_cookie_but_no_xsrf_token_is_refused(api, api_error, jp_serverapp, jp_root_dir):
    token = jp_serverapp.identity_provider.token
    first = api("dlw/api/gpus", params={"token": token}, headers={"Authorization": ""})
    cookies = [c.split(";")[0] for c in first.headers.get_list("Set-Cookie")]
    login = [c for c in cookies if not c.startswith("_xsrf")]
    assert login, "the server set no login cookie"
    write_notebook(jp_root_dir / "nb.ipynb")
    code, body = api_error(
        "dlw/api/jobs", method="POST", body=json.dumps({"notebook": "nb.ipynb"}),
        headers={"Authorization": "", "Cookie": "; ".join(login)},
    )
    assert code == 403
    assert "xsrf" in body["message"].lower()


def test_gpus_on_a_machine_without_nvidia_is_an_empty_list_with_a_reason(api, api_error, monkeypatch):
    monkeypatch.setenv("DLW_FAKE_NO_NVML", "1")
    r = api("dlw/api/gpus")
    data = json.loads(r.body)
    assert data["gpus"] == []
    assert "NVML" in data["reason"]


def test_gpus_on_a_machine_with_nvidia_report_memory(api):
    from dlw_magic.gpus import local_gpus

    if not local_gpus()[0]:
        pytest.skip("no NVIDIA GPU on this machine")
    data = json.loads(api("dlw/api/gpus").body)
    assert data["reason"] is None
    assert all(g["memory_total_mib"] > 0 and g["name"] for g in data["gpus"])


CATALOGUE = (
    "profiles:\n- {name: cpu, displayName: CPU, image: img:1}\n"
    "volumes:\n- {name: datasets, type: dataset, mountPath: /data, claimName: ds}\n"
    "queues:\n- {name: research, default: true}\n"
    "priorityClasses:\n- {name: dlw-high, value: 1000}\n"
)


def test_options_list_the_admin_catalogue_for_kubernetes(tmp_path, monkeypatch):
    from dlw_magic.server.options import job_options

    ws = tmp_path / "workspace.yaml"
    ws.write_text(CATALOGUE)
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(ws))
    data = job_options("kubernetes")
    assert [v["name"] for v in data["volumes"]] == ["datasets"]
    assert data["volumes"][0]["mountPath"] == "/data"
    assert [q["name"] for q in data["queues"]] == ["research"]
    assert data["priorityClasses"][0] == {"name": "dlw-high", "value": 1000, "default": False, "description": ""}
    assert data["engines"] == ["job", "volcano", "pytorchjob", "trainjob"] and data["reason"] is None
    assert data["unavailable"] == {}


def test_options_on_the_local_backend_leave_out_what_it_cannot_run(api, tmp_path, monkeypatch):
    ws = tmp_path / "workspace.yaml"
    ws.write_text(CATALOGUE)
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(ws))
    data = json.loads((api("dlw/api/options")).body)
    assert data["backend"] == "local"
    assert data["engines"] == ["job"]
    assert data["volumes"] == [] and data["queues"] == []
    assert "catalogue volumes" in data["unavailable"]["volumes"]
    assert "Kubernetes" in data["unavailable"]["queues"]
    assert data["priorityClasses"][0]["name"] == "dlw-high"  # local jobs are ordered by priority


def test_options_without_workspace_config_are_empty_with_a_reason(api, api_error, tmp_path, monkeypatch):
    monkeypatch.setenv("DLW_WORKSPACE_CONFIG", str(tmp_path / "missing.yaml"))
    data = json.loads((api("dlw/api/options")).body)
    assert data["volumes"] == [] and data["queues"] == []
    assert "missing.yaml" in data["reason"]
    assert data["engines"] == ["job"]


def test_parameters_prefill_reads_the_parameters_cell(api, api_error, jp_root_dir):
    pytest.importorskip("dlw_magic.convert", reason="convert").__dict__.get("read_parameters") or pytest.skip(
        "dlw_magic.convert.read_parameters not there yet"
    )
    write_notebook(jp_root_dir / "sub" / "nb.ipynb")
    data = json.loads((api("dlw/api/parameters", params={"path": "sub/nb.ipynb"})).body)
    assert data["parameters"] == {"lr": 0.1, "epochs": 2}


@pytest.mark.parametrize("path", ["../outside.ipynb", "/../../etc/passwd", "sub/../../x.ipynb"])
def test_paths_outside_the_root_are_refused(api, api_error, jp_root_dir, path):
    write_notebook(jp_root_dir.parent / "outside.ipynb")
    code, body = api_error("dlw/api/parameters", params={"path": path})
    assert code == 403
    assert body["message"].startswith("path:") and "outside the server root" in body["message"]
    code, body = api_error("dlw/api/jobs", method="POST", body=json.dumps({"notebook": path}))
    assert code == 403
    assert body["message"].startswith("notebook:")


def test_symlink_out_of_the_root_is_refused(api, api_error, jp_root_dir):
    outside = write_notebook(jp_root_dir.parent / "secret" / "nb.ipynb")
    (jp_root_dir / "link.ipynb").symlink_to(outside)
    code, body = api_error("dlw/api/jobs", method="POST", body=json.dumps({"notebook": "link.ipynb"}))
    assert code == 403


def test_spec_naming_a_notebook_outside_the_root_is_refused(api, api_error, jp_root_dir):
    write_notebook(jp_root_dir.parent / "outside.ipynb")
    spec = "name: sneaky\nsource:\n  notebook: ../outside.ipynb\n"
    code, body = api_error("dlw/api/jobs", method="POST", body=json.dumps({"spec": spec}))
    assert code == 403
    assert body["message"].startswith("spec.source.notebook:")
    spec = "name: sneaky\nsource:\n  workdir: /etc\n  script: passwd\n"
    code, body = api_error("dlw/api/jobs", method="POST", body=json.dumps({"spec": spec}))
    assert code == 403


@pytest.mark.parametrize(
    "body,status,starts",
    [
        ("not json", 400, "request body: invalid JSON"),
        ("[1, 2]", 400, "request body: expected a JSON object"),
        ({}, 400, "notebook: give exactly one"),
        ({"notebook": "nb.ipynb", "spec": "x: 1"}, 400, "notebook: give exactly one"),
        ({"notebook": "nb.ipynb", "workers": "two"}, 400, "workers: expected an integer"),
        ({"notebook": "nb.ipynb", "gpus": True}, 400, "gpus: expected an integer"),
        ({"notebook": "nb.ipynb", "workers": 0}, 400, "nb.ipynb: workers:"),
        ({"notebook": "nb.ipynb", "name": "Bad_Name"}, 400, "nb.ipynb: name:"),
        ({"notebook": "nb.ipynb", "engine": "slurm"}, 400, "nb.ipynb: engine:"),
        ({"notebook": "nb.ipynb", "parameters": [1]}, 400, "parameters: expected an object"),
        ({"notebook": "nb.ipynb", "volumes": "data"}, 400, "volumes: expected a list"),
        ({"notebook": "nb.ipynb", "volumes": [3]}, 400, "volumes[0]: expected a volume name"),
        ({"notebook": "nb.ipynb", "colour": "red"}, 400, "colour: unknown field"),
        ({"notebook": "missing.ipynb"}, 404, "notebook: 'missing.ipynb' not found"),
        ({"notebook": "nb\u0000.ipynb"}, 400, "notebook: 'nb\\x00.ipynb' is not a usable path"),
        ({"notebook": "data.csv"}, 400, "notebook: 'data.csv' is not a .ipynb"),
        ({"spec": "name: [unclosed"}, 400, "inline spec: line 1"),
        ({"spec": "name: x\nsource: {notebook: nb.ipynb}\nworkers: -1\n"}, 400, "inline spec: workers:"),
        ({"spec": 42}, 400, "spec: expected job YAML text"),
    ],
)
def test_bad_submit_input_is_a_400_naming_the_field(api, api_error, jp_root_dir, body, status, starts):
    write_notebook(jp_root_dir / "nb.ipynb")
    (jp_root_dir / "data.csv").write_text("a,b\n")
    raw = body if isinstance(body, str) else json.dumps(body)
    code, reply = api_error("dlw/api/jobs", method="POST", body=raw)
    assert code == status
    assert reply["message"].startswith(starts), reply["message"]
    assert "\n" not in reply["message"]


@pytest.mark.parametrize(
    "params,starts",
    [
        ({"rank": "x"}, "rank: expected a rank number"),
        ({"rank": "0", "offset": "abc"}, "offset: expected a byte offset"),
        ({"rank": "0", "offset": "-5"}, "offset: must not be negative"),
        ({"offset": "10"}, "offset: resuming needs a rank"),
    ],
)
def test_bad_log_arguments_are_a_400(api, api_error, params, starts):
    code, reply = api_error("dlw/api/jobs/some-job/logs", params=params)
    assert code == 400
    assert reply["message"].startswith(starts)


def test_job_urls_only_take_job_names(api, api_error):
    code, _ = api_error("dlw/api/jobs/..%2F..%2Fetc")
    assert code == 404


def test_backend_class_is_configurable_like_a_scheduler_class(dlw_home):
    from traitlets.config import Config

    from dlw_magic.backends.local import LocalBackend
    from dlw_magic.server import DLWServer

    config = Config({"DLWServer": {"backend_class": "dlw_magic.backends.local.LocalBackend"}})
    server = DLWServer(config=config)
    backend = server.make_backend()
    assert isinstance(backend, LocalBackend) and server.make_backend() is backend
    assert DLWServer(config=Config({"DLWServer": {"backend": "local"}})).make_backend().name == "local"


def test_an_admin_yaml_alone_keeps_the_local_backend_and_builds_it(tmp_path, monkeypatch):
    """`c.DLWServer.workspace_config` tells Kubernetes how to render; it does not pick Kubernetes."""
    from dlw_magic.server import DLWServer

    for var in ("DLW_BACKEND", "DLW_KUBECONFIG", "KUBERNETES_SERVICE_HOST"):
        monkeypatch.delenv(var, raising=False)
    ws = tmp_path / "workspace.yaml"
    ws.write_text(CATALOGUE)
    server = DLWServer(workspace_config=str(ws))
    assert server.backend_name() == "local"
    assert server.make_backend().list_jobs() == []
    assert DLWServer(workspace_config=str(ws), backend="local").make_backend().name == "local"
