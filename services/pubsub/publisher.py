"""Publishing: pub/sub component lookup, topic scopes, CloudEvent envelopes, bulk publish.

Dapr's order of checks (pkg/api/http ``onPublish``/``onBulkPublish``): component and topic
(:meth:`PubSubService.resolve`), then ``rawPayload``, then the envelope, then the topic scope, then
the broker. Routers read the body between the first two, so a body over the size limit loses to a
missing component but wins over a bad ``rawPayload``, as in Dapr.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import orjson

from components.errors import ComponentError, MetadataError
from components.loaded import LoadedComponent
from components.metadata import parse_go_bool
from components.pubsub.base import BulkPublisher, Feature, PublishRequest
from mesh.resiliency import OutboundFor, no_policy, retry_from_metadata
from observability.metrics import PubSubMetrics
from services import errors
from services.json_body import JsonRefused
from services.pubsub import cloudevents
from services.pubsub.bulk_requests import BulkEntry, InvalidBulkRequest, Problem, parse_entries
from services.pubsub.cloudevents import InvalidCloudEvent
from services.pubsub.handles import PubSubHandle
from services.pubsub.scopes import TopicScopes
from services.trace_context import TraceContext

if TYPE_CHECKING:
    from observability.tracing.tracer import ChildSpans, Tracer

RAW_PAYLOAD = "rawPayload"
BULK_CONCURRENCY = 100
"""Entries published at once by the per-entry fallback (Dapr's defaultBulkPublishMaxConcurrency)."""
YIELD_EVERY = 500
"""Bulk entries given their envelopes between turns for other requests."""


@dataclass(slots=True, frozen=True)
class FailedEntry:
    entry_id: str
    error: str


@dataclass(slots=True, frozen=True)
class BulkPublishFailure:
    """Some entries of a bulk publish did not reach the broker; the others did."""

    entries: list[FailedEntry]
    error: errors.ApiError
    """What Dapr reports the failure as (500 ERR_PUBSUB_PUBLISH_MESSAGE, the first entry's error)."""

    def body(self) -> bytes:
        return orjson.dumps(
            {
                "failedEntries": [{"entryId": e.entry_id, "error": e.error} for e in self.entries],
                "errorCode": self.error.code,
            }
        )


class PubSubService:
    def __init__(self, handles: dict[str, PubSubHandle], app_id: str, max_items: int = 0) -> None:
        self.handles = handles
        self.app_id = app_id
        self.max_items = max_items
        """The most entries one bulk publish may hold (0: no limit)."""
        self.metrics: PubSubMetrics | None = None
        """Set by the runtime when metrics are on: each publish's outcome and latency."""
        self.tracer: Tracer | None = None
        """Set by the runtime when tracing is on: each publish gets a producer span, whose
        ``traceparent`` the CloudEvent and the message's metadata carry to the subscriber."""

    @classmethod
    def from_components(
        cls,
        components: Iterable[LoadedComponent],
        app_id: str,
        outbound: OutboundFor = no_policy,
        max_items: int = 0,
    ) -> PubSubService:
        """The service over the started pub/sub components, with each one's topic scopes; a bad
        scope or ``backOff*`` value fails start-up."""
        handles = {}
        for component in components:
            try:
                scopes = TopicScopes.from_metadata(component.metadata)
                retry_from_metadata(component.metadata)
            except MetadataError as exc:
                raise component.error(exc.message, exc.field) from None
            features = frozenset(component.instance.features())
            handles[component.name] = PubSubHandle(
                component.name, component.instance, features, scopes, component.metadata, outbound(component)
            )
        return cls(handles, app_id, max_items)

    def resolve(self, name: str, metadata: Mapping[str, str], topic: str | None = None) -> PubSubHandle:
        """The component called ``name``, checked as Dapr does before it reads the body: empty
        name, unknown component, then (when ``topic`` is given) empty topic."""
        if not name:
            raise errors.pubsub_name_empty(dict(metadata))
        handle = self.handles.get(name)
        if handle is None:
            raise errors.pubsub_not_found(name, dict(metadata))
        if topic is not None and not topic:
            raise errors.topic_name_empty(name, dict(metadata))
        return handle

    # -- publish -----------------------------------------------------------------------------------

    async def publish(
        self,
        handle: PubSubHandle,
        topic: str,
        body: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        trace: TraceContext,
    ) -> None:
        if self.tracer is not None:
            # daprd makes no span of its own for a publish: the CloudEvent carries the API call's
            # span, and so does the broker's message (Kafka headers, the Redis entry's metadata).
            trace = self._api_call_span(trace)
            metadata = {**metadata, **trace.headers()}
        await self._publish(handle, topic, body, content_type, metadata, trace)

    async def _publish(
        self,
        handle: PubSubHandle,
        topic: str,
        body: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        trace: TraceContext,
    ) -> None:
        if self._raw_payload(handle, metadata):
            request = PublishRequest(topic, body, content_type or "application/octet-stream", metadata)
        else:
            try:
                data = cloudevents.envelope(
                    body,
                    content_type,
                    topic=topic,
                    pubsub=handle.name,
                    app_id=self.app_id,
                    trace=trace,
                    metadata=metadata,
                    native_ttl=Feature.MESSAGE_TTL in handle.features,
                )
            except InvalidCloudEvent as exc:
                raise errors.pubsub_cloud_event_creation(handle.name, self.app_id, str(exc)) from None
            except JsonRefused as exc:
                raise errors.malformed(f"the body is not acceptable JSON: {exc}") from None
            request = PublishRequest(topic, data, metadata=metadata)
        self._require_scope(handle, topic)
        started = time.perf_counter()
        try:
            await handle.outbound.call_non_idempotent(handle.instance.publish, request)
        except ComponentError as exc:
            if self.metrics is not None:
                self.metrics.published(handle.name, topic, False, time.perf_counter() - started)
            raise errors.pubsub_publish_failed(handle.name, topic, exc) from exc
        if self.metrics is not None:
            self.metrics.published(handle.name, topic, True, time.perf_counter() - started)

    # -- bulk publish ------------------------------------------------------------------------------

    async def bulk_publish(
        self,
        handle: PubSubHandle,
        topic: str,
        body: bytes,
        metadata: Mapping[str, str],
        trace: TraceContext,
    ) -> BulkPublishFailure | None:
        """Publish every entry of a bulk body; None when all reached the broker."""
        return await self._bulk_publish(handle, topic, body, metadata, trace)

    def _entry_spans(self, handle: PubSubHandle, topic: str, count: int, raw: bool) -> ChildSpans | None:
        """daprd's ``StartProducerSpanChildFromParent``: a PRODUCER span per entry under the API
        call's, named after the request's path; each entry's CloudEvent carries its own."""
        if self.tracer is None or raw:
            return None
        return self.tracer.children(f"/v1.0-alpha1/publish/bulk/{handle.name}/{topic}", "producer", count)

    async def _bulk_publish(
        self,
        handle: PubSubHandle,
        topic: str,
        body: bytes,
        metadata: Mapping[str, str],
        trace: TraceContext,
    ) -> BulkPublishFailure | None:
        raw = self._raw_payload(handle, metadata)
        try:
            entries = parse_entries(body, metadata, self.max_items)
        except InvalidBulkRequest as exc:
            raise self._bulk_request_error(handle.name, topic, exc) from None
        return await self._bulk_publish_entries(handle, topic, entries, metadata, trace, raw)

    async def bulk_publish_entries(
        self,
        handle: PubSubHandle,
        topic: str,
        entries: list[BulkEntry],
        metadata: Mapping[str, str],
        trace: TraceContext,
    ) -> BulkPublishFailure | None:
        """Publish decoded entries (the gRPC API builds them from its messages); None when all
        reached the broker. Entry ids are checked as in a bulk body: present and unique."""
        raw = self._raw_payload(handle, metadata)
        problem = None
        if self.max_items and len(entries) > self.max_items:
            problem = InvalidBulkRequest(
                Problem.UNMARSHAL,
                f"too many entries in one request: {len(entries)} "
                f"(the limit is {self.max_items}, --max-request-items)",
            )
        ids = [entry.entry_id for entry in entries]
        if "" in ids or len(set(ids)) != len(ids):
            problem = InvalidBulkRequest(Problem.ENTRY_ID, "entryId is duplicated or not present for entry")
        if problem is not None:
            raise self._bulk_request_error(handle.name, topic, problem)
        return await self._bulk_publish_entries(handle, topic, entries, metadata, trace, raw)

    async def _bulk_publish_entries(
        self,
        handle: PubSubHandle,
        topic: str,
        entries: list[BulkEntry],
        metadata: Mapping[str, str],
        trace: TraceContext,
        raw: bool,
    ) -> BulkPublishFailure | None:
        spans = self._entry_spans(handle, topic, len(entries), raw)
        if self.tracer is not None:  # a raw payload's entries carry the API call's span
            trace = self._api_call_span(trace)
        try:
            failure = await self._publish_entries(handle, topic, entries, metadata, raw, trace, spans)
        except errors.ApiError as exc:
            if spans is not None:
                spans.finish(exc.status)
            raise
        if spans is not None:
            spans.finish(500 if failure is not None else 204)
        return failure

    async def _publish_entries(
        self,
        handle: PubSubHandle,
        topic: str,
        entries: list[BulkEntry],
        metadata: Mapping[str, str],
        raw: bool,
        trace: TraceContext,
        spans: ChildSpans | None,
    ) -> BulkPublishFailure | None:
        requests: list[PublishRequest] = []
        for index, entry in enumerate(entries):
            entry_trace = trace.child() if spans is None else TraceContext(*spans.ids[index])
            requests.append(self._bulk_request(handle, topic, entry, metadata, raw, entry_trace))
            if len(requests) % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # an envelope takes ~10 us: other requests get a turn
        self._require_scope(handle, topic)
        if not requests:
            return None
        outcomes = await self._publish_all(handle, topic, requests)
        failed = [
            FailedEntry(entry.entry_id, str(outcome))
            for entry, outcome in zip(entries, outcomes, strict=True)
            if outcome is not None
        ]
        if not failed:
            return None
        first = next(outcome for outcome in outcomes if outcome is not None)
        return BulkPublishFailure(failed, errors.pubsub_publish_failed(handle.name, topic, first))

    def _bulk_request(
        self,
        handle: PubSubHandle,
        topic: str,
        entry: BulkEntry,
        request_metadata: Mapping[str, str],
        raw: bool,
        trace: TraceContext,
    ) -> PublishRequest:
        # The broker gets the entry's merged metadata, else the request's (Dapr hands a native bulk
        # publisher the request's); the envelope only the entry's, as Dapr builds it.
        broker_metadata = entry.metadata if entry.metadata is not None else request_metadata
        if raw:
            return PublishRequest(topic, entry.event, entry.content_type, broker_metadata)
        try:
            data = cloudevents.envelope(
                entry.event,
                entry.content_type,
                topic=topic,
                pubsub=handle.name,
                app_id=self.app_id,
                trace=trace,
                metadata=entry.metadata or {},
                native_ttl=Feature.MESSAGE_TTL in handle.features,
            )
        except InvalidCloudEvent as exc:
            raise errors.pubsub_cloud_event_creation(handle.name, self.app_id, str(exc)) from None
        except JsonRefused as exc:
            raise errors.pubsub_marshal_envelope(handle.name, topic, self.app_id, str(exc)) from None
        return PublishRequest(topic, data, metadata=broker_metadata)

    async def _publish_all(
        self, handle: PubSubHandle, topic: str, requests: list[PublishRequest]
    ) -> Sequence[Exception | None]:
        if Feature.BULK_PUBLISH in handle.features:
            publisher = cast(BulkPublisher, handle.instance)
            try:
                return await handle.outbound.call_non_idempotent(publisher.bulk_publish, topic, requests)
            except ComponentError as exc:
                return [exc] * len(requests)
        # BULK_CONCURRENCY workers draw from one iterator: a task per entry would be 10,000 tasks
        # made at once, on the loop, for a big bulk publish.
        outcomes: list[Exception | None] = [None] * len(requests)
        pending = iter(enumerate(requests))

        async def worker() -> None:
            for index, request in pending:
                try:
                    await handle.outbound.call_non_idempotent(handle.instance.publish, request)
                except ComponentError as exc:
                    outcomes[index] = exc

        await asyncio.gather(*(worker() for _ in range(min(BULK_CONCURRENCY, len(requests)))))
        return outcomes

    def _bulk_request_error(self, pubsub: str, topic: str, exc: InvalidBulkRequest) -> errors.ApiError:
        if exc.problem is Problem.UNMARSHAL:
            return errors.pubsub_unmarshal_events(pubsub, topic, self.app_id, exc.reason)
        if exc.problem is Problem.EVENT:
            return errors.pubsub_marshal_envelope(pubsub, topic, self.app_id, exc.reason)
        return errors.pubsub_marshal_events(pubsub, topic, self.app_id, exc.reason)

    # -- shared checks -----------------------------------------------------------------------------

    def _api_call_span(self, trace: TraceContext) -> TraceContext:
        """The current span (the HTTP API call's), or ``trace`` when there is none: the gRPC API
        opens no span of its own yet, and the invalid span's zero ids must not go out."""
        assert self.tracer is not None
        ids = self.tracer.current()
        return trace if int(ids[0], 16) == 0 else TraceContext(*ids)

    @staticmethod
    def _raw_payload(handle: PubSubHandle, metadata: Mapping[str, str]) -> bool:
        """``metadata.rawPayload`` as Go's strconv.ParseBool reads it (exact name, as Dapr)."""
        value = metadata.get(RAW_PAYLOAD) if metadata else None
        if not value:
            return False
        try:
            return parse_go_bool(value)
        except ValueError:
            reason = f"{RAW_PAYLOAD} value must be a valid boolean: actual is '{value}'"
            raise errors.pubsub_request_metadata(handle.name, dict(metadata), reason) from None

    def _require_scope(self, handle: PubSubHandle, topic: str) -> None:
        if not handle.scopes.can_publish(self.app_id, topic):
            raise errors.pubsub_forbidden(handle.name, topic, self.app_id)
