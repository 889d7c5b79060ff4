"""bindings.postgresql (also ``bindings.postgres``): an output binding running SQL on PostgreSQL,
with Dapr's metadata, operations and answers, through asyncpg.

Metadata: ``connectionString`` (required): a ``postgres://`` URL or libpq's ``key=value`` form
(``host=localhost port=5432 user=postgres password=... dbname=app sslmode=disable``, ``database``
accepted for ``dbname``); ``timeout`` (Go duration, default ``20s``): how long connecting may take;
``maxConns`` (default 10): the pool's size.

Operations (request metadata ``sql``, required, and ``params``, an optional JSON array bound to
``$1``, ``$2``...):

``exec``
    Runs the statement; answer metadata ``rows-affected`` (from the command tag).
``query``
    Answers the rows as a JSON array of arrays, one value per column in order (as pgx's
    ``rows.Values()`` written by ``json.Marshal``: times as RFC 3339 text, ``bytea`` as base64,
    numerics as numbers, UUIDs as text).
``close``
    Closes the pool; every later operation fails with ``component is closed``.

``exec`` and ``query`` answer metadata ``operation``, ``sql``, ``start-time``, ``end-time`` (RFC 3339
with nanoseconds) and ``duration`` (a Go duration), as Dapr does.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import decimal
import re
import shlex
import uuid
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import Field

from components.bindings.base import BindingError, Feature, InvokeRequest, InvokeResponse
from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, Duration, decode

EXEC = "exec"
QUERY = "query"
CLOSE = "close"
_OPERATIONS = (EXEC, QUERY, CLOSE)
_FEATURES = frozenset({Feature.OUTPUT_BINDING})
_LIBPQ_KEYS = {
    "host": "host",
    "hostaddr": "host",
    "port": "port",
    "user": "user",
    "password": "password",
    "dbname": "database",
    "database": "database",
    "sslmode": "ssl",
    "connect_timeout": None,
    "application_name": None,
}
_ROWS = re.compile(r"(\d+)$")


class PostgresBindingMetadata(ComponentMetadata):
    connectionString: str
    timeout: Duration = timedelta(seconds=20)
    maxConns: int = Field(default=10, ge=1)


def connect_options(connection_string: str) -> tuple[str | None, dict[str, Any]]:
    """asyncpg's (dsn, keyword options) from a URL or libpq's ``key=value`` connection string."""
    text = connection_string.strip()
    if text.startswith(("postgres://", "postgresql://")):
        return text, {}
    options: dict[str, Any] = {}
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise ValueError(f"cannot parse the connection string: {exc}") from None
    for word in words:
        key, equals, value = word.partition("=")
        if not equals:
            raise ValueError(f"cannot parse the connection string: {word!r} is not key=value")
        if key not in _LIBPQ_KEYS:
            continue
        name = _LIBPQ_KEYS[key]
        if name == "port":
            options["port"] = int(value)
        elif name == "ssl":
            options["ssl"] = value if value != "disable" else False
        elif name is not None:
            options[name] = value
    return None, options


def go_time(moment: dt.datetime | dt.date) -> str:
    """Go's time.Time in JSON (RFC 3339 with the fraction's trailing zeros cut, ``Z`` for UTC), as
    pgx hands a timestamp, timestamptz or date to json.Marshal (naive ones and dates read as UTC)."""
    if not isinstance(moment, dt.datetime):
        moment = dt.datetime(moment.year, moment.month, moment.day)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if moment.microsecond:
        text += f".{moment.microsecond:06d}".rstrip("0")
    offset = moment.utcoffset() or dt.timedelta(0)
    if not offset:
        return text + "Z"
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    return f"{text}{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


def _json_value(value: Any) -> Any:
    """A column value as pgx's Values() hands it to json.Marshal."""
    if isinstance(value, dt.datetime | dt.date):
        return go_time(value)
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return orjson.Fragment(str(value)) if value.is_finite() else str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _json_value(item) for key, item in value.items()}
    return value


def _rfc3339(moment: dt.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _go_duration(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:g}µs"
    if seconds < 1:
        return f"{seconds * 1e3:g}ms"
    return f"{seconds:g}s"


def _params(metadata: Mapping[str, str]) -> list[Any]:
    text = metadata.get("params", "")
    if not text:
        return []
    try:
        values = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BindingError(
            f"invalid metadata property params: failed to unserialize into an array: {exc}"
        ) from None
    if not isinstance(values, list):
        raise BindingError("invalid metadata property params: failed to unserialize into an array")
    return values


class PostgresBinding:
    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._closed = False

    async def init(self, metadata: Mapping[str, str]) -> None:
        settings = decode(PostgresBindingMetadata, metadata)
        try:
            dsn, options = connect_options(settings.connectionString)
        except ValueError as exc:
            raise ComponentInitError(str(exc), field="connectionString") from None
        timeout = settings.timeout.total_seconds()
        try:
            self._pool = await asyncio.wait_for(
                asyncpg.create_pool(dsn, min_size=1, max_size=settings.maxConns, timeout=timeout, **options),
                timeout,
            )
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ComponentInitError(
                f"unable to connect to the DB: {exc or type(exc).__name__}", field="connectionString"
            ) from None

    def features(self) -> frozenset[Feature]:
        return _FEATURES

    def operations(self) -> Sequence[str]:
        return _OPERATIONS

    async def invoke(self, request: InvokeRequest) -> InvokeResponse | None:
        if request.operation == CLOSE:
            await self.close()
            return None
        pool = self._pool
        if self._closed or pool is None:
            raise BindingError("component is closed")
        sql = request.metadata.get("sql", "")
        if not sql:
            raise BindingError("required metadata not set: sql")
        args = _params(request.metadata)
        started = dt.datetime.now(dt.UTC)
        metadata = {"operation": request.operation, "sql": sql, "start-time": _rfc3339(started)}
        data = b""
        try:
            if request.operation == EXEC:
                status = await pool.execute(sql, *args)
                found = _ROWS.search(status or "")
                metadata["rows-affected"] = found.group(1) if found else "0"
            elif request.operation == QUERY:
                records = await pool.fetch(sql, *args)
                data = orjson.dumps([[_json_value(value) for value in record.values()] for record in records])
            else:
                raise BindingError(
                    f"invalid operation type: {request.operation}. Expected {EXEC}, {QUERY}, or {CLOSE}"
                )
        except (asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.DataError) as exc:
            raise BindingError(f"error executing query: {exc}") from None
        except (OSError, TypeError, ValueError) as exc:
            if isinstance(exc, OSError):
                raise BackendError(f"postgres: {exc}") from None
            raise BindingError(f"error executing query: {exc}") from None
        ended = dt.datetime.now(dt.UTC)
        metadata["end-time"] = _rfc3339(ended)
        metadata["duration"] = _go_duration((ended - started).total_seconds())
        return InvokeResponse(data, metadata)

    async def ping(self) -> None:
        """Health: ``SELECT 1`` on a pooled connection (components/health.py)."""
        pool = self._pool
        if pool is None:
            raise BackendError("postgresql: not connected")
        try:
            await pool.fetchval("SELECT 1")
        except (asyncpg.PostgresError, OSError) as exc:
            raise BackendError(f"postgresql: {exc}") from exc

    async def close(self) -> None:
        self._closed = True
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
