"""The images build from a clean checkout: what each Dockerfile copies is enough to install DLW there.

No container runtime here, so each image's install step is replayed on a folder holding exactly what its
``COPY`` lines bring from the repository (git-tracked files only, as in a fresh clone), with no node on
PATH (the hub and training images have none): the package must install and import. The notebook image
needs the lab extension, which only a node stage can build: its final stage installs that stage's wheel.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def stages(dockerfile: Path) -> list[list[str]]:
    """The instructions of each build stage (continuation lines joined)."""
    text = re.sub(r"\\\n", " ", dockerfile.read_text())
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            out.append([])
        if out:
            out[-1].append(line)
    return out


def copied_context(instructions: list[str], dest: Path) -> None:
    """Lay out in ``dest`` what the stage's ``COPY`` lines (from the build context) put under the source dir."""
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for line in instructions:
        parts = line.split()
        if parts[0].upper() != "COPY" or any(p.startswith("--from") for p in parts):
            continue
        *sources, target = parts[1:]
        root = Path(target) if target.endswith("/") and len(sources) > 1 else None
        for src in sources:
            base = Path(target) if root is None else root / Path(src).name
            for f in tracked:
                if f == src or f.startswith(src.rstrip("/") + "/"):
                    rel = Path(f).relative_to(src) if f != src else Path()
                    out = dest / base.relative_to(base.anchor) / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(ROOT / f, out)


@pytest.mark.slow
@pytest.mark.parametrize(("dockerfile", "source"), [("deploy/hub.Dockerfile", "tmp/dlw"),
                                                    ("images/train-base/Dockerfile", "src")])
def test_images_without_node_install_dlw_from_a_clean_checkout(tmp_path: Path, dockerfile: str, source: str) -> None:
    (final,) = stages(ROOT / dockerfile)[-1:]
    copied_context(final, tmp_path)
    install = next(line for line in final if "pip install" in line and f"/{source}" in line)
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep)
                           if not (Path(p) / "jlpm").exists() and not (Path(p) / "node").exists())
    env = {k: v for k, v in os.environ.items() if k != "HATCH_BUILD_NO_HOOKS"}
    env.update(re.findall(r"\b([A-Z_]+)=(\S+)", install.split("pip install")[0]), PATH=path)
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"),
                          str(tmp_path / source)], capture_output=True, text=True, env=env, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("dlw_magic-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {"dlw_magic/hub/kube.py", "dlw_magic/launch.py", "dlw_magic/_data/workspace.yaml"} <= set(names)


def test_notebook_image_builds_the_lab_extension_in_a_node_stage() -> None:
    dockerfile = ROOT / "images/notebook/Dockerfile"
    build, final = stages(dockerfile)
    # The official node image by default; a plain Debian base (scripts/images.sh) gets Debian's nodejs.
    assert build[0].split()[1] == "${NODE_IMAGE}" and "ARG NODE_IMAGE=node:" in dockerfile.read_text()
    assert any("command -v node" in line and "nodejs" in line for line in build)
    assert any(line.startswith("COPY labextension") for line in build)
    assert any("jlpm build:prod" in line and "build --wheel" in line for line in build)
    assert not any(line.startswith("COPY") and "--from" not in line for line in final)  # only the wheel
    assert any("/tmp/dist/dlw_magic-*.whl" in line and "pip install" in line for line in final)
