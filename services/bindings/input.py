"""Input bindings: each binding's events delivered to the app as daprd delivers them (reference
section 6.2).

Discovery: once the app's port accepts connections, each input binding is probed with
``OPTIONS /<route>`` (route: metadata ``route``, else the component name) unless its ``direction``
names ``input``; a 2xx or 405 answer subscribes, anything else (a 404, the app unreachable) leaves
the binding unread, with a log line. Bindings left unread are probed again each time the app comes
back after it stopped listening (a restart); a binding being read goes on being read.

While the app is unhealthy (mesh/app_health.py) every reader is stopped, as daprd stops reading
from bindings, and the bindings are probed and read again once it is healthy; a source that keeps
events (Kafka, Redis) holds them meanwhile, a cron binding just does not fire.

Delivery: ``POST /<route>`` with the event's raw bytes, ``Content-Type: application/json`` whatever
they hold, each event metadata entry as a header, a ``traceparent`` (a span under the event's own
when it carries one, as a Kafka record published through an output binding does, else a new trace),
and the app token (the app channel adds it). A 2xx answer acknowledges the event; a non-2xx
answer or no answer is a failure, retried under the component's inbound Resiliency policy
(``targets.components.<name>.inbound``, else Dapr's ``DefaultBindingComponentInbound...`` names)
and, when that gives up, handed back to the binding, which redelivers as its source allows. A
gRPC app's answer that names output bindings is carried out once the event is taken
(services/bindings/answers.py, daprd's ``onAppResponse``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from components.bindings.base import InputBinding, Reader, ReadEvent
from components.loaded import LoadedComponent
from components.metadata import lookup
from mesh.app_channel import AppConnection, AppResponse, AppUnreachable
from mesh.resiliency import Policy, Resiliency, RetriableFailure
from services.bindings.directions import skips_probe
from services.trace_context import TraceContext

if TYPE_CHECKING:
    from observability.tracing.tracer import Tracer
    from services.bindings.answers import BindingAnswers

log = structlog.get_logger(__name__)

PROBE_TIMEOUT = 3.0
"""The deadline of one ``OPTIONS`` probe, daprd's."""
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class DeliveryFailed(Exception):
    """The app did not take the event (after the inbound policy's retries)."""


@dataclass(slots=True)
class InputBindingHandle:
    name: str
    binding: InputBinding
    route: str
    probe: bool
    """False when ``direction`` names ``input``: the app is taken to listen."""
    policy: Policy
    reader: Reader | None = None


def route_of(component: LoadedComponent) -> str:
    route = component.setting("route") or component.name
    return route if route.startswith("/") else "/" + route


def event_headers(event: ReadEvent) -> dict[str, str]:
    """The event's metadata as headers (entries that cannot be a header are left out), the
    Content-Type daprd always sends, and the trace: a span under the event's own ``traceparent``
    (a Kafka record's header, say) when it carries a valid one, else a new trace."""
    headers = {
        name: value
        for name, value in event.metadata.items()
        if _TOKEN.fullmatch(name) and "\r" not in value and "\n" not in value
    }
    headers["Content-Type"] = "application/json"
    parent = lookup(event.metadata, "traceparent")
    headers.update(TraceContext.from_headers(parent, lookup(event.metadata, "tracestate")).headers())
    return headers


class InputBindings:
    """Owns the readers of every input binding; ``run()`` is a background task of the runtime."""

    def __init__(
        self,
        components: Iterable[LoadedComponent],
        channel: AppConnection,
        resiliency: Resiliency,
        *,
        probe_interval: float = 0.5,
        probe_timeout: float = PROBE_TIMEOUT,
        answers: BindingAnswers | None = None,
    ) -> None:
        self._channel = channel
        self._answers = answers
        """Where an answer naming output bindings is carried out (services/bindings/answers.py)."""
        self._probe_interval = probe_interval
        self._probe_timeout = probe_timeout
        self._handles = [
            InputBindingHandle(
                c.name,
                c.instance,
                route_of(c),
                not skips_probe(c),
                resiliency.component_inbound(c.name, None, "bindings"),
            )
            for c in components
        ]
        self._lock = asyncio.Lock()
        self._closed = False
        self._paused = False
        self.tracer: Tracer | None = None
        """Set by the runtime when tracing is on: each delivery then gets daprd's span."""

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def reading(self) -> list[str]:
        """The bindings being read now."""
        return [handle.name for handle in self._handles if handle.reader is not None]

    async def run(self) -> None:
        """Until cancelled: wait for the app, start what it wants read, wait for it to go, again."""
        if not self._handles:
            return
        if not self._channel.configured:
            log.warning(
                "input bindings are not read without --app-port", bindings=[h.name for h in self._handles]
            )
            return
        while True:
            await self._until_listening(True)
            await self.start_wanted()
            if all(handle.reader is not None for handle in self._handles):
                return  # nothing left to probe: readers outlive app restarts
            await self._until_listening(False)
            log.info("app stopped listening; unread input bindings are probed again when it is back")

    async def start_wanted(self) -> None:
        """Probe every binding not yet read and start reading those the app wants."""
        async with self._lock:
            for handle in self._handles:
                if self._closed or self._paused:
                    return
                if handle.reader is None and await self._wanted(handle):
                    await self._start(handle)

    async def pause(self) -> None:
        """Stop every reader until ``resume()``."""
        async with self._lock:
            if self._closed or self._paused:
                return
            self._paused = True
            await self._stop_readers()

    async def resume(self) -> None:
        """Probe the bindings again and read those the app wants."""
        async with self._lock:
            if not self._paused:
                return
            self._paused = False
        if self._handles and self._channel.configured:
            await self.start_wanted()

    async def aclose(self) -> None:
        """Stop every reader; idempotent."""
        async with self._lock:
            self._closed = True
            await self._stop_readers()

    async def _stop_readers(self) -> None:
        for handle in reversed(self._handles):
            reader, handle.reader = handle.reader, None
            if reader is not None:
                try:
                    await reader.stop()
                except Exception as exc:
                    log.error("input binding stop failed", binding=handle.name, error=str(exc))
                else:
                    log.info("input binding no longer read", binding=handle.name)

    async def _wanted(self, handle: InputBindingHandle) -> bool:
        if not handle.probe:
            return True
        try:
            response = await self._channel.binding_wanted(handle.name, handle.route, self._probe_timeout)
        except AppUnreachable as exc:
            log.warning(
                "input binding not read: the app did not answer its probe",
                binding=handle.name,
                error=str(exc),
            )
            return False
        if 200 <= response.status < 300 or response.status == 405:
            return True
        log.info(
            "input binding not read: the app does not listen on its route",
            binding=handle.name,
            route=handle.route,
            status=response.status,
        )
        return False

    async def _start(self, handle: InputBindingHandle) -> None:
        try:
            delivery = _Delivery(self._channel, handle, self.tracer, self._answers)
            handle.reader = await handle.binding.read(delivery.handle)
        except Exception as exc:
            log.error("input binding failed to start reading", binding=handle.name, error=str(exc))
            return
        log.info("input binding read", binding=handle.name, route=handle.route)

    async def _until_listening(self, listening: bool) -> None:
        timeout = max(self._probe_interval, 0.5)
        # Polling is the point: the only signal that the app's port opened or closed is a probe.
        while await self._channel.listening(timeout=timeout) != listening:  # noqa: ASYNC110
            await asyncio.sleep(self._probe_interval)


class _Delivery:
    __slots__ = ("_answers", "_channel", "_handle", "_tracer")

    def __init__(
        self,
        channel: AppConnection,
        handle: InputBindingHandle,
        tracer: Tracer | None,
        answers: BindingAnswers | None,
    ) -> None:
        self._channel = channel
        self._handle = handle
        self._tracer = tracer
        self._answers = answers

    async def handle(self, event: ReadEvent) -> bytes | None:
        tracer = self._tracer
        if tracer is None:
            return await self._deliver(event, event_headers(event), None)
        # daprd's span of the delivery (processor/binding ``sendBindingEventToApp``): ``bindings/{name}``,
        # a CLIENT span under the event's traceparent (a new trace without a valid one); the app's
        # request carries it.
        name = self._handle.name
        attributes = {
            "db.name": name,
            "rpc.service": "Dapr",
            "db.system": "bindings",
            "db.connection_string": f"POST /{name}",
        }
        parent = (lookup(event.metadata, "traceparent"), lookup(event.metadata, "tracestate"))
        with tracer.span(f"bindings/{name}", "client", attributes, parent, http_status=True) as ids:
            headers = event_headers(event)
            headers.pop("tracestate", None)
            headers.update(TraceContext(*ids).headers())
            return await self._deliver(event, headers, tracer)

    async def _deliver(
        self, event: ReadEvent, headers: dict[str, str], tracer: Tracer | None
    ) -> bytes | None:
        handle = self._handle

        async def attempt() -> AppResponse:
            try:
                response = await self._channel.deliver_binding(handle.name, handle.route, event.data, headers)
            except AppUnreachable as exc:
                raise RetriableFailure(str(exc)) from None
            if tracer is not None:
                tracer.answered(response.status)
            if not 200 <= response.status < 300:
                raise RetriableFailure(
                    f"fails to send binding event to http app channel, status code: {response.status}",
                    response.status,
                )
            return response

        try:
            response = await handle.policy.run(attempt)
        except Exception as exc:
            log.warning("input binding event not delivered", binding=handle.name, error=str(exc))
            raise DeliveryFailed(f"{handle.name}: {exc}") from exc
        if response.binding is not None and self._answers is not None:
            await self._answers.follow(handle.name, response.binding)
        return response.body
