"""Job records in SQLite (WAL), shared by submitters, supervisors and readers.

Every thread of every process has its own connection (a connection shared between threads lets one
thread's statements land inside another's transaction). Writes are short transactions; a busy
database is waited for (SQLite's busy handler, then retries with backoff) up to ``busy_seconds``,
after which the caller gets a one-line ``StoreUnavailable``; a full disk is ``DiskFull``. The start
decision (``try_start``) runs under ``BEGIN IMMEDIATE`` so two supervisors never take the same GPU.
This module imports no pydantic: ``dlw jobs`` and the supervisor start fast.
"""

from __future__ import annotations

import errno
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ... import settings
from ...errors import Conflict, DiskFull, DLWError, NotFound
from ..base import JobInfo, JobState
from . import scheduling

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    user TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    queue TEXT,
    engine TEXT,
    workers INTEGER NOT NULL,
    world_size INTEGER NOT NULL,
    gpus INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    started REAL,
    finished REAL,
    exit_code INTEGER,
    reason TEXT,
    message TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    job_dir TEXT NOT NULL,
    supervisor_pid INTEGER,
    supervisor_start INTEGER,
    pgid INTEGER,
    assigned_gpus TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    spec TEXT NOT NULL,
    provenance TEXT NOT NULL,
    entrypoint TEXT NOT NULL,
    pip_freeze TEXT,
    preemptible INTEGER NOT NULL DEFAULT 0,
    preempt_by TEXT,
    history TEXT,
    UNIQUE (user, name)
);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (user, created DESC);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (state) WHERE state IN ('Queued', 'Running');
"""
# Columns added after the first release: databases made before get them on open.
_ADDED_COLUMNS = {
    "preemptible": "INTEGER NOT NULL DEFAULT 0",
    "preempt_by": "TEXT",  # set while the job is being preempted: the name of the job taking its GPUs
    "history": "TEXT",  # JSON list of preemptions: preemptedAt, by, attempt, resumedAt, resumedFrom, checkpoint
}

ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
_STATES = {s.value: s for s in JobState}  # a dict lookup: JobState(value) costs more, 10,000 times
_LIST_COLUMNS = (  # in the order ``listed`` unpacks them
    "id, name, user, state, priority, queue, engine, workers, world_size, gpus, created, started, finished, "
    "exit_code, reason, message, attempt, job_dir, provenance, history"
)


def preempted_message(by: str) -> str:
    return f"preempted by job {by}, which needed its GPUs; it runs again when GPUs are free"


class StoreUnavailable(DLWError):
    """The job database stayed locked (or unreadable) longer than the caller waits."""


def disk_full_message(path: Path | str) -> str:
    return f"the disk holding {path} is full: free some space (old jobs: dlw jobs; their folders are in {path}/jobs)"


def is_disk_full(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return isinstance(err, sqlite3.OperationalError) and "full" in str(err)


def _busy(err: sqlite3.OperationalError) -> bool:
    text = str(err)
    return "locked" in text or "busy" in text


class Store:
    """The job records; safe to share between threads (each thread gets its own connection)."""

    def __init__(self, home: Path, busy_seconds: float | None = None):
        self.home = home
        self.busy_seconds = busy_seconds if busy_seconds is not None else settings.current().db_busy_seconds
        self._local = threading.local()
        try:
            home.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            if is_disk_full(err):
                raise DiskFull(disk_full_message(home)) from None
            raise DLWError(f"{home}: cannot create the DLW data folder ({err.strerror})") from None
        self._retry(self._setup)

    @property
    def db(self) -> sqlite3.Connection:
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None or local.pid != os.getpid():  # a forked child must not reuse its parent's
            conn = local.conn = self._connect()
            local.pid = os.getpid()
        return conn

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.home / "jobs.db", timeout=min(self.busy_seconds, 5.0), isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        # SQLite's own busy handler waits up to 5 s; ``_retry`` adds backoff rounds up to busy_seconds.
        conn.execute(f"PRAGMA busy_timeout = {int(min(self.busy_seconds, 5.0) * 1000)}")
        return conn

    def _setup(self) -> None:
        db = self.db
        if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
            db.executescript(SCHEMA)
        have = {r[1] for r in db.execute("PRAGMA table_info(jobs)")}
        for column, kind in _ADDED_COLUMNS.items():
            if column not in have:
                try:
                    db.execute(f"ALTER TABLE jobs ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as err:
                    if "duplicate column" not in str(err):  # another process added it first
                        raise
        # Records hold specs and provenance: the owner's only (SQLite gives -wal/-shm the same mode).
        for path in (self.home, self.home / "jobs.db"):
            if path.stat().st_mode & 0o077:
                path.chmod(0o700 if path.is_dir() else 0o600)

    def _retry(self, fn: Any, *args: Any) -> Any:
        """Run ``fn`` again while the database is busy, with jittered backoff, up to ``busy_seconds``."""
        deadline = time.monotonic() + self.busy_seconds
        delay = 0.01
        while True:
            try:
                return fn(*args)
            except sqlite3.OperationalError as err:
                if is_disk_full(err):
                    raise DiskFull(disk_full_message(self.home)) from None
                if not _busy(err) or time.monotonic() > deadline:
                    what = "locked by another process" if _busy(err) else f"unusable ({err})"
                    raise StoreUnavailable(
                        f"{self.home / 'jobs.db'}: the job database is {what}; try again shortly"
                    ) from None
                time.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 0.5)
            except sqlite3.IntegrityError:
                raise
            except sqlite3.DatabaseError as err:
                raise StoreUnavailable(f"{self.home / 'jobs.db'}: the job database is unreadable ({err})") from None

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """One statement (its own short transaction), retried while the database is busy."""
        return self._retry(self.db.execute, sql, params)

    def fetchone(self, sql: str, params: Any = ()) -> sqlite3.Row | None:
        return self._retry(lambda: self.db.execute(sql, params).fetchone())

    def fetchall(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        return self._retry(lambda: self.db.execute(sql, params).fetchall())

    # ---------------------------------------------------------------- writes

    def insert(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            self.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", list(row.values()))
        except sqlite3.IntegrityError:
            raise Conflict(f"job {row['name']!r} already exists (pick another --name)") from None

    def update(self, job_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])

    def delete(self, job_id: str) -> None:
        self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def finish(self, job_id: str, state: JobState, exit_code: int | None, reason: str | None,
               message: str | None, finished: float | None = None) -> bool:
        """Record a final state once (ended at ``finished``, default now); False when it had already finished."""
        cur = self.execute(
            "UPDATE jobs SET state = ?, exit_code = ?, reason = ?, message = ?, finished = ?, assigned_gpus = NULL "
            "WHERE id = ? AND state IN (?, ?)",
            (state.value, exit_code, reason, message, finished or time.time(), job_id, *ACTIVE),
        )
        return cur.rowcount == 1

    def try_start(self, job_id: str, inventory: list[int]) -> list[int] | None:
        """Move the job to Running when its turn has come; returns its GPU indices, or None to keep waiting.

        The rules are ``scheduling.decide``'s. A job that waits gets why in its reason and message; one that
        does not fit may mark running preemptible jobs to make way (their runners stop them and requeue).
        """
        return self._retry(self._try_start, job_id, inventory)

    def _try_start(self, job_id: str, inventory: list[int]) -> list[int] | None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            running = [
                scheduling.Running(
                    id=r["id"], name=r["name"], priority=r["priority"], preemptible=bool(r["preemptible"]),
                    gpus=json.loads(r["assigned_gpus"] or "[]"), started=r["started"] or 0.0,
                    preempt_by=r["preempt_by"],
                )
                for r in db.execute(
                    "SELECT id, name, priority, preemptible, assigned_gpus, started, preempt_by FROM jobs "
                    "WHERE state = 'Running'"
                )
            ]
            queued = [
                scheduling.Queued(id=r["id"], name=r["name"], need=r["need"], priority=r["priority"])
                for r in db.execute(
                    "SELECT id, name, gpus * workers AS need, priority FROM jobs "
                    "WHERE state = 'Queued' AND cancel_requested = 0 ORDER BY priority DESC, created ASC"
                )
            ]
            decision = scheduling.decide(job_id, queued, running, inventory)
            if decision.start is not None:
                db.execute(
                    "UPDATE jobs SET state = 'Running', started = ?, assigned_gpus = ?, reason = NULL, "
                    "message = NULL, preempt_by = NULL WHERE id = ?",
                    (time.time(), json.dumps(decision.start), job_id),
                )
            for victim in decision.victims:
                db.execute("UPDATE jobs SET preempt_by = ? WHERE id = ? AND state = 'Running' AND preempt_by IS NULL",
                           (decision.preemptor, victim))
            if decision.wait:
                self._note_wait(job_id, decision.wait)
            db.execute("COMMIT")
            return decision.start
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _note_wait(self, job_id: str, wait: str) -> None:
        """Why the job waits, as its reason and message; a preempted job keeps saying who took its place."""
        row = self.db.execute("SELECT reason, message, history FROM jobs WHERE id = ?", (job_id,)).fetchone()
        history = json.loads(row["history"] or "[]")
        if history and "resumedAt" not in history[-1]:
            reason, message = "Preempted", f"{preempted_message(history[-1]['by'])}; {wait}"
        else:
            reason, message = "WaitingForGPUs", wait
        if (row["reason"], row["message"]) != (reason, message):
            self.db.execute("UPDATE jobs SET reason = ?, message = ? WHERE id = ?", (reason, message, job_id))

    # ---------------------------------------------------------------- reads

    def row(self, job_id: str) -> sqlite3.Row | None:
        return self.fetchone("SELECT * FROM jobs WHERE id = ?", (job_id,))

    def by_name(self, user: str, name: str) -> sqlite3.Row:
        row = self.fetchone("SELECT * FROM jobs WHERE user = ? AND name = ?", (user, name))
        if row is None:
            raise NotFound(f"job {name!r} not found (see: dlw jobs)")
        return row

    def name_taken(self, user: str, name: str) -> bool:
        return self.fetchone("SELECT 1 FROM jobs WHERE user = ? AND name = ?", (user, name)) is not None

    def active(self) -> list[sqlite3.Row]:
        return self.fetchall(
            "SELECT id, state, supervisor_pid, supervisor_start, pgid, created, job_dir FROM jobs "
            "WHERE state IN (?, ?)", ACTIVE,
        )

    def ids(self) -> set[str]:
        return {r[0] for r in self.fetchall("SELECT id FROM jobs")}

    def list_user(self, user: str, limit: int | None = None, offset: int = 0) -> Iterable[sqlite3.Row]:
        """The user's records, newest first; ``limit``/``offset``: one page of them (done by SQLite, so a
        page of 100,000 jobs costs what a page of 100 does)."""
        page = " LIMIT ? OFFSET ?" if limit is not None else ""
        args = (user, limit, offset) if limit is not None else (user,)
        return self._retry(
            lambda: self.db.execute(f"SELECT {_LIST_COLUMNS} FROM jobs WHERE user = ? ORDER BY created DESC{page}",
                                    args)
        )

    def count_user(self, user: str) -> int:
        return int(self._retry(lambda: self.db.execute("SELECT COUNT(*) FROM jobs WHERE user = ?", (user,)))
                   .fetchone()[0])


def listed(rows: Iterable[sqlite3.Row], backend: str = "local") -> list[JobInfo]:
    """Records (``list_user``'s columns) as listed: what ``to_info`` makes without ``full``, but the
    provenance of all of them decoded by one ``json.loads`` (10,000 calls cost more than the rest of
    ``dlw jobs``), and each row unpacked at once rather than read column by column."""
    rows = list(rows)
    provenances = json.loads("[" + ",".join([row[18] for row in rows]) + "]") if rows else []
    if len(provenances) != len(rows):  # a damaged record: one by one, as to_info does
        provenances = [json.loads(row[18]) for row in rows]
    jobs = []
    for row, provenance in zip(rows, provenances, strict=True):
        (id_, name, user, state, priority, queue, engine, workers, world_size, gpus, created, started, finished,
         exit_code, reason, message, attempt, job_dir, _, history) = row
        jobs.append(JobInfo(
            name=name, user=user, state=_STATES[state], backend=backend, engine=engine or "job", id=id_,
            workers=workers, world_size=world_size, gpus=gpus, created=created, started=started, finished=finished,
            exit_code=exit_code, reason=reason, message=message, attempt=attempt, output_dir=f"{job_dir}/output",
            priority=priority, queue=queue, provenance=provenance,
            history=json.loads(history) if history and history != "[]" else [],
        ))
    return jobs


def to_info(row: sqlite3.Row, backend: str = "local", full: bool = False) -> JobInfo:
    """A record as JobInfo; listings (full=False) leave out the spec and pip freeze, which status shows."""
    job_dir = row["job_dir"]
    provenance = json.loads(row["provenance"])
    if full and row["pip_freeze"]:
        provenance["pip_freeze"] = row["pip_freeze"].splitlines()
    return JobInfo(
        name=row["name"], user=row["user"], state=_STATES[row["state"]], backend=backend,
        engine=row["engine"] or "job", id=row["id"], workers=row["workers"], world_size=row["world_size"],
        gpus=row["gpus"], created=row["created"], started=row["started"], finished=row["finished"],
        exit_code=row["exit_code"], reason=row["reason"], message=row["message"], attempt=row["attempt"],
        output_dir=f"{job_dir}/output", priority=row["priority"], queue=row["queue"],
        provenance=provenance, spec=json.loads(row["spec"]) if full else {},
        history=json.loads(row["history"] or "[]"),
    )
