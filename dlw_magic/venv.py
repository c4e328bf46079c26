"""The Python environment DLW runs in, whether or not it is on PATH.

``.venv/bin/dlw hub`` or ``.venv/bin/jupyter lab`` run with the project's virtualenv off PATH (the README
calls them by their full paths), so a bare ``jupyterhub-singleuser`` looked up on PATH is not found, and a
job's or a notebook's ``python``/``pip``/``dlw`` would be another install's. The scripts folder of the
running interpreter is the environment DLW was installed into: commands are looked up there first, and
what DLW starts gets it first on PATH, as an activated environment has it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def scripts_dir() -> Path:
    """The running environment's scripts folder (``.venv/bin``), whether or not it is on PATH: the folder
    of the running interpreter (in a virtualenv, where pip puts the scripts; cheaper than sysconfig's
    answer, which the local runner would pay for on every job)."""
    folder = os.path.dirname(sys.executable)
    if folder:
        return Path(folder)
    import sysconfig  # no interpreter path (an embedding): never "." on PATH

    return Path(sysconfig.get_path("scripts"))


def find_command(name: str) -> str | None:
    """``name`` from this environment's scripts folder, else from PATH; None when neither has it."""
    here = scripts_dir() / name
    if here.is_file() and os.access(here, os.X_OK):
        return str(here)
    import shutil

    return shutil.which(name)


def path_with_scripts(path: str | None) -> str:
    """``path`` (a PATH value) with this environment's scripts folder first, as an activated venv has it."""
    first = str(scripts_dir())
    rest = [p for p in (path or os.defpath).split(os.pathsep) if p and p != first]
    return os.pathsep.join([first, *rest])
