"""The embedded default backend: jobs run as processes on this machine.

Layout under the data directory (``DLW_HOME``, else ``dataDir`` in ``$XDG_CONFIG_HOME/dlw/config.yaml``,
else ``$XDG_DATA_HOME/dlw``)::

    jobs.db                      job records (SQLite, WAL)
    jobs/<id>/snapshot/          what runs (never the user's files)
    jobs/<id>/logs/rank-N.log    one log per rank
    jobs/<id>/output/            DLW_OUTPUT_DIR: metrics, results
    jobs/<id>/checkpoints/       DLW_CHECKPOINT_DIR: the same folder for every attempt (retries, preemptions)
    jobs/<id>/outcome.json       the runner's outcome, kept even when the database cannot take it
    secrets/<secret>/<key>       values for spec.secrets (the local stand-in for Kubernetes Secrets)

The data directory is the owner's only (0700; records and logs 0600).
"""

from __future__ import annotations

import codecs
import contextlib
import dataclasses
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from ... import settings
from ...errors import Conflict, DLWError
from ..base import Backend, JobInfo, JobState, LogChunk, PreparedJob
from . import container, outcome, procs, scheduling
from .logcap import WriteTimes, times_path
from .secrets import secret_path
from .store import DiskFull, Store, disk_full_message, is_disk_full, listed, to_info

if TYPE_CHECKING:
    from ...spec import TrainingJob

BUILTIN_PRIORITIES = {"low": -100, "normal": 0, "high": 100}
MAX_LOCAL_RANKS = 256  # processes of one job on this machine (the spec allows 1,024 x 64 for a cluster)
_READ_SIZE = 1 << 20
# A runner is given this long to record its own pid before a reader may call it lost; the submitter
# records it as soon as the process exists, so this only matters when the submitter died in between.
_SPAWN_GRACE = 120.0
# Job folders without a record (a submitter killed mid-way) are removed once they are this old.
_ORPHAN_AGE = 3600.0
_FINAL = {s.value for s in JobState if s.finished}


def data_dir() -> Path:
    env = settings.current().home
    if env:
        return Path(env).expanduser()
    config_home = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    config = config_home / "dlw" / "config.yaml"
    if config.is_file():
        import yaml

        try:
            data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
            raise DLWError(f"{config}: not a readable YAML file ({str(err).splitlines()[0]})") from None
        if not isinstance(data, dict):
            raise DLWError(f"{config}: expected a mapping such as `dataDir: ~/dlw-data`")
        where = data.get("dataDir")
        if where is not None and (not isinstance(where, str) or not where.strip()):
            raise DLWError(f"{config}: dataDir: expected a folder path, got {where!r}")
        if where:
            path = Path(where).expanduser()
            if not path.is_absolute():  # relative: one job database per working directory
                raise DLWError(f"{config}: dataDir: {where!r} is not an absolute path (~ is allowed)")
            return path
    data_home = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return data_home / "dlw"


def resolve_priority(value: int | str | None) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    if value.lstrip("-").isdigit() and len(value) < 20:
        return int(value)
    if value in BUILTIN_PRIORITIES:
        return BUILTIN_PRIORITIES[value]
    try:
        from ...workspace import load_workspace

        classes = load_workspace().priority_values
    except Exception:  # no admin YAML here: only the built-in names exist
        classes = {}
    if value in classes:
        return int(classes[value])
    known = sorted({*BUILTIN_PRIORITIES, *classes})
    raise DLWError(f"priority: {value!r} is not a priority class (known: {', '.join(known)}) or an integer")


def job_priority(spec: TrainingJob) -> int:
    """The spec's priority; a preemptible job without one runs at ``low`` (-100), below every default job.

    Not the workspace's preemptible class: its value is on the cluster's scale, where the local default is 0.
    """
    if spec.priority is None and spec.preemptible:
        return BUILTIN_PRIORITIES["low"]
    return resolve_priority(spec.priority)


class LocalBackend(Backend):
    name = "local"

    def __init__(self, home: str | None = None):
        self.home = Path(home) if home else data_dir()
        self.store = Store(self.home)
        self.user = settings.current().user

    # ---------------------------------------------------------------- submit

    def staging_dir(self, spec: TrainingJob) -> Path:
        job_id = os.urandom(6).hex()  # secrets.token_hex, without importing secrets (hmac, hashlib)
        path = self.home / "jobs" / job_id / "snapshot"
        try:
            (self.home / "jobs").mkdir(mode=0o700, exist_ok=True)
            path.parent.mkdir(mode=0o700)
            path.mkdir()
        except OSError as err:
            shutil.rmtree(path.parent, ignore_errors=True)
            if is_disk_full(err):
                raise DiskFull(disk_full_message(self.home)) from None
            raise DLWError(f"{path.parent}: cannot create the job's folder ({err.strerror})") from None
        return path

    def discard_staging(self, staging: Path) -> None:
        shutil.rmtree(staging.parent, ignore_errors=True)  # the whole jobs/<id>/ folder

    def check_name_free(self, name: str) -> None:
        if self.store.name_taken(self.user, name):
            raise Conflict(f"job {name!r} already exists (pick another --name, or see: dlw status {name})")

    def _check_resources(self, spec: TrainingJob) -> None:
        if spec.world_size > MAX_LOCAL_RANKS:
            raise DLWError(
                f"workers: {spec.workers} x {spec.processes_per_worker} process(es) is {spec.world_size} ranks; "
                f"the local backend runs at most {MAX_LOCAL_RANKS} on one machine"
            )
        need = spec.resources.gpus * spec.workers
        if need:
            from ...gpus import local_gpus

            have = len(scheduling.inventory())
            if need > have:
                reason = "DLW_FAKE_GPUS" if settings.current().fake_gpus is not None else local_gpus()[1]
                why = f" ({reason})" if reason else ""
                raise DLWError(
                    f"resources.gpus: the job needs {need} GPU(s) ({spec.resources.gpus} x {spec.workers} workers) "
                    f"but this machine has {have}{why}"
                )
        if spec.volumes:
            raise DLWError(
                f"volumes: the local backend does not mount catalogue volumes ({spec.volumes[0].name!r}); "
                "run on Kubernetes, or read the data from a local path"
            )
        if spec.secrets:
            base = Path(settings.current().secrets_dir or self.home / "secrets")
            for ref in spec.secrets:
                path = secret_path(base, ref.secret, ref.key)
                if not path.is_file():
                    what = "is not a regular file" if path.exists() else "not found (put the value in it)"
                    raise DLWError(f"secrets: {ref.secret}/{ref.key}: {path} {what}")

    def submit(self, job: PreparedJob) -> JobInfo:
        spec = job.spec
        self._check_resources(spec)
        # An image named for the job (--image) or built for it (--build): the ranks run inside it.
        image = job.image if (spec.image or job.code_in_image) else None
        if image:
            container.check_available(spec.name, image)
        job_dir = job.snapshot_dir.parent
        try:
            (job_dir / "logs").mkdir(mode=0o700, exist_ok=True)
            (job_dir / "output").mkdir(exist_ok=True)
        except OSError as err:
            if is_disk_full(err):
                raise DiskFull(disk_full_message(self.home)) from None
            raise
        provenance = dict(job.provenance)
        provenance["entrypoint"] = job.entrypoint
        if image:
            provenance["container_image"] = image
        self.store.insert({
            "id": job_dir.name, "name": spec.name, "user": job.user, "state": JobState.QUEUED.value,
            "priority": job_priority(spec), "preemptible": int(spec.preemptible), "queue": spec.queue,
            "engine": spec.engine,
            "workers": spec.workers, "world_size": spec.world_size, "gpus": spec.resources.gpus,
            "created": time.time(), "job_dir": str(job_dir),
            "spec": json.dumps(spec.to_yaml_dict()), "provenance": json.dumps(provenance),
            "entrypoint": json.dumps(job.entrypoint),
        })
        try:
            self._spawn_supervisor(job_dir)
        except OSError as err:  # the disk filled up, the interpreter is gone: say so now, not in 120 s
            why = f"could not start the job's local runner: {err.strerror or err}"
            with contextlib.suppress(DLWError):
                self.store.finish(job_dir.name, JobState.FAILED, None, "StartError", why)
            raise DLWError(f"{spec.name}: {why}") from None
        return self.get(spec.name)

    def _spawn_supervisor(self, job_dir: Path) -> None:
        fd = os.open(job_dir / "supervisor.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", "dlw_magic.backends.local.supervisor", str(self.home), job_dir.name],
                stdin=subprocess.DEVNULL, stdout=fd, stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives the kernel, the server and their process groups
                close_fds=True,
            )
        finally:
            os.close(fd)
        # Reap it if this process lives longer (kernel, server); otherwise init adopts it.
        threading.Thread(target=proc.wait, daemon=True).start()
        # Liveness is by pid and start time from now on, however slowly the runner starts.
        started = procs.start_time(proc.pid)
        if started is not None:
            with contextlib.suppress(DLWError):  # else the runner records itself when it starts
                self.store.execute(
                    "UPDATE jobs SET supervisor_pid = ?, supervisor_start = ? WHERE id = ? AND supervisor_pid IS NULL",
                    (proc.pid, started, job_dir.name),
                )

    # ---------------------------------------------------------------- read

    def reconcile(self) -> dict[str, dict[str, Any]]:
        """Settle active jobs whose runner is gone (kill -9, reboot): no job stays Running forever.

        The runner's own outcome file wins (it ran to its end but could not write the database);
        otherwise the job failed with RunnerLost and whatever its ranks left running is ended.
        Returns the outcomes this reader could not record (the disk is full, the database locked):
        readers show them, and a later reader records them.
        """
        now = time.time()
        unrecorded: dict[str, dict[str, Any]] = {}
        for row in self.store.active():
            pid = row["supervisor_pid"]
            if pid is None:
                if now - row["created"] < _SPAWN_GRACE:
                    continue  # the runner is still starting
            elif procs.alive(pid, row["supervisor_start"]):
                continue
            if row["pgid"]:
                procs.kill_group(row["pgid"], grace=2)
            kept = outcome.read(row["job_dir"])
            if not (kept and kept["state"] in _FINAL) and pid is None:
                kept = {"state": JobState.FAILED.value, "exit_code": None, "reason": "RunnerNotStarted", "message": (
                    "the job's local runner never started (the submitting process was killed, or the disk was "
                    "full); submit it again with: dlw rerun NAME")}
            elif not (kept and kept["state"] in _FINAL):
                kept = {"state": JobState.FAILED.value, "exit_code": None, "reason": "RunnerLost", "message": (
                    "the job's local runner stopped unexpectedly (killed, or the machine restarted); "
                    "its processes were ended. Submit it again with: dlw rerun NAME")}
            finished = kept.get("finished")
            try:
                self.store.finish(row["id"], JobState(kept["state"]), kept.get("exit_code"), kept.get("reason"),
                                  kept.get("message"), finished if isinstance(finished, (int, float)) else None)
            except DiskFull:
                unrecorded[row["id"]] = kept
        self._sweep_orphans(now)
        return unrecorded

    @staticmethod
    def _shown(info: JobInfo, unrecorded: dict[str, dict[str, Any]]) -> JobInfo:
        kept = unrecorded.get(info.id or "")
        if kept is None:
            return info
        return dataclasses.replace(info, state=JobState(kept["state"]), exit_code=kept.get("exit_code"),
                                   reason=kept.get("reason"), message=kept.get("message"))

    def _sweep_orphans(self, now: float) -> None:
        """Remove job folders that never got a record (a submitter killed mid-submit); at most hourly."""
        jobs = self.home / "jobs"
        marker = self.home / ".swept"
        try:
            if now - marker.stat().st_mtime < _ORPHAN_AGE:
                return
        except FileNotFoundError:
            pass
        except OSError:
            return
        try:
            marker.touch(mode=0o600)
            os.utime(marker, (now, now))
            folders = list(os.scandir(jobs))
        except OSError:
            return
        known = self.store.ids()
        for entry in folders:
            try:
                old = now - entry.stat(follow_symlinks=False).st_mtime > _ORPHAN_AGE
            except OSError:
                continue
            if old and entry.is_dir(follow_symlinks=False) and entry.name not in known:
                shutil.rmtree(entry.path, ignore_errors=True)

    def list_jobs(self) -> list[JobInfo]:
        return self.list_page(None, 0)[0]

    def list_page(self, limit: int | None, offset: int = 0) -> tuple[list[JobInfo], int]:
        """(the newest jobs from ``offset`` on, at most ``limit``; how many jobs the user has)."""
        unrecorded = self.reconcile()
        jobs = listed(self.store.list_user(self.user, limit, offset))
        total = len(jobs) + offset if limit is None or (len(jobs) < limit and (jobs or not offset)) \
            else self.store.count_user(self.user)
        return ([self._shown(j, unrecorded) for j in jobs] if unrecorded else jobs), total

    def get(self, name: str) -> JobInfo:
        row = self.store.by_name(self.user, name)
        unrecorded: dict[str, dict[str, Any]] = {}
        if row["state"] in (JobState.QUEUED.value, JobState.RUNNING.value):
            unrecorded = self.reconcile()
            row = self.store.by_name(self.user, name)
        return self._shown(to_info(row, full=True), unrecorded)

    def snapshot_of(self, name: str) -> Path:
        return Path(self.store.by_name(self.user, name)["job_dir"]) / "snapshot"

    # ---------------------------------------------------------------- control

    def cancel(self, name: str) -> JobInfo:
        row = self.store.by_name(self.user, name)
        if JobState(row["state"]).finished:
            raise Conflict(f"job {name!r} already finished ({row['state']}); nothing to cancel")
        self.store.update(row["id"], cancel_requested=1)
        pid, started = row["supervisor_pid"], row["supervisor_start"]
        if procs.alive(pid, started):
            os.kill(pid, signal.SIGTERM)
            os.kill(pid, signal.SIGCONT)  # a stopped runner (SIGSTOP, ^Z) must wake to see it, not be killed blind
            deadline = time.monotonic() + 15
            while procs.alive(pid, started) and time.monotonic() < deadline:
                time.sleep(0.05)
        if procs.alive(pid, started):  # a supervisor that ignores us: end it and its ranks ourselves
            os.kill(pid, signal.SIGKILL)
        fresh = self.store.row(row["id"])
        if fresh is not None and fresh["state"] in (JobState.QUEUED.value, JobState.RUNNING.value):
            procs.kill_group(fresh["pgid"], grace=2)
            kept = outcome.read(row["job_dir"])  # the runner's own word (its ranks had ended) wins
            if kept and kept["state"] in _FINAL:
                self.store.finish(row["id"], JobState(kept["state"]), kept.get("exit_code"), kept.get("reason"),
                                  kept.get("message"), kept.get("finished"))
            else:
                self.store.finish(row["id"], JobState.CANCELLED, None, "Cancelled", "cancelled by the user")
        return self.get(name)

    def delete(self, name: str) -> None:
        row = self.store.by_name(self.user, name)
        if not JobState(row["state"]).finished:
            raise Conflict(f"job {name!r} is {row['state']}; cancel it before deleting it")
        self.store.delete(row["id"])  # the record first: a half-removed folder is never listed
        shutil.rmtree(row["job_dir"], ignore_errors=True)

    def logs(self, name: str, rank: int | None = None, follow: bool = False, offset: int = 0) -> Iterator[LogChunk]:
        row = self.store.by_name(self.user, name)
        world = row["world_size"]
        if rank is not None and not 0 <= rank < world:
            raise DLWError(f"--rank {rank}: job {name!r} has ranks 0..{world - 1}")
        if offset and rank is None:
            raise DLWError("an offset needs a rank")
        ranks = [rank] if rank is not None else list(range(world))
        if len(ranks) > 1:
            return self._follow_merged(row["id"], Path(row["job_dir"]) / "logs", ranks, follow)
        return self._follow(row["id"], Path(row["job_dir"]) / "logs", ranks, follow, offset)

    def _still_running(self, job_id: str, delay: float) -> bool:
        """Whether a followed job may still write (a lost runner is settled on the way)."""
        row = self.store.row(job_id)
        if row is None or JobState(row["state"]).finished:
            return False
        if row["state"] != JobState.QUEUED.value and delay >= 0.5:
            self.reconcile()
        return True

    def _follow_merged(self, job_id: str, logs: Path, ranks: list[int], follow: bool) -> Iterator[LogChunk]:
        """Every rank's log, merged in the order it was written (``logcap``'s ``rank-N.times``).

        A rank's piece goes out only once every rank that may have older bytes has been read that far:
        a rank whose file has more than was read is read again first, and while the job runs, pieces
        written after a pass began wait for the next pass (a rank read earlier in it may have written since).
        """
        files: dict[int, BinaryIO] = {}
        times = {r: WriteTimes(times_path(logs / f"rank-{r}.log")) for r in ranks}
        offsets = dict.fromkeys(ranks, 0)
        decoders = {r: codecs.getincrementaldecoder("utf-8")("replace") for r in ranks}
        queued: dict[int, deque[tuple[float, int, bytes]]] = {r: deque() for r in ranks}
        more = dict.fromkeys(ranks, False)  # the last read filled its buffer: the file has more
        delay = 0.02
        try:
            while True:
                limit = time.time() if follow else math.inf
                got = False
                for r in ranks:
                    if queued[r]:
                        continue
                    f = files.get(r)
                    if f is None:
                        try:
                            f = files[r] = open(logs / f"rank-{r}.log", "rb")  # noqa: SIM115
                        except FileNotFoundError:
                            continue
                    data = f.read(_READ_SIZE)
                    more[r] = len(data) == _READ_SIZE
                    if data:
                        got = True
                        queued[r].extend(times[r].pieces(offsets[r], data))
                        offsets[r] += len(data)
                while True:
                    heads = sorted((queued[r][0][0], r) for r in ranks if queued[r])
                    if not heads or heads[0][0] > limit:
                        break
                    r = heads[0][1]
                    rival = min(heads[1], (limit, -1)) if len(heads) > 1 else (limit, -1)
                    q, parts, end = queued[r], [], 0
                    while q and (q[0][0], r) <= rival:  # a run of one rank goes out as one chunk
                        _, end, piece = q.popleft()
                        parts.append(piece)
                    text = decoders[r].decode(b"".join(parts))
                    if text:
                        yield LogChunk(rank=r, text=text, offset=end)
                    if not q and more[r]:
                        break  # read this rank on before anything newer goes out
                if got or any(more[r] and not queued[r] for r in ranks):
                    delay = 0.02
                    continue
                if not follow:
                    return
                if any(queued.values()):
                    delay = 0.02  # held back for the next pass
                elif not self._still_running(job_id, delay):
                    follow = False  # one more pass drains what the ranks wrote last
                    continue
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        finally:
            for f in files.values():
                f.close()

    def _follow(self, job_id: str, logs: Path, ranks: list[int], follow: bool, offset: int) -> Iterator[LogChunk]:
        files: dict[int, BinaryIO] = {}
        offsets = {r: offset for r in ranks}
        decoders = {r: codecs.getincrementaldecoder("utf-8")("replace") for r in ranks}
        delay = 0.02
        try:
            while True:
                got = False
                for r in ranks:
                    f = files.get(r)
                    if f is None:
                        try:
                            f = files[r] = open(logs / f"rank-{r}.log", "rb")  # noqa: SIM115
                            f.seek(offsets[r])
                        except FileNotFoundError:
                            continue
                    data = f.read(_READ_SIZE)
                    if data:
                        got = True
                        offsets[r] += len(data)
                        yield LogChunk(rank=r, text=decoders[r].decode(data), offset=offsets[r])
                if got:
                    delay = 0.02
                    continue
                if not follow:
                    return
                if not self._still_running(job_id, delay):
                    follow = False  # one more pass drains what the ranks wrote last
                    continue
                time.sleep(delay)
                delay = min(delay * 1.5, 0.5)
        finally:
            for f in files.values():
                f.close()
