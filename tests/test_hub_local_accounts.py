"""A real ``dlw hub`` run as root for two users: alice's server runs as her own system account.

No flag is given: several users on a root hub get system accounts by default. Alice logs in with the
password, starts her server through the hub's REST API, and the server process found on this machine
runs as ``dlw-alice``, in a private (0700) home that is also her notebooks folder; a kernel there has
``%dlw`` and runs a job whose data stays in that home. The account and its home are removed at the end.
"""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dlw_magic.hub.system_users import first_unreadable, paths_a_server_needs
from dlw_magic.workspace import workspace_path
from tests.test_hub_local import TINY_NOTEBOOK, LocalHub, have_proxy, run_in_kernel, wait_ready, xsrf

ACCOUNT = "dlw-alice"


def why_not_here() -> str | None:
    if os.geteuid() != 0:
        return "system accounts need a hub run as root"
    if shutil.which("useradd") is None:
        return "useradd is not installed (Debian package passwd)"
    if not have_proxy():
        return "configurable-http-proxy is missing: run `npm ci --prefix hub_config`"
    try:
        pwd.getpwnam(ACCOUNT)
        return f"the account {ACCOUNT} already exists on this machine; this test does not touch it"
    except KeyError:
        pass
    for path, deep in paths_a_server_needs(str(workspace_path(None).resolve())):
        problem = first_unreadable(path, deep)
        if problem:
            return f"{problem[0]} is not readable by other accounts, so no system account can run a server here"
    return None


WHY_NOT = why_not_here()
pytestmark = [pytest.mark.slow, pytest.mark.timeout(400), pytest.mark.skipif(WHY_NOT is not None, reason=str(WHY_NOT))]


def server_processes(hub_pid: int, hub_user: str) -> dict[int, str]:
    """The notebook servers (jupyterhub-singleuser) this hub started for ``hub_user``: pid -> /proc status.

    Only the hub's own children count: other hubs on this machine may have an alice too.
    """
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            environ = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        if (b"jupyterhub-singleuser" in cmdline and f"JUPYTERHUB_USER={hub_user}".encode() in environ
                and f"\nPPid:\t{hub_pid}\n" in status):
            found[int(entry.name)] = status
    return found


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[LocalHub]:
    h = LocalHub(tmp_path, accounts=())
    try:
        yield h
    finally:
        h.stop()
        try:
            home = pwd.getpwnam(ACCOUNT).pw_dir
        except KeyError:
            return
        subprocess.run(["userdel", ACCOUNT], capture_output=True, timeout=60)
        shutil.rmtree(home, ignore_errors=True)


def test_alices_server_runs_as_her_own_account_in_a_private_home(hub: LocalHub) -> None:
    assert "root hub for 2 users" in hub.log.read_text()  # the line `dlw hub` prints about the mode
    s, r = hub.login("alice")
    assert r.status_code == 200, r.text[-500:]
    r = s.post(f"{hub.base}/hub/api/users/alice/server", headers=xsrf(s), json={"profile": "cpu"}, timeout=60)
    assert r.status_code in (201, 202), r.text
    wait_ready(s, hub.base, "alice")

    account = pwd.getpwnam(ACCOUNT)
    servers = server_processes(hub.proc.pid, "alice")
    assert servers, "the hub started no jupyterhub-singleuser process for alice"
    for pid, status in servers.items():
        uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
        assert uids == [str(account.pw_uid)] * 4  # real, effective, saved and filesystem uid: no way back to root
        assert os.readlink(f"/proc/{pid}/cwd") == account.pw_dir
    home = Path(account.pw_dir).stat()
    assert (home.st_uid, stat.S_IMODE(home.st_mode)) == (account.pw_uid, 0o700)

    # Her server finds what it needs: notebooks in her home, %dlw in the kernel, jobs kept in her home.
    token = s.post(f"{hub.base}/hub/api/users/alice/tokens", headers=xsrf(s), json={"note": "test"},
                   timeout=10).json()["token"]
    put = requests.put(f"{hub.base}/user/alice/api/contents/tiny.ipynb", timeout=30,
                       headers={"Authorization": f"token {token}"},
                       json={"type": "notebook", "format": "json", "content": TINY_NOTEBOOK})
    assert put.status_code in (200, 201), put.text
    assert Path(account.pw_dir, "tiny.ipynb").stat().st_uid == account.pw_uid
    out, err = run_in_kernel(hub.base, "alice", token, (
        "import os\nprint('uid', os.getuid(), 'home', os.environ['DLW_HOME'])\n"
        "print('magic', 'dlw' in get_ipython().magics_manager.magics['line'])\n"))
    assert err == "" and f"uid {account.pw_uid} home {account.pw_dir}/.local/share/dlw" in out and "magic True" in out
    out, err = run_in_kernel(hub.base, "alice", token, "%dlw train tiny.ipynb --name own-tiny --param epochs=2 --wait")
    assert "own-tiny: Succeeded" in out, out + err
