"""``dlw hub``: a real JupyterHub on 127.0.0.1 for one machine, from the same admin YAML.

``run_local_hub`` writes ``<data dir>/jupyterhub_config.py`` (which calls ``configure_local``) and
replaces itself with ``python -m jupyterhub``, so Ctrl-C or SIGTERM reach the hub, which then stops the
proxy and the notebook servers. Pieces: configurable-http-proxy (``npm ci --prefix hub_config``, or on
PATH), ``LocalPasswordAuthenticator``, ``DLWLocalSpawner`` (the workspace profiles), JupyterLab with
``dlw_magic`` loaded in every kernel, jupyterhub-idle-culler and the GPU-idle culler.
"""

from __future__ import annotations

import getpass
import logging
import os
import pwd
import socket
import sys
from pathlib import Path
from typing import Any

from .. import settings
from ..errors import DLWError
from ..venv import find_command
from ..workspace import load_workspace, workspace_path
from .auth import SECRET_ENV, apply_auth
from .culler import add_culler, add_gpu_culler

PROXY = "configurable-http-proxy"
KERNEL_CONFIG = (
    "# Written by `dlw hub`: every kernel of the local hub has %dlw.\n"
    "c.InteractiveShellApp.exec_lines = [\"__import__('dlw_magic').load_ipython_extension(get_ipython())\"]\n"
)


def default_data_dir() -> Path:
    home = settings.current().home
    if home:
        return Path(home) / "hub"
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "dlw" / "hub"


def private_hub_files(data: Path) -> None:
    """The hub's folder 0700 and its database 0600, wherever it is (--data-dir, $DLW_HOME): it holds users,
    server URLs, token hashes and passwords, which no user's job may read. The database is made before
    JupyterHub opens it, so SQLite never creates it under a wider umask."""
    from .local_auth import private_dir

    private_dir(data)
    db = data / "jupyterhub.sqlite"
    os.close(os.open(db, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, 0o600))
    os.chmod(db, 0o600)


def find_proxy() -> str:
    """The project's own install (hub_config/node_modules), else configurable-http-proxy beside the
    interpreter or on PATH."""
    repo = Path(__file__).resolve().parents[2]
    for candidate in (repo / "hub_config" / "node_modules" / ".bin" / PROXY,):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    found = find_command(PROXY)
    if found:
        return found
    raise DLWError(f"{PROXY} not found: run `npm ci --prefix hub_config` in the DLW checkout, or put it on PATH")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_ipython_profile(data_dir: Path) -> Path:
    """An IPYTHONDIR whose kernels have ``%dlw`` from the start.

    The magics are registered by calling the extension's hook rather than listing it in ``extensions``:
    IPython then does not count it as loaded, so a notebook's own ``%load_ext dlw_magic`` (needed
    anywhere else) stays silent instead of printing "already loaded".
    """
    ipdir = data_dir / "ipython"
    prof = ipdir / "profile_default"
    prof.mkdir(parents=True, exist_ok=True)
    (prof / "ipython_kernel_config.py").write_text(KERNEL_CONFIG, encoding="utf-8")
    return ipdir


class RefusalsWithoutTraceback(logging.Filter):
    """JupyterHub logs a refused form spawn with its traceback; a refusal is an answer, so one line is kept.

    Only the spawner's own refusals (``local_spawner.refusal``: a 400 carrying the user's message) lose
    their traceback; every other error is logged as JupyterHub logs it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        message = getattr(exc, "jupyterhub_message", None)
        if message and getattr(exc, "status_code", None) == 400:
            record.msg = f"{record.getMessage()}: {message}"
            record.args = ()
            record.exc_info = None
            record.exc_text = None
        return True


def configure_local(
    c: Any,
    *,
    workspace: str,
    port: int,
    users: list[str],
    groups: dict[str, list[str]],
    data_dir: str,
    hub_port: int | None = None,
    proxy_api_port: int | None = None,
    gpu_indices: str | None = None,
    system_users: bool = False,
) -> None:
    """Apply the local-hub settings to a JupyterHub config object (called from the generated config)."""
    from .local_auth import LocalPasswordAuthenticator
    from .local_spawner import DLWLocalSpawner

    data = Path(data_dir)
    ws = load_workspace(workspace)
    c.JupyterHub.bind_url = f"http://127.0.0.1:{port}"
    c.JupyterHub.hub_ip = "127.0.0.1"
    c.JupyterHub.hub_port = hub_port or free_port()
    c.JupyterHub.db_url = f"sqlite:///{data / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(data / "jupyterhub_cookie_secret")
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True
    c.ConfigurableHTTPProxy.command = [find_proxy()]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{proxy_api_port or free_port()}"
    c.ConfigurableHTTPProxy.pid_file = str(data / "proxy.pid")

    if ws.auth.oauth:  # the identity provider signs users in; their groups come with them
        apply_auth(c, ws, callback_url=f"http://127.0.0.1:{port}/hub/oauth_callback")
        if ws.hub.admin_users:
            c.Authenticator.admin_users = set(ws.hub.admin_users)
    else:
        c.JupyterHub.authenticator_class = LocalPasswordAuthenticator
        c.LocalPasswordAuthenticator.password_dir = str(data / "passwords")
        c.Authenticator.allowed_users = set(users)
        c.Authenticator.admin_users = {u for u in ws.hub.admin_users if u in users}  # only whom the admin YAML names
        if groups:
            c.JupyterHub.load_groups = {name: {"users": members} for name, members in groups.items()}

    c.JupyterHub.spawner_class = DLWLocalSpawner
    c.DLWLocalSpawner.workspace_config = workspace
    c.DLWLocalSpawner.ipython_dir = str(write_ipython_profile(data))
    c.DLWLocalSpawner.home_dir_template = str(data / "users" / "{username}")
    if gpu_indices is not None:
        c.DLWLocalSpawner.gpu_indices = gpu_indices
    c.DLWLocalSpawner.system_users = system_users
    c.Spawner.ip = "127.0.0.1"
    c.Spawner.default_url = "/lab"
    c.Spawner.start_timeout = 120
    c.Spawner.http_timeout = 120
    c.Spawner.env_keep = ["PATH", "PYTHONPATH", "VIRTUAL_ENV", "LANG", "LC_ALL", "DLW_HOME", "DLW_BACKEND",
                          "JUPYTERHUB_SINGLEUSER_APP", "CONDA_ROOT", "CONDA_DEFAULT_ENV"]
    if os.geteuid() == 0:
        c.Spawner.args = ["--allow-root"]
    add_culler(c, ws)
    add_gpu_culler(c, ws, workspace)
    hub_log = logging.getLogger("JupyterHub")  # the hub application's logger, which its handlers use
    if not any(isinstance(f, RefusalsWithoutTraceback) for f in hub_log.filters):
        hub_log.addFilter(RefusalsWithoutTraceback())


def render_config(
    workspace: str, port: int, users: list[str], groups: dict[str, list[str]], data_dir: Path,
    gpu_indices: str | None = None, system_users: bool = False,
) -> str:
    args = {"workspace": workspace, "port": port, "users": users, "groups": groups, "data_dir": str(data_dir),
            "gpu_indices": gpu_indices, "system_users": system_users}
    return (
        "# Generated by `dlw hub`; rerun it instead of editing this file.\n"
        "from dlw_magic.hub.local import configure_local\n\n"
        f"configure_local(c, **{args!r})\n"
    )


def run_local_hub(
    *,
    workspace: str | None = None,
    port: int = 8000,
    users: list[str] | None = None,
    groups: dict[str, list[str]] | None = None,
    data_dir: str | None = None,
    print_config: bool = False,
    gpu_indices: str | None = None,
    system_users: bool | None = None,
) -> int:
    """``system_users``: --system-users (True), --no-system-users (False), or None: on for a root hub of
    several users (see ``system_users.choose_system_users``)."""
    from .local_auth import ensure_passwords
    from .system_users import check_readable_by_others, choose_system_users, paths_a_server_needs

    ws_file = str(workspace_path(workspace).resolve())
    auth = load_workspace(ws_file).auth  # fail here, with the field path, rather than inside the hub
    find_proxy()
    if auth.oauth:
        if users or groups:
            raise DLWError(f"--user and --group are for the hub's own password; {ws_file} signs users in with "
                           f"auth.kind {auth.kind}, whose groups come from the provider")
        if not os.environ.get(SECRET_ENV):
            raise DLWError(f"auth.clientSecret: set {SECRET_ENV} to the value of Secret "
                           f"{auth.client_secret.secret if auth.client_secret else '?'} before `dlw hub`")
    users = users or ([] if auth.oauth else [settings.current().dlw_user or getpass.getuser()])
    groups = groups or {}
    unknown = sorted({m for members in groups.values() for m in members} - set(users))
    if unknown:
        raise DLWError(f"--group names users who may not log in: {', '.join(unknown)} (add --user)")
    data = Path(data_dir) if data_dir else default_data_dir()
    private_hub_files(data)
    config = data / "jupyterhub_config.py"
    if gpu_indices is not None and not all(p.strip().isdigit() for p in gpu_indices.split(",") if p.strip()):
        raise DLWError(f"--gpu-indices {gpu_indices!r}: expected GPU indices such as 0,1")
    hub_user = pwd.getpwuid(os.geteuid()).pw_name  # who the servers run as without accounts, whatever $USER says
    # A provider signs in any number of users: count it as several.
    accounts, why = choose_system_users(system_users, users if not auth.oauth else ["*", "*"],
                                        os.geteuid() == 0, hub_user)
    text = render_config(ws_file, port, users, groups, data.resolve(), gpu_indices, accounts)
    config.write_text(text, encoding="utf-8")
    if print_config:
        print(f"dlw hub: {why}", file=sys.stderr)
        print(config)
        return 0
    if accounts:
        check_readable_by_others(paths_a_server_needs(ws_file))
    print(f"dlw hub: {why}", flush=True)
    if auth.oauth:
        print(f"dlw hub: http://127.0.0.1:{port}/ ; sign in with {auth.kind} (callback "
              f"http://127.0.0.1:{port}/hub/oauth_callback must be registered with the provider)", flush=True)
    else:
        ensure_passwords(data / "passwords", users)
        where = "$DLW_HUB_PASSWORD" if settings.current().hub_password else f"{data / 'passwords'}/NAME (one each)"
        print(f"dlw hub: http://127.0.0.1:{port}/ ; log in as {', '.join(users)} with the password in {where}",
              flush=True)
    os.chdir(data)
    argv = [sys.executable, "-m", "jupyterhub", "-f", str(config)]
    os.execv(sys.executable, argv)
    return 0  # not reached
