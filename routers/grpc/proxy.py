"""Dapr's gRPC proxying: a call of any method but Dapr's own, with ``dapr-app-id`` metadata,
is forwarded as it is (bytes in, bytes out: no proto knowledge) to the target app.

On the caller's sidecar the target's sidecar is found by the resolver (mesh/resolver.py: an app
id to its sidecar's HTTP address, as service invocation finds it); the port of its gRPC API is
read once from that sidecar's ``GET /v1.0/metadata`` (l8's ``grpcPort`` field) and kept per
address (forgotten when the sidecar cannot be reached), so registries stay as they are and
sidecars on one host may use any ports. The target's sidecar sees its own app id and forwards
the call to its app's gRPC server (``--app-port``, ``--app-protocol grpc``). Every kind of call
(unary, client, server and bidirectional streams) is served as one bidirectional stream of raw
messages; metadata goes both ways (minus hop-by-hop headers and the API token; ``dapr-caller-app-id`` and
``dapr-callee-app-id`` added as daprd does), the status, its details (``grpc-status-details-bin``)
and trailers come back, and the deadline left is passed on. A streamed call is never retried.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import orjson
import structlog

from mesh.http_client import HttpClient, HttpError
from mesh.resiliency.breaker import CircuitOpenError
from mesh.resiliency.policy import Policy, RetriableFailure
from mesh.resolver import ResolveError
from routers.grpc.app_callback import HTTP_STATUS
from routers.grpc.proxy_observer import TRACE_HEADERS, ProxyObserver
from routers.http import Sidecar

log = structlog.get_logger(__name__)

APP_ID = "dapr-app-id"
CALLER = "dapr-caller-app-id"
CALLEE = "dapr-callee-app-id"
TOKEN = "dapr-api-token"
STREAM = "dapr-stream"
"""daprd's mark of a streamed call: never retried, its policy not applied."""
NO_STREAM_RETRIES = "cannot use resiliency policies with retries on streaming RPCs"
_HOP_BY_HOP = frozenset(
    {"content-type", "te", "host", "connection", "keep-alive", "transfer-encoding", "upgrade", "user-agent"}
)


_KEPT_METHODS = 1024
Metadata = list[tuple[str, str | bytes]]


def _identity(value: bytes) -> bytes:
    return value


@dataclass
class ProxySettings:
    app_id: str
    app_address: str = "127.0.0.1"
    app_port: int | None = None
    """The app's gRPC server, when it speaks gRPC (``--app-protocol grpc``)."""
    app_token: str | None = None
    """``APP_API_TOKEN``: sent to the app as ``dapr-api-token``."""
    peer_auth: tuple[str, str] | None = None
    """What a call to another sidecar carries (the API token the fleet shares)."""
    lookup_auth: tuple[str, str] | None = None
    """What the metadata call to another sidecar carries (the mesh token, else the API token)."""
    max_message_size: int = 4 * 1024 * 1024
    lookup_timeout: float = 5.0
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)


def _forwarded(metadata: Any) -> Metadata:
    """The caller's metadata as the next hop gets it: no hop-by-hop, gRPC-reserved or token entry."""
    kept: Metadata = []
    for key, value in metadata or ():
        if key in _HOP_BY_HOP or key.startswith((":", "grpc-")) or key in (TOKEN, CALLER, CALLEE):
            continue
        kept.append((key, value))
    return kept


def _answered(metadata: Any) -> Metadata:
    """The target's metadata as the caller gets it (its status details kept)."""
    return [
        (key, value)
        for key, value in metadata or ()
        if key not in _HOP_BY_HOP
        and not key.startswith(":")
        and (not key.startswith("grpc-") or key == "grpc-status-details-bin")
    ]


class GrpcProxy(grpc.GenericRpcHandler):  # type: ignore[misc]  # grpcio is untyped
    """The generic handler behind Dapr's service: it takes the calls that carry ``dapr-app-id``."""

    def __init__(
        self, sidecar: Sidecar, settings: ProxySettings, observer: ProxyObserver | None = None
    ) -> None:
        self.sidecar = sidecar
        self.settings = settings
        self.observer = observer
        """The calls' spans, metrics and API log (routers/grpc/proxy_observer.py)."""
        self._grpc_ports: dict[str, int] = {}
        self._streams: dict[tuple[str, str], Any] = {}
        """A peer sidecar's HTTP address -> the port of its gRPC API."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        for key, _value in details.invocation_metadata or ():
            if key == APP_ID:
                return self._handler(details.method)
        return None  # grpcio answers UNIMPLEMENTED

    def _handler(self, method: str) -> grpc.RpcMethodHandler:
        # A partial of the async generator method: grpcio sees an async generator behind it.
        return grpc.stream_stream_rpc_method_handler(
            functools.partial(self._forward, method),
            request_deserializer=_identity,
            response_serializer=_identity,
        )

    async def aclose(self) -> None:
        self._streams.clear()
        channels = list(self.settings.channels.values())
        self.settings.channels.clear()
        for channel in channels:
            await channel.close()

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self.settings.channels.get(address)
        if channel is None:
            limit = self.settings.max_message_size
            channel = grpc.aio.insecure_channel(
                address,
                options=[("grpc.max_send_message_length", limit), ("grpc.max_receive_message_length", limit)],
            )
            self.settings.channels[address] = channel
        return channel

    async def _route(self, target: str, incoming: dict[str, Any]) -> tuple[str, Metadata]:
        """The next hop's address and the metadata it gets added."""
        settings = self.settings
        if target == settings.app_id:
            if settings.app_port is None:
                raise _Refused(grpc.StatusCode.UNAVAILABLE, "app is not listening over grpc: no --app-port")
            caller = incoming.get(CALLER) or settings.app_id
            added: Metadata = [(CALLER, caller), (CALLEE, target)]
            if settings.app_token is not None:
                added.append((TOKEN, settings.app_token))
            return f"{settings.app_address}:{settings.app_port}", added
        services = self.sidecar.services
        if services is None:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, "dapr is not ready")
        try:
            http_address = await services.invocation.resolver.resolve(target)
        except ResolveError as exc:
            raise _Refused(grpc.StatusCode.INTERNAL, f"failed to proxy request: {exc}") from None
        host = http_address.rpartition(":")[0]
        port = await self._grpc_port(http_address)
        added = [(APP_ID, target), (CALLER, settings.app_id), (CALLEE, target)]
        if settings.peer_auth is not None:
            added.append(settings.peer_auth)
        return f"{host}:{port}", added

    async def _grpc_port(self, http_address: str) -> int:
        """The gRPC port of the sidecar at ``http_address``, from its metadata."""
        known = self._grpc_ports.get(http_address)
        if known is not None:
            return known
        host, _, port = http_address.rpartition(":")
        client = HttpClient("http", host.strip("[]"), int(port))
        headers = [self.settings.lookup_auth] if self.settings.lookup_auth is not None else []
        try:
            answer = await client.request(
                "GET", "/v1.0/metadata", headers, None, self.settings.lookup_timeout
            )
        except (HttpError, TimeoutError) as exc:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, f"failed to proxy request: {exc}") from None
        finally:
            await client.aclose()
        found = orjson.loads(answer.body).get("grpcPort") if answer.status == 200 else None
        if not isinstance(found, int):
            raise _Refused(
                grpc.StatusCode.UNAVAILABLE,
                f"failed to proxy request: the sidecar at {http_address} serves no gRPC API",
            )
        self._grpc_ports[http_address] = found
        return found

    async def _forward(
        self, method: str, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[bytes]:
        metadata = context.invocation_metadata() or ()
        incoming = {key: value for key, value in metadata}
        target = str(incoming.get(APP_ID, ""))
        observer = self.observer
        watch = None if observer is None else observer.watch(method, target, metadata, CALLER in incoming)
        if watch is None:
            async for message in self._proxied(method, target, metadata, incoming, requests, context, None):
                yield message
            return
        cancelled = False
        try:
            async for message in self._proxied(
                method, target, metadata, incoming, requests, context, watch.trace
            ):
                yield message
        except (asyncio.CancelledError, GeneratorExit):
            cancelled = True
            raise
        finally:
            watch.end(context, cancelled)

    async def _proxied(
        self,
        method: str,
        target: str,
        metadata: Any,
        incoming: dict[str, Any],
        requests: AsyncIterator[bytes],
        context: Any,
        trace: Metadata | None,
    ) -> AsyncIterator[bytes]:
        """The call forwarded; ``trace``: the trace headers sent in place of the caller's."""
        if not target:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "failed to proxy request: no dapr-app-id")
        try:
            address, added = await self._route(target, incoming)
        except _Refused as exc:
            await context.abort(exc.code, exc.message)
            return
        outgoing = _forwarded(metadata) + added
        if trace is not None:
            outgoing = [entry for entry in outgoing if entry[0] not in TRACE_HEADERS] + trace
        policy = self._policy(target, incoming)
        if policy is None:
            async for message in self._live(method, address, outgoing, requests, context, target):
                yield message
            return
        whole = await self._under_policy(method, address, outgoing, requests, context, policy)
        await context.send_initial_metadata(whole.initial)
        for message in whole.messages:
            yield message
        whole.close(context)

    def _policy(self, target: str, incoming: dict[str, Any]) -> Policy | None:
        """The target app's Resiliency policy, applied on the caller's sidecar (a call a peer
        forwards carries ``dapr-caller-app-id``: its policy ran there) to a call that is not a
        stream (``dapr-stream: true``, as daprd asks of streamed calls); None: a plain call."""
        services = self.sidecar.services
        if services is None or CALLER in incoming or _truthy(incoming.get(STREAM)):
            return None
        policy = services.invocation.resiliency.app(target)
        if policy.retry is None and policy.breaker is None and not policy.timeout:
            return None
        return policy

    async def _live(
        self,
        method: str,
        address: str,
        outgoing: Metadata,
        requests: AsyncIterator[bytes],
        context: Any,
        target: str,
    ) -> AsyncIterator[bytes]:
        """The call passed through as it goes: each message on as it comes, both ways."""
        call = self._stream(method, address)(requests, metadata=outgoing, timeout=context.time_remaining())
        try:
            await context.send_initial_metadata(_answered(await call.initial_metadata()))
            async for answer in call:
                yield answer
        except grpc.aio.AioRpcError as exc:
            self._unreachable(exc.code(), target)
        except asyncio.CancelledError:
            call.cancel()
            raise
        code = await call.code()
        context.set_trailing_metadata(_answered(await call.trailing_metadata()))
        if code is not grpc.StatusCode.OK:
            context.set_code(code)
            context.set_details(await call.details() or "")

    async def _under_policy(
        self,
        method: str,
        address: str,
        outgoing: Metadata,
        requests: AsyncIterator[bytes],
        context: Any,
        policy: Policy,
    ) -> _Answer:
        """The call under the target's policy (a timeout per attempt, retries, a circuit breaker):
        its one request message kept to be sent again, as daprd keeps one; the answer read whole
        before the caller gets it. With retries, a second request message is daprd's
        FAILED_PRECONDITION (a stream must say ``dapr-stream: true``)."""
        sent: list[bytes] = []
        source = requests.__aiter__()
        drained = False
        streamed = False

        async def messages() -> AsyncIterator[bytes]:
            nonlocal drained, streamed
            for message in list(sent):
                yield message
            while not drained:
                try:
                    message = await source.__anext__()
                except StopAsyncIteration:
                    drained = True
                    return
                if sent and policy.retry is not None:
                    streamed = True  # the call ends here; refused below
                    return
                sent.append(message)
                yield message

        last: list[_Answer] = []
        outgoing_target = next((str(v) for k, v in outgoing if k == CALLEE), "")
        deadline = context.time_remaining()
        started = asyncio.get_running_loop().time()

        async def attempt() -> _Answer:
            last.clear()
            left = (
                None if deadline is None else max(deadline - (asyncio.get_running_loop().time() - started), 0)
            )
            call = self._stream(method, address)(messages(), metadata=outgoing, timeout=left)
            answers: list[bytes] = []
            try:
                answers = [answer async for answer in call]
            except grpc.aio.AioRpcError:
                pass
            except asyncio.CancelledError:
                call.cancel()
                raise
            if streamed:
                call.cancel()
                raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, NO_STREAM_RETRIES)
            code = await call.code()
            answer = _Answer(
                _answered(await call.initial_metadata()),
                answers,
                code,
                await call.details() or "",
                _answered(await call.trailing_metadata()),
            )
            if code is grpc.StatusCode.OK:
                return answer
            last.append(answer)
            self._unreachable(code, outgoing_target)
            raise RetriableFailure(answer.details, HTTP_STATUS.get(code, 500))

        try:
            return await policy.run(attempt, retryable=lambda exc: not isinstance(exc, _Refused))
        except _Refused as exc:
            await context.abort(exc.code, exc.message)
            raise
        except RetriableFailure:
            return last[0]  # retries ran out: the caller gets the target's last answer
        except CircuitOpenError:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "circuit breaker is open")
            raise
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "context deadline exceeded")
            raise

    def _stream(self, method: str, address: str) -> Any:
        """The raw bidirectional stream of ``method`` at ``address`` (kept, as a channel's)."""
        key = (address, method)
        stream = self._streams.get(key)
        if stream is None:
            if len(self._streams) >= _KEPT_METHODS:
                self._streams.clear()  # methods come from calls: the cache stays bounded
            stream = self._channel(address).stream_stream(
                method, request_serializer=_identity, response_deserializer=_identity
            )
            self._streams[key] = stream
        return stream

    def _unreachable(self, code: grpc.StatusCode, target: str) -> None:
        if code is grpc.StatusCode.UNAVAILABLE and target != self.settings.app_id:
            self._grpc_ports.clear()  # the peer may have moved: ask its metadata again next time


@dataclass
class _Answer:
    """A target's whole answer to a call made under a policy."""

    initial: Metadata
    messages: list[bytes]
    code: grpc.StatusCode
    details: str
    trailing: Metadata

    def close(self, context: Any) -> None:
        context.set_trailing_metadata(self.trailing)
        if self.code is not grpc.StatusCode.OK:
            context.set_code(self.code)
            context.set_details(self.details)


def _truthy(value: Any) -> bool:
    """dapr/kit's IsTruthy."""
    return str(value or "").strip().lower() in ("y", "yes", "true", "t", "on", "1")


class _Refused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
