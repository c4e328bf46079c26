"""Users of one ``dlw hub`` kept apart: own passwords, no admin unless the admin YAML says so, a private hub
folder whatever --data-dir says, and root never following a link a user planted in their own home.

The last test is a real root hub for alice and bob (system accounts): alice can neither sign in as bob, reach
his server, jobs, logs or files, cancel his jobs, mint his tokens, nor gain ownership of anything through a
link she plants in her own home and a restart of her server.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]


def hub_cli(tmp_path: Path, *args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLW_HOME": str(tmp_path / "home"), **(env_extra or {})}
    env.pop("DLW_WORKSPACE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", "hub", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)


def print_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ws: str | None = None,
                 data_dir: str | None = None) -> Path:
    """``dlw hub --print-config --user alice --user bob --no-system-users``, in this process (a cold import of
    jupyterhub in a subprocess takes a minute on a loaded machine)."""
    from dlw_magic.hub.local import run_local_hub

    monkeypatch.setenv("DLW_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DLW_WORKSPACE_CONFIG", raising=False)
    assert run_local_hub(workspace=ws, users=["alice", "bob"], data_dir=data_dir, print_config=True,
                         system_users=False) == 0
    return Path(data_dir) if data_dir else tmp_path / "home" / "hub"


def test_no_user_is_an_admin_unless_the_admin_yaml_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(str(print_config(tmp_path, monkeypatch) / "jupyterhub_config.py"))
    assert app.config.Authenticator.admin_users == set()  # the first --user used to be an admin
    ws = tmp_path / "ws.yaml"
    text = (ROOT / "hub_config" / "workspace.yaml").read_text()
    ws.write_text(text.replace("\nhub:\n", "\nhub:\n  adminUsers: [bob]\n", 1))
    assert "adminUsers: [bob]" in ws.read_text()
    app = JupyterHub()
    app.load_config_file(str(print_config(tmp_path, monkeypatch, str(ws)) / "jupyterhub_config.py"))
    assert app.config.Authenticator.admin_users == {"bob"}


@pytest.mark.parametrize("where", ["--data-dir", "DLW_HOME"])
def test_the_hub_folder_and_database_are_private_wherever_they_are(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    old = os.umask(0o022)
    try:
        if where == "--data-dir":
            target = print_config(tmp_path, monkeypatch, data_dir=str(tmp_path / "shared" / "hubdata"))
        else:
            target = print_config(tmp_path, monkeypatch)
    finally:
        os.umask(old)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    assert stat.S_IMODE((target / "jupyterhub.sqlite").stat().st_mode) == 0o600


def test_each_user_signs_in_with_their_own_password(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from dlw_magic.hub.local_auth import LocalPasswordAuthenticator, ensure_passwords

    monkeypatch.delenv("DLW_HUB_PASSWORD", raising=False)
    folder = tmp_path / "passwords"
    ensure_passwords(folder, ["alice", "bob"])
    alice, bob = ((folder / u).read_text().strip() for u in ("alice", "bob"))
    auth = LocalPasswordAuthenticator(password_dir=str(folder), allowed_users={"alice", "bob"})

    def sign_in(user: str, password: str) -> str | None:
        return asyncio.run(auth.authenticate(None, {"username": user, "password": password}))

    assert sign_in("alice", alice) == "alice" and sign_in("bob", bob) == "bob"
    assert sign_in("bob", alice) is None and sign_in("alice", bob) is None
    assert sign_in("mallory", alice) is None and not (folder / "mallory").exists()
    assert sign_in("alice", "") is None
    # with several users one shared password is refused at start, in one line
    out = hub_cli(tmp_path, "--user", "alice", "--user", "bob", "--no-system-users",
                  env_extra={"DLW_HUB_PASSWORD": "everyone"})
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("dlw hub: DLW_HUB_PASSWORD is one password for every user")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every account can reach (pytest's tmp_path is under a 0700 folder)."""
    base = Path(tempfile.mkdtemp(prefix="dlw-iso-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="root writing into a user's home is what is tested")
def test_root_never_follows_a_link_the_user_planted_in_their_home(open_dir: Path) -> None:
    from dlw_magic.hub.local_spawner import _own_home, own_ipython_profile

    nobody = pwd.getpwnam("nobody")
    home = open_dir / "home"
    home.mkdir(mode=0o700)
    os.chown(home, nobody.pw_uid, nobody.pw_gid)
    account = pwd.struct_passwd((nobody.pw_name, "x", nobody.pw_uid, nobody.pw_gid, "", str(home), "/bin/false"))
    secret = open_dir / "roots"  # a root-owned private folder, as /root or another user's home
    secret.mkdir(mode=0o700)
    (home / ".ipython").mkdir()
    os.chown(home / ".ipython", nobody.pw_uid, nobody.pw_gid)
    (home / ".ipython" / "profile_default").symlink_to(secret)

    problem = own_ipython_profile(account)
    assert problem and problem.startswith("could not write nobody's kernel profile: ")
    assert "Permission denied" in problem
    st = secret.stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o700) and list(secret.iterdir()) == []

    (home / ".ipython" / "profile_default").unlink()  # without a link, the profile is written, as the user
    assert own_ipython_profile(account) is None
    written = home / ".ipython" / "profile_default" / "ipython_kernel_config.py"
    assert "dlw_magic" in written.read_text() and written.stat().st_uid == nobody.pw_uid

    # the home itself, replaced by a link, is refused rather than followed
    with pytest.raises(OSError):
        fake = pwd.struct_passwd(("dlw-x", "x", nobody.pw_uid, nobody.pw_gid, "", str(open_dir / "link"), "/bin/false"))
        (open_dir / "link").symlink_to(secret)
        _own_home(fake)
    assert secret.stat().st_uid == 0


# -- a real root hub, alice and bob as system accounts ---------------------------------------------------------

ACCOUNTS = ("dlw-alice", "dlw-bob")


def why_no_two_user_hub() -> str | None:
    from tests.test_hub_local_accounts import why_not_here

    why = why_not_here()
    if why:
        return why
    for name in ACCOUNTS:
        try:
            pwd.getpwnam(name)
            return f"the account {name} already exists on this machine; this test does not touch it"
        except KeyError:
            pass
    return None


@pytest.fixture
def two_user_hub(tmp_path: Path) -> Iterator[object]:
    why = why_no_two_user_hub()
    if why:
        pytest.skip(why)
    from tests.test_hub_local import LocalHub

    h = LocalHub(tmp_path, accounts=())
    try:
        yield h
    finally:
        h.stop()
        for name in ACCOUNTS:
            try:
                account = pwd.getpwnam(name)
            except KeyError:
                continue
            end_processes_of(account.pw_uid)  # a job outlives its server: userdel refuses a busy account
            subprocess.run(["userdel", name], capture_output=True, timeout=60)
            shutil.rmtree(account.pw_dir, ignore_errors=True)


def end_processes_of(uid: int) -> None:
    """SIGKILL the processes of an account this test created (found by uid in /proc, one by one)."""
    import signal

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        uids = next((line.split()[1:] for line in status.splitlines() if line.startswith("Uid:")), [])
        if uids and int(uids[0]) == uid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(entry.name), signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_alice_can_neither_sign_in_as_read_cancel_nor_take_anything_of_bobs(two_user_hub: object) -> None:
    from tests.test_hub_local import TINY_NOTEBOOK, password_of, run_in_kernel, wait_ready, xsrf

    hub: Any = two_user_hub
    base = hub.base
    _, page = hub.login("bob", password_of("alice"))
    assert page.status_code == 403  # alice's own password does not sign her in as bob
    sessions, tokens = {}, {}
    for user in ("alice", "bob"):
        s, page = hub.login(user)
        assert page.status_code == 200, page.text[-300:]
        r = s.post(f"{base}/hub/api/users/{user}/server", headers=xsrf(s), json={"profile": "cpu"}, timeout=60)
        assert r.status_code in (201, 202), r.text
        wait_ready(s, base, user, timeout=300)
        sessions[user] = s
        tokens[user] = s.post(f"{base}/hub/api/users/{user}/tokens", headers=xsrf(s), json={"note": "t"},
                              timeout=30).json()["token"]
    bob_auth = {"Authorization": f"token {tokens['bob']}"}
    put = requests.put(f"{base}/user/bob/api/contents/tiny.ipynb", headers=bob_auth, timeout=60,
                       json={"type": "notebook", "format": "json", "content": TINY_NOTEBOOK})
    assert put.status_code in (200, 201), put.text
    job = requests.post(f"{base}/user/bob/dlw/api/jobs", headers=bob_auth, timeout=120,
                        json={"notebook": "tiny.ipynb", "name": "bobs-job",
                              "parameters": {"epochs": 600, "pause": 0.5}})
    assert job.status_code == 201, job.text

    # alice, with her own token and her own browser session, gets nothing of bob's
    alice_s, alice_auth = sessions["alice"], {"Authorization": f"token {tokens['alice']}"}
    for method, path, body in [
        ("GET", "/hub/api/users/bob", None),
        ("POST", "/hub/api/users/bob/tokens", {"note": "steal"}),
        ("DELETE", "/hub/api/users/bob/server", None),
        ("POST", "/hub/api/users/bob/server", {"profile": "cpu"}),
    ]:
        for kwargs in ({"headers": alice_auth}, {"headers": xsrf(alice_s)}):
            caller = requests if "Authorization" in kwargs["headers"] else alice_s
            r = caller.request(method, f"{base}{path}", json=body, timeout=30, **kwargs)
            assert r.status_code in (403, 404), f"{method} {path}: {r.status_code} {r.text[:200]}"
    for method, path in [("GET", "/user/bob/api/contents"), ("GET", "/user/bob/api/contents/tiny.ipynb"),
                         ("GET", "/user/bob/dlw/api/jobs"), ("GET", "/user/bob/dlw/api/jobs/bobs-job"),
                         ("GET", "/user/bob/dlw/api/jobs/bobs-job/logs"),
                         ("POST", "/user/bob/dlw/api/jobs/bobs-job/cancel")]:
        r = requests.request(method, f"{base}{path}", headers=alice_auth, timeout=30, allow_redirects=False)
        assert r.status_code == 403, f"{method} {path}: {r.status_code} {r.text[:200]}"
    state = requests.get(f"{base}/user/bob/dlw/api/jobs/bobs-job", headers=bob_auth, timeout=30).json()
    assert state["state"] in ("Queued", "Running"), state  # alice's cancel did nothing

    # From her own kernel she cannot read bob's home either, nor the hub's folder.
    bob_home = pwd.getpwnam("dlw-bob").pw_dir
    hub_dir = hub.home / "hub"
    out, err = run_in_kernel(base, "alice", tokens["alice"], (
        "import os\n"
        f"for p in ({bob_home!r}, {str(hub_dir)!r}, {str(hub_dir / 'jupyterhub.sqlite')!r}):\n"
        "    try:\n        os.listdir(p) if os.path.isdir(p) else open(p, 'rb').read(1)\n        print('READ', p)\n"
        "    except OSError as e:\n        print('refused', type(e).__name__)\n"))
    assert "READ" not in out and out.count("refused") == 3, out + err

    # She plants links where root used to write at her server's start, then restarts her server.
    out, err = run_in_kernel(base, "alice", tokens["alice"], (
        "import os\nip = os.path.expanduser('~/.ipython')\n"
        "os.rename(ip + '/profile_default', ip + '/x')\n"
        f"os.symlink({bob_home!r}, ip + '/profile_default')\nprint('planted')\n"))
    assert "planted" in out, out + err
    s = sessions["alice"]
    assert s.delete(f"{base}/hub/api/users/alice/server", headers=xsrf(s), timeout=120).status_code in (202, 204)
    for _ in range(240):
        model = s.get(f"{base}/hub/api/users/alice", headers=xsrf(s), timeout=10).json()
        if not model.get("servers"):
            break
        import time

        time.sleep(0.5)
    r = s.post(f"{base}/hub/api/users/alice/server", headers=xsrf(s), json={"profile": "cpu"}, timeout=60)
    assert r.status_code in (201, 202), r.text
    wait_ready(s, base, "alice", timeout=300)
    bob = pwd.getpwnam("dlw-bob")
    st = Path(bob_home).stat()
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (bob.pw_uid, 0o700)  # still bob's, still private
    assert not Path(bob_home, "ipython_kernel_config.py").exists()
    assert requests.post(f"{base}/user/bob/dlw/api/jobs/bobs-job/cancel", headers=bob_auth,
                         timeout=60).status_code == 200  # bob, and only bob, cancels his job
