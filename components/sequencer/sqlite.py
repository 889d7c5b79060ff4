"""sequencer.sqlite: counters in one SQLite file, the embedded default of l8.

Storage: one table (``tableName``, default ``sequencer``) of ``(key TEXT PRIMARY KEY, last_id
INTEGER NOT NULL)``; ``last_id`` is the last id handed out for the key (a missing row means 0).

Correctness across processes: every allocation is one ``BEGIN IMMEDIATE`` transaction around one
upsert (``last_id = last_id + count ... RETURNING last_id``). IMMEDIATE takes the database's write
lock before reading, so two processes (or two components) sharing the file are serialised by
SQLite itself and can never read the same ``last_id``; a writer that finds the lock taken waits up
to ``busyTimeout``, then fails with BackendError.

Durability: the block is returned only after COMMIT returned. The file is in WAL mode with
``synchronous=FULL``, so COMMIT fsyncs the WAL: a committed block survives ``kill -9`` of the
process (that alone would hold with NORMAL too, since the WAL write is in the OS's hands once
COMMIT returns) and also an OS crash or power loss, which NORMAL could roll back to an earlier
commit and so hand out ids twice. The price is one fsync per allocation, which WEAK ids amortise
over a block.

Every sqlite3 call runs on one dedicated worker thread that owns the connection, so the event loop
never blocks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from datetime import timedelta
from typing import ParamSpec, TypeVar

from pydantic import field_validator

from components.errors import BackendError
from components.metadata import Duration, decode
from components.sequencer.base import Feature
from components.sqlite_connection import SQLiteConnectionMetadata, SQLiteDatabase, immediate_transaction

P = ParamSpec("P")
T = TypeVar("T")

MAX_ID = 2**63 - 1
"""SQLite's INTEGER (and Layotto's id) is 64-bit; past it SQLite would silently switch to REAL."""


class SQLiteSequencerMetadata(SQLiteConnectionMetadata):
    tableName: str = "sequencer"
    busyTimeout: Duration = timedelta(seconds=5)
    """How long an allocation waits for another writer of the file before failing."""

    @field_validator("busyTimeout")
    @classmethod
    def _not_negative(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("must not be negative")
        return value


class SQLiteSequencer:
    def __init__(self) -> None:
        self._db = SQLiteDatabase("l8-sequencer-sqlite")
        self._table = '"sequencer"'

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(SQLiteSequencerMetadata, metadata)
        self._table = f'"{settings.tableName}"'

        def prepare(conn: sqlite3.Connection) -> None:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")  # see the module docstring: no id twice after a crash
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (key TEXT PRIMARY KEY, last_id INTEGER NOT NULL)"
            )

        await self._db.open(settings.connectionString, settings.busyTimeout.total_seconds(), prepare)

    def features(self) -> frozenset[Feature]:
        return frozenset()

    async def allocate(self, key: str, count: int) -> int:
        if count < 1:
            raise ValueError(f"a block holds at least one id, not {count}")
        last = await self._db.call(self._allocate, key, count)
        if last is None:
            raise BackendError(f"sequence {key!r} is exhausted: ids are 64-bit integers")
        return last

    def _allocate(self, conn: sqlite3.Connection, key: str, count: int) -> int | None:
        """The new ``last_id``, committed; None (nothing written) when it would pass MAX_ID."""
        with immediate_transaction(conn):
            # In DO UPDATE a bare ``last_id`` is the stored row's; the WHERE keeps the sum in int64.
            row = conn.execute(
                f"INSERT INTO {self._table} (key, last_id) VALUES (:key, :count) "
                "ON CONFLICT (key) DO UPDATE SET last_id = last_id + excluded.last_id "
                "WHERE last_id <= :max - excluded.last_id RETURNING last_id",
                {"key": key, "count": count, "max": MAX_ID},
            ).fetchone()
        return None if row is None else int(row[0])

    async def ensure_above(self, key: str, floor: int) -> None:
        if floor > MAX_ID:
            raise ValueError(f"{floor} is above the largest id, {MAX_ID}")
        if floor > 0:  # every id is already above 0 or less
            await self._db.call(self._raise_floor, key, floor)

    def _raise_floor(self, conn: sqlite3.Connection, key: str, floor: int) -> None:
        with immediate_transaction(conn):
            conn.execute(
                f"INSERT INTO {self._table} (key, last_id) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET last_id = excluded.last_id WHERE last_id < excluded.last_id",
                (key, floor),
            )

    async def ping(self) -> None:
        """Health: ``SELECT 1`` on the database's worker (components/health.py)."""
        await self._db.ping()

    async def close(self) -> None:
        await self._db.close()
