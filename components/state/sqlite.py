"""state.sqlite: a durable state store in one SQLite file, embedded in the sidecar.

Every sqlite3 call runs on one dedicated worker thread that owns the connection, and each public
operation is a single job on that thread (check ETags, write, commit), so the event loop never
blocks and a batch is atomic without any lock in Python. Queries are translated into SQL over
``json_extract`` and follow the in-Python evaluator of components/state/query.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import sqlite3
import time
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, ParamSpec, TypeVar

import structlog

from components.errors import BackendError, ETagMismatchError, QueryError
from components.metadata import Duration, GoBool, decode
from components.sqlite_connection import (
    SQLiteConnectionMetadata,
    SQLiteDatabase,
    immediate_transaction,
)
from components.state.base import (
    Concurrency,
    DeleteRequest,
    Feature,
    GetRequest,
    QueryItem,
    QueryRequest,
    QueryResponse,
    SetRequest,
    StateItem,
    TransactionOperation,
)
from components.state.query import Comparison, Filter, In, Logical, Sort
from components.state.ttl import as_datetime, expiry_deadline

log = structlog.get_logger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# Well under SQLite's bound-parameter limit, whatever the build.
_BULK_GET_CHUNK = 500
_LIVE = "(expires_at IS NULL OR expires_at > :now)"


class SQLiteMetadata(SQLiteConnectionMetadata):
    tableName: str = "state"
    busyTimeout: Duration = timedelta(seconds=2)
    cleanupInterval: Duration = timedelta(hours=1)
    """How often expired rows are deleted; 0 disables the sweep (expired rows stay invisible)."""
    disableWAL: GoBool = False


class SQLiteStateStore:
    def __init__(self) -> None:
        self._db = SQLiteDatabase("l8-state-sqlite")
        self._sweeper: asyncio.Task[None] | None = None
        self._table = '"state"'

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(SQLiteMetadata, metadata)
        self._table = f'"{settings.tableName}"'

        def prepare(conn: sqlite3.Connection) -> None:
            if not settings.disableWAL:
                conn.execute("PRAGMA journal_mode=WAL")
                # With WAL, NORMAL loses at most the last commits on power loss, never integrity.
                conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} (key TEXT PRIMARY KEY, value BLOB NOT NULL, "
                "etag TEXT NOT NULL, expires_at REAL NULL, updated_at REAL)"
            )
            conn.execute(
                f'CREATE INDEX IF NOT EXISTS "{settings.tableName}_expires_at" ON {self._table} '
                "(expires_at) WHERE expires_at IS NOT NULL"
            )

        await self._db.open(settings.connectionString, settings.busyTimeout.total_seconds(), prepare)
        interval = settings.cleanupInterval.total_seconds()
        if interval > 0:
            self._sweeper = asyncio.create_task(self._sweep(interval))

    def features(self) -> frozenset[Feature]:
        return frozenset({Feature.ETAG, Feature.TRANSACTIONAL, Feature.QUERY_API, Feature.TTL})

    # -- reads ---------------------------------------------------------------------------------------

    async def get(self, request: GetRequest) -> StateItem | None:
        return (await self._db.call(self._read, [request.key]))[0]

    async def bulk_get(self, requests: Sequence[GetRequest]) -> list[StateItem | None]:
        if not requests:
            return []
        return await self._db.call(self._read, [request.key for request in requests])

    def _read(self, conn: sqlite3.Connection, keys: list[str]) -> list[StateItem | None]:
        now = time.time()
        found: dict[str, StateItem] = {}
        for start in range(0, len(keys), _BULK_GET_CHUNK):
            chunk = keys[start : start + _BULK_GET_CHUNK]
            params: dict[str, Any] = {f"k{i}": key for i, key in enumerate(chunk)}
            params["now"] = now
            marks = ", ".join(f":k{i}" for i in range(len(chunk)))
            rows = conn.execute(
                f"SELECT key, value, etag, expires_at FROM {self._table} WHERE key IN ({marks}) AND {_LIVE}",
                params,
            )
            for key, value, etag, expires_at in rows:
                found[key] = StateItem(bytes(value), etag, as_datetime(expires_at))
        return [found.get(key) for key in keys]

    # -- writes --------------------------------------------------------------------------------------

    async def set(self, request: SetRequest) -> None:
        await self._db.call(self._apply_all, [request], atomic=True)

    async def bulk_set(self, requests: Sequence[SetRequest]) -> None:
        if requests:
            await self._db.call(self._apply_all, list(requests), atomic=False)

    async def delete(self, request: DeleteRequest) -> None:
        await self._db.call(self._apply_all, [request], atomic=True)

    async def transact(self, operations: Sequence[TransactionOperation], metadata: Mapping[str, str]) -> None:
        if operations:
            await self._db.call(self._apply_all, list(operations), atomic=True)

    def _apply_all(
        self, conn: sqlite3.Connection, operations: list[TransactionOperation], *, atomic: bool
    ) -> None:
        """Apply ``operations`` in order in one transaction.

        Each operation's checks see the writes of the ones before it. On an ETag failure an atomic
        batch is rolled back; a non-atomic one (bulk_set) keeps what came before, then raises.
        """
        now = time.time()
        failure: ETagMismatchError | None = None
        with immediate_transaction(conn):
            for op in operations:
                try:
                    self._apply(conn, op, now)
                except ETagMismatchError as exc:
                    if atomic:
                        raise
                    failure = exc
                    break
        if failure is not None:
            raise failure

    def _apply(self, conn: sqlite3.Connection, op: TransactionOperation, now: float) -> None:
        first_write = isinstance(op, SetRequest) and op.concurrency is Concurrency.FIRST_WRITE
        if op.etag is not None or first_write:
            row = conn.execute(
                f"SELECT etag FROM {self._table} WHERE key = :key AND {_LIVE}", {"key": op.key, "now": now}
            ).fetchone()
            if op.etag is not None:
                if row is None or row[0] != op.etag:
                    raise ETagMismatchError(f"etag mismatch for key {op.key}")
            elif row is not None:
                raise ETagMismatchError(f"key {op.key} already exists (first-write)")
        if isinstance(op, SetRequest):
            conn.execute(
                f"INSERT INTO {self._table} (key, value, etag, expires_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value, "
                "etag = excluded.etag, expires_at = excluded.expires_at, updated_at = excluded.updated_at",
                (op.key, op.value, uuid.uuid4().hex, expiry_deadline(op.ttl, now), now),
            )
        else:
            conn.execute(f"DELETE FROM {self._table} WHERE key = ?", (op.key,))

    # -- query ---------------------------------------------------------------------------------------

    async def query(self, request: QueryRequest) -> QueryResponse:
        query = request.query
        sql = _QuerySQL()
        prefix = sql.bind(_glob_prefix(request.key_prefix))
        condition = "1" if query.filter is None else sql.filter(query.filter)
        order = [*(sql.sort(entry) for entry in query.sort), "key"]
        # One row past the page says whether a next page exists.
        limit = sql.bind(query.limit + 1 if query.limit else -1)
        offset = sql.bind(query.offset)
        statement = (
            "SELECT key, value, etag FROM (SELECT key, value, etag, CAST(value AS TEXT) AS doc "
            f"FROM {self._table} WHERE key GLOB {prefix} AND {_LIVE}) "
            # CASE guarantees json_valid runs first: JSON functions raise on malformed text.
            f"WHERE CASE WHEN json_valid(doc) THEN {condition} ELSE 0 END "
            f"ORDER BY {', '.join(order)} LIMIT {limit} OFFSET {offset}"
        )
        rows = await self._db.call(self._select, statement, sql.params)
        token = None
        if query.limit and len(rows) > query.limit:
            rows = rows[: query.limit]
            token = str(query.offset + query.limit)
        return QueryResponse([QueryItem(key, bytes(value), etag) for key, value, etag in rows], token)

    @staticmethod
    def _select(conn: sqlite3.Connection, statement: str, params: dict[str, Any]) -> list[Any]:
        return conn.execute(statement, {**params, "now": time.time()}).fetchall()

    # -- expiry and life cycle -----------------------------------------------------------------------

    def _purge_expired(self, conn: sqlite3.Connection) -> int:
        cursor = conn.execute(
            f"DELETE FROM {self._table} WHERE expires_at IS NOT NULL AND expires_at <= ?", (time.time(),)
        )
        return cursor.rowcount

    async def _sweep(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self._db.call(self._purge_expired)
            except BackendError as exc:
                # Expired rows stay invisible to reads; the next sweep tries again.
                log.warning("state.sqlite.cleanup_failed", error=str(exc))

    async def ping(self) -> None:
        """Health: ``SELECT 1`` on the database's worker (components/health.py)."""
        await self._db.ping()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._db.close()


def _glob_prefix(prefix: str) -> str:
    """A GLOB pattern for keys starting with ``prefix``: unlike LIKE it is case-sensitive, as
    ``str.startswith`` is, and SQLite still answers it from the primary key index."""
    return re.sub(r"([*?\[])", r"[\1]", prefix) + "*"


_SQL_OPERATORS = {"EQ": "=", "GT": ">", "GTE": ">=", "LT": "<", "LTE": "<="}
# query.py's kind ranks: absent 0, null 1, boolean 2, number 3, string 4, object or array 5.
_KIND_RANK = (
    "CASE json_type(doc, {path}) WHEN 'null' THEN 1 WHEN 'true' THEN 2 WHEN 'false' THEN 2 "
    "WHEN 'integer' THEN 3 WHEN 'real' THEN 3 WHEN 'text' THEN 4 WHEN 'array' THEN 5 "
    "WHEN 'object' THEN 5 ELSE 0 END"
)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class _QuerySQL:
    """Compiles a parsed query into SQL over the ``doc`` column; user values are only ever bound."""

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f":{name}"

    def path(self, path: tuple[str, ...]) -> str:
        # SQLite's JSON path syntax has no escapes in quoted labels, and it matches labels against
        # the raw (still escaped) JSON text, so such segments could never match correctly.
        for part in path:
            if '"' in part or "\\" in part:
                raise QueryError(f"key path segment {part!r} has a quote or backslash (unsupported)")
        return self.bind("$" + "".join(f'."{part}"' for part in path))

    def filter(self, node: Filter) -> str:
        if isinstance(node, Logical):
            joiner = " AND " if node.op == "AND" else " OR "
            return "(" + joiner.join(self.filter(child) for child in node.children) + ")"
        if isinstance(node, In):
            equals = (self.comparison(Comparison("EQ", node.path, v)) for v in node.values)
            return "(" + " OR ".join(equals) + ")"
        if node.op == "NEQ":
            return "NOT " + self.comparison(Comparison("EQ", node.path, node.value))
        return self.comparison(node)

    def comparison(self, node: Comparison) -> str:
        """EQ/GT/GTE/LT/LTE as SQL that is never NULL, so NOT and OR behave as in Python."""
        value = node.value
        if value is None or isinstance(value, bool):
            if node.op != "EQ":
                return "0"  # nulls and booleans have no order in query.py
            kind = "null" if value is None else str(value).lower()
            return f"(json_type(doc, {self.path(node.path)}) IS '{kind}')"
        if isinstance(value, int | float):
            kinds = "'integer', 'real'"
            if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
                value = float(value)  # SQLite reads such JSON numbers as REAL too
        elif isinstance(value, str):
            kinds = "'text'"
        else:
            raise QueryError(f"cannot compare with {value!r}: use a string, number, boolean or null")
        path = self.path(node.path)
        return (
            f"IFNULL(IFNULL(json_type(doc, {path}), '') IN ({kinds}) "
            f"AND json_extract(doc, {path}) {_SQL_OPERATORS[node.op]} {self.bind(value)}, 0)"
        )

    def sort(self, entry: Sort) -> str:
        path = self.path(entry.path)
        direction = " DESC" if entry.descending else ""
        return f"{_KIND_RANK.format(path=path)}{direction}, json_extract(doc, {path}){direction}"
