"""The scheduler's store in SQLite: one sidecar alone, at ``<data_dir>/scheduler.db``.

One table, ``jobs`` (kind, app id, name) with the tick state of components/scheduler/base.py and an
index on ``ready``. Every check-then-write is one statement (``UPDATE ... WHERE ready <= ?``,
``... AND token = ?``), atomic in SQLite, run on the one worker thread
(components/sqlite_connection.py), so several processes sharing the file still claim a tick once.
The clock is the local one.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from components.scheduler.base import Claim, Page, Slot, StoredJob
from components.sqlite_connection import SQLiteDatabase

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    kind TEXT NOT NULL, app_id TEXT NOT NULL, name TEXT NOT NULL,
    spec BLOB NOT NULL, due REAL NOT NULL, ready REAL NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1, ticks INTEGER NOT NULL DEFAULT 0, token TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, app_id, name)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS jobs_ready ON jobs (kind, app_id, ready);
"""
_COLUMNS = "kind, app_id, name, spec, due, ready, attempt, ticks, token"
_KEY = "kind = ? AND app_id = ? AND name = ?"


def _prepare(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA case_sensitive_like = ON")  # delete_prefix's LIKE matches bytes exactly
    conn.executescript(_SCHEMA)


def _row(found: tuple[Any, ...]) -> StoredJob:
    kind, app_id, name, spec, due, ready, attempt, ticks, token = found
    return StoredJob(
        kind, app_id, name, bytes(spec), float(due), float(ready), int(attempt), int(ticks), token
    )


def _escape_like(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class SQLiteSchedulerStore:
    def __init__(self, path: str, busy_timeout: float = 5.0) -> None:
        self._path = path
        self._busy_timeout = busy_timeout
        self._db = SQLiteDatabase("l8-scheduler-sqlite")

    @property
    def addresses(self) -> list[str]:
        return [f"sqlite:{self._path}"]

    async def open(self) -> None:
        await self._db.open(self._path, self._busy_timeout, _prepare)

    async def now(self) -> float:
        return time.time()

    async def put(self, job: StoredJob, *, overwrite: bool) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            verb = "INSERT OR REPLACE" if overwrite else "INSERT OR IGNORE"
            cursor = conn.execute(
                f"{verb} INTO jobs ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '')",
                (job.kind, job.app_id, job.name, job.spec, job.due, job.ready, job.attempt, job.ticks),
            )
            return cursor.rowcount > 0

        return await self._db.call(write)

    async def get(self, kind: str, app_id: str, name: str) -> StoredJob | None:
        def read(conn: sqlite3.Connection) -> StoredJob | None:
            found = conn.execute(f"SELECT {_COLUMNS} FROM jobs WHERE {_KEY}", (kind, app_id, name)).fetchone()
            return None if found is None else _row(found)

        return await self._db.call(read)

    async def delete(self, kind: str, app_id: str, name: str) -> bool:
        def remove(conn: sqlite3.Connection) -> bool:
            return conn.execute(f"DELETE FROM jobs WHERE {_KEY}", (kind, app_id, name)).rowcount > 0

        return await self._db.call(remove)

    async def delete_prefix(self, kind: str, app_id: str, prefix: str) -> int:
        def remove(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(
                "DELETE FROM jobs WHERE kind = ? AND app_id = ? AND name LIKE ? ESCAPE '\\'",
                (kind, app_id, _escape_like(prefix) + "%"),
            )
            return cursor.rowcount

        return await self._db.call(remove)

    async def list_jobs(self, kind: str, app_id: str, prefix: str, cursor: str | None, limit: int) -> Page:
        """Pages by name on the primary key: the cursor is the last name given."""

        def read(conn: sqlite3.Connection) -> Page:
            after = "" if cursor is None else " AND name > ?"
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE kind = ? AND app_id = ? AND name LIKE ? ESCAPE '\\'"
                f"{after} ORDER BY name LIMIT ?",
                (kind, app_id, _escape_like(prefix) + "%", *(() if cursor is None else (cursor,)), limit),
            ).fetchall()
            jobs = [_row(row) for row in rows]
            return Page(jobs, jobs[-1].name if len(jobs) == limit else None)

        return await self._db.call(read)

    async def upcoming(self, kind: str, app_id: str, until: float, limit: int) -> list[Slot]:
        def read(conn: sqlite3.Connection) -> list[Slot]:
            rows = conn.execute(
                "SELECT name, ready FROM jobs WHERE kind = ? AND app_id = ? AND ready <= ? "
                "ORDER BY ready LIMIT ?",
                (kind, app_id, until, limit),
            ).fetchall()
            return [Slot(str(name), float(ready)) for name, ready in rows]

        return await self._db.call(read)

    async def claim(self, kind: str, app_id: str, name: str, token: str, lease: float) -> Claim | None:
        def take(conn: sqlite3.Connection) -> Claim | None:
            now = time.time()
            found = conn.execute(
                f"UPDATE jobs SET ready = ?, token = ? WHERE {_KEY} AND ready <= ? RETURNING {_COLUMNS}",
                (now + lease, token, kind, app_id, name, now),
            ).fetchone()
            return None if found is None else Claim(_row(found), now)

        return await self._db.call(take)

    async def claim_many(
        self, kind: str, app_id: str, names: list[str], token: str, lease: float
    ) -> list[Claim]:
        def take(conn: sqlite3.Connection) -> list[Claim]:
            now = time.time()
            marks = ", ".join("?" * len(names))
            found = conn.execute(
                f"UPDATE jobs SET ready = ?, token = ? WHERE kind = ? AND app_id = ? AND name IN ({marks}) "
                f"AND ready <= ? RETURNING {_COLUMNS}",
                (now + lease, token, kind, app_id, *names, now),
            ).fetchall()
            return [Claim(_row(row), now) for row in found]

        return await self._db.call(take) if names else []

    async def extend(self, claim: Claim, lease: float) -> bool:
        job = claim.job

        def hold(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"UPDATE jobs SET ready = ? WHERE {_KEY} AND token = ?",
                (time.time() + lease, job.kind, job.app_id, job.name, job.token),
            )
            return cursor.rowcount > 0

        return await self._db.call(hold)

    async def complete(self, claim: Claim, next_due: float | None) -> bool:
        job = claim.job

        def finish(conn: sqlite3.Connection) -> bool:
            key = (job.kind, job.app_id, job.name, job.token)
            if next_due is None:
                return conn.execute(f"DELETE FROM jobs WHERE {_KEY} AND token = ?", key).rowcount > 0
            cursor = conn.execute(
                f"UPDATE jobs SET due = ?, ready = ?, attempt = 1, ticks = ticks + 1, token = '' "
                f"WHERE {_KEY} AND token = ?",
                (next_due, next_due, *key),
            )
            return cursor.rowcount > 0

        return await self._db.call(finish)

    async def release(self, claim: Claim, retry_at: float) -> bool:
        job = claim.job

        def retry(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"UPDATE jobs SET ready = ?, attempt = attempt + 1, token = '' WHERE {_KEY} AND token = ?",
                (retry_at, job.kind, job.app_id, job.name, job.token),
            )
            return cursor.rowcount > 0

        return await self._db.call(retry)

    async def ping(self) -> None:
        await self._db.ping()

    async def close(self) -> None:
        await self._db.close()
