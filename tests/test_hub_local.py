"""``dlw hub``: a real JupyterHub + configurable-http-proxy on 127.0.0.1, with the workspace's profiles.

Log in with the machine-local password, see only the profiles your groups allow, spawn one, reach your
JupyterLab through the proxy, and run ``%dlw train`` in a kernel there: the job runs on the local backend
and succeeds. The hub is stopped (SIGTERM) at the end and takes its proxy and servers with it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from dlw_magic.errors import DLWError

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "correct-horse-battery"


def password_of(user: str) -> str:
    """Each user's own password, as the admin would set it (a file per user under the hub's data dir)."""
    return f"{PASSWORD}-{user}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def have_proxy() -> bool:
    from dlw_magic.hub.local import find_proxy

    try:
        find_proxy()
    except DLWError:
        return False
    return True


class LocalHub:
    def __init__(self, tmp_path: Path, *extra: str, accounts: tuple[str, ...] = ("--no-system-users",)) -> None:
        """``accounts``: servers run as the hub's user unless a test asks (test_hub_local_accounts.py)."""
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.home = tmp_path / "dlw-home"
        self.log = tmp_path / "hub.log"
        passwords = self.home / "hub" / "passwords"
        passwords.mkdir(parents=True, mode=0o700)
        for user in ("alice", "bob"):
            (passwords / user).write_text(password_of(user) + "\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
               "DLW_HOME": str(self.home), "DLW_BACKEND": "local"}
        for name in ("DLW_WORKSPACE_CONFIG", "DLW_HUB_PASSWORD"):
            env.pop(name, None)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "dlw_magic.cli", "hub", "--port", str(self.port),
                 "--user", "alice", "--user", "bob", "--group", "research=bob", *accounts, *extra],
                env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True,
            )
        self.wait_up()

    def wait_up(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"dlw hub exited ({self.proc.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                if requests.get(f"{self.base}/hub/api", timeout=2).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"dlw hub did not answer in {timeout}s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the hub stops its proxy and the servers it spawned
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def login(self, user: str, password: str | None = None) -> tuple[requests.Session, requests.Response]:
        password = password_of(user) if password is None else password
        s = requests.Session()
        s.get(f"{self.base}/hub/login", timeout=10)
        r = s.post(f"{self.base}/hub/login", data={"username": user, "password": password,
                                                   "_xsrf": s.cookies.get("_xsrf", "")}, timeout=10)
        return s, r


@pytest.fixture
def hub(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[LocalHub]:
    if not have_proxy():
        pytest.fail("configurable-http-proxy is missing: run `npm ci --prefix hub_config`")
    h = LocalHub(tmp_path, *getattr(request, "param", ()))
    try:
        yield h
    finally:
        h.stop()


def xsrf(s: requests.Session) -> dict[str, str]:
    return {"X-XSRFToken": s.cookies.get("_xsrf", "")}


def wait_ready(s: requests.Session, base: str, user: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        model = s.get(f"{base}/hub/api/users/{user}", headers=xsrf(s), timeout=10).json()
        server = (model.get("servers") or {}).get("")
        if server and server.get("ready"):
            return server
        time.sleep(0.5)
    raise AssertionError(f"{user}'s server not ready in {timeout}s")


def run_in_kernel(base: str, user: str, token: str, code: str, timeout: float = 180) -> tuple[str, str]:
    """Execute ``code`` in a new kernel through the proxy (jupyter_server REST + kernel websocket)."""
    from tornado.httpclient import HTTPRequest
    from tornado.ioloop import IOLoop
    from tornado.websocket import websocket_connect

    auth = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{base}/user/{user}/api/kernels", headers=auth, json={"name": "python3"}, timeout=30)
    kernel.raise_for_status()
    kid = kernel.json()["id"]

    async def talk() -> tuple[str, str]:
        ws_url = base.replace("http", "ws") + f"/user/{user}/api/kernels/{kid}/channels"
        conn = await websocket_connect(HTTPRequest(ws_url, headers=auth))
        msg_id = uuid.uuid4().hex
        conn.write_message(json.dumps({
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": user, "session": uuid.uuid4().hex,
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True},
        }))
        out, err = [], []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await conn.read_message()
            if raw is None:
                break
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                (out if content["name"] == "stdout" else err).append(content["text"])
            elif kind == "error":
                err.append("\n".join(content["traceback"]))
            elif kind in ("execute_result", "display_data"):
                out.append(content["data"].get("text/plain", ""))
            elif kind == "status" and content["execution_state"] == "idle":
                break
        conn.close()
        return "".join(out), "".join(err)

    try:
        return IOLoop.current().run_sync(talk, timeout=timeout + 10)
    finally:
        requests.delete(f"{base}/user/{user}/api/kernels/{kid}", headers=auth, timeout=30)


TINY_NOTEBOOK = {
    "nbformat": 4, "nbformat_minor": 5,
    "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}},
    "cells": [
        {"cell_type": "code", "metadata": {"tags": ["parameters"]}, "execution_count": None, "outputs": [],
         "source": "epochs = 3\npause = 0.0"},
        {"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
         "source": "import os, time\nfor i in range(epochs):\n"
                   "    print(f'step {i} rank {os.environ[\"RANK\"]}', flush=True)\n    time.sleep(pause)\n"
                   "print('trained', flush=True)\n"},
    ],
}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_local_hub_login_spawn_and_train(hub: LocalHub) -> None:
    base = hub.base
    # A wrong password is refused; the hub says so on the login page.
    bad, page = hub.login("alice", "wrong")
    assert page.status_code == 403 and "Invalid username or password" in page.text
    assert bad.get(f"{base}/hub/api/users/alice", headers=xsrf(bad), timeout=10).status_code == 403
    _, page = hub.login("mallory", password_of("alice"))  # a known password, but not an allowed user
    assert page.status_code == 403
    _, page = hub.login("bob", password_of("alice"))  # alice's password does not open bob's account
    assert page.status_code == 403

    s, page = hub.login("alice")
    assert page.status_code == 200
    form = s.get(f"{base}/hub/spawn", timeout=10)
    assert form.status_code == 200
    assert 'value="cpu"' in form.text and 'value="gpu"' in form.text
    assert "gpu-research" not in form.text  # alice is not in the research group

    r = s.post(f"{base}/hub/spawn/alice", data={"profile": "cpu", "profile-option-cpu--gpus": "0",
                                                 "_xsrf": s.cookies.get("_xsrf", "")}, timeout=120)
    assert r.status_code == 200, r.text[-500:]
    wait_ready(s, base, "alice")
    token = s.post(f"{base}/hub/api/users/alice/tokens", headers=xsrf(s), json={"note": "test"},
                   timeout=10).json()["token"]

    # JupyterLab answers through the proxy, to alice's token only.
    auth = {"Authorization": f"token {token}"}
    lab = requests.get(f"{base}/user/alice/lab", headers=auth, timeout=30)
    assert lab.status_code == 200 and "JupyterLab" in lab.text
    assert requests.get(f"{base}/user/alice/api/status", timeout=10).status_code in (302, 403)

    put = requests.put(f"{base}/user/alice/api/contents/tiny.ipynb", headers=auth, timeout=30,
                       json={"type": "notebook", "format": "json", "content": TINY_NOTEBOOK})
    assert put.status_code in (200, 201), put.text

    out, err = run_in_kernel(base, "alice", token, (
        "import os\n"
        "print('profile', os.environ['DLW_PROFILE'], 'gpus', os.environ['DLW_GPUS'],"
        " 'cvd', repr(os.environ['CUDA_VISIBLE_DEVICES']), 'ns', os.environ['DLW_NAMESPACE'])\n"
        "print('cpus', len(os.sched_getaffinity(0)), 'of', os.cpu_count())\n"
        "print('magic', 'dlw' in get_ipython().magics_manager.magics['line'])\n"
    ))
    assert err == ""
    assert "profile cpu gpus 0 cvd '' ns dlw-alice" in out
    assert "magic True" in out  # the kernel loaded dlw_magic by itself
    cpus = int(out.split("cpus ")[1].split()[0])
    assert cpus == min(2, len(os.sched_getaffinity(0)))  # the cpu profile's limit is 2 CPUs

    out, err = run_in_kernel(base, "alice", token, "%dlw train tiny.ipynb --name hub-tiny --param epochs=2 --wait")
    assert "Submitted hub-tiny" in out, out + err
    assert "hub-tiny: Succeeded" in out, out + err
    out, _ = run_in_kernel(base, "alice", token, "%dlw logs hub-tiny")
    assert "step 1 rank 0" in out and "trained" in out

    # bob is in the research group: he is offered the 8-GPU profile.
    s_bob, _ = hub.login("bob")
    assert "gpu-research" in s_bob.get(f"{base}/hub/spawn", timeout=10).text

    # Culling (what jupyterhub-idle-culler does: stop the server) never ends a running job.
    out, err = run_in_kernel(base, "alice", token, "%dlw train tiny.ipynb --name hub-slow -p epochs=4 -p pause=1")
    assert "Submitted hub-slow" in out, out + err
    stop = s.delete(f"{base}/hub/api/users/alice/server", headers=xsrf(s), timeout=60)
    assert stop.status_code in (202, 204)
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline and state not in ("Succeeded", "Failed", "Cancelled"):
        time.sleep(1)
        status = subprocess.run([sys.executable, "-m", "dlw_magic.cli", "status", "hub-slow", "-o", "json"],
                                capture_output=True, text=True, timeout=60, cwd=ROOT,
                                env={**os.environ, "PYTHONPATH": str(ROOT), "DLW_HOME": str(hub.home),
                                     "DLW_USER": "alice", "DLW_BACKEND": "local"})
        state = json.loads(status.stdout)["state"] if status.returncode == 0 else ""
    assert state == "Succeeded", (status.stdout, status.stderr)

    hub.stop()
    with pytest.raises(requests.ConnectionError):  # the proxy went down with the hub
        requests.get(f"{base}/hub/api", timeout=5)


@pytest.mark.slow
@pytest.mark.timeout(200)
def test_local_hub_refuses_profiles_a_user_may_not_use(hub: LocalHub) -> None:
    s, _ = hub.login("alice")
    r = s.post(f"{hub.base}/hub/api/users/alice/server", headers=xsrf(s), json={"profile": "gpu-research"}, timeout=30)
    assert r.status_code >= 400
    assert "profile 'gpu-research' is not available to 'alice' (choose from cpu, gpu)" in r.json()["message"]
    # The same through the spawn form (a hand-made post: the form only lists alice's profiles).
    page = s.post(f"{hub.base}/hub/spawn/alice", data={"profile": "gpu-research", "_xsrf": s.cookies.get("_xsrf", "")},
                  timeout=30)
    assert page.status_code == 400 and "is not available to" in page.text
    r = s.post(f"{hub.base}/hub/api/users/alice/server", headers=xsrf(s), json={"profile": "gpu", "gpus": "4"},
               timeout=30)
    if r.status_code < 400:  # a machine with 4 GPUs: the spawn is fine
        return
    assert "with 4 GPUs: this machine has" in r.json()["message"]
    # A refusal is one line in the hub's log (the user got the message), not a traceback.
    log = hub.log.read_text()
    assert "profile 'gpu-research' is not available to 'alice'" in log
    assert "Traceback" not in log
    assert "unhandled user_options" not in log.lower()


def test_the_form_shows_gpu_counts_the_machine_lacks_disabled_with_why() -> None:
    from dlw_magic.hub.local_spawner import render_form
    from dlw_magic.workspace import load_workspace

    ws = load_workspace(str(ROOT / "hub_config" / "workspace.yaml"))
    form = render_form(ws.profiles, ws.default_profile.name, gpus_here=0)
    assert '<input type="radio" name="profile" value="cpu" checked>' in form
    assert '<input type="radio" name="profile" value="gpu" disabled>' in form
    assert "not available: this machine has no GPU" in form
    assert 'name="profile-option-gpu--gpus"' not in form  # no list whose every entry is disabled
    # The CPU profile has one GPU count (none): it is said, not offered as a select with one choice.
    assert '<select name="profile-option-cpu--gpus"' not in form
    assert '<input type="hidden" name="profile-option-cpu--gpus" value="0"><span class="dlw-gpus">no GPU</span>' in form
    form = render_form(ws.profiles, "gpu", gpus_here=2)
    assert '<input type="radio" name="profile" value="gpu" checked>' in form
    assert '<option value="2">2 GPUs</option>' in form
    assert '<option value="4" disabled>4 GPUs (this machine has 2 GPUs)</option>' in form


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.parametrize(
    "hub", [("--gpu-indices", "3,5,6,7", "--config", str(ROOT / "tests/data/workspaces/one_cpu.yaml"))],
    indirect=True)
def test_local_hub_applies_gpus_and_cpus_of_the_profile(hub: LocalHub) -> None:
    """The GPU choice becomes CUDA_VISIBLE_DEVICES (from the GPUs the hub may hand out), the CPU limit the
    process's CPU affinity; the REST API takes the same options as the form."""
    s, _ = hub.login("alice")
    r = s.post(f"{hub.base}/hub/api/users/alice/server", headers=xsrf(s), json={"profile": "gpu", "gpus": "2"},
               timeout=120)
    assert r.status_code in (201, 202), r.text
    wait_ready(s, hub.base, "alice")
    token = s.post(f"{hub.base}/hub/api/users/alice/tokens", headers=xsrf(s), json={}, timeout=10).json()["token"]
    out, err = run_in_kernel(hub.base, "alice", token, (
        "import os\nprint(os.environ['DLW_PROFILE'], os.environ['DLW_GPUS'], os.environ['CUDA_VISIBLE_DEVICES'],"
        " os.environ['DLW_GPU_TYPE'], len(os.sched_getaffinity(0)), os.environ['CPU_LIMIT'])"
    ))
    assert err == ""
    assert out.strip() == "gpu 2 3,5 NVIDIA-L4 1 1.0"
