"""Definitions, their runs and the scheduler's lease in SQLite (``schedules.db`` in the DLW home).

State lives here, not in a process: a scheduler that restarts (the Jupyter server, the machine) reads
where it was. Two schedulers never start the same fire: a run row is unique per (definition, fire time)
and a fire is claimed by moving the definition's ``last_fire`` forward in the same transaction
(compare-and-set), so whichever commits second sees it taken. The lease says which scheduler process
is the active one (the others wait as stand-bys); it is a courtesy, the claim is the guarantee.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..errors import Conflict, DLWError, NotFound
from .model import Definition

SCHEMA = """
CREATE TABLE IF NOT EXISTS definitions (
    user TEXT NOT NULL,
    name TEXT NOT NULL,
    data TEXT NOT NULL,
    paused INTEGER NOT NULL DEFAULT 0,
    last_fire REAL,
    created REAL NOT NULL,
    PRIMARY KEY (user, name)
);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user TEXT NOT NULL,
    definition TEXT NOT NULL,
    scheduled REAL NOT NULL,
    job TEXT,
    state TEXT NOT NULL,
    reason TEXT,
    message TEXT,
    created REAL NOT NULL,
    UNIQUE (user, definition, scheduled)
);
CREATE TABLE IF NOT EXISTS lease (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT,
    expires REAL NOT NULL DEFAULT 0
);
INSERT OR IGNORE INTO lease (id, holder, expires) VALUES (1, NULL, 0);
"""
# Run states of our own, before (or instead of) a job: a job's own state is read from the backend.
PENDING, SKIPPED, MISSED, FAILED = "Pending", "Skipped", "Missed", "Failed"
SUBMITTED = "Submitted"


class ScheduleStore:
    def __init__(self, home: Path):
        self.path = Path(home) / "schedules.db"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise DLWError(f"{self.path.parent}: cannot create the DLW data folder ({err.strerror})") from None
        try:
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            try:
                # Every panel poll opens the store: write (and lock) only when the schema is missing.
                if not db.execute("SELECT 1 FROM sqlite_master WHERE name = 'lease'").fetchone():
                    db.execute("PRAGMA journal_mode = WAL")
                    db.executescript(SCHEMA)  # commits by itself: not inside _tx
            finally:
                db.close()
        except sqlite3.OperationalError as err:
            raise DLWError(f"{self.path}: {err}") from None

    @contextmanager
    def _tx(self, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            db.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as err:
            raise DLWError(f"{self.path}: {err}") from None
        finally:
            db.close()

    # ---------------------------------------------------------------- definitions

    @staticmethod
    def _definition(row: sqlite3.Row) -> Definition:
        data = json.loads(row["data"])
        data.update(user=row["user"], name=row["name"], paused=bool(row["paused"]), last_fire=row["last_fire"],
                    created=row["created"])
        return Definition(**data)

    def insert(self, d: Definition) -> None:
        data = {k: v for k, v in d.to_dict().items() if k not in ("user", "name", "paused", "last_fire", "created")}
        try:
            with self._tx(immediate=True) as db:
                db.execute("INSERT INTO definitions (user, name, data, paused, last_fire, created) "
                           "VALUES (?, ?, ?, ?, ?, ?)",
                           (d.user, d.name, json.dumps(data), int(d.paused), d.last_fire, d.created))
        except sqlite3.IntegrityError:
            raise Conflict(f"schedule {d.name!r} already exists (see: dlw schedule show {d.name})") from None

    def save(self, d: Definition) -> None:
        """Every field but ``last_fire`` (only ``claim`` moves it)."""
        data = {k: v for k, v in d.to_dict().items() if k not in ("user", "name", "paused", "last_fire", "created")}
        with self._tx(immediate=True) as db:
            cur = db.execute("UPDATE definitions SET data = ?, paused = ? WHERE user = ? AND name = ?",
                             (json.dumps(data), int(d.paused), d.user, d.name))
            if not cur.rowcount:
                raise NotFound(f"no schedule named {d.name!r} (list them with: dlw schedule list)")

    def get(self, user: str, name: str) -> Definition:
        with self._tx() as db:
            row = db.execute("SELECT * FROM definitions WHERE user = ? AND name = ?", (user, name)).fetchone()
        if row is None:
            raise NotFound(f"no schedule named {name!r} (list them with: dlw schedule list)")
        return self._definition(row)

    def definitions(self, user: str | None = None) -> list[Definition]:
        with self._tx() as db:
            rows = db.execute("SELECT * FROM definitions" + (" WHERE user = ?" if user is not None else "")
                              + " ORDER BY name", (user,) if user is not None else ()).fetchall()
        return [self._definition(r) for r in rows]

    def delete(self, user: str, name: str) -> None:
        with self._tx(immediate=True) as db:
            if not db.execute("DELETE FROM definitions WHERE user = ? AND name = ?", (user, name)).rowcount:
                raise NotFound(f"no schedule named {name!r} (list them with: dlw schedule list)")
            db.execute("DELETE FROM runs WHERE user = ? AND definition = ?", (user, name))

    def set_last_fire(self, user: str, name: str, when: float) -> None:
        """Resume: fires before ``when`` are not made up for."""
        with self._tx(immediate=True) as db:
            db.execute("UPDATE definitions SET last_fire = ? WHERE user = ? AND name = ?", (when, user, name))

    # ---------------------------------------------------------------- runs

    def claim(self, d: Definition, fire: float, state: str = PENDING, reason: str | None = None,
              message: str | None = None, now: float | None = None) -> int | None:
        """Take the fire at ``fire`` for this scheduler: the run's id, or None when another one took it."""
        with self._tx(immediate=True) as db:
            cur = db.execute(
                "UPDATE definitions SET last_fire = ? WHERE user = ? AND name = ? "
                "AND (last_fire IS NULL OR last_fire < ?)", (fire, d.user, d.name, fire))
            if not cur.rowcount:
                return None
            cur = db.execute(
                "INSERT OR IGNORE INTO runs (user, definition, scheduled, state, reason, message, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (d.user, d.name, fire, state, reason, message, now if now is not None else time.time()))
            return cur.lastrowid if cur.rowcount else None

    def add_run(self, d: Definition, when: float, now: float | None = None) -> int:
        """A run started by hand (``dlw schedule run``): not a fire, ``last_fire`` stays."""
        with self._tx(immediate=True) as db:
            while db.execute("SELECT 1 FROM runs WHERE user = ? AND definition = ? AND scheduled = ?",
                             (d.user, d.name, when)).fetchone():
                when += 0.001  # two clicks in the same instant: two runs
            cur = db.execute(
                "INSERT INTO runs (user, definition, scheduled, state, created) VALUES (?, ?, ?, ?, ?)",
                (d.user, d.name, when, PENDING, now if now is not None else time.time()))
            return int(cur.lastrowid or 0)

    def update_run(self, run_id: int, **fields: Any) -> None:
        keys = ", ".join(f"{k} = ?" for k in fields)
        with self._tx(immediate=True) as db:
            db.execute(f"UPDATE runs SET {keys} WHERE id = ?", (*fields.values(), run_id))

    def runs(self, user: str, name: str) -> list[dict[str, Any]]:
        """Newest first."""
        with self._tx() as db:
            rows = db.execute("SELECT * FROM runs WHERE user = ? AND definition = ? ORDER BY scheduled DESC",
                              (user, name)).fetchall()
        return [dict(r) for r in rows]

    def forget_run(self, run_id: int) -> None:
        with self._tx(immediate=True) as db:
            db.execute("DELETE FROM runs WHERE id = ?", (run_id,))

    # ---------------------------------------------------------------- lease

    def acquire(self, holder: str, now: float, ttl: float) -> bool:
        """Hold (or renew) the scheduler's lease until ``now + ttl``; False while another holder has it."""
        with self._tx(immediate=True) as db:
            cur = db.execute("UPDATE lease SET holder = ?, expires = ? WHERE id = 1 AND "
                             "(holder IS NULL OR holder = ? OR expires < ?)", (holder, now + ttl, holder, now))
            return bool(cur.rowcount)

    def release(self, holder: str) -> None:
        with self._tx(immediate=True) as db:
            db.execute("UPDATE lease SET holder = NULL, expires = 0 WHERE id = 1 AND holder = ?", (holder,))

    def lease(self) -> tuple[str | None, float]:
        with self._tx() as db:
            row = db.execute("SELECT holder, expires FROM lease WHERE id = 1").fetchone()
        return row["holder"], row["expires"]
