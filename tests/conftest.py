"""Shared fixtures: every test gets its own DLW data directory and backend instances."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import write_notebook  # noqa: F401 - tests import it from here too

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def dlw_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private DLW_HOME, the local backend, and no backend instances cached from other tests."""
    from dlw_magic import backends

    home = tmp_path / "dlw-home"
    monkeypatch.setenv("DLW_HOME", str(home))
    monkeypatch.setenv("DLW_BACKEND", "local")
    monkeypatch.delenv("JUPYTERHUB_USER", raising=False)
    backends._cache.clear()
    yield home
    backends._cache.clear()


@pytest.fixture
def jp_server_config() -> dict[str, Any]:
    """Servers started by pytest-jupyter load DLW's server extension, as an installed one does.

    The plugin itself is enabled per module (``pytest_plugins``), not here: its event-loop fixture
    would close the loop that the browser tests' Playwright runs.
    """
    return {"ServerApp": {"jpserver_extensions": {"dlw_magic": True}}}


@pytest.fixture
def notebook(tmp_path: Path):
    """Factory: notebook("name.ipynb", [cells...]) -> Path in tmp_path."""

    def make(name: str, cells: list[str | tuple[str, list[str]]]) -> Path:
        return write_notebook(tmp_path / name, cells)

    return make


@pytest.fixture
def shared_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """A workspace whose home claim is ReadWriteMany (jobs mount it for outputs and checkpoints), and the
    folder where this notebook pod mounts it (``DLW_HOME_MOUNT``): (workspace path, mount)."""
    import yaml

    from dlw_magic.workspace import default_workspace_path

    data = yaml.safe_load(default_workspace_path().read_text())
    next(v for v in data["volumes"] if v["type"] == "home")["accessModes"] = ["ReadWriteMany"]
    ws = tmp_path / "rwx.yaml"
    ws.write_text(yaml.safe_dump(data))
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("DLW_HOME_MOUNT", str(home))
    return str(ws), home
