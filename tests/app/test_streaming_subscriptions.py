"""services/pubsub/streaming.py without a transport: the stream as a delivery channel (answers by
id, the oldest waiting first, a closed stream's events given back) and the metadata list."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from services.pubsub.delivery import ChannelClosed, Outcome, deliver
from services.pubsub.streaming import STREAM_ROUTE, EventStream, with_streams
from services.pubsub.subscriptions import Rule, Subscription, SubscriptionType


def _subscription(topic: str = "orders", kind: SubscriptionType = SubscriptionType.STREAMING) -> Subscription:
    return Subscription("pubsub", topic, (Rule("", STREAM_ROUTE),), kind)


async def _sent(stream: EventStream, event_id: str) -> None:
    event = await asyncio.wait_for(stream.next_event(), 1)
    assert event is not None and (event.pubsub, event.topic, event.path) == ("pubsub", "orders", "/")
    stream.sent(event, event_id)


async def test_answers_settle_deliveries_by_id_oldest_first() -> None:
    stream = EventStream(_subscription())
    first = asyncio.create_task(deliver(stream, "/", b'{"id": "a"}', {}, "orders"))
    second = asyncio.create_task(deliver(stream, "/", b'{"id": "a"}', {}, "orders"))  # the same id again
    await _sent(stream, "a")
    await _sent(stream, "a")
    stream.answer("a", "RETRY")
    assert (await first).outcome is Outcome.RETRY and not second.done()
    stream.answer("a", "DROP")
    assert (await second).outcome is Outcome.DROP


async def test_an_unknown_status_retries_as_daprd_does() -> None:
    stream = EventStream(_subscription())
    delivery = asyncio.create_task(deliver(stream, "/", b"{}", {}, "orders"))
    await _sent(stream, "x")
    stream.answer("x", "UNKNOWN(7)")
    assert (await delivery).outcome is Outcome.RETRY


async def test_closing_gives_back_sent_and_queued_events_and_refuses_more() -> None:
    stream = EventStream(_subscription())
    sent = asyncio.create_task(stream.deliver_event("/", b"{}", {}, "orders"))
    queued = asyncio.create_task(stream.deliver_event("/", b"{}", {}, "orders"))
    await _sent(stream, "s")
    await asyncio.sleep(0)
    stream.close("gone")
    for task in (sent, queued):
        with pytest.raises(ChannelClosed, match="gone"):
            await task
    assert await stream.next_event() is None
    with pytest.raises(ChannelClosed):
        await stream.deliver_event("/", b"{}", {}, "orders")
    stream.close("again")  # idempotent


async def test_an_unsendable_event_is_dropped() -> None:
    stream = EventStream(_subscription())
    delivery = asyncio.create_task(stream.deliver_event("/", b"{}", {}, "orders"))
    event = await stream.next_event()
    assert event is not None
    stream.unsendable(event, "data_base64 is not base64")
    answer = await delivery
    assert orjson.loads(answer.body) == {"status": "DROP"}


def test_the_metadata_list_puts_a_stream_in_the_place_of_its_topic() -> None:
    app = _subscription("orders", SubscriptionType.PROGRAMMATIC)
    other = _subscription("payments", SubscriptionType.DECLARATIVE)
    streamed, new = _subscription("orders"), _subscription("refunds")
    assert with_streams([app, other], [streamed, new]) == [streamed, other, new]
    assert with_streams([app], []) == [app]
