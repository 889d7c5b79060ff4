"""Service invocation: which target a call goes to and what it carries (dapr-http-api.md section 5).

Targets, in Dapr's order: an ``HTTPEndpoint`` resource named like the app id (its ``baseUrl``
and ``headers``); an app id that is a URL (``http://``/``https://``, URL-escaped in the path);
this sidecar's own app id (the app on ``--app-port``); any other app id through **its** sidecar,
found by the resolver (mesh/resolver.py), which then calls its app, so the callee's own policies
apply before its app is reached.

The target gets ``dapr-caller-app-id`` (the app that called; a call arriving from another l8 keeps
the caller id that sidecar vouched for with ``l8-forwarded-by``, believed only with the fleet's
``l8-mesh-token`` when ``mesh_token`` is configured), ``dapr-callee-app-id``,
``traceparent`` (continued, or a new trace) and, towards this sidecar's app, ``dapr-api-token``
with ``APP_API_TOKEN``; HTTPEndpoint and URL targets get neither caller nor callee ids. Its status,
headers and body come back unchanged, errors included; only a call that cannot be made answers
500 ERR_DIRECT_INVOKE.
"""

from __future__ import annotations

import posixpath
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

import structlog

from mesh.app_channel import AppConnection, AppUnreachable
from mesh.app_pipeline import AppPipeline, BufferedUpstream, Headers, through
from mesh.proxy import (
    FORWARDED_BY,
    SMALL_BODY,
    VOUCHED,
    NotConnected,
    Proxy,
    TargetUnreachable,
    Upstream,
    header_value,
    outbound_headers,
    request_body,
)
from mesh.resiliency import CircuitOpenError, Policy, Resiliency, RetriableFailure
from mesh.resolver import ResolveError, Resolver, StaticResolver
from services import errors
from services.errors import ApiError, BodyTooLarge
from services.http_endpoints import HttpEndpoint
from services.trace_context import TraceContext

log = structlog.get_logger(__name__)

_FORWARDED_BY = FORWARDED_BY.encode()
_TRACE = (b"traceparent", b"tracestate")
_ESCAPED_DOT = re.compile("%2e", re.IGNORECASE)
_BAD_METHOD_CHARS = re.compile("[#?\x00-\x1f\x7f]")


@dataclass(slots=True, frozen=True)
class Target:
    url: str
    headers: dict[str, str]
    policy: Policy
    drop: frozenset[bytes] = frozenset()
    resolved: tuple[str, str] | None = None
    """(app id, sidecar address) when the target is another app's sidecar found by the resolver."""
    tls: ssl.SSLContext | None = None
    """An HTTPEndpoint's clientTLS."""
    pipeline: AppPipeline | None = None
    """The ``appHttpPipeline`` around a call to this sidecar's own app."""
    callback: AppConnection | None = None
    """This sidecar's own gRPC app (``--app-protocol grpc``): the call goes to its ``OnInvoke``."""


class InvocationService:
    def __init__(
        self,
        app_id: str,
        app_base_url: str | None,
        app_token: str | None,
        proxy: Proxy,
        resolver: Resolver | None = None,
        endpoints: Mapping[str, HttpEndpoint] | None = None,
        timeout: float | None = None,
        resiliency: Resiliency | None = None,
        max_body_size: int | None = None,
        sidecar_auth: tuple[str, str] | None = None,
        app_pipeline: AppPipeline | None = None,
        app_callback: AppConnection | None = None,
    ) -> None:
        self.app_id = app_id
        self.app_base_url = app_base_url
        self.app_token = app_token
        self.proxy = proxy
        self.resolver: Resolver = resolver or StaticResolver({})
        self.endpoints = dict(endpoints or {})
        self.timeout = timeout
        self.resiliency = resiliency or Resiliency()
        self.max_body_size = max_body_size
        self.sidecar_auth = sidecar_auth
        """(header, value) that lets this sidecar's calls into other sidecars in: the mesh token, or
        this sidecar's API token for a fleet that shares one."""
        self.app_pipeline = app_pipeline
        self.app_callback = app_callback
        """The channel of a gRPC app: calls for this sidecar's app reach its ``OnInvoke`` through it."""
        self.traced = False
        """Set by the runtime when tracing is on: a call then carries the API call's span."""
        self.app_unhealthy: Callable[[], bool] = _never
        """With app health checks: whether the probes say the app is unhealthy now; calls to it are
        then refused without reaching it, as daprd short-circuits them."""

    async def invoke(
        self, target_app: str, method_path: str, scope: Mapping[str, Any], receive: Any
    ) -> Upstream:
        """Forward the request of ``scope`` to ``method_path`` (as escaped in the request's path) of
        ``target_app``, under the target's resiliency policy; the target's answer, to be streamed
        back and released by the caller. Raises :class:`ApiError` (ERR_DIRECT_INVOKE) when the call
        cannot be made."""
        if not target_app:
            raise errors.no_app_id()
        method_path = _clean_method(target_app, method_path)
        raw_headers: list[tuple[bytes, bytes]] = scope["headers"]
        vouched = scope.get(VOUCHED) is not False  # False: a mesh token is configured and was not sent
        target = await self._target(target_app, method_path, raw_headers, vouched)
        query = scope.get("query_string", b"")
        url = target.url + ("?" + query.decode("latin-1") if query else "")
        headers = outbound_headers(raw_headers, target.headers, target.drop)
        policy = target.policy
        body: AsyncIterator[bytes] | bytes | None = None
        length = header_value(raw_headers, b"content-length")
        size = int(length) if length is not None and length.strip().isdigit() else None
        if size or (length is None and header_value(raw_headers, b"transfer-encoding") is not None):
            # A small body, or one that may be sent again (bounded by --max-body-size), is read
            # first; any other streams through.
            if size is not None and self.max_body_size is not None and size > self.max_body_size:
                # As Dapr: the read error of the endpoint, before the target is called at all.
                raise invoke_failed(target_app, str(BodyTooLarge(self.max_body_size)))
            whole = (size is not None and size <= SMALL_BODY) or policy.retry is not None
            try:
                body = await _read_all(receive) if whole else request_body(receive)
            except BodyTooLarge as exc:
                raise invoke_failed(target_app, str(exc)) from None
        method: str = scope["method"]
        last: list[Upstream] = []

        async def attempt() -> Upstream:
            for earlier in last:
                earlier.release()
            last.clear()
            upstream = await self._open(target, method, url, headers, body)
            if (policy.retry is not None or policy.breaker is not None) and _failed(policy, upstream.status):
                last.append(upstream)  # the app's answer, if no attempt does better
                raise RetriableFailure(f"the app answered {upstream.status}", upstream.status)
            return upstream

        if self.traced:
            # No span of its own: daprd's span of the call is the API call's (the middleware's
            # ``CallLocal/{app}/{method}``); the target continues that very span.
            headers[:] = [(n, v) for n, v in headers if n.lower() not in ("traceparent", "tracestate")]
            headers.extend((n.decode("latin-1"), v.decode("latin-1")) for n, v in raw_headers if n in _TRACE)
        return await _run(policy, attempt, last, target_app)

    async def _open(
        self,
        target: Target,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
    ) -> Upstream:
        """One attempt. A sidecar of another app that refuses the connection (it died and its lease
        has not ended yet) is passed over for the app's next instance: nothing was sent to it."""
        if target.callback is not None:
            return await self._open_callback(target.callback, method, url, headers, body)
        if target.pipeline is not None:
            return await self._open_through_pipeline(target.pipeline, method, url, headers, body)
        try:
            return await self.proxy.open(method, url, headers, body, self.timeout, target.tls)
        except NotConnected:
            if target.resolved is None:
                raise
            app_id, address = target.resolved
            tried = {address}
            while True:
                try:
                    other = await self.resolver.resolve(app_id)
                except ResolveError:
                    raise NotConnected(f"no instance of {app_id} accepts connections") from None
                if other in tried:
                    raise
                tried.add(other)
                try:
                    return await self.proxy.open(
                        method, url.replace(address, other, 1), headers, body, self.timeout
                    )
                except NotConnected:
                    continue

    async def _open_callback(
        self,
        callback: AppConnection,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
    ) -> Upstream:
        """One attempt at this sidecar's gRPC app (``url``: the method path and its query)."""
        if isinstance(body, AsyncIterator):
            body = b"".join([chunk async for chunk in body])
        try:
            answer = await callback.request(
                method, url, body=body, headers=dict(headers), timeout=self.timeout
            )
        except AppUnreachable as exc:
            raise TargetUnreachable(str(exc)) from None
        answer_headers = [
            (n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in answer.headers.items()
        ]
        return BufferedUpstream(answer.status, answer_headers, answer.body)

    async def _open_through_pipeline(
        self,
        pipeline: AppPipeline,
        method: str,
        url: str,
        headers: list[tuple[str, str]],
        body: AsyncIterator[bytes] | bytes | None,
    ) -> Upstream:
        """One attempt at this sidecar's app through its ``appHttpPipeline``: the body read whole
        (the handlers see it all), the app's answer read whole (they may rewrite it)."""
        assert self.app_base_url is not None
        base = self.app_base_url
        if isinstance(body, AsyncIterator):
            body = b"".join([chunk async for chunk in body])

        async def call(method: str, target: str, headers: Headers, body: bytes) -> tuple[int, Headers, bytes]:
            outgoing = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
            upstream = await self.proxy.open(method, base + target, outgoing, body or None, self.timeout)
            try:
                content = b"".join([chunk async for chunk in upstream.chunks()])
            finally:
                upstream.release()
            return upstream.status, list(upstream.headers), content

        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        status, answer_headers, content = await through(
            pipeline, method, url[len(base) :], raw, body or b"", call
        )
        return BufferedUpstream(status, answer_headers, content)

    async def _target(
        self, app: str, method_path: str, raw: list[tuple[bytes, bytes]], vouched: bool = True
    ) -> Target:
        endpoint = self.endpoints.get(app)
        if endpoint is not None:
            return Target(
                f"{endpoint.base_url}/{method_path}",
                dict(endpoint.headers),
                self.resiliency.app(app),
                tls=endpoint.tls,
            )
        if app.startswith(("http://", "https://")):
            return Target(f"{app.rstrip('/')}/{method_path}", {}, Policy(app))
        if app.count(".") > 1:
            raise invoke_failed(app, f"invalid app id {app}")
        app_id = app.partition(".")[0]  # "orders.namespace": l8 has no namespaces
        trace = TraceContext.from_headers(header_value(raw, b"traceparent"), header_value(raw, b"tracestate"))
        caller = self.app_id
        if vouched and header_value(raw, _FORWARDED_BY) is not None:  # another l8's call: keep its caller
            caller = header_value(raw, b"dapr-caller-app-id") or caller
        headers = {
            "dapr-caller-app-id": caller,
            "dapr-callee-app-id": app_id,
            "traceparent": trace.traceparent,
        }
        if trace.tracestate:
            headers["tracestate"] = trace.tracestate
        if app_id == self.app_id:
            if self.app_base_url is None:
                raise invoke_failed(app, "app channel is not initialized: l8 was started without --app-port")
            if self.app_unhealthy():
                raise invoke_failed(app, "app is not in a healthy state")
            if self.app_token is not None:
                headers["dapr-api-token"] = self.app_token
            policy = self.resiliency.app(app_id)
            if self.app_callback is not None:
                return Target(
                    method_path, headers, policy, frozenset({_FORWARDED_BY}), callback=self.app_callback
                )
            return Target(
                f"{self.app_base_url}/{method_path}",
                headers,
                policy,
                frozenset({_FORWARDED_BY}),
                pipeline=self.app_pipeline,
            )
        try:
            address = await self.resolver.resolve(app_id)
        except ResolveError as exc:
            raise invoke_failed(app, str(exc)) from None
        headers[FORWARDED_BY] = self.app_id or "l8"
        if self.sidecar_auth is not None:
            headers[self.sidecar_auth[0]] = self.sidecar_auth[1]
        path = f"/v1.0/invoke/{quote(app_id, safe='')}/method/{method_path}"
        policy = self.resiliency.app(app_id)
        return Target(f"http://{address}{path}", headers, policy, resolved=(app_id, address))


async def _run(
    policy: Policy, attempt: Callable[[], Awaitable[Upstream]], last: list[Upstream], target_app: str
) -> Upstream:
    try:
        return await policy.run(attempt)
    except BodyTooLarge as exc:  # a streamed body grew past the limit on its way
        raise invoke_failed(target_app, str(exc)) from None
    except RetriableFailure:
        return last[0]  # retries ran out: the caller gets the app's last answer
    except TargetUnreachable as exc:
        raise invoke_failed(target_app, str(exc)) from None
    except CircuitOpenError:
        raise invoke_failed(target_app, "circuit breaker is open") from None
    except TimeoutError:
        raise invoke_failed(target_app, "context deadline exceeded") from None


def _failed(policy: Policy, status: int) -> bool:
    """Whether an answer with this status is a failed attempt (retried, counted by the circuit
    breaker): the statuses of the retry's ``matching.httpStatusCodes``, else every 5xx."""
    if policy.retry is not None and policy.retry.http_status_codes:
        return policy.retry.retries_status(status)
    return status >= 500


async def _read_all(receive: Any) -> bytes:
    return b"".join([chunk async for chunk in request_body(receive)])


def _clean_method(app: str, method_path: str) -> str:
    """The escaped method path with ``.``/``..`` segments resolved (Go's path.Clean), kept
    escaped so an encoded slash stays one; control characters, ``#`` and ``?`` are refused."""
    if _BAD_METHOD_CHARS.search(unquote(method_path) if "%" in method_path else method_path):
        raise invoke_failed(app, "invalid method: control characters, '#' and '?' are not allowed")
    if not method_path:
        return ""
    if "." not in method_path and "%" not in method_path and "//" not in method_path:
        return method_path.strip("/")  # no segment to resolve (the usual method path)
    # Escaped dots are dots: "%2e%2e" is a ".." segment the target would decode and follow.
    dotted = _ESCAPED_DOT.sub(".", method_path)
    # The trailing slash goes too (Dapr's path.Clean; l8's middleware already cleaned the path).
    return posixpath.normpath("/" + dotted).lstrip("/")


def _never() -> bool:
    return False


def invoke_failed(app: str, reason: str) -> ApiError:
    return ApiError(500, "ERR_DIRECT_INVOKE", f"failed to invoke, id: {app}, err: {reason}")
