"""What the README's commands leave installed: the JupyterLab extension and the server extension, enabled
in the project's environment (the one running these tests), as `jupyter ... list` shows a user."""

from __future__ import annotations

import subprocess
import sys


def _listing(*args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "jupyter", *args], capture_output=True, text=True, timeout=120)
    return out.stdout + out.stderr


def test_lab_extension_is_installed_and_enabled() -> None:
    line = next((ln for ln in _listing("labextension", "list").splitlines() if "dlw-labextension" in ln), "")
    assert "enabled" in line and "OK" in line, f"dlw-labextension not enabled: {line!r}"


def test_server_extension_is_enabled() -> None:
    listing = _listing("server", "extension", "list")
    assert any("dlw_magic" in ln and "enabled" in ln for ln in listing.splitlines()), listing
    assert "dlw_magic" in listing and "OK" in listing
