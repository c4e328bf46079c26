"""``dlw hub`` option checking and the config it generates (without starting a hub)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlw_magic.errors import DLWError

ROOT = Path(__file__).resolve().parents[1]


def dlw(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DLW_HOME": str(tmp_path / "home")}
    env.pop("DLW_WORKSPACE_CONFIG", None)
    return subprocess.run([sys.executable, "-m", "dlw_magic.cli", "hub", *args], capture_output=True, text=True,
                          env=env, cwd=tmp_path, timeout=60)


def test_print_config_writes_a_jupyterhub_config_that_loads(tmp_path: Path) -> None:
    out = dlw(tmp_path, "--print-config", "--user", "alice", "--group", "research=alice", "--port", "8123")
    assert out.returncode == 0, out.stderr
    config = Path(out.stdout.strip())
    assert config == tmp_path / "home" / "hub" / "jupyterhub_config.py"

    from jupyterhub.app import JupyterHub

    from dlw_magic.hub.local_auth import LocalPasswordAuthenticator
    from dlw_magic.hub.local_spawner import DLWLocalSpawner

    app = JupyterHub()
    app.load_config_file(str(config))
    cfg = app.config
    assert cfg.JupyterHub.bind_url == "http://127.0.0.1:8123"
    assert cfg.JupyterHub.hub_ip == "127.0.0.1" and cfg.Spawner.ip == "127.0.0.1"
    assert cfg.ConfigurableHTTPProxy.api_url.startswith("http://127.0.0.1:")
    assert cfg.JupyterHub.authenticator_class is LocalPasswordAuthenticator
    assert cfg.JupyterHub.spawner_class is DLWLocalSpawner
    assert cfg.Authenticator.allowed_users == {"alice"}
    assert cfg.JupyterHub.load_groups == {"research": {"users": ["alice"]}}
    assert any(s["name"] == "dlw-idle-culler" for s in cfg.JupyterHub.services)
    profile = Path(cfg.DLWLocalSpawner.ipython_dir) / "profile_default" / "ipython_kernel_config.py"
    assert "'dlw_magic'" in profile.read_text()
    assert cfg.DLWLocalSpawner.system_users is False  # one person's workstation: servers run as the hub's user


def spawner_system_users(out: subprocess.CompletedProcess[str]) -> bool:
    assert out.returncode == 0, out.stderr
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(out.stdout.strip())
    return bool(app.config.DLWLocalSpawner.system_users)


@pytest.mark.skipif(os.geteuid() != 0, reason="the defaults below are those of a hub run as root")
def test_a_root_hub_isolates_users_when_there_are_several(tmp_path: Path) -> None:
    one = dlw(tmp_path, "--print-config", "--user", "alice")
    assert spawner_system_users(one) is False
    assert one.stderr == ("dlw hub: every user's server runs as root, the hub's own user: one user, nobody to "
                          "isolate from (--system-users to turn on)\n")
    two = dlw(tmp_path, "--print-config", "--user", "alice", "--user", "bob", "--group", "research=alice,bob")
    assert spawner_system_users(two) is True
    assert two.stderr == ("dlw hub: each user's server runs as a system account of their own (dlw-NAME, private "
                          "home): root hub for 2 users (--no-system-users to turn off)\n")
    # the flags win over the defaults, both ways
    assert spawner_system_users(dlw(tmp_path, "--print-config", "--user", "alice", "--system-users")) is True
    off = dlw(tmp_path, "--print-config", "--user", "alice", "--user", "bob", "--no-system-users")
    assert spawner_system_users(off) is False and off.stderr.endswith(": --no-system-users\n")


def test_without_root_servers_run_as_the_hub_user_and_system_users_is_refused() -> None:
    from dlw_magic.hub.system_users import choose_system_users

    assert choose_system_users(None, ["alice", "bob"], False, "ann") == (
        False, "every user's server runs as ann, the hub's own user: not root, so no system accounts")
    with pytest.raises(DLWError, match=r"^--system-users needs the hub to run as root"):
        choose_system_users(True, ["alice", "bob"], False, "ann")


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A folder every account can reach (pytest's tmp_path is under a 0700 folder)."""
    base = Path(tempfile.mkdtemp(prefix="dlw-readable-", dir="/tmp"))
    base.chmod(0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def test_system_accounts_need_every_path_readable_by_others(open_dir: Path) -> None:
    from dlw_magic.hub.system_users import check_readable_by_others

    pkg = open_dir / "site-packages" / "pkg"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "__init__.py").chmod(0o644)
    check_readable_by_others([(open_dir / "site-packages", False), (pkg, True)])  # all readable: no error

    (pkg / "__init__.py").chmod(0o600)  # as pip leaves it under umask 077
    with pytest.raises(DLWError) as err:
        check_readable_by_others([(pkg, True)])
    assert str(err.value) == (f"system accounts cannot read {pkg / '__init__.py'} (each user's server needs it): "
                              f"run `chmod o+r {pkg / '__init__.py'}`, or start with --no-system-users")

    (open_dir / "site-packages").chmod(0o700)  # the first folder others cannot pass is the one named
    with pytest.raises(DLWError) as err:
        check_readable_by_others([(pkg, True)])
    assert "\n" not in str(err.value)
    assert str(err.value).startswith(f"system accounts cannot read {open_dir / 'site-packages'} (")
    assert f"run `chmod o+x {open_dir / 'site-packages'}`, or start with --no-system-users" in str(err.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="system accounts are the default for a hub run as root")
def test_a_root_hub_refuses_to_start_when_accounts_cannot_read_what_servers_need(
        tmp_path: Path, open_dir: Path) -> None:
    from dlw_magic.hub.system_users import first_unreadable, paths_a_server_needs
    from dlw_magic.workspace import workspace_path

    private = open_dir / "private"
    private.mkdir(mode=0o700)
    ws = private / "workspace.yaml"
    ws.write_text(workspace_path(None).read_text())
    out = dlw(tmp_path, "--user", "alice", "--user", "bob", "--config", str(ws))
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.count("\n") == 1 and out.stderr.startswith("dlw hub: system accounts cannot read ")
    assert out.stderr.endswith(", or start with --no-system-users\n")
    env_problems = [first_unreadable(p, deep) for p, deep in paths_a_server_needs(str(ws))[:-1]]
    env_problems = [p for p in env_problems if p]
    named = env_problems[0][0] if env_problems else private  # this machine's Python may itself be private
    assert f"cannot read {named} (" in out.stderr
    assert not (tmp_path / "home" / "hub" / "passwords").exists()  # refused before anything started


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    out = dlw(tmp_path, "--group", "research")
    assert out.returncode == 1 and out.stderr == "dlw hub: --group 'research': expected GROUP=USER[,USER]\n"
    out = dlw(tmp_path, "--user", "alice", "--group", "research=bob")
    assert out.returncode == 1 and "--group names users who may not log in: bob (add --user)" in out.stderr
    out = dlw(tmp_path, "--gpu-indices", "first")
    assert out.returncode == 1 and "--gpu-indices 'first': expected GPU indices such as 0,1" in out.stderr
    bad = tmp_path / "ws.yaml"
    bad.write_text("profiles: []\n")
    out = dlw(tmp_path, "--config", str(bad))
    assert out.returncode == 1 and out.stderr.startswith(f"dlw hub: {bad}: profiles: List should have at least")


def test_password_file_is_private_and_stable(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dlw_magic.hub.local_auth import ensure_password, ensure_passwords

    monkeypatch.delenv("DLW_HUB_PASSWORD", raising=False)
    folder = tmp_path / "hub" / "passwords"
    ensure_passwords(folder, ["alice", "bob"])
    first = ensure_password(folder / "alice")
    assert len(first) >= 20 and (folder / "alice").stat().st_mode & 0o777 == 0o600
    assert folder.stat().st_mode & 0o777 == 0o700
    assert ensure_password(folder / "alice") == first != ensure_password(folder / "bob")  # one each
    monkeypatch.setenv("DLW_HUB_PASSWORD", "from-env")
    with pytest.raises(DLWError, match="DLW_HUB_PASSWORD is one password for every user"):
        ensure_passwords(folder, ["alice", "bob"])
    ensure_passwords(folder, ["alice"])  # one user: the shared password is hers alone


def test_hub_kernels_have_dlw_and_load_ext_stays_silent(tmp_path: Path) -> None:
    """A kernel of the local hub has %dlw at once, and the notebook's own `%load_ext dlw_magic` prints nothing."""
    import os

    from jupyter_client.manager import start_new_kernel

    from dlw_magic.hub.local import write_ipython_profile

    ipdir = write_ipython_profile(tmp_path)
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "IPYTHONDIR": str(ipdir),
           "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    try:
        outputs: list[str] = []

        def run(code: str) -> None:
            reply = kc.execute_interactive(
                code, timeout=60,
                output_hook=lambda msg: outputs.append(str(msg["content"].get("text") or msg["content"].get("data"))
                                                       if msg["msg_type"] in ("stream", "execute_result",
                                                                              "display_data", "error") else ""))
            assert reply["content"]["status"] == "ok", reply["content"]

        run("print('dlw' in get_ipython().magics_manager.magics['line'])")
        assert "".join(outputs) == "True\n"
        outputs.clear()
        run("%load_ext dlw_magic")
        assert "".join(outputs) == ""
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
