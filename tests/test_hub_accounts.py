"""The local hub run as root gives each user a system account of their own (``system_users``): a private
home, and a server process that really runs as that account, not as root."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from dlw_magic.hub.local_spawner import own_ipython_profile, run_as, system_account

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="creating system accounts needs root"),
    pytest.mark.skipif(shutil.which("useradd") is None, reason="useradd is not installed"),
]


@pytest.fixture
def account():
    base = Path(tempfile.mkdtemp(prefix="dlw-homes-", dir="/tmp"))
    base.chmod(0o755)
    user = f"Test.User-{uuid.uuid4().hex[:6]}@example.org"
    acct = system_account(user, base / "home")
    yield user, acct
    subprocess.run(["userdel", acct.pw_name], capture_output=True, timeout=60)
    shutil.rmtree(base, ignore_errors=True)


def test_each_user_gets_a_private_system_account(account):
    user, acct = account
    assert acct.pw_name.startswith("dlw-") and len(acct.pw_name) <= 32
    assert acct.pw_uid != 0 and acct.pw_gid != 0
    home = Path(acct.pw_dir)
    info = home.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (acct.pw_uid, acct.pw_gid, 0o700)
    assert system_account(user, home).pw_uid == acct.pw_uid  # the same account on the next start
    assert pwd.getpwnam(acct.pw_name).pw_shell.endswith("nologin")


def test_the_server_process_runs_as_the_account_in_its_home(account):
    _, acct = account
    own_ipython_profile(acct)
    done = subprocess.run(
        ["/bin/sh", "-c", "id -u; id -g; pwd; cat \"$HOME/.ipython/profile_default/ipython_kernel_config.py\""],
        preexec_fn=run_as(acct), env={"HOME": acct.pw_dir, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[:3] == [str(acct.pw_uid), str(acct.pw_gid), acct.pw_dir]
    assert "dlw_magic" in done.stdout
    # and it cannot look into root's home
    denied = subprocess.run(["/bin/ls", "/root"], preexec_fn=run_as(acct), capture_output=True, text=True,
                            timeout=60)
    assert denied.returncode != 0 and "denied" in denied.stderr
