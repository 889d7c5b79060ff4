"""What every Redis-backed component shares: the connection fields of its metadata (Dapr's names,
components/redis_metadata.py), the client built from them (pool, timeouts, retries), the start-up
errors and the translation of redis-py's exceptions into BackendError.

Retries (``maxRetries``, Dapr's name and default 3) resend a command when it cannot have reached
Redis: a failure to connect, or to write it. A command whose reply was lost (a read timeout against
a frozen Redis, the connection dropped while waiting) may have been applied, so unless it is a read
or an XACK it is never resent by the client: an XADD or INCRBY would run twice. It fails with
:class:`~components.errors.OutcomeUnknownError` instead, and the caller's policy decides.
"""

from __future__ import annotations

from types import TracebackType
from typing import Any

from redis import exceptions as redis_errors
from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import Connection, SSLConnection
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff

from components.errors import BackendError, ComponentInitError, OutcomeUnknownError
from components.redis_metadata import RedisConnectionMetadata

__all__ = [
    "REDIS_ERRORS",
    "REDIS_MAX_CLIENTS",
    "RedisConnectionMetadata",
    "RedisErrors",
    "client_options",
    "connect",
    "init_error",
    "make_client",
]

REDIS_MAX_CLIENTS = 10_000
"""Redis's default ``maxclients``: the ceiling of an unbounded pool (redis-py's own default stops
at 100 connections and then fails commands with "Too many connections")."""


_SENT = "_l8_sent"
"""Set on a redis-py error raised once the command may have reached Redis."""

_RESENDABLE = frozenset(
    {"GET", "MGET", "HGET", "HMGET", "HGETALL", "EXISTS", "TTL", "PTTL", "TYPE", "PING", "INFO"}
    | {"XACK", "XLEN", "XRANGE", "XPENDING", "XINFO"}
)
"""Commands that do the same when run twice: resent even after a lost reply."""


class _ReplyAware:
    """Marks the errors of a command that was written to Redis, so that it is not resent, unless
    it is one of :data:`_RESENDABLE` (a pipeline or a script never is)."""

    _resendable = False

    async def send_command(self, *args: Any, **kwargs: Any) -> None:
        resendable = isinstance(args[0], str) and args[0].split(" ", 1)[0].upper() in _RESENDABLE
        await super().send_command(*args, **kwargs)  # type: ignore[misc]
        self._resendable = resendable

    async def send_packed_command(self, *args: Any, **kwargs: Any) -> None:
        self._resendable = False
        try:
            await super().send_packed_command(*args, **kwargs)  # type: ignore[misc]
        except redis_errors.TimeoutError as exc:
            # A write that timed out may still leave the transport's buffer when it closes.
            setattr(exc, _SENT, True)
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)  # type: ignore[misc]
        except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
            if not self._resendable:
                setattr(exc, _SENT, True)
            raise


class _Connection(_ReplyAware, Connection):
    pass


class _SSLConnection(_ReplyAware, SSLConnection):
    pass


def _never_sent(error: Exception) -> bool:
    return not getattr(error, _SENT, False)


def client_options(
    settings: RedisConnectionMetadata, *, max_retries: int, socket_timeout: float | None
) -> dict[str, Any]:
    """redis-py connection options from the metadata (``socket_timeout`` None waits forever)."""
    host, _, port = settings.redisHost.rpartition(":")
    return dict(
        connection_class=_SSLConnection if settings.enableTLS else _Connection,
        host=host.strip("[]"),
        port=int(port),
        db=settings.redisDB,
        username=settings.redisUsername or None,
        password=settings.redisPassword or None,
        socket_connect_timeout=settings.dialTimeout.total_seconds(),
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        # go-redis's default backoff (8 ms doubling up to 512 ms), which Dapr users tune for.
        retry=Retry(
            ExponentialWithJitterBackoff(cap=0.512, base=0.008),
            max(max_retries, 0),
            is_retryable=_never_sent,
        ),
    )


def make_client(settings: RedisConnectionMetadata, options: dict[str, Any]) -> Redis:
    """A client on a pool shaped by ``poolSize``. Nothing connects until the first command."""
    read_timeout = settings.readTimeout.total_seconds()
    pool: ConnectionPool
    if settings.poolSize:
        # Bounded like go-redis: a burst queues for a connection (up to readTimeout + 1 s)
        # instead of opening more. The blocking pool costs ~12 us per command, so it is opt-in.
        pool = BlockingConnectionPool(
            max_connections=settings.poolSize,
            timeout=read_timeout + 1 if read_timeout > 0 else None,
            **options,
        )
    else:
        # One connection per concurrent command, reused: the sidecar's concurrency is bounded
        # by its callers, and Redis accepts 10,000 clients by default.
        pool = ConnectionPool(max_connections=REDIS_MAX_CLIENTS, **options)
    return Redis.from_pool(pool)


def init_error(host: str, error: redis_errors.RedisError) -> ComponentInitError:
    """The start-up error for a Redis that cannot be used, naming the field to fix."""
    if isinstance(error, redis_errors.AuthenticationError):
        return ComponentInitError(f"cannot authenticate to Redis at {host}: {error}", field="redisPassword")
    # InvalidResponse: something answers at redisHost, but it does not speak Redis.
    if isinstance(
        error, redis_errors.ConnectionError | redis_errors.TimeoutError | redis_errors.InvalidResponse
    ):
        return ComponentInitError(f"cannot reach Redis at {host}: {error}", field="redisHost")
    field = "redisDB" if "DB index" in str(error) else None
    return ComponentInitError(f"Redis at {host} refused the connection: {error}", field=field)


async def connect(settings: RedisConnectionMetadata, *, max_retries: int = 3) -> Redis:
    """A client proved by a PING; raises ComponentInitError (the pool released) when Redis cannot
    be used. Commands time out after ``readTimeout`` (zero or negative: never)."""
    read_timeout = settings.readTimeout.total_seconds()
    options = client_options(
        settings, max_retries=max_retries, socket_timeout=read_timeout if read_timeout > 0 else None
    )
    client = make_client(settings, options)
    try:
        await client.ping()
    except BaseException as exc:
        # Cancelled too (spec.initTimeout ran out while connecting): release the pool all the same.
        await client.aclose()
        if isinstance(exc, redis_errors.RedisError):
            raise init_error(settings.redisHost, exc) from exc
        raise
    return client


class RedisErrors:
    """Turns redis-py exceptions into BackendError at the component boundary. Use the shared
    instance :data:`REDIS_ERRORS`: a class-based context manager allocates nothing per call."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(error, redis_errors.RedisError):
            if getattr(error, _SENT, False):
                raise OutcomeUnknownError(f"redis: {error} (the command may have been applied)") from error
            raise BackendError(f"redis: {error}") from error


REDIS_ERRORS = RedisErrors()


async def ping(client: Redis | None) -> None:
    """A component's health check: PING on its client (components/health.py)."""
    if client is None:
        raise BackendError("redis: not connected")
    with REDIS_ERRORS:
        await client.ping()
