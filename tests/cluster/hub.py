"""A real JupyterHub process with DLW's KubeSpawner (``hub_config/jupyterhub_config.py``) against the test
control plane, as the hub's ServiceAccount (``support.hub_kubeconfig``), for the hub test and benchmark.

Everything listens on 127.0.0.1 on ephemeral ports: the proxy, the hub, and the notebook server the
process kubelet runs for the spawned pod (``KubeSpawner.ip``/``port``; the pod's address is 127.0.0.1, see
kubelet.py). Users log in with JupyterHub's dummy authenticator; the test drives the hub's REST API with a
service token holding the scopes an admin panel would use.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from tests.cluster.controlplane import ROOT, ControlPlane, free_port
from tests.cluster.support import WORKSPACE, hub_kubeconfig

CONFIG = """\
c = get_config()  # noqa: F821
load_subconfig({hub_config!r})  # DLW's own jupyterhub_config.py: configure(c) from the admin YAML
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = {port}
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {hub_port}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api_port}"
c.JupyterHub.db_url = "sqlite:///{work}/hub.sqlite"
c.JupyterHub.cookie_secret_file = "{work}/cookie_secret"
c.JupyterHub.pid_file = "{work}/hub.pid"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {password!r}
c.Authenticator.allowed_users = {users!r}
c.JupyterHub.services = [*(c.JupyterHub.services if "services" in c.JupyterHub else []),
                         {{"name": "dlw-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [*(c.JupyterHub.load_roles if "load_roles" in c.JupyterHub else []), {{
    "name": "dlw-test", "services": ["dlw-test"],
    "scopes": ["admin:users", "admin:servers", "read:users", "access:servers"]}}]
# The process kubelet runs the pod's jupyterhub-singleuser on this machine: loopback, a free port.
c.KubeSpawner.ip = "127.0.0.1"
c.KubeSpawner.port = {single_port}
c.KubeSpawner.start_timeout = {start_timeout}
c.KubeSpawner.http_timeout = 180
# The process kubelet does not switch users (runAsUser is the runtime's job): as root, the server needs this.
c.KubeSpawner.args = {root_args!r}
"""


def proxy_path() -> str | None:
    """configurable-http-proxy: on PATH, else where scripts/env.sh installs it (hub_config/node_modules)."""
    mine = ROOT / "hub_config" / "node_modules" / ".bin" / "configurable-http-proxy"
    return shutil.which("configurable-http-proxy") or (str(mine) if mine.exists() else None)


class Hub:
    """``jupyterhub -f <config>`` with KUBECONFIG set to the hub ServiceAccount's kubeconfig."""

    def __init__(self, cp: ControlPlane, work: Path, users: tuple[str, ...] = ("alice",),
                 start_timeout: int = 300) -> None:
        self.cp = cp
        self.work = work
        self.work.mkdir(parents=True, exist_ok=True)
        self.token = secrets.token_hex(16)
        self.password = secrets.token_hex(8)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = work / "hub.log"
        self.config = work / "jupyterhub_config.py"
        self.config.write_text(CONFIG.format(
            hub_config=str(ROOT / "hub_config" / "jupyterhub_config.py"), port=self.port, hub_port=free_port(),
            proxy_api_port=free_port(), work=work, password=self.password, token=self.token,
            single_port=free_port(), start_timeout=start_timeout, users=set(users),
            root_args=["--allow-root"] if os.geteuid() == 0 else []))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Hub:
        proxy = proxy_path() or "configurable-http-proxy"
        env = {**os.environ, "KUBECONFIG": str(hub_kubeconfig(self.cp)), "DLW_WORKSPACE_CONFIG": str(WORKSPACE),
               "DLW_HUB_CULL": "0", "PYTHONPATH": str(ROOT),
               "PATH": f"{Path(proxy).parent}:{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
        for var in ("JUPYTERHUB_API_TOKEN", "JUPYTERHUB_USER", "DLW_NAMESPACE", "DLW_KUBECONFIG"):
            env.pop(var, None)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen([sys.executable, "-m", "jupyterhub", "-f", str(self.config)], env=env,
                                         cwd=self.work, stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"jupyterhub exited {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/hub/api", timeout=2).ok:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.5)
        raise AssertionError(f"jupyterhub did not answer in 90 s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)  # the hub stops its proxy; servers stay (KubeSpawner's pods)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""

    # --- REST API ---------------------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200, 201, 202, 204),
            timeout: float = 60) -> Any:
        res = requests.request(method, f"{self.url}/hub/api{path}", json=body, timeout=timeout,
                               headers={"Authorization": f"token {self.token}"})
        assert res.status_code in ok, f"{method} {path}: {res.status_code} {res.text}\n{self.log_tail()}"
        return res.json() if res.content else None

    def login(self, user: str) -> requests.Session:
        """A browser session of ``user`` (the login form, as a person signs in)."""
        s = requests.Session()
        s.get(f"{self.url}/hub/login", timeout=30)
        res = s.post(f"{self.url}/hub/login?next=", data={"username": user, "password": self.password,
                                                          "_xsrf": s.cookies.get("_xsrf", "")},
                     allow_redirects=False, timeout=60)
        assert res.status_code == 302, f"login of {user}: {res.status_code} {res.text[:300]}"
        return s

    def progress(self, user: str, timeout: float = 300) -> Iterator[dict[str, Any]]:
        """The spawn's progress events (what the spawn page shows), as the hub streams them."""
        with requests.get(f"{self.url}/hub/api/users/{user}/server/progress", stream=True, timeout=timeout,
                          headers={"Authorization": f"token {self.token}", "Accept": "text/event-stream"}) as res:
            assert res.status_code == 200, f"progress of {user}: {res.status_code} {res.text}"
            for line in res.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    yield json.loads(line[5:])

    def stop_server(self, user: str, timeout: float = 180) -> None:
        self.api("DELETE", f"/users/{user}/server", ok=(202, 204, 400))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            model = self.api("GET", f"/users/{user}")
            if not model.get("servers") and not model.get("pending"):
                return
            time.sleep(0.5)
        raise AssertionError(f"{user}'s server did not stop in {timeout:.0f} s\n{self.log_tail()}")
