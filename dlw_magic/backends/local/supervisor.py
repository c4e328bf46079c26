"""The runner of one local job: ``python -m dlw_magic.backends.local.supervisor HOME JOB_ID``.

Started in a session of its own, it outlives the kernel, the Jupyter server and idle culling. It waits
for its turn (priority and free GPUs, decided in the store), starts one process per rank with the
torchrun/PyTorchJob environment, writes each rank's output to ``logs/rank-N.log``, enforces the
timeout, retries, and records the final state. Ranks share one process group, so cancel and timeout
end every process a rank started; ranks also die with the supervisor (PR_SET_PDEATHSIG), and readers
mark a job whose supervisor vanished as failed (see ``LocalBackend.reconcile``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ...failure import log_exception_line
from ..base import JobState
from .procs import free_port, kill_group, start_time
from .store import Store

_PR_SET_PDEATHSIG = 1
_stop_requested = False


def _on_sigterm(signum: int, frame: Any) -> None:
    global _stop_requested
    _stop_requested = True


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def environment_freeze() -> str:
    """``pip freeze``-like list of the interpreter's distributions, without spawning pip (slow)."""
    from importlib import metadata

    seen = {}
    for dist in metadata.distributions():
        name = dist.metadata.get("Name")  # type: ignore[attr-defined]  # email.Message, not in the protocol
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={dist.version}"
    return "\n".join(sorted(seen.values(), key=str.lower)) + "\n"


def read_secrets(secrets: list[dict[str, str]], secrets_dir: Path) -> dict[str, str]:
    values = {}
    for ref in secrets:
        path = secrets_dir / ref["secret"] / ref["key"]
        values[ref["env"]] = path.read_text().rstrip("\n")
    return values


def rank_env(row: Any, spec: dict[str, Any], gpus: list[int], port: int, attempt: int) -> list[dict[str, str]]:
    """One environment per rank: the torchrun contract plus DLW's own variables."""
    workers, world = row["workers"], row["world_size"]
    per_worker = world // workers
    gpus_per_worker = row["gpus"]
    base = dict(os.environ)
    base.update(spec.get("env") or {})
    base.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(per_worker), DLW_JOB_NAME=row["name"], DLW_JOB_ID=row["id"],
        DLW_OUTPUT_DIR=str(Path(row["job_dir"]) / "output"), DLW_ATTEMPT=str(attempt),
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

    def cancelled(self) -> bool:
        if _stop_requested:
            return True
        row = self.store.db.execute("SELECT cancel_requested FROM jobs WHERE id = ?", (self.job_id,)).fetchone()
        return bool(row and row[0])

    def wait_turn(self) -> list[int] | None:
        from ...gpus import visible_gpu_indices

        inventory = visible_gpu_indices() if self.row["gpus"] else []
        delay = 0.02
        while True:
            if self.cancelled():
                return None
            gpus = self.store.try_start(self.job_id, inventory)
            if gpus is not None:
                return gpus
            time.sleep(delay)
            delay = min(delay * 2, 1.0)

    def run_attempt(self, gpus: list[int], attempt: int) -> tuple[JobState, int | None, str | None, str | None]:
        snapshot = self.job_dir / "snapshot"
        logs = self.job_dir / "logs"
        argv = json.loads(self.row["entrypoint"])
        if argv and argv[0] == "python":
            argv = [sys.executable, *argv[1:]]
        envs = rank_env(self.row, self.spec, gpus, free_port(), attempt)
        secrets = self.spec.get("secrets") or []
        if secrets:
            secret_env = read_secrets(secrets, Path(os.environ.get("DLW_SECRETS_DIR", self.home / "secrets")))
            for env in envs:
                env.update(secret_env)
        procs: list[subprocess.Popen[bytes]] = []
        pgid = 0
        for rank, env in enumerate(envs):
            with open(logs / f"rank-{rank}.log", "ab") as log:
                if attempt > 0:
                    log.write(f"\n--- dlw: attempt {attempt + 1} ---\n".encode())
                    log.flush()
                p = subprocess.Popen(
                    argv, cwd=snapshot, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                    process_group=pgid, preexec_fn=_die_with_parent,
                )
            procs.append(p)
            if not pgid:
                pgid = p.pid
        self.store.update(self.job_id, pgid=pgid, attempt=attempt)
        if attempt == 0:  # provenance: measured while the ranks start, so it costs the job no time
            self.store.update(self.job_id, pip_freeze=environment_freeze())

        deadline = None
        timeout = self.spec.get("timeout")
        if timeout:
            row = self.store.row(self.job_id)
            deadline = ((row["started"] if row is not None else None) or time.time()) + float(timeout)
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
                why = log_exception_line(logs / f"rank-{rank}.log")
                how += f": {why}" if why else ""
                return JobState.FAILED, code, "Error", f"rank {rank} {how}; {hint}"
            if all(c == 0 for c in codes):
                kill_group(pgid, grace=1, reap=reap)  # a rank's leftover children must not outlive the job
                return JobState.SUCCEEDED, 0, None, None
            now = time.monotonic()
            if _stop_requested or now - last_check > 0.5:
                last_check = now
                if self.cancelled():
                    kill_group(pgid, reap=reap)
                    for p in procs:
                        p.wait()
                    return JobState.CANCELLED, None, "Cancelled", "cancelled by the user"
                if deadline and time.time() > deadline:
                    kill_group(pgid, reap=reap)
                    for p in procs:
                        p.wait()
                    return JobState.FAILED, None, "DeadlineExceeded", f"ran longer than its timeout of {timeout}s"
            time.sleep(min(max(0.005, (time.monotonic() - began) / 20), 0.2))

    def run(self) -> None:
        self.store.update(self.job_id, supervisor_pid=os.getpid(), supervisor_start=start_time(os.getpid()))
        gpus = self.wait_turn()
        if gpus is None:
            self.store.finish(self.job_id, JobState.CANCELLED, None, "Cancelled", "cancelled while queued")
            return
        retries = int(self.spec.get("retries") or 0)
        for attempt in range(retries + 1):
            try:
                state, code, reason, message = self.run_attempt(gpus, attempt)
            except OSError as err:  # the entrypoint or a secret could not be read: retrying will not help
                state, code, reason, message = JobState.FAILED, None, "StartError", f"could not start: {err}"
                break
            if state is not JobState.FAILED or reason == "DeadlineExceeded" or self.cancelled():
                break
            if attempt < retries:
                self.store.update(self.job_id, message=f"{message}; retrying ({attempt + 1}/{retries})")
        self.store.finish(self.job_id, state, code, reason, message)


def main(argv: list[str]) -> None:
    home, job_id = Path(argv[0]), argv[1]
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sup = Supervisor(home, job_id)
    try:
        sup.run()
    except BaseException as err:  # never leave the record in Running because of a bug here
        sup.store.finish(job_id, JobState.FAILED, None, "RunnerError", f"the local runner failed: {err!r}")
        raise


if __name__ == "__main__":
    main(sys.argv[1:])
