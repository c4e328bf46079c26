"""GPU-idle notebooks: the admin YAML fields, the hub service's wiring, the notebook server's side of
``/dlw/api/gpus`` and the culler against a real ``dlw hub`` and real notebook servers.

No GPU is needed: an NVML stand-in (tests/data/fake_nvml/pynvml.py, first on PYTHONPATH) reports GPUs
whose utilization a test sets by rewriting its ``gpus.json``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from tornado.httpclient import HTTPClientError
from traitlets.config import Config

from dlw_magic.errors import DLWError
from dlw_magic.hub.gpu_culler import SCOPES, SERVICE_NAME, Hub, Policy, cull_once
from dlw_magic.workspace import load_workspace, parse_workspace
from tests.test_hub_local import LocalHub, have_proxy, wait_ready, xsrf

pytest_plugins = ["pytest_jupyter.jupyter_server"]  # the server-side tests run a real Jupyter server

ROOT = Path(__file__).resolve().parents[1]
FAKE_NVML = ROOT / "tests" / "data" / "fake_nvml" / "pynvml.py"

WORKSPACE = {
    "apiVersion": "dlw/v1", "kind": "Workspace",
    "hub": {"gpuIdleTimeout": "1h", "gpuIdleWarning": "10m", "gpuIdleThreshold": 5},
    "profiles": [
        {"name": "gpu", "displayName": "GPUs", "image": "img:1", "default": True, "gpus": [2, 1]},
        {"name": "shared-gpu", "displayName": "Shared GPU", "image": "img:1", "gpus": [1],
         "gpuIdleAction": "warn"},
        {"name": "cpu", "displayName": "CPU", "image": "img:1"},
    ],
}


class FakeGpus:
    """The stand-in's GPUs: ``set(0, 0, 40)`` = GPU 0 at 0 %, GPU 1 at 0 %, GPU 2 at 40 %."""

    def __init__(self, folder: Path, count: int = 4) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(FAKE_NVML, folder / "pynvml.py")
        self.folder = folder
        self.set(*[0] * count)

    def set(self, *utilization: int | None) -> None:
        gpus = [{"name": "NVIDIA L4", "utilization": u, "memory_used_mib": 100} for u in utilization]
        tmp = self.folder / "gpus.json.tmp"
        tmp.write_text(json.dumps({"gpus": gpus}))
        tmp.replace(self.folder / "gpus.json")  # a server reading it never sees half a file


# ---------------------------------------------------------------------------------------------------------
# The admin YAML and the hub configuration


def test_admin_yaml_sets_timeout_threshold_and_action_per_profile() -> None:
    ws = parse_workspace(WORKSPACE, "ws.yaml")
    policy = Policy.from_workspace(ws)
    assert (policy.timeout, policy.warning, policy.threshold) == (3600, 600, 5)
    assert policy.action({"profile": "gpu", "gpus": "2"}) == "stop"
    assert policy.action({"profile": "shared-gpu"}) == "warn"
    assert policy.action({}) == "stop"  # no options: the default profile
    assert policy.action({"profile": "removed-since"}) == "warn"  # never stop on a policy nobody wrote


@pytest.mark.parametrize(("change", "message"), [
    ({"hub": {"gpuIdleTimeout": "soon"}}, "hub.gpuIdleTimeout"),
    ({"hub": {"gpuIdleThreshold": 101}}, "hub.gpuIdleThreshold"),
    ({"profiles": [{**WORKSPACE["profiles"][0], "gpuIdleAction": "kill"}]}, "profiles[0].gpuIdleAction"),
])
def test_bad_gpu_idle_settings_are_one_line_errors_naming_the_field(change: dict[str, Any], message: str) -> None:
    with pytest.raises(DLWError) as err:
        parse_workspace({**WORKSPACE, **change}, "ws.yaml")
    assert "\n" not in str(err.value) and message in str(err.value)


def test_without_a_timeout_there_is_no_gpu_culler(tmp_path: Path) -> None:
    from dlw_magic.hub.kube import configure

    ws_file = tmp_path / "ws.yaml"
    ws_file.write_text(yaml.safe_dump({**WORKSPACE, "hub": {}}))
    c = Config()
    configure(c, str(ws_file))
    assert SERVICE_NAME not in [s["name"] for s in c.JupyterHub.services]
    with pytest.raises(DLWError, match="hub.gpuIdleTimeout is not set"):
        Policy.from_workspace(load_workspace(ws_file))


def test_the_service_command_fails_in_one_line_outside_a_hub_or_without_a_timeout(tmp_path: Path) -> None:
    import os
    import subprocess

    ws_file = tmp_path / "ws.yaml"
    ws_file.write_text(yaml.safe_dump({**WORKSPACE, "hub": {}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    env["PYTHONPATH"] = str(ROOT)
    cmd = [sys.executable, "-m", "dlw_magic.hub.gpu_culler", f"--workspace={ws_file}"]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "JUPYTERHUB_API_TOKEN" in out.stderr
    env.update(JUPYTERHUB_API_URL="http://127.0.0.1:1/hub/api", JUPYTERHUB_API_TOKEN="t")
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "hub.gpuIdleTimeout is not set" in out.stderr


@pytest.mark.parametrize("chart_culls", [False, True], ids=["own hub", "z2jh culls"])
def test_the_gpu_culler_runs_beside_any_idle_culler(tmp_path: Path, chart_culls: bool) -> None:
    from dlw_magic.hub.kube import configure

    ws_file = tmp_path / "ws.yaml"
    ws_file.write_text(yaml.safe_dump(WORKSPACE))
    c = Config()
    configure(c, str(ws_file), cull=not chart_culls)  # z2jh's values run configure(c, cull=False)
    names = [s["name"] for s in c.JupyterHub.services]
    assert names == ([SERVICE_NAME] if chart_culls else ["dlw-idle-culler", SERVICE_NAME])
    (service,) = [s for s in c.JupyterHub.services if s["name"] == SERVICE_NAME]
    assert f"--workspace={ws_file}" in service["command"] and "--every=60" in service["command"]
    (role,) = [r for r in c.JupyterHub.load_roles if r["name"] == SERVICE_NAME]
    assert {"access:servers", "delete:servers", "proxy"} <= set(role["scopes"]) and role["services"] == [SERVICE_NAME]


# ---------------------------------------------------------------------------------------------------------
# The notebook server's side: /dlw/api/gpus and /dlw/api/gpus/idle


@pytest.fixture
def fake_gpus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeGpus:
    """Four stand-in GPUs for this process and for the processes it starts (job supervisors)."""
    gpus = FakeGpus(tmp_path / "nvml")
    spec = importlib.util.spec_from_file_location("pynvml", gpus.folder / "pynvml.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setitem(sys.modules, "pynvml", module)
    monkeypatch.setenv("PYTHONPATH", f"{gpus.folder}:{ROOT}")
    monkeypatch.delenv("DLW_GPUS", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    return gpus


@pytest.fixture
def api(jp_fetch, jp_asyncio_loop, dlw_home):  # type: ignore[no-untyped-def]
    def call(path: str, method: str = "GET", body: Any = None) -> Any:
        r = jp_asyncio_loop.run_until_complete(jp_fetch(
            "dlw/api", path, method=method, body=None if body is None else json.dumps(body)))
        return json.loads(r.body) if r.body else None

    return call


def test_gpus_endpoint_reports_the_gpus_this_server_holds(api, fake_gpus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    fake_gpus.set(0, 30, 60, 90)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,2")  # what `dlw hub` gives a 2-GPU server
    data = api("gpus")
    assert [g["utilization_pct"] for g in data["gpus"]] == [0, 30, 60, 90]  # the status bar: the machine
    assert [(g["index"], g["utilization_pct"]) for g in data["server"]["gpus"]] == [(1, 30), (2, 60)]
    assert data["server"]["jobs"] == [] and data["server"]["idle"] is None

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert api("gpus")["server"]["gpus"] == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    monkeypatch.setenv("DLW_GPUS", "0")  # a pod that asked for no GPU, in an image exposing the node's GPUs
    assert api("gpus")["server"]["gpus"] == []


def test_the_cullers_warning_is_shown_until_cleared(api, fake_gpus, jp_fetch, jp_asyncio_loop) -> None:  # type: ignore[no-untyped-def]
    warning = {"message": "The GPU of this server has been idle for 55 min", "idleSince": 1000.0, "stopAt": 4600}
    assert api("gpus/idle", method="POST", body=warning) == {**warning, "stopAt": 4600.0}
    assert api("gpus")["server"]["idle"] == {**warning, "stopAt": 4600.0}
    for bad, field in (({**warning, "message": ""}, "message"), ({**warning, "stopAt": "soon"}, "stopAt"),
                       ({"message": "x"}, "idleSince"), ({**warning, "colour": "red"}, "colour")):
        with pytest.raises(HTTPClientError) as err:
            api("gpus/idle", method="POST", body=bad)
        assert err.value.code == 400
        assert json.loads(err.value.response.body)["message"].startswith(f"{field}: ")
    assert api("gpus")["server"]["idle"]["message"] == warning["message"]  # a bad post changed nothing
    api("gpus/idle", method="DELETE")
    assert api("gpus")["server"]["idle"] is None


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_running_gpu_job_of_the_user_counts_as_using_the_servers_gpus(
    api, fake_gpus, jp_root_dir, monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from tests.test_server_jobs import notebook, wait_state

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")  # jobs from this server draw on its GPU
    name = notebook(jp_root_dir, "sleepy.ipynb", "import time\ntime.sleep(120)")
    api("jobs", method="POST", body={"notebook": name, "name": "sleepy", "gpus": 1})
    wait_state(api, "sleepy", {"Running"})
    assert api("gpus")["server"]["jobs"] == ["sleepy"]
    api("jobs/sleepy/cancel", method="POST", body={})
    wait_state(api, "sleepy", {"Cancelled"})
    assert api("gpus")["server"]["jobs"] == []


# ---------------------------------------------------------------------------------------------------------
# The culler against a real hub


def start_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, workspace: dict[str, Any]) -> tuple[LocalHub, FakeGpus]:
    if not have_proxy():
        pytest.fail("configurable-http-proxy is missing: run `npm ci --prefix hub_config`")
    gpus = FakeGpus(tmp_path / "nvml")
    monkeypatch.setenv("PYTHONPATH", str(gpus.folder))  # LocalHub puts the checkout first, then this
    ws_file = tmp_path / "workspace.yaml"
    # alice is the hub's admin (admins come only from the admin YAML's hub.adminUsers).
    workspace = {**workspace, "hub": {**workspace.get("hub", {}), "adminUsers": ["alice"]}}
    ws_file.write_text(yaml.safe_dump(workspace))
    return LocalHub(tmp_path, "--config", str(ws_file), "--gpu-indices", "0,1,2,3"), gpus


def spawn(hub: LocalHub, user: str, options: dict[str, str]) -> requests.Session:
    s, _ = hub.login(user)
    r = s.post(f"{hub.base}/hub/api/users/{user}/server", headers=xsrf(s), json=options, timeout=120)
    assert r.status_code in (201, 202), r.text
    wait_ready(s, hub.base, user)
    return s


def server_gpus(hub: LocalHub, s: requests.Session, user: str) -> dict[str, Any]:
    token = s.post(f"{hub.base}/hub/api/users/{user}/tokens", headers=xsrf(s), json={}, timeout=10).json()["token"]
    r = requests.get(f"{hub.base}/user/{user}/dlw/api/gpus", headers={"Authorization": f"token {token}"}, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["server"]


def has_server(hub: LocalHub, s: requests.Session, user: str) -> bool:
    model = s.get(f"{hub.base}/hub/api/users/{user}", headers=xsrf(s), timeout=10).json()
    return bool((model.get("servers") or {}).get(""))


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_culler_warns_then_stops_idle_gpu_servers_and_spares_busy_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub, gpus = start_hub(tmp_path, monkeypatch, WORKSPACE)
    try:
        alice = spawn(hub, "alice", {"profile": "gpu", "gpus": "2"})  # GPUs 0 and 1
        bob = spawn(hub, "bob", {"profile": "shared-gpu", "gpus": "1"})  # GPU 0, warn only
        # alice is the hub's admin: her token with exactly the service's scopes stands in for the service's.
        token = alice.post(f"{hub.base}/hub/api/users/alice/tokens", headers=xsrf(alice),
                           json={"scopes": SCOPES}, timeout=10).json()["token"]
        culler = Hub(f"{hub.base}/hub/api", token)
        policy = Policy.from_workspace(load_workspace(tmp_path / "workspace.yaml"))
        since: dict[str, float] = {}

        def cull(now: float) -> dict[str, str]:
            return asyncio.run(cull_once(culler, policy, since, now=now))

        t0 = time.time()
        assert cull(t0) == {"alice/": "idle", "bob/": "idle"}
        assert server_gpus(hub, alice, "alice")["idle"] is None
        # Ten minutes before the stop, alice is warned in her Lab; bob's profile only warns at the timeout.
        assert cull(t0 + 3000) == {"alice/": "warned", "bob/": "idle"}
        warning = server_gpus(hub, alice, "alice")["idle"]
        assert warning["stopAt"] == t0 + 3600 and warning["idleSince"] == t0
        assert "The 2 GPUs of this server have been idle (under 5% use) for 50 min" in warning["message"]
        assert "the hub stops this server at" in warning["message"]

        gpus.set(0, 40, 0, 0)  # alice's second GPU is used again: her clock and warning go
        assert cull(t0 + 3300) == {"alice/": "busy", "bob/": "idle"}
        assert server_gpus(hub, alice, "alice")["idle"] is None
        gpus.set(0, 0, 0, 0)
        t1 = t0 + 3400
        assert cull(t1) == {"alice/": "idle", "bob/": "idle"}
        assert cull(t1 + 3600) == {"alice/": "warned", "bob/": "warned"}  # a stop is always announced first
        assert server_gpus(hub, alice, "alice")["idle"]["stopAt"] == t1 + 3600
        assert cull(t1 + 3660) == {"alice/": "stopped", "bob/": "warned"}
        assert not has_server(hub, alice, "alice")
        assert has_server(hub, bob, "bob")
        assert "Please stop the server" in server_gpus(hub, bob, "bob")["idle"]["message"]
        assert cull(t1 + 7200) == {"bob/": "warned"}  # warn-only never stops
        gpus.set(None, 0, 0, 0)  # a GPU that reports no utilization (MIG) is never taken for idle
        assert cull(t1 + 7300) == {"bob/": "busy"}
    finally:
        hub.stop()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_hub_runs_the_culler_as_a_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service ``dlw hub`` starts with its own token and scopes stops an idle GPU server by itself."""
    workspace = {**WORKSPACE, "hub": {"gpuIdleTimeout": 4, "gpuIdleWarning": 2}}
    hub, _ = start_hub(tmp_path, monkeypatch, workspace)
    try:
        alice = spawn(hub, "alice", {"profile": "gpu", "gpus": "1"})
        deadline = time.monotonic() + 90
        while has_server(hub, alice, "alice") and time.monotonic() < deadline:
            time.sleep(1)
        assert not has_server(hub, alice, "alice"), hub.log.read_text()[-3000:]
        assert "GPUs idle for" in hub.log.read_text()
    finally:
        hub.stop()
