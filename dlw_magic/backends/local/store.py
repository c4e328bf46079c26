"""Job records in SQLite (WAL), shared by submitters, supervisors and readers.

Every process opens its own connection; writes are short transactions, and the start decision
(``try_start``) runs under ``BEGIN IMMEDIATE`` so two supervisors never take the same GPU.
This module imports no pydantic: ``dlw jobs`` and the supervisor start fast.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ...errors import Conflict, NotFound
from ..base import JobInfo, JobState

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
    UNIQUE (user, name)
);
CREATE INDEX IF NOT EXISTS jobs_by_user ON jobs (user, created DESC);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (state) WHERE state IN ('Queued', 'Running');
"""

ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
_STATES = {s.value: s for s in JobState}  # a dict lookup: JobState(value) costs more, 10,000 times
_LIST_COLUMNS = (
    "id, name, user, state, priority, queue, engine, workers, world_size, gpus, created, started, finished, "
    "exit_code, reason, message, attempt, job_dir, provenance"
)


class Store:
    def __init__(self, home: Path):
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(home / "jobs.db", timeout=30, isolation_level=None, check_same_thread=False)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA busy_timeout = 30000")
        if self.db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
            self.db.execute("PRAGMA journal_mode = WAL")
        self.db.execute("PRAGMA synchronous = NORMAL")  # WAL + NORMAL: durable across process crashes
        if not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone():
            self.db.executescript(SCHEMA)

    # ---------------------------------------------------------------- writes

    def insert(self, row: dict[str, Any]) -> None:
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        try:
            self.db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", list(row.values()))
        except sqlite3.IntegrityError:
            raise Conflict(f"job {row['name']!r} already exists (pick another --name)") from None

    def update(self, job_id: str, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.db.execute(f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id])

    def delete(self, job_id: str) -> None:
        self.db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))

    def finish(self, job_id: str, state: JobState, exit_code: int | None, reason: str | None,
               message: str | None) -> bool:
        """Record a final state once; False when the job had already finished."""
        cur = self.db.execute(
            "UPDATE jobs SET state = ?, exit_code = ?, reason = ?, message = ?, finished = ?, assigned_gpus = NULL "
            "WHERE id = ? AND state IN (?, ?)",
            (state.value, exit_code, reason, message, time.time(), job_id, *ACTIVE),
        )
        return cur.rowcount == 1

    def try_start(self, job_id: str, inventory: list[int]) -> list[int] | None:
        """Move the job to Running when its turn has come; returns its GPU indices, or None to keep waiting.

        Order: priority (high first), then submission time. GPU jobs start strictly in that order, so a large
        job is never starved by smaller ones behind it; jobs that need no GPU never wait.
        """
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            used: set[int] = set()
            for (assigned,) in db.execute("SELECT assigned_gpus FROM jobs WHERE state = 'Running'"):
                used.update(json.loads(assigned or "[]"))
            free = [i for i in inventory if i not in used]
            rows = db.execute(
                "SELECT id, gpus * workers AS need FROM jobs WHERE state = 'Queued' AND cancel_requested = 0 "
                "ORDER BY priority DESC, created ASC"
            ).fetchall()
            blocked = False  # set by the first GPU job that does not fit: GPU jobs behind it wait
            start: list[int] | None = None
            for row in rows:
                need = row["need"]
                if need and (blocked or need > len(free)):
                    blocked = True
                    take = None
                else:
                    take, free = free[:need], free[need:]
                if row["id"] == job_id:
                    start = take
                    break
            if start is not None:
                db.execute(
                    "UPDATE jobs SET state = 'Running', started = ?, assigned_gpus = ? WHERE id = ?",
                    (time.time(), json.dumps(start), job_id),
                )
            db.execute("COMMIT")
            return start
        except BaseException:
            db.execute("ROLLBACK")
            raise

    # ---------------------------------------------------------------- reads

    def row(self, job_id: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()

    def by_name(self, user: str, name: str) -> sqlite3.Row:
        row = self.db.execute("SELECT * FROM jobs WHERE user = ? AND name = ?", (user, name)).fetchone()
        if row is None:
            raise NotFound(f"job {name!r} not found (see: dlw jobs)")
        return row

    def name_taken(self, user: str, name: str) -> bool:
        return self.db.execute("SELECT 1 FROM jobs WHERE user = ? AND name = ?", (user, name)).fetchone() is not None

    def active(self) -> list[sqlite3.Row]:
        return self.db.execute(
            "SELECT id, state, supervisor_pid, supervisor_start, pgid, created FROM jobs "
            "WHERE state IN (?, ?)", ACTIVE,
        ).fetchall()

    def list_user(self, user: str) -> Iterable[sqlite3.Row]:
        return self.db.execute(
            f"SELECT {_LIST_COLUMNS} FROM jobs WHERE user = ? ORDER BY created DESC", (user,)
        )


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
    )
