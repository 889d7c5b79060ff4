"""What every SQLite-backed component shares: the metadata checks, one connection used by one worker
thread (so no call blocks the event loop and statements never interleave), IMMEDIATE transactions,
and the translation of sqlite3 errors into BackendError at the component boundary."""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import field_validator

from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata

P = ParamSpec("P")
T = TypeVar("T")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


def connection_string(value: str) -> str:
    """A pydantic check of ``connectionString``: a file path, a ``file:`` URI or ``:memory:``."""
    if not value.strip():
        raise ValueError("must be a file path, a file: URI or :memory:")
    return value.strip()


def table_name(value: str) -> str:
    """A pydantic check of ``tableName``: spliced into SQL text (identifiers cannot be
    parameters), so only plain identifiers."""
    if not _IDENTIFIER.fullmatch(value) or value.lower().startswith("sqlite_"):
        raise ValueError(f"{value!r} is not a plain SQL identifier, or starts with sqlite_")
    return value


class SQLiteConnectionMetadata(ComponentMetadata):
    """The fields every SQLite component names its database and table with (Dapr's names); each
    gives ``tableName`` its own default by declaring it again."""

    connectionString: str
    """A file path or a ``file:`` URI (``:memory:`` works but is neither durable nor shared)."""
    tableName: str

    @field_validator("connectionString")
    @classmethod
    def _connection_string(cls, value: str) -> str:
        return connection_string(value)

    @field_validator("tableName")
    @classmethod
    def _table_name(cls, value: str) -> str:
        return table_name(value)


@contextlib.contextmanager
def backend_errors() -> Iterator[None]:
    """The component boundary: sqlite3 exceptions never reach callers."""
    try:
        yield
    except sqlite3.Error as exc:
        raise BackendError(f"sqlite: {exc}") from exc


@contextlib.contextmanager
def immediate_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE takes the write lock up front, so a check and the write after it see the
    same data even when another process shares the file."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):  # keep the error that caused the rollback
                conn.execute("ROLLBACK")
        raise


def _make_parent_dir(target: str) -> None:
    if target.startswith("file:"):
        parts = urlsplit(target)
        if "memory" in parse_qs(parts.query).get("mode", []):
            return
        path = unquote(parts.path)
    else:
        path = target
    if path and path != ":memory:":
        Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)


def _prepare_when_free(
    conn: sqlite3.Connection, prepare: Callable[[sqlite3.Connection], None], busy_timeout: float
) -> None:
    """``prepare(conn)`` (idempotent: pragmas, CREATE ... IF NOT EXISTS), tried again while the
    database is locked, up to ``busy_timeout``. Switching to WAL while other processes open the same
    new file can answer SQLITE_BUSY at once, without the busy handler (several sidecars sharing
    one database start together)."""
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            prepare(conn)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class SQLiteDatabase:
    """One connection, used only by one worker thread: every call is a job queued on it."""

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def open(
        self, target: str, busy_timeout: float, prepare: Callable[[sqlite3.Connection], None]
    ) -> None:
        """Connect (creating the file's folder) and run ``prepare`` (pragmas, tables) on the worker;
        ComponentInitError naming ``connectionString`` when the database cannot be used."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=self._thread_name)

        def connect() -> sqlite3.Connection:
            _make_parent_dir(target)
            conn = sqlite3.connect(
                target,
                timeout=busy_timeout,  # sqlite3 sets busy_timeout from it
                isolation_level=None,  # explicit BEGIN/COMMIT only
                check_same_thread=False,  # serialised by the one worker thread, not by this check
                uri=target.startswith("file:"),
            )
            try:
                _prepare_when_free(conn, prepare, busy_timeout)
            except BaseException:
                conn.close()
                raise
            return conn

        try:
            self._conn = await asyncio.get_running_loop().run_in_executor(executor, connect)
        except BaseException as exc:
            executor.shutdown(wait=False)
            # ValueError: a path sqlite3 refuses outright (an embedded NUL character).
            if isinstance(exc, sqlite3.Error | OSError | ValueError):
                raise ComponentInitError(
                    f"cannot open SQLite database {target!r}: {exc}", field="connectionString"
                ) from exc
            raise
        self._executor = executor

    async def call(
        self, job: Callable[Concatenate[sqlite3.Connection, P], T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run ``job(connection, ...)`` on the worker thread, as one unit."""
        executor, conn = self._executor, self._conn
        if executor is None or conn is None:
            raise BackendError("the SQLite database is not open")
        with backend_errors():
            return await asyncio.get_running_loop().run_in_executor(
                executor, lambda: job(conn, *args, **kwargs)
            )

    async def ping(self) -> None:
        """A component's health check: ``SELECT 1`` on the worker (so it also finds a stuck one)."""
        await self.call(lambda conn: conn.execute("SELECT 1").fetchone())

    async def close(self) -> None:
        executor, conn = self._executor, self._conn
        self._executor, self._conn = None, None
        if executor is None:
            return
        try:
            if conn is not None:
                # Queued behind any job still running, so no statement is cut off mid-way.
                with backend_errors():
                    await asyncio.get_running_loop().run_in_executor(executor, conn.close)
        finally:
            executor.shutdown(wait=False)
