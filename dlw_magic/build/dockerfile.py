"""The build context of a job image: Dockerfile (from ``images/templates``), pinned requirements, code.

Deterministic on purpose: the same dependencies give byte-identical first layers, so every builder's
layer cache (Docker, Kaniko ``--cache-repo``) reuses them and a code-only change rebuilds one layer.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

from ..backends.base import PreparedJob
from ..errors import DLWError

TEMPLATE = "job.Dockerfile"
# Never pinned into a job image: the package itself (the notebook image already has it, maybe editable)
# and tools pip manages for itself.
SKIP = {"dlw-magic", "pip", "setuptools", "wheel"}


def templates_dir() -> Path:
    """``images/templates`` in a source checkout, else the copy shipped in the wheel (``_data/images``)."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package.parent / "images" / "templates", package / "_data" / "images"):
        if (candidate / TEMPLATE).is_file():
            return candidate
    raise DLWError(f"build: the Dockerfile template {TEMPLATE} is missing from this installation")


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements() -> str:
    """``name==version`` for every distribution installed here that an index can provide again.

    Editable installs and local directories (direct_url.json with ``dir_info`` / ``file://``) are left
    out: they exist only on this machine.
    """
    pins: dict[str, str] = {}
    for dist in importlib.metadata.distributions():
        name = dist.metadata.get("Name")  # type: ignore[attr-defined]  # email.Message, not in the protocol
        if not name or _canonical(name) in SKIP:
            continue
        direct = dist.read_text("direct_url.json")
        if direct:
            try:
                info = json.loads(direct)
            except ValueError:
                info = {}
            if "dir_info" in info or str(info.get("url", "")).startswith("file:"):
                continue
        pins.setdefault(_canonical(name), f"{name}=={dist.version}")
    lines = sorted(pins.values(), key=str.lower)
    return "# Pinned by dlw from the notebook's environment\n" + "\n".join(lines) + "\n"


def requirements_for(prepared: PreparedJob) -> str:
    given = prepared.spec.build.requirements
    if not given:
        return pinned_requirements()
    workdir = Path(prepared.provenance.get("workdir") or prepared.spec.source.workdir or ".")
    path = Path(given) if Path(given).is_absolute() else workdir / given
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise DLWError(f"job {prepared.spec.name}: build.requirements: {path} cannot be read") from None


def dockerfile(prepared: PreparedJob, base_image: str) -> str:
    text = (templates_dir() / TEMPLATE).read_text(encoding="utf-8")
    return text.replace("@BASE_IMAGE@", base_image).replace("@JOB_NAME@", prepared.spec.name)


def write_context(prepared: PreparedJob, base_image: str, dest: Path) -> Path:
    """A build context folder: Dockerfile, requirements.txt, code/ (the snapshot)."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "Dockerfile").write_text(dockerfile(prepared, base_image), encoding="utf-8")
    (dest / "requirements.txt").write_text(requirements_for(prepared), encoding="utf-8")
    shutil.copytree(prepared.snapshot_dir, dest / "code", dirs_exist_ok=True)
    return dest


def context_tarball(folder: Path) -> bytes:
    """The context as a reproducible tar.gz (fixed mtimes and owners: same input, same bytes)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(folder.rglob("*")):
            info = tar.gettarinfo(str(path), arcname=path.relative_to(folder).as_posix())
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_file():
                with path.open("rb") as fh:
                    tar.addfile(info, fh)
            else:
                tar.addfile(info)
    return gzip.compress(buf.getvalue(), mtime=0)
