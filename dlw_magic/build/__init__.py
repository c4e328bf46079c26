"""Build an image for a job (``build: true`` / ``dlw train --build``) and return the reference to run.

Builders, in the order tried: the cluster's (a Kaniko Job in the user's namespace, when a cluster is
configured: in a notebook pod or with DLW_KUBECONFIG), then a local ``docker`` or ``podman`` whose engine
answers, then ``buildah`` (no daemon: it builds wherever it is installed). ``DLW_BUILDER=kaniko|docker|
podman|buildah`` forces one. No builder: a DLWError that says what to do. The builder used is recorded in
the job's provenance (``build.builder``). For the local backend a local build stays in local storage (the
local runner runs the job in it, see backends/local/container.py); for a cluster it is pushed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from .. import settings
from ..errors import DLWError
from ..types import PreparedJob
from .dockerfile import context_tarball, dockerfile, pinned_requirements, write_context

if TYPE_CHECKING:
    from ..backends.base import Backend

__all__ = [
    "build_image", "context_tarball", "dockerfile", "image_reference", "local_engine", "pinned_requirements",
]


def image_reference(prepared: PreparedJob, registry: str) -> str:
    """``<registry>/<user>/<job>:<snapshot hash>``: a new tag per snapshot, one repository per job name."""
    from ..workspace import safe_name

    return f"{registry}/{safe_name(prepared.user)}/{prepared.spec.name}:{prepared.snapshot_hash.split(':')[-1][:16]}"


def base_image(prepared: PreparedJob, ws: object) -> str:
    from ..snapshot import current_image

    return prepared.spec.build.base_image or prepared.spec.image or current_image() or ws.images.default  # type: ignore[attr-defined]


LOCAL_BUILDERS = ("docker", "podman", "buildah")


def isolation() -> str:
    """buildah's process isolation: BUILDAH_ISOLATION, else chroot (runs in unprivileged sandboxes too)."""
    return os.environ.get("BUILDAH_ISOLATION") or "chroot"


def engine_answers(tool: str) -> bool:
    """True when ``tool info`` succeeds: the client is installed *and* its engine (buildah: its storage) works."""
    if shutil.which(tool) is None:
        return False
    try:
        return subprocess.run([tool, "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def local_engine(order: tuple[str, ...] = LOCAL_BUILDERS) -> str | None:
    """The first builder of ``order`` that works: docker or podman when its engine answers (a client alone
    cannot build), buildah when its storage opens."""
    return next((tool for tool in order if engine_answers(tool)), None)


def _cluster_configured(backend: Backend | None = None) -> bool:
    if backend is not None and backend.name == "kubernetes":
        return True
    env = settings.current()
    return bool(env.in_cluster or env.kubeconfig)


def build_image(prepared: PreparedJob, backend: Backend | None = None) -> str:
    """Build and push the job's image; returns ``repo@sha256:...`` (or the pushed tag) to run.

    ``backend`` is the one the job goes to: a Kubernetes backend builds in its own cluster and namespace
    (its kubeconfig), not the default one.
    """
    from ..render import load_workspace_arg

    ws = load_workspace_arg(None)
    base = base_image(prepared, ws)
    ref = image_reference(prepared, ws.images.registry)
    choice = settings.current().builder
    if choice not in (None, "", "kaniko", *LOCAL_BUILDERS):
        raise DLWError(f"DLW_BUILDER={choice!r}: choose kaniko, docker, podman or buildah")
    if choice == "kaniko" or (not choice and _cluster_configured(backend)):
        from .cluster import build_in_cluster

        tool = "kaniko"
        digest = build_in_cluster(prepared, ws, base, ref, backend)
    else:
        local = backend is not None and backend.name == "local"
        # The local runner runs images with buildah, which shares podman's storage but not docker's.
        order = ("buildah", "podman", "docker") if local else LOCAL_BUILDERS
        found = choice if choice and engine_answers(choice) else None if choice else local_engine(order)
        if found is None:
            raise DLWError(
                f"job {prepared.spec.name}: build: no image builder here: no {choice or 'docker/podman/buildah'} "
                "works and no cluster is configured (run from a DLW notebook pod or set DLW_KUBECONFIG), "
                "or drop build to run on the notebook's image"
            )
        tool = found
        # A job for the local backend runs from local storage: nothing to push.
        digest = _build_locally(tool, prepared, base, ref, push=not local)
    prepared.provenance["build"] = {"image": digest, "base": base, "builder": tool}
    prepared.code_in_image = True
    return digest


def _run(argv: list[str], job: str) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]
        raise DLWError(f"job {job}: {' '.join(argv[:2])}: {last[0]}")
    return proc.stdout


def _build_locally(tool: str, prepared: PreparedJob, base: str, ref: str, push: bool = True) -> str:
    """Build (and push) with a local builder; returns ``repo@sha256:...`` when pushed, else the local tag."""
    job = prepared.spec.name
    with tempfile.TemporaryDirectory(prefix="dlw-build-") as tmp:
        ctx = write_context(prepared, base, Path(tmp) / "context")
        if tool == "buildah":
            # --layers: the base and requirements layers are cached, a code-only change rebuilds one layer.
            _run([tool, "bud", "--layers", "--isolation", isolation(), "-t", ref, str(ctx)], job)
            if not push:
                return ref
            digest_file = Path(tmp) / "digest"
            _run([tool, "push", "--digestfile", str(digest_file), ref], job)
            return f"{ref.rsplit(':', 1)[0]}@{digest_file.read_text().strip()}"
        _run([tool, "build", "-t", ref, str(ctx)], job)
        if not push:
            return ref
        _run([tool, "push", ref], job)
        proc = subprocess.run([tool, "image", "inspect", ref, "--format", "{{index .RepoDigests 0}}"],
                              capture_output=True, text=True)
        return proc.stdout.strip() or ref
