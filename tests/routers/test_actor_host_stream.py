"""``SubscribeActorEventsAlpha1`` message by message: the app's side of the stream is written by hand
(grpcio's stub) against a sidecar with no app port, so each request l8 writes and each answer it
reads is the test's: the registration and what it hosts, the requests' fields, the answers'
mapping (an actor error passed through, ``request_failed`` as daprd maps it, a reminder's cancel),
an answer with an unknown id, a stream that ends mid-call, a second stream, and the refusals."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import grpc
import orjson
import pytest
from dapr.proto.runtime.v1 import actors_pb2, dapr_pb2_grpc
from google.protobuf import wrappers_pb2

from tests.actor_app import ActorTestApp
from tests.routers.conftest import Sidecar, StartSidecar, assert_error
from tests.routers.test_actors_api import until_hosting
from tests.servers import RedisServer

ACTORS = "/v1.0/actors"
Incoming = actors_pb2.SubscribeActorEventsResponseAlpha1
Outgoing = actors_pb2.SubscribeActorEventsRequestAlpha1


def registration(*types: str, **fields: Any) -> actors_pb2.SubscribeActorEventsRequestInitialAlpha1:
    return actors_pb2.SubscribeActorEventsRequestInitialAlpha1(entities=list(types), **fields)


class StreamApp:
    """One actor host stream, the app's side."""

    def __init__(self, sidecar: Sidecar) -> None:
        self._channel = grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.app.state.grpc_api.port}")
        self._stub = dapr_pb2_grpc.DaprStub(self._channel)  # type: ignore[no-untyped-call]
        self._outgoing: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self.call: Any = None

    async def _requests(self, first: Outgoing) -> AsyncIterator[Outgoing]:
        yield first
        while (message := await self._outgoing.get()) is not None:
            yield message

    def start(self, first: Outgoing) -> None:
        self.call = self._stub.SubscribeActorEventsAlpha1(self._requests(first))

    async def register(self, initial: actors_pb2.SubscribeActorEventsRequestInitialAlpha1) -> None:
        self.start(Outgoing(initial_request=initial))
        acknowledged = await self.next()
        assert acknowledged.WhichOneof("response_type") == "initial_response"

    async def next(self) -> Incoming:
        message = await asyncio.wait_for(self.call.read(), 10)
        assert message is not grpc.aio.EOF
        return message  # type: ignore[no-any-return]

    def send(self, **answer: Any) -> None:
        self._outgoing.put_nowait(Outgoing(**answer))

    async def close(self) -> None:
        self._outgoing.put_nowait(None)
        if self.call is not None:
            self.call.cancel()
        await self._channel.close()


@pytest.fixture
async def sidecar(start_sidecar: StartSidecar) -> Sidecar:
    return await start_sidecar(resources_paths=[])


@pytest.fixture
async def stream_app(sidecar: Sidecar) -> AsyncIterator[StreamApp]:
    app = StreamApp(sidecar)
    yield app
    await app.close()


def invoke(sidecar: Sidecar, path: str, **kwargs: Any) -> asyncio.Task[Any]:
    return asyncio.create_task(sidecar.request("PUT", f"{ACTORS}/{path}", **kwargs))


async def test_the_registration_hosts_its_types_with_their_settings(
    sidecar: Sidecar, stream_app: StreamApp
) -> None:
    assert (await sidecar.metadata())["actorRuntime"]["runtimeStatus"] == "DISABLED"
    initial = registration(
        "cart",
        "order",
        reentrancy=actors_pb2.ActorReentrancyConfig(enabled=True, max_stack_depth=4),
        entities_config=[
            actors_pb2.ActorEntityConfig(entities=["order", "elsewhere"], drain_rebalanced_actors=False)
        ],
    )
    initial.actor_idle_timeout.FromTimedelta(timedelta(seconds=90))
    await stream_app.register(initial)
    runtime = await until_hosting(sidecar)
    assert runtime["hostReady"] is True
    assert runtime["activeActors"] == [{"type": "cart", "count": 0}, {"type": "order", "count": 0}]
    config = sidecar.app.state.runtime.services.actors.config
    assert config.hosted == {"cart", "order"}
    cart, order = config.of("cart"), config.of("order")
    assert (cart.idle_timeout, cart.reentrancy, cart.max_stack_depth) == (timedelta(seconds=90), True, 4)
    assert cart.drain_rebalanced is True and order.drain_rebalanced is False
    assert order.idle_timeout == timedelta(seconds=90)


async def test_a_method_call_and_its_answer(sidecar: Sidecar, stream_app: StreamApp) -> None:
    await stream_app.register(registration("cart"))
    call = invoke(sidecar, "cart/c%201/method/add%20item", content=b'{"n":1}', headers={"X-Trace": "t"})
    request = (await stream_app.next()).invoke_request
    assert (request.id, request.actor_type, request.actor_id, request.method) == (
        "1",
        "cart",
        "c 1",
        "add item",
    )
    assert request.data == b'{"n":1}' and request.metadata["x-trace"] == "t"
    stream_app.send(
        invoke_response=actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(
            id=request.id, data=b"[1]", metadata={"content-type": "application/json"}
        )
    )
    answer = await call
    assert answer.status_code == 200 and answer.content == b"[1]"
    assert answer.headers["content-type"] == "application/json"
    assert "x-daprerrorresponseheader" not in answer.headers
    assert (await sidecar.metadata())["actorRuntime"]["activeActors"] == [{"type": "cart", "count": 1}]


async def test_an_actor_error_is_passed_through_and_a_refusal_is_daprds_error(
    sidecar: Sidecar, stream_app: StreamApp
) -> None:
    await stream_app.register(registration("cart"))
    call = invoke(sidecar, "cart/c/method/boom")
    request = (await stream_app.next()).invoke_request
    stream_app.send(
        invoke_response=actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(
            id=request.id, data=b'{"message":"no"}', error=True
        )
    )
    failed = await call
    assert failed.status_code == 200 and failed.content == b'{"message":"no"}'
    assert failed.headers["x-daprerrorresponseheader"] == "true"

    for code, reason in (
        (grpc.StatusCode.NOT_FOUND, "actor method not found: missing"),
        (grpc.StatusCode.UNKNOWN, "error from actor service: it broke"),
    ):
        call = invoke(sidecar, "cart/c/method/missing")
        request = (await stream_app.next()).invoke_request
        stream_app.send(
            request_failed=actors_pb2.SubscribeActorEventsRequestFailedAlpha1(
                id=request.id, code=code.value[0], message="it broke"
            )
        )
        assert_error(
            await call, 500, "ERR_ACTOR_INVOKE_METHOD", message=f"error invoke actor method: {reason}"
        )


async def test_an_answer_with_an_unknown_id_is_dropped(sidecar: Sidecar, stream_app: StreamApp) -> None:
    await stream_app.register(registration("cart"))
    call = invoke(sidecar, "cart/c/method/m")
    request = (await stream_app.next()).invoke_request
    stray = actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(id="999", data=b"stray")
    stream_app.send(invoke_response=stray)
    stream_app.send(initial_request=registration("again"))  # answers nothing: dropped too
    await asyncio.sleep(0.1)
    assert not call.done()
    mine = actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(id=request.id, data=b"mine")
    stream_app.send(invoke_response=mine)
    assert (await call).content == b"mine"


async def test_reminder_and_timer_ticks(sidecar: Sidecar, stream_app: StreamApp) -> None:
    await stream_app.register(registration("cart"))
    activate = invoke(sidecar, "cart/c/method/m")
    request = (await stream_app.next()).invoke_request
    stream_app.send(invoke_response=actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(id=request.id))
    await activate

    body = {"dueTime": "0s", "period": "1s", "callback": "onTick", "data": {"x": [1]}}
    created = await sidecar.request("PUT", f"{ACTORS}/cart/c/timers/t", json=body)
    assert created.status_code == 204, created.text
    tick = (await stream_app.next()).timer_request
    assert (tick.actor_type, tick.actor_id, tick.name, tick.callback) == ("cart", "c", "t", "onTick")
    assert (tick.due_time, tick.period) == ("0s", "1s")
    data = wrappers_pb2.BytesValue()
    assert tick.data.Unpack(data) and orjson.loads(data.value) == {"x": [1]}
    # The app's cancel ends the timer.
    stream_app.send(
        timer_response=actors_pb2.SubscribeActorEventsRequestReminderResponseAlpha1(id=tick.id, cancel=True)
    )
    await asyncio.sleep(0.2)
    activation = sidecar.app.state.runtime.services.actors.table.get("cart", "c")
    assert "t" not in activation.timers

    reminder = {"dueTime": "0s", "period": "1h", "data": "hello"}
    assert (await sidecar.request("POST", f"{ACTORS}/cart/c/reminders/r", json=reminder)).status_code == 204
    fired = (await stream_app.next()).reminder_request
    assert (fired.actor_type, fired.actor_id, fired.name, fired.period) == ("cart", "c", "r", "1h")
    assert fired.data.Unpack(data) and orjson.loads(data.value) == "hello"
    # The app's cancel ends the reminder (it is deleted, as daprd deletes a cancelled one).
    stream_app.send(
        reminder_response=actors_pb2.SubscribeActorEventsRequestReminderResponseAlpha1(
            id=fired.id, cancel=True
        )
    )
    for _ in range(100):
        found = await sidecar.request("GET", f"{ACTORS}/cart/c/reminders/r")
        if found.status_code != 200:
            break
        await asyncio.sleep(0.05)
    assert found.status_code == 404, found.text


async def test_a_stream_that_ends_mid_call_fails_the_call_and_removes_the_types(
    sidecar: Sidecar, stream_app: StreamApp
) -> None:
    await stream_app.register(registration("cart"))
    await until_hosting(sidecar)
    call = invoke(sidecar, "cart/c/method/slow")
    await stream_app.next()
    await stream_app.close()
    assert_error(
        await asyncio.wait_for(call, 5),
        500,
        "ERR_ACTOR_INVOKE_METHOD",
        message="error invoke actor method: actor host disconnected before responding",
    )
    runtime = await until_hosting(sidecar, "DISABLED")
    assert runtime["activeActors"] == [] and runtime["hostReady"] is False
    assert sidecar.app.state.runtime.services.actors.table.get("cart", "c") is None
    assert_error(await sidecar.request("PUT", f"{ACTORS}/cart/c/method/m"), 404, "ERR_ACTOR_NO_ADDRESS")


async def test_a_second_stream_serves_until_it_closes(sidecar: Sidecar) -> None:
    first, second = StreamApp(sidecar), StreamApp(sidecar)
    try:
        await first.register(registration("cart"))
        await second.register(registration("cart", "order"))
        runtime = await until_hosting(sidecar)
        assert {entry["type"] for entry in runtime["activeActors"]} == {"cart", "order"}
        call = invoke(sidecar, "cart/c/method/m")
        request = (await second.next()).invoke_request  # the newest stream serves
        second.send(invoke_response=actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(id=request.id))
        assert (await call).status_code == 200

        await second.close()
        for _ in range(100):
            types = {e["type"] for e in (await sidecar.metadata())["actorRuntime"]["activeActors"]}
            if types == {"cart"}:
                break
            await asyncio.sleep(0.05)
        assert types == {"cart"}  # the first stream's registration again
        call = invoke(sidecar, "cart/c/method/m")
        request = (await first.next()).invoke_request
        first.send(
            invoke_response=actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(
                id=request.id, data=b"1"
            )
        )
        assert (await call).content == b"1"
        assert_error(await sidecar.request("PUT", f"{ACTORS}/order/o/method/m"), 404, "ERR_ACTOR_NO_ADDRESS")
    finally:
        await first.close()
        await second.close()


async def test_the_first_message_must_be_the_registration(sidecar: Sidecar, stream_app: StreamApp) -> None:
    stream_app.start(
        Outgoing(deactivate_response=actors_pb2.SubscribeActorEventsRequestDeactivateResponseAlpha1(id="1"))
    )
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stream_app.call.read()
    assert refused.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "first message must be SubscribeActorEventsRequestInitialAlpha1"


async def test_an_app_with_an_http_channel_cannot_open_one(start_sidecar: StartSidecar) -> None:
    async with ActorTestApp(["counter"]) as http_app:
        sidecar = await start_sidecar(resources_paths=[], app_port=http_app.port)
        stream_app = StreamApp(sidecar)
        try:
            stream_app.start(Outgoing(initial_request=registration("cart")))
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stream_app.call.read()
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert refused.value.details() == "actor callback streaming requires a gRPC app channel"
        finally:
            await stream_app.close()


async def test_types_that_cannot_be_hosted_end_the_stream_with_daprds_internal_error(
    start_sidecar: StartSidecar, own_redis: RedisServer
) -> None:
    """Placement's store (the name-resolution Redis) is away when the app registers."""
    resolution = {"type": "redis", "redisHost": own_redis.address}
    sidecar = await start_sidecar(resources_paths=[], name_resolution=resolution)
    own_redis.stop()
    stream_app = StreamApp(sidecar)
    try:
        stream_app.start(Outgoing(initial_request=registration("cart")))
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            answered = await stream_app.call.read()
            raise AssertionError(f"registered while placement's store is away: {answered}")
        assert refused.value.code() is grpc.StatusCode.INTERNAL, refused.value
        assert refused.value.details().startswith("failed to register hosted actors: "), refused.value
    finally:
        await stream_app.close()
