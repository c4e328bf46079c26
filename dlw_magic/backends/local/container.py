"""Run a local job's ranks inside its image with buildah (``--image``, or the image ``--build`` made).

Without an image the local runner starts the entrypoint on this machine's Python; with one, a user checks
the image before the cluster sees it. One working container per attempt (``buildah from``), each rank a
``buildah run`` in it:

* the job's folder is bind-mounted at its own path, so the snapshot (the working directory), the output
  and checkpoint folders and every ``DLW_*`` path mean the same inside and out;
* the rank runs as the user who submitted the job, so what it writes stays theirs;
* only what DLW sets reaches it (the rank contract, the spec's env and secrets), not this machine's PATH or
  virtualenv; the variables travel on the rank's stdin, never on a command line others can read;
* the network is the host's (chroot isolation), so ranks meet at 127.0.0.1 as they do without an image.

buildah's storage driver and isolation come from STORAGE_DRIVER / BUILDAH_ISOLATION (default chroot,
which runs in unprivileged sandboxes); ``scripts/images.sh`` builds the same storage's images.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from ...errors import DLWError

# Runs in the image's own Python: read the rank's environment from stdin, then become the entrypoint.
ENV_READER = (
    "import json, os, sys; env = json.loads(sys.stdin.readline()); "
    "os.dup2(os.open(os.devnull, os.O_RDONLY), 0); "
    "os.execvpe(sys.argv[1], sys.argv[1:], {**os.environ, **env})"
)


def isolation() -> str:
    return os.environ.get("BUILDAH_ISOLATION") or "chroot"


def check_available(job: str, image: str) -> None:
    """Submit-time check: a clear error now rather than a failed job later."""
    if shutil.which("buildah") is None:
        raise DLWError(
            f"job {job}: image {image}: the local backend runs a job in its image with buildah, which is not "
            "installed here (apt-get install buildah); leave out --image to run on this machine's Python"
        )


def create(image: str, name: str) -> str:
    """A working container of ``image`` (pulled if it is not in local storage); OSError when that fails."""
    remove(name)  # left over by a runner that died
    proc = subprocess.run(["buildah", "from", "--quiet", "--name", name, image], capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]
        raise OSError(f"image {image}: buildah from: {last[0]}")
    return proc.stdout.strip() or name


def remove(container: str) -> None:
    subprocess.run(["buildah", "rm", container], capture_output=True)


def rank_argv(container: str, argv: list[str], job_dir: Path, cwd: Path) -> list[str]:
    """``buildah run`` of one rank; its environment goes on stdin (``env_line``)."""
    return [
        "buildah", "run", "--isolation", isolation(), "--user", f"{os.getuid()}:{os.getgid()}",
        "--volume", f"{job_dir}:{job_dir}", "--workingdir", str(cwd), container, "--",
        "python", "-c", ENV_READER, *argv,
    ]


def env_line(env: dict[str, str]) -> bytes:
    """The rank's environment as ``ENV_READER`` reads it from stdin."""
    return (json.dumps(env) + "\n").encode()
