"""Backends (like engines, see test_render) come from entry points of installed packages as well as built-ins."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from dlw_magic import backends
from dlw_magic.errors import DLWError


def _install(site: Path, group: str, line: str, module: str, source: str) -> None:
    """A package as pip would leave it: the module and a dist-info naming its entry point."""
    (site / f"{module}.py").write_text(source)
    dist = site / f"{module}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{line}\n")


def test_a_backend_registered_by_entry_point_is_found_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            dlw_home: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    _install(site, "dlw_magic.backends", "slurm = slurmdlw:SlurmBackend", "slurmdlw",
             "from dlw_magic.backends.local import LocalBackend\n"
             "class SlurmBackend(LocalBackend):\n    name = 'slurm'\n")
    # A package may not take a built-in's name.
    _install(site, "dlw_magic.backends", "local = hijack:Nope", "hijack", "Nope = None\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    backends._cache.clear()
    try:
        assert backends.backend_names()[:2] == ["local", "kubernetes"] and "slurm" in backends.backend_names()
        assert type(backends.get_backend("slurm")).__name__ == "SlurmBackend"
        assert type(backends.get_backend("local")).__name__ == "LocalBackend"
    finally:
        backends._cache.clear()
    with pytest.raises(DLWError, match="backend 'pbs' is unknown .*slurm"):
        backends.get_backend("pbs")


def test_dlw_jobs_takes_a_backend_registered_by_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            dlw_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlw_magic import cli

    site = tmp_path / "site"
    site.mkdir()
    _install(site, "dlw_magic.backends", "slurm = slurmdlw:SlurmBackend", "slurmdlw",
             "from dlw_magic.backends.local import LocalBackend\n"
             "class SlurmBackend(LocalBackend):\n    name = 'slurm'\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    backends._cache.clear()
    try:
        assert cli.main(["jobs", "--backend", "slurm", "-o", "json"]) == 0
        assert capsys.readouterr().out.strip() == "[]"
        assert cli.main(["jobs", "--backend", "pbs"]) == 2
        assert "dlw jobs: --backend: invalid choice 'pbs' (choose from local, kubernetes, slurm)" in (
            capsys.readouterr().err)
    finally:
        backends._cache.clear()
