"""The local scheduler service: one small process per DLW home that ticks while it holds the lease.

Started by the lab server extension when it loads (``ensure_running``), by ``dlw schedule create``, by
hand (``dlw schedule serve``) or by a systemd user unit (docs/schedules.md). Starting a second one is
harmless: it waits as a stand-by and takes over when the first one's lease runs out (it was killed, the
machine restarted). State is in ``schedules.db``, so a restarted scheduler catches up by each
definition's missed-run policy. ``python -m dlw_magic.schedules.service [HOME]`` is the process.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from ..errors import DLWError
from .scheduler import next_fire, tick
from .store import ScheduleStore

log = logging.getLogger("dlw.schedules")
LEASE_SECONDS = 90.0  # a stopped scheduler's lease lapses this long after its last renewal
MAX_SLEEP = 30.0  # wake at least this often: new definitions, edits, renewals


def holder_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{time.time():.0f}"


def serve(home: Path, *, clock: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep,
          rounds: int | None = None, holder: str | None = None) -> None:
    """Tick while holding the lease, stand by while another process holds it; ``rounds`` bounds the loop
    (tests), None runs until killed."""
    from ..backends import get_backend

    store = ScheduleStore(home)
    holder = holder or holder_id()
    backend = None
    done = 0
    try:
        while rounds is None or done < rounds:
            done += 1
            now = clock()
            if not store.acquire(holder, now, LEASE_SECONDS):
                sleep(MAX_SLEEP)
                continue
            backend = backend or get_backend("local", home=str(home))
            try:
                for event in tick(datetime.fromtimestamp(now, UTC), backend, store):
                    log.info("schedule %s: %s %s %s", event.definition, event.action, event.job or "",
                             event.message or "")
            except DLWError as err:  # the job database is locked or full: try again next round
                log.warning("scheduler: %s", err)
            if rounds is None and not _has_local(store):
                break  # nothing left to run: the lab or `dlw schedule create` starts one again when needed
            sleep(_until_next(store, clock()))
    finally:
        with contextlib.suppress(DLWError):
            store.release(holder)


def _has_local(store: ScheduleStore) -> bool:
    return any(d.backend == "local" and not d.paused for d in store.definitions())


def _until_next(store: ScheduleStore, now: float) -> float:
    soonest = MAX_SLEEP
    at = datetime.fromtimestamp(now, UTC)
    for d in store.definitions():
        if d.backend != "local":
            continue
        with contextlib.suppress(DLWError):
            t = next_fire(d, at)
            if t is not None:
                soonest = min(soonest, max(0.5, t.timestamp() - now))
    return soonest


def running(home: Path, now: float | None = None) -> bool:
    """Whether some scheduler holds a live lease on this home."""
    holder, expires = ScheduleStore(home).lease()
    return holder is not None and expires > (now if now is not None else time.time())


def ensure_running(home: Path) -> bool:
    """Start the service in the background unless one runs; True when this call started one."""
    if running(home):
        return False
    log_path = home / "scheduler.log"
    fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        subprocess.Popen(
            [sys.executable, "-m", "dlw_magic.schedules.service", str(home)],
            stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
            start_new_session=True,  # outlives the server that started it
            close_fds=True,
        )
    finally:
        os.close(fd)
    return True


def main(argv: list[str] | None = None) -> int:
    from ..backends.local.backend import data_dir

    argv = sys.argv[1:] if argv is None else argv
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    home = Path(argv[0]) if argv else data_dir()
    with contextlib.suppress(KeyboardInterrupt):
        serve(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
