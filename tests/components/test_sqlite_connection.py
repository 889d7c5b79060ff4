"""Opening a SQLite database that other processes are preparing at the same moment."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from components.errors import ComponentInitError
from components.sqlite_connection import SQLiteDatabase


async def test_a_preparation_refused_as_locked_is_tried_again(tmp_path: Path) -> None:
    # What several sidecars sharing one new file meet: switching it to WAL answers "database is
    # locked" at once, without waiting in the busy handler.
    refusals = 2
    tries = 0

    def prepare(conn: sqlite3.Connection) -> None:
        nonlocal tries
        tries += 1
        if tries <= refusals:
            raise sqlite3.OperationalError("database is locked")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS t (k TEXT PRIMARY KEY)")

    database = SQLiteDatabase("test-sqlite")
    await database.open(str(tmp_path / "shared.db"), 2.0, prepare)
    try:
        assert tries == refusals + 1
        assert await database.call(lambda conn: conn.execute("SELECT count(*) FROM t").fetchone()[0]) == 0
    finally:
        await database.close()


async def test_a_database_locked_past_the_busy_timeout_fails_naming_the_field(tmp_path: Path) -> None:
    def prepare(conn: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database is locked")

    with pytest.raises(ComponentInitError, match="database is locked") as caught:
        await SQLiteDatabase("test-sqlite").open(str(tmp_path / "shared.db"), 0.1, prepare)
    assert caught.value.field == "connectionString"


async def test_other_errors_are_not_tried_again(tmp_path: Path) -> None:
    tries = 0

    def prepare(conn: sqlite3.Connection) -> None:
        nonlocal tries
        tries += 1
        raise sqlite3.OperationalError("no such function: nope")

    with pytest.raises(ComponentInitError, match="no such function"):
        await SQLiteDatabase("test-sqlite").open(str(tmp_path / "shared.db"), 2.0, prepare)
    assert tries == 1
