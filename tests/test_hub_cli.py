"""``dlw hub`` option checking and the config it generates (without starting a hub)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_system_users_option_reaches_the_spawner(tmp_path: Path) -> None:
    out = dlw(tmp_path, "--print-config", "--user", "alice", "--system-users")
    assert out.returncode == 0, out.stderr
    from jupyterhub.app import JupyterHub

    app = JupyterHub()
    app.load_config_file(out.stdout.strip())
    assert app.config.DLWLocalSpawner.system_users is True


def test_bad_options_are_one_line_errors(tmp_path: Path) -> None:
    out = dlw(tmp_path, "--group", "research")
    assert out.returncode == 1 and out.stderr == "dlw: error: --group 'research': expected GROUP=USER[,USER]\n"
    out = dlw(tmp_path, "--user", "alice", "--group", "research=bob")
    assert out.returncode == 1 and "--group names users who may not log in: bob (add --user)" in out.stderr
    out = dlw(tmp_path, "--gpu-indices", "first")
    assert out.returncode == 1 and "--gpu-indices 'first': expected GPU indices such as 0,1" in out.stderr
    bad = tmp_path / "ws.yaml"
    bad.write_text("profiles: []\n")
    out = dlw(tmp_path, "--config", str(bad))
    assert out.returncode == 1 and out.stderr.startswith(f"dlw: error: {bad}: profiles: List should have at least")


def test_password_file_is_private_and_stable(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from dlw_magic.hub.local_auth import ensure_password

    monkeypatch.delenv("DLW_HUB_PASSWORD", raising=False)
    path = tmp_path / "hub" / "password"
    first = ensure_password(path)
    assert len(first) >= 20 and (path.stat().st_mode & 0o777) == 0o600
    assert ensure_password(path) == first
    monkeypatch.setenv("DLW_HUB_PASSWORD", "from-env")
    assert ensure_password(path) == "from-env"


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
