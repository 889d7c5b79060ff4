"""Bulk subscribe (reference §4.6): messages of one subscription reach the app in batches.

The broker still hands messages over one at a time (one handler call each); the handler gives its
message to the subscription's :class:`BulkBatcher` and waits for that entry's outcome, so the
backend acknowledges (or redelivers) message by message, as daprd's default bulk subscriber does.

A batch is sent when it holds ``maxMessagesCount`` entries or ``maxAwaitDurationMs`` after its
first entry arrived, whichever comes first (daprd flushes on a fixed ticker instead; a timer per
batch bounds every message's wait by the same figure). Entries routed to different paths go out
as one request per path. The component's inbound retry policy applies to the batch: each retry
sends only the entries still asking for one.

Body: ``{"id","type":"com.dapr.event.sent.bulk","topic","pubsubname","metadata","entries":[
{"entryId","event","contentType","metadata"}]}`` with ``Content-Type: application/json``; the app
answers ``{"statuses":[{"entryId","status"}]}``. A missing entry, an empty or unknown status ->
RETRY; an unreadable 2xx body -> every entry RETRY; 404 -> every entry DROP; any other status or
no answer -> every entry RETRY.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from mesh.app_channel import AppUnreachable
from mesh.resiliency import Policy, RetriableFailure
from services.pubsub.delivery import (
    CLOUDEVENTS_CONTENT_TYPE,
    DeliveryResult,
    EventChannel,
    Outcome,
    trace_headers,
)

log = structlog.get_logger(__name__)

BULK_EVENT_TYPE = "com.dapr.event.sent.bulk"
RAW_CONTENT_TYPE = "application/octet-stream"


@dataclass(slots=True)
class BulkEntry:
    path: str
    event: Mapping[str, Any]
    """The CloudEvent (or, with rawPayload, the envelope l8 built: its trace fields are used)."""
    metadata: Mapping[str, str]
    raw: bytes | None = None
    """With rawPayload: the message bytes, sent base64-encoded instead of the event."""
    entry_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    def as_json(self) -> dict[str, Any]:
        if self.raw is not None:
            return {
                "entryId": self.entry_id,
                "event": base64.b64encode(self.raw).decode("ascii"),
                "contentType": RAW_CONTENT_TYPE,
                "metadata": dict(self.metadata),
            }
        return {
            "entryId": self.entry_id,
            "event": self.event,
            "contentType": CLOUDEVENTS_CONTENT_TYPE,
            "metadata": dict(self.metadata),
        }


def interpret_bulk(status: int, body: bytes, entry_ids: Sequence[str]) -> dict[str, DeliveryResult]:
    """The §4.6 table: the app's answer to one batch, per entry."""
    if status == 404:
        return dict.fromkeys(entry_ids, DeliveryResult(Outcome.DROP, status, "the app answered 404"))
    if not 200 <= status <= 299:
        failed = DeliveryResult(Outcome.RETRY, status, f"the app answered {status}")
        return dict.fromkeys(entry_ids, failed)
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    statuses = _field(answer, "statuses") if isinstance(answer, dict) else None
    if not isinstance(answer, dict) or not isinstance(statuses, list | type(None)):
        unreadable = DeliveryResult(Outcome.RETRY, status, "the app's bulk answer is not a statuses object")
        return dict.fromkeys(entry_ids, unreadable)
    wanted = set(entry_ids)
    results: dict[str, DeliveryResult] = {}
    for item in statuses or ():
        if not isinstance(item, dict):
            continue
        entry_id = _field(item, "entryId")
        if entry_id not in wanted:
            continue
        value = _field(item, "status")
        if value == "SUCCESS":
            results[entry_id] = DeliveryResult(Outcome.SUCCESS, status)
        elif value == "DROP":
            results[entry_id] = DeliveryResult(Outcome.DROP, status, "the app answered status DROP")
        else:
            reason = "status RETRY" if value in ("RETRY", "", None) else f"unknown status {value!r}"
            results[entry_id] = DeliveryResult(Outcome.RETRY, status, f"the app answered {reason}")
    missing = DeliveryResult(Outcome.RETRY, status, "the app's bulk answer has no status for the entry")
    return {entry_id: results.get(entry_id, missing) for entry_id in entry_ids}


def _field(mapping: dict[str, Any], name: str) -> Any:
    """A JSON field as Go's decoder finds it: the exact key, else any case."""
    if name in mapping:
        return mapping[name]
    lowered = name.lower()
    return next((value for key, value in mapping.items() if key.lower() == lowered), None)


class BulkBatcher:
    """Collects one subscription's entries into batches and delivers them."""

    def __init__(
        self,
        channel: EventChannel,
        *,
        pubsub: str,
        topic: str,
        max_messages: int,
        max_await: float,
        policy: Policy,
    ) -> None:
        self._channel = channel
        self._pubsub = pubsub
        self._topic = topic
        self._max_messages = max(1, max_messages)
        self._max_await = max(0.0, max_await)
        self._policy = policy
        self._pending: list[tuple[BulkEntry, asyncio.Future[DeliveryResult]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._draining = False

    async def deliver(self, entry: BulkEntry) -> DeliveryResult:
        """Add ``entry`` to the current batch and wait for its outcome."""
        future: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self._pending.append((entry, future))
        if self._draining or len(self._pending) >= self._max_messages:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._max_await, self._flush)
        return await future

    def drain(self) -> None:
        """Send what is pending now, and every later entry at once (the subscription is stopping)."""
        self._draining = True
        self._flush()

    async def aclose(self) -> None:
        """Stop: pending entries are not delivered (their handler calls are cancelled, so the broker
        keeps those messages), batches on the wire are cancelled."""
        self._draining = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, []
        for _, future in pending:
            future.cancel()
        tasks = list(self._sending)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # A handler call cancelled while waiting (a consumer stopping) gives up its entry.
        batch = [item for item in self._pending if not item[1].done()]
        self._pending = []
        by_path: dict[str, list[tuple[BulkEntry, asyncio.Future[DeliveryResult]]]] = {}
        for item in batch:
            by_path.setdefault(item[0].path, []).append(item)
        for path, items in by_path.items():
            task = asyncio.get_running_loop().create_task(self._send(path, items))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, path: str, items: list[tuple[BulkEntry, asyncio.Future[DeliveryResult]]]) -> None:
        remaining = {entry.entry_id: entry for entry, _ in items}
        results: dict[str, DeliveryResult] = {}

        async def attempt() -> None:
            batch = list(remaining.values())
            answers = await self._post(path, batch)
            retry_status: int | None = None
            for entry_id, result in answers.items():
                results[entry_id] = result
                if result.outcome is Outcome.RETRY:
                    retry_status = result.status
                else:
                    remaining.pop(entry_id, None)
            if remaining:
                raise RetriableFailure(
                    f"{len(remaining)} of {len(batch)} bulk entries need a retry", retry_status
                )

        try:
            await self._policy.run(attempt)
        except RetriableFailure:
            pass  # each remaining entry keeps its last RETRY result
        except Exception as exc:  # a timeout, an open circuit breaker
            for entry_id in remaining:
                results[entry_id] = DeliveryResult(Outcome.RETRY, None, f"bulk delivery failed: {exc!r}")
        finally:
            for entry, future in items:
                if future.done():
                    continue
                result = results.get(entry.entry_id)
                if result is None:
                    future.cancel()
                else:
                    future.set_result(result)

    async def _post(self, path: str, batch: Sequence[BulkEntry]) -> dict[str, DeliveryResult]:
        envelope = {
            "id": str(uuid.uuid4()),
            "type": BULK_EVENT_TYPE,
            "topic": self._topic,
            "pubsubname": self._pubsub,
            "metadata": {},
            "entries": [entry.as_json() for entry in batch],
        }
        headers = {"pubsubname": self._pubsub, "Content-Type": "application/json"}
        headers.update(trace_headers(batch[0].event))
        entry_ids = [entry.entry_id for entry in batch]
        try:
            response = await self._channel.deliver_bulk(path, orjson.dumps(envelope), headers)
        except AppUnreachable as exc:
            return dict.fromkeys(entry_ids, DeliveryResult(Outcome.RETRY, None, str(exc)))
        return interpret_bulk(response.status, response.body, entry_ids)
