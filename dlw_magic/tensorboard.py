"""TensorBoard over jobs' event files (``$DLW_OUTPUT_DIR/tensorboard``): ``dlw tensorboard NAME...`` and the
lab's TensorBoard button (``dlw_magic.server.tensorboard`` proxies it behind Jupyter's own login).

TensorBoard itself is optional (``pip install 'dlw-magic[tensorboard]'``); it listens on 127.0.0.1 only,
on a port the OS picks, and reads the output folders where this machine sees them (the local backend, or
a Kubernetes home volume the notebook pod mounts): no Service, nothing public.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from . import core
from .errors import DLWError
from .tb_events import FOLDER

if TYPE_CHECKING:
    from .backends import Backend

MAX_JOBS = 20


def logdirs(names: list[str], backend: Backend | None = None) -> dict[str, Path]:
    """{job: its event folder}; a DLWError naming the first job without one."""
    if not names:
        raise DLWError("tensorboard: give at least one job")
    if len(names) > MAX_JOBS:
        raise DLWError(f"tensorboard: at most {MAX_JOBS} jobs at once")
    backend = backend or core.backend_for()
    out: dict[str, Path] = {}
    for name in dict.fromkeys(names):
        job = core.get_job(name, backend, details=False)
        folder = Path(job.output_dir) / FOLDER if job.output_dir else None
        if folder is None or not folder.is_dir():
            raise DLWError(f"job {name!r} has no TensorBoard event files here (DLW_OUTPUT_DIR/{FOLDER}: write "
                           "them from the job, or set DLW_TENSORBOARD=1 so log_metrics does)")
        out[name] = folder
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def command(dirs: dict[str, Path], port: int, path_prefix: str = "") -> list[str]:
    if importlib.util.find_spec("tensorboard") is None:
        raise DLWError("TensorBoard is not installed here: pip install 'dlw-magic[tensorboard]' (or tensorboard)")
    spec = ",".join(f"{name}:{path}" for name, path in dirs.items())
    argv = [sys.executable, "-m", "tensorboard.main", "--logdir_spec", spec, "--host", "127.0.0.1",
            "--port", str(port), "--reload_interval", "5"]
    # TensorBoard compares the prefix with the decoded request path: "/a%40b" must be given as "/a@b".
    prefix = urllib.parse.unquote(path_prefix).rstrip("/")
    return [*argv, "--path_prefix", prefix] if prefix else argv


def start(dirs: dict[str, Path], path_prefix: str = "", log: Path | None = None) -> tuple[subprocess.Popen[bytes], int]:
    """A TensorBoard process serving ``dirs`` and its port, once it answers (DLWError if it does not)."""
    port = free_port()
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(command(dirs, port, path_prefix), stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
    finally:
        if log:
            out.close()  # type: ignore[union-attr]
    url = f"http://127.0.0.1:{port}{path_prefix.rstrip('/')}/"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise DLWError(f"TensorBoard exited at start (code {proc.returncode})" + (f"; see {log}" if log else ""))
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 (our own 127.0.0.1 server)
                return proc, port
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise DLWError("TensorBoard did not answer within 120 s")
