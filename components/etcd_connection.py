"""What every etcd-backed component shares: the connection fields of its metadata (Layotto's names),
the client (aetcd, asyncio) proved by one call and held from start to close (:class:`EtcdConnection`),
and the translation of aetcd's exceptions into BackendError at the component boundary."""

from __future__ import annotations

from datetime import timedelta
from types import TracebackType
from typing import Any

from pydantic import field_validator

from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, Duration, metadata_error


class EtcdConnectionMetadata(ComponentMetadata):
    endpoints: str
    """``host:port`` of etcd's client port; several separated by ``,`` or ``;`` (the first that
    answers is used)."""
    username: str | None = None
    password: str | None = None
    dialTimeout: Duration = timedelta(seconds=5)

    @field_validator("endpoints")
    @classmethod
    def _endpoints(cls, value: str) -> str:
        for endpoint in split_endpoints(value):
            host, colon, port = endpoint.rpartition(":")
            if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise metadata_error(f"{endpoint!r} is not of the form host:port")
        if not split_endpoints(value):
            raise metadata_error("give etcd's client address(es) as host:port")
        return value

    @property
    def addresses(self) -> list[tuple[str, int]]:
        found = []
        for endpoint in split_endpoints(self.endpoints):
            host, _, port = endpoint.rpartition(":")
            found.append((host.strip("[]"), int(port)))
        return found


def split_endpoints(value: str) -> list[str]:
    parts = value.replace(";", ",").split(",")
    return [part.strip().removeprefix("http://") for part in parts if part.strip()]


async def first_answering(
    addresses: list[tuple[str, int]], username: str | None, password: str | None, dial_timeout: float
) -> tuple[Any, str]:
    """(client, "host:port") of the first etcd that answers a status call; ConnectionError naming
    every failure when none does."""
    import aetcd

    failures = []
    for host, port in addresses:
        client = aetcd.Client(host=host, port=port, username=username, password=password,
                              timeout=max(1, round(dial_timeout)))  # fmt: skip
        try:
            await client.status()  # the channel connects lazily: one call proves it answers
        except Exception as exc:
            failures.append(f"{host}:{port}: {type(exc).__name__}")
            await client.close()
            continue
        except BaseException:
            await client.close()  # cancelled (spec.initTimeout ran out): release the channel
            raise
        return client, f"{host}:{port}"
    raise ConnectionError(f"no etcd answers ({'; '.join(failures)})")


async def connect(settings: EtcdConnectionMetadata) -> Any:
    """An ``aetcd.Client`` on the first endpoint that answers; ComponentInitError naming
    ``endpoints`` when none does."""
    try:
        client, _ = await first_answering(
            settings.addresses, settings.username, settings.password, settings.dialTimeout.total_seconds()
        )
    except ConnectionError as exc:
        raise ComponentInitError(str(exc), field="endpoints") from None
    return client


class EtcdErrors:
    """Turns aetcd (and gRPC) exceptions into BackendError. Use the shared :data:`ETCD_ERRORS`."""

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        import aetcd.exceptions

        if isinstance(error, aetcd.exceptions.ClientError | ConnectionError | OSError):
            raise BackendError(f"etcd: {error}") from error


ETCD_ERRORS = EtcdErrors()


async def ping(client: Any) -> None:
    """A component's health check: the status of the etcd member its client talks to."""
    if client is None:
        raise BackendError("etcd: not connected")
    with ETCD_ERRORS:
        await client.status()


async def range_page(client: Any, start: bytes, end: bytes, limit: int) -> tuple[list[Any], bool]:
    """Up to ``limit`` key-values of ``[start, end)`` in key order, and whether more follow.

    aetcd's range calls have no ``limit``, so the request is sent on its KV stub as aetcd sends its
    own (its timeout and auth metadata); gRPC's errors become BackendError."""
    from aetcd import rpc

    request = rpc.RangeRequest(
        key=start,
        range_end=end,
        limit=limit,
        sort_order=rpc.RangeRequest.ASCEND,
        sort_target=rpc.RangeRequest.KEY,
    )
    try:
        found = await client.kvstub.Range(
            request, timeout=getattr(client, "_timeout", None), metadata=client.metadata
        )
    except rpc.AioRpcError as exc:
        raise BackendError(f"etcd: {exc.code()}: {exc.details()}") from exc
    return list(found.kvs), bool(found.more)


class EtcdConnection:
    """A component's one etcd client, from :meth:`open` to :meth:`close`: the lock store, the
    sequencer, the configuration store and the scheduler store each hold one in place of a bare
    client, so the health check, the idempotent close and the "not open" error are written once."""

    def __init__(self, owner: str) -> None:
        self.owner = owner
        """What holds it, for the error of a call made while it is not open (``etcd lock store``)."""
        self._client: Any = None

    async def open(self, settings: EtcdConnectionMetadata) -> None:
        """Connects to the first endpoint that answers (ComponentInitError naming ``endpoints``)."""
        self._client = await connect(settings)

    @property
    def client(self) -> Any:
        """The open ``aetcd.Client``; BackendError before :meth:`open` or after :meth:`close`."""
        if self._client is None:
            raise BackendError(f"{self.owner} is not initialised or already closed")
        return self._client

    async def ping(self) -> None:
        """Health (components/health.py): the status of the etcd member the client talks to."""
        await ping(self._client)

    async def close(self) -> None:
        """Releases the client; a second close does nothing."""
        client, self._client = self._client, None
        if client is not None:
            with ETCD_ERRORS:
                await client.close()
