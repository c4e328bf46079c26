"""The runner of one local job: ``python -m dlw_magic.backends.local.supervisor HOME JOB_ID``.

Started in a session of its own, it outlives the kernel, the Jupyter server and idle culling. It waits
for its turn (priority and free GPUs, decided in the store), starts one process per rank with the
torchrun/PyTorchJob environment, copies each rank's output to ``logs/rank-N.log`` (up to a cap, dated:
see ``logcap``), samples each rank's GPU use into the job's metrics (``dlw_magic.gpu_sampler``), enforces
the timeout, retries, and records the final state. Asked to make way for a higher-priority
job (``preempt_by``, set by ``scheduling.decide``), it stops the ranks (SIGTERM, ``preemption.gracePeriod``,
SIGKILL), puts the job back in the queue as Queued/Preempted, and runs it again when its turn comes;
every attempt sees the same ``DLW_CHECKPOINT_DIR``. Ranks share one process
group, so cancel and timeout end every process a rank started; ranks also die with the supervisor
(PR_SET_PDEATHSIG), and readers mark a job whose supervisor vanished as failed (see
``LocalBackend.reconcile``).

The outcome is never lost: it goes to ``outcome.json`` in the job's folder (space reserved when the
runner starts, so a full disk cannot stop it) before the database; when the database stays locked or
the disk is full, the runner exits and the next reader records the outcome from the file. A runner
that finds its job already decided (cancelled, or declared lost) ends its ranks and exits.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ... import settings
from ...errors import DLWError
from ...failure import log_exception_line
from ...gpu_sampler import Reader, append_line, nvml_reader, sample_gpus
from ...metrics import FOLDER as METRICS_FOLDER
from ...metrics import GPU_FILE_PREFIX
from ...venv import path_with_scripts
from ..base import JobState
from . import container, outcome, scheduling, strays
from .logcap import RankLog, log_cap
from .procs import free_port, kill_group, start_time
from .store import Store, disk_full_message, preempted_message

_PR_SET_PDEATHSIG = 1
_stop_requested = False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def environment_freeze(cache: Path | None = None) -> str:
    """``pip freeze``-like list of the interpreter's distributions, without spawning pip (slow).

    Reading every distribution's metadata takes ~0.2 s of CPU while the ranks start; ``cache`` keeps the
    list for an unchanged environment (same interpreter, same path folders: installing, upgrading or
    removing a package changes its folder's modification time)."""
    key = [sys.executable, *[(p, os.stat(p).st_mtime_ns) for p in sys.path if p and os.path.isdir(p)]]
    if cache is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            kept = json.loads(cache.read_text())
            if kept["key"] == json.loads(json.dumps(key)):
                return str(kept["freeze"])
    from importlib import metadata

    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")  # type: ignore[attr-defined]  # email.Message, not in the protocol
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    freeze = "\n".join(sorted(seen.values(), key=str.lower)) + "\n"
    if cache is not None:
        with contextlib.suppress(OSError):
            tmp = cache.with_name(f".{cache.name}.{os.getpid()}")
            tmp.write_text(json.dumps({"key": key, "freeze": freeze}))
            os.replace(tmp, cache)
    return freeze


def read_secrets(secrets: list[dict[str, str]], secrets_dir: Path) -> dict[str, str]:
    from .secrets import read_secret

    return {ref["env"]: read_secret(secrets_dir, ref["secret"], ref["key"]) for ref in secrets}


def checkpoint_dir(job_dir: str | Path) -> Path:
    return Path(job_dir) / "checkpoints"


def newest_entry(folder: Path) -> str | None:
    """The most recently modified file or folder in ``folder`` (a job's latest checkpoint), or None."""
    try:
        entries = [(e.stat(follow_symlinks=False).st_mtime, e.name) for e in os.scandir(folder)]
    except OSError:
        return None
    return max(entries)[1] if entries else None


def rank_env(row: Any, spec: dict[str, Any], gpus: list[int], port: int, attempt: int,
             inherit: bool = True) -> list[dict[str, str]]:
    """One environment per rank: the torchrun contract plus DLW's own variables, on top of this process's
    environment (``inherit``; a rank in an image gets the image's instead)."""
    workers, world = row["workers"], row["world_size"]
    per_worker = world // workers
    gpus_per_worker = row["gpus"]
    base: dict[str, str] = {}
    if inherit:
        base.update(os.environ)
        base["PATH"] = path_with_scripts(base.get("PATH"))  # the job's `python`, `pip`: DLW's environment's
    base.update(spec.get("env") or {})
    base.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(per_worker), DLW_JOB_NAME=row["name"], DLW_JOB_ID=row["id"],
        DLW_OUTPUT_DIR=str(Path(row["job_dir"]) / "output"), DLW_ATTEMPT=str(attempt),
        DLW_CHECKPOINT_DIR=str(checkpoint_dir(row["job_dir"])),
        PYTHONUNBUFFERED="1", TORCHELASTIC_RUN_ID=row["id"],
    )
    envs = []
    for worker in range(workers):
        share = gpus[worker * gpus_per_worker:(worker + 1) * gpus_per_worker]
        for local in range(per_worker):
            env = dict(base)
            env.update(
                RANK=str(worker * per_worker + local), LOCAL_RANK=str(local), GROUP_RANK=str(worker),
                NODE_RANK=str(worker), CUDA_VISIBLE_DEVICES=",".join(map(str, share)),
            )
            envs.append(env)
    return envs


class Supervisor:
    def __init__(self, home: Path, job_id: str):
        self.store = Store(home)
        self.home = home
        self.job_id = job_id
        row = self.store.row(job_id)
        if row is None:
            raise SystemExit(f"dlw supervisor: no job {job_id} in {home}")
        self.row = row
        self.spec = json.loads(row["spec"])
        self.job_dir = Path(row["job_dir"])
        # Set when the ranks run inside an image (backends/local/container.py), not on this Python.
        self.image: str | None = json.loads(row["provenance"] or "{}").get("container_image")
        self.decided = False
        self.disk_full = False  # the disk was seen full while the ranks ran: the likely cause of a failure
        self.failed_rank: int | None = None  # set by watch() when a rank fails
        self.preempt_by: str | None = None  # set by cancelled() when a higher-priority job needs the GPUs
        self.gpu_reader: Reader | None = None  # NVML, opened at the first attempt with GPUs
        self.gpu_step = 0  # the GPU series continue across attempts

    def cancelled(self) -> bool:
        """Cancel asked, or the job decided by someone else (a reader that thought this runner lost)."""
        if _stop_requested:
            return True
        try:
            row = self.store.fetchone("SELECT cancel_requested, state, preempt_by FROM jobs WHERE id = ?",
                                      (self.job_id,))
        except DLWError:  # database locked or disk full: keep running, ask again later
            return False
        if row is None or JobState(row["state"]).finished:
            self.decided = True
            return True
        if row["state"] == JobState.RUNNING.value:
            self.preempt_by = row["preempt_by"]
        return bool(row[0])

    def cancel_asked(self) -> bool:
        """Whether ``dlw cancel`` asked (it marks the record before its SIGTERM); True when unknown."""
        try:
            row = self.store.fetchone("SELECT cancel_requested FROM jobs WHERE id = ?", (self.job_id,))
        except DLWError:
            return True
        return row is None or bool(row[0])

    def try_update(self, **fields: Any) -> None:
        """Bookkeeping that must not fail the job when the database is locked or the disk full."""
        with contextlib.suppress(DLWError):
            self.store.update(self.job_id, **fields)

    def wait_turn(self) -> list[int] | None:
        inventory = scheduling.inventory() if self.row["gpus"] else []
        delay = 0.02
        while True:
            if self.cancelled():
                return None
            try:
                gpus = self.store.try_start(self.job_id, inventory)
            except DLWError:  # database locked for long: still queued, ask again
                gpus = None
            if gpus is not None:
                return gpus
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def run_attempt(self, gpus: list[int], attempt: int) -> tuple[JobState, int | None, str | None, str | None]:
        snapshot = self.job_dir / "snapshot"
        logs = self.job_dir / "logs"
        argv = json.loads(self.row["entrypoint"])
        if argv and argv[0] == "python" and not self.image:
            argv = [sys.executable, *argv[1:]]
        envs = rank_env(self.row, self.spec, gpus, free_port(), attempt, inherit=not self.image)
        secrets = self.spec.get("secrets") or []
        if secrets:
            secret_env = read_secrets(secrets, Path(settings.current().secrets_dir or self.home / "secrets"))
            for env in envs:
                env.update(secret_env)
        procs: list[subprocess.Popen[bytes]] = []
        rank_logs: list[RankLog] = []
        pgid = 0
        cap = log_cap()
        checkpoint_dir(self.job_dir).mkdir(exist_ok=True)
        box = container.create(self.image, f"dlw-{self.job_id}") if self.image else None
        try:
            for rank, env in enumerate(envs):
                log = RankLog(logs / f"rank-{rank}.log", rank, cap)
                rank_logs.append(log)
                if attempt > 0:
                    log.note(f"\n--- dlw: attempt {attempt + 1} ---\n")
                read_end, write_end = os.pipe()
                try:
                    p = subprocess.Popen(
                        container.rank_argv(box, argv, self.job_dir, snapshot) if box else argv,
                        cwd=snapshot, env=None if box else env, stdin=subprocess.PIPE if box else subprocess.DEVNULL,
                        stdout=write_end, stderr=subprocess.STDOUT, process_group=pgid, preexec_fn=_die_with_parent,
                    )
                except BaseException:
                    os.close(read_end)
                    raise
                finally:
                    os.close(write_end)
                if box and p.stdin is not None:  # the rank's environment, read by container.ENV_READER
                    with contextlib.suppress(BrokenPipeError):
                        p.stdin.write(container.env_line(env))
                    p.stdin.close()
                log.start(read_end)
                procs.append(p)
                if not pgid:
                    pgid = p.pid
        except BaseException:
            kill_group(pgid, grace=1)
            for log in rank_logs:
                log.close(timeout=1)
            if box:
                container.remove(box)
            raise
        self.try_update(pgid=pgid, attempt=attempt)
        sampler = self.start_gpu_sampler(envs)
        if attempt == 0 and not box:  # provenance: measured while the ranks start, so it costs the job no time
            self.try_update(pip_freeze=environment_freeze(self.home / "freeze-cache.json"))
        try:
            result = self.watch(procs, pgid)
        finally:
            if sampler is not None:
                sampler()
            strays.end_descendants()  # what ranks left outside their group (setsid) ends with the attempt
            for log in rank_logs:
                log.close(timeout=2)
            if box:
                container.remove(box)
        state, code, reason, message = result
        if reason == "Error" and message and self.failed_rank is not None:
            # Read once the rank's log is complete (closed above): its last exception line says why.
            why = log_exception_line(logs / f"rank-{self.failed_rank}.log")
            head, sep, hint = message.partition("; ")
            message = f"{head}: {why}{sep}{hint}" if why else message
        unlogged = any(log.disk_full for log in rank_logs)
        full = disk_full_message(self.job_dir.parent.parent)
        failed = state is JobState.FAILED and reason == "Error"
        if failed and (self.disk_full or unlogged or self.disk_full_now()):
            return state, code, "DiskFull", f"{message}; {full}"
        if unlogged:
            message = f"{message + '; ' if message else ''}some output was not logged: {full}"
        return state, code, reason, message

    def start_gpu_sampler(self, envs: list[dict[str, str]]) -> Callable[[], None] | None:
        """Sample each rank's GPUs (its CUDA_VISIBLE_DEVICES, NVML indices) into the job's metrics
        (``metrics/gpu-rank-N.jsonl``) every DLW_GPU_SAMPLE_SECONDS while the attempt runs; returns how to
        stop, or None when there is nothing to sample (no GPUs, no NVML)."""
        ranks = {r: [int(i) for i in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if i.strip().isdigit()]
                 for r, env in enumerate(envs)}
        ranks = {r: gpus for r, gpus in ranks.items() if gpus}
        every = settings.current().gpu_sample_seconds
        if not ranks or not every:
            return None
        if self.gpu_reader is None:
            self.gpu_reader = nvml_reader(settings.current().nvml_standin)
        read = self.gpu_reader
        if read is None:
            return None
        folder = self.job_dir / "output" / METRICS_FOLDER
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None  # the disk is full: the job's record will say so

        def write(rank: int, line: str) -> None:
            append_line(str(folder / f"{GPU_FILE_PREFIX}{rank}.jsonl"), line)

        def run() -> None:
            self.gpu_step = sample_gpus(read, dict(ranks), every, write, stop.wait, self.gpu_step)

        stop = threading.Event()
        thread = threading.Thread(target=run, name="dlw-gpu-sampler", daemon=True)
        thread.start()

        def end() -> None:
            stop.set()
            thread.join(2)
        return end

    def watch(self, procs: list[subprocess.Popen[bytes]],
              pgid: int) -> tuple[JobState, int | None, str | None, str | None]:
        """Wait for the ranks: the first failure, all done, cancel, or the timeout ends the attempt."""

        deadline = None
        timeout = self.spec.get("timeout")
        if timeout:
            deadline = (self.started or time.time()) + float(timeout)
        def reap() -> None:
            for p in procs:
                p.poll()

        began, last_check = time.monotonic(), 0.0
        while True:
            codes = [p.poll() for p in procs]
            failed = [(r, c) for r, c in enumerate(codes) if c not in (None, 0)]
            if failed:
                rank, code = failed[0]
                kill_group(pgid, grace=3, reap=reap)
                for p in procs:
                    p.wait()
                how = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
                hint = f"see: dlw logs {self.row['name']} --rank {rank}"
                self.failed_rank = rank
                return JobState.FAILED, code, "Error", f"rank {rank} {how}; {hint}"
            if all(c == 0 for c in codes):
                # Kept before the clean-up below: a runner killed now still leaves the truth behind.
                outcome.write(self.job_dir, JobState.SUCCEEDED.value, 0, None, None)
                kill_group(pgid, grace=1, reap=reap)  # a rank's leftover children must not outlive the job
                return JobState.SUCCEEDED, 0, None, None
            now = time.monotonic()
            if _stop_requested or now - last_check > 0.5:
                last_check = now
                if self.cancelled():
                    kill_group(pgid, reap=reap)
                    for p in procs:
                        p.wait()
                    if _stop_requested and not self.decided and not self.cancel_asked():
                        return JobState.FAILED, None, "Terminated", (
                            "the job's local runner got SIGTERM from another process (not dlw cancel; perhaps "
                            "one of the job's own processes); its ranks were stopped")
                    return JobState.CANCELLED, None, "Cancelled", "cancelled by the user"
                if self.preempt_by:
                    grace = float((self.spec.get("preemption") or {}).get("gracePeriod", 30))
                    kill_group(pgid, grace=grace, reap=reap)  # SIGTERM: the ranks' cue to checkpoint
                    for p in procs:
                        p.wait()
                    return JobState.QUEUED, None, "Preempted", preempted_message(self.preempt_by)
                if self.disk_full_now():
                    self.disk_full = True
                if deadline and time.time() > deadline:
                    kill_group(pgid, reap=reap)
                    for p in procs:
                        p.wait()
                    return JobState.FAILED, None, "DeadlineExceeded", f"ran longer than its timeout of {timeout}s"
            time.sleep(min(max(0.005, (time.monotonic() - began) / 20), 0.2))

    def disk_full_now(self) -> bool:
        try:
            st = os.statvfs(self.job_dir)
        except OSError:
            return False
        return st.f_bavail == 0

    @property
    def started(self) -> float | None:
        try:
            row = self.store.row(self.job_id)
        except DLWError:
            return None
        return row["started"] if row else None

    def run(self) -> None:
        row = self.store.row(self.job_id)
        if row is None or row["state"] != JobState.QUEUED.value:
            return  # decided before this runner started (cancelled, or declared lost): nothing to do
        reason: str | None
        message: str | None
        try:
            outcome.reserve(self.job_dir)
        except OSError as err:
            state, reason = JobState.FAILED, "StartError"
            message = f"could not start: {err}"
            if err.errno in outcome.DISK_FULL:
                reason, message = "DiskFull", disk_full_message(self.job_dir.parent.parent)
            self.record(state, None, reason, message)
            return
        self.try_update(supervisor_pid=os.getpid(), supervisor_start=start_time(os.getpid()))
        gpus = self.wait_turn()
        if gpus is None:
            if not self.decided:
                self.record(JobState.CANCELLED, None, "Cancelled", "cancelled while queued")
            return
        retries = int(self.spec.get("retries") or 0)
        failures = 0
        attempt = 0  # every start counts: retries and preemptions alike
        while True:
            try:
                state, code, reason, message = self.run_attempt(gpus, attempt)
            except OSError as err:  # the entrypoint or a secret could not be read: retrying will not help
                state, code, reason = JobState.FAILED, None, "StartError"
                message = f"could not start: {err}"
                if err.errno in outcome.DISK_FULL:
                    reason = "DiskFull"
                    message = f"could not start: {disk_full_message(self.job_dir.parent.parent)}"
                break
            if self.decided:
                return
            attempt += 1
            if state is JobState.QUEUED:  # preempted: never a failure, and no retry spent
                self.requeue(attempt, message or "")
                gpus = self.wait_turn()
                if gpus is None:
                    if not self.decided:
                        self.record(JobState.CANCELLED, None, "Cancelled", "cancelled while queued after preemption")
                    return
                self.note_resumed()
                continue
            if state is not JobState.FAILED or reason in ("DeadlineExceeded", "DiskFull") or self.cancelled():
                break
            if failures >= retries:
                break
            failures += 1
            self.try_update(message=f"{message}; retrying ({failures}/{retries})")
        if not self.decided:
            self.record(state, code, reason, message)

    def requeue(self, attempts: int, message: str) -> None:
        """Back to the queue after a preemption: GPUs released, the preemption added to the history."""
        row = self.store.row(self.job_id)
        history = json.loads((row["history"] if row else None) or "[]")
        history.append({"attempt": attempts, "preemptedAt": time.time(), "by": self.preempt_by})
        self.store.execute(
            "UPDATE jobs SET state = 'Queued', assigned_gpus = NULL, pgid = NULL, preempt_by = NULL, "
            "reason = 'Preempted', message = ?, history = ? WHERE id = ? AND state = 'Running'",
            (message, json.dumps(history), self.job_id),
        )
        self.preempt_by = None

    def note_resumed(self) -> None:
        """The history's last preemption gets when the job ran again and from which checkpoint."""
        row = self.store.row(self.job_id)
        history = json.loads((row["history"] if row else None) or "[]")
        if not history:
            return
        folder = checkpoint_dir(self.job_dir)
        history[-1].update(resumedAt=time.time(), resumedFrom=str(folder), checkpoint=newest_entry(folder))
        self.try_update(history=json.dumps(history))

    def record(self, state: JobState, code: int | None, reason: str | None, message: str | None) -> None:
        """The outcome to the job's folder first, then the database; the file alone is enough."""
        outcome.write(self.job_dir, state.value, code, reason, message)
        try:
            self.store.finish(self.job_id, state, code, reason, message)
        except DLWError as err:  # locked for too long, or the disk is full: the next reader records it
            with contextlib.suppress(OSError):  # stderr is a file on that same full disk
                print(f"dlw supervisor: outcome kept in {self.job_dir / outcome.FILE}: {err}", file=sys.stderr)


def main(argv: list[str]) -> None:
    home, job_id = Path(argv[0]), argv[1]
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    strays.become_subreaper()
    os.umask(0o077)  # logs and outputs: the owner's only
    sup = Supervisor(home, job_id)
    try:
        sup.run()
    except BaseException as err:  # never leave the record in Running because of a bug here
        if not sup.decided:
            with contextlib.suppress(BaseException):
                sup.record(JobState.FAILED, None, "RunnerError", f"the local runner failed: {err!r}")
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
