"""Dapr's gRPC proxying through two real ``l8 run`` sidecars: a grpcio client calls the first
sidecar's gRPC port with ``dapr-app-id: greeter`` and methods of the app's own service
(``test.Greeter``, not Dapr's); the second sidecar (``--app-protocol grpc``) forwards them to a
grpcio server app. Unary, server, client and bidirectional streams, an error with its details,
metadata both ways, a deadline, an unknown target, and a call without ``dapr-app-id``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf.wrappers_pb2 import StringValue
from google.rpc import code_pb2, error_details_pb2, status_pb2

from tests.e2e.process import L8Launcher, L8Process
from tests.servers import LOOPBACK, free_port

pytestmark = pytest.mark.e2e

SERVICE = "test.Greeter"


class Greeter:
    """The target app: a gRPC service l8 knows nothing of, recording each call's metadata."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []
        self.deadlines: list[float | None] = []
        self.failures = 0
        """How many of the next ``flaky`` calls fail (UNAVAILABLE)."""
        self._server: grpc.aio.Server | None = None

    def _seen(self, context: Any) -> None:
        self.deadlines.append(context.time_remaining())
        self.metadata.append({k: v for k, v in context.invocation_metadata() if isinstance(v, str)})

    async def say(self, request: StringValue, context: Any) -> StringValue:
        self._seen(context)
        if request.value == "fail":
            detail = error_details_pb2.ErrorInfo(reason="NO_GREETING", domain="test")
            status = status_pb2.Status(code=code_pb2.FAILED_PRECONDITION, message="no greeting")
            status.details.add().Pack(detail)
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "no greeting",
                (("grpc-status-details-bin", status.SerializeToString()),),
            )
        if request.value.startswith("flaky") and self.failures > 0:
            self.failures -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "not yet")
        if request.value == "slow":
            await asyncio.sleep(5)
        await context.send_initial_metadata((("x-greeter", "initial"),))
        context.set_trailing_metadata((("x-greeter-trailer", "done"),))
        return StringValue(value=f"hello {request.value}")

    async def count(self, request: StringValue, context: Any) -> AsyncIterator[StringValue]:
        self._seen(context)
        for n in range(int(request.value)):
            yield StringValue(value=str(n))

    async def join(self, requests: AsyncIterator[StringValue], context: Any) -> StringValue:
        self._seen(context)
        return StringValue(value="+".join([r.value async for r in requests]))

    async def echo(self, requests: AsyncIterator[StringValue], context: Any) -> AsyncIterator[StringValue]:
        self._seen(context)
        async for request in requests:
            yield StringValue(value=request.value.upper())

    async def start(self) -> int:
        codec: dict[str, Any] = {
            "request_deserializer": StringValue.FromString,
            "response_serializer": StringValue.SerializeToString,
        }
        handlers = {
            "Say": grpc.unary_unary_rpc_method_handler(self.say, **codec),
            "Count": grpc.unary_stream_rpc_method_handler(self.count, **codec),
            "Join": grpc.stream_unary_rpc_method_handler(self.join, **codec),
            "Echo": grpc.stream_stream_rpc_method_handler(self.echo, **codec),
        }
        server = grpc.aio.server()
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
        port = server.add_insecure_port(f"{LOOPBACK}:0")
        await server.start()
        self._server = server
        return port

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)


def _codec() -> dict[str, Any]:
    return {
        "request_serializer": StringValue.SerializeToString,
        "response_deserializer": StringValue.FromString,
    }


RESILIENCY = """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: proxy-policies}
spec:
  policies:
    retries:
      twice: {policy: constant, duration: 20ms, maxRetries: 2}
  targets:
    apps:
      greeter: {retry: twice}
"""


@pytest.fixture
async def sidecars(l8: L8Launcher, tmp_path: Path) -> AsyncIterator[tuple[L8Process, Greeter]]:
    app = Greeter()
    port = await app.start()
    back = l8.create(app_id="greeter", args=["--app-port", str(port), "--app-protocol", "grpc"])
    await asyncio.to_thread(back.start)
    config = tmp_path / "front.yaml"
    config.write_text(
        f"name_resolution:\n  type: static\n  apps:\n    greeter: {LOOPBACK}:{back.port}\n"
        f"    ghost: {LOOPBACK}:{free_port()}\n"  # no sidecar there
    )
    resources = tmp_path / "front-resources"
    resources.mkdir()
    (resources / "resiliency.yaml").write_text(RESILIENCY)
    front = l8.create(app_id="caller", resources=[resources], args=["--config", str(config)])
    await asyncio.to_thread(front.start)
    try:
        yield front, app
    finally:
        await app.stop()


TARGET = (("dapr-app-id", "greeter"),)
STREAMED = (*TARGET, ("dapr-stream", "true"))
"""daprd's mark of a streamed call: the target's retry policy (RESILIENCY) does not apply to it."""


async def test_every_kind_of_call_reaches_the_app_with_metadata_both_ways(
    sidecars: tuple[L8Process, Greeter],
) -> None:
    front, app = sidecars
    async with httpx.AsyncClient(base_url=front.url) as client:  # how a peer finds the gRPC API
        assert (await client.get("/v1.0/metadata")).json()["grpcPort"] == front.grpc_port
    async with grpc.aio.insecure_channel(front.grpc_address) as channel:
        say = channel.unary_unary(f"/{SERVICE}/Say", **_codec())
        call = say(StringValue(value="ann"), metadata=(*TARGET, ("x-user", "ann")), timeout=10)
        assert (await call).value == "hello ann"
        assert dict(await call.initial_metadata())["x-greeter"] == "initial"
        assert dict(await call.trailing_metadata())["x-greeter-trailer"] == "done"
        seen = app.metadata[-1]
        assert seen["x-user"] == "ann"
        assert seen["dapr-caller-app-id"] == "caller"
        assert seen["dapr-callee-app-id"] == "greeter"
        remaining = app.deadlines[-1]
        assert remaining is not None and 0 < remaining < 10.5  # the caller's 10 s, passed on (rounded up)

        count = channel.unary_stream(f"/{SERVICE}/Count", **_codec())
        assert [m.value async for m in count(StringValue(value="3"), metadata=STREAMED)] == ["0", "1", "2"]

        join = channel.stream_unary(f"/{SERVICE}/Join", **_codec())

        async def words() -> AsyncIterator[StringValue]:
            for word in ("a", "b", "c"):
                yield StringValue(value=word)

        assert (await join(words(), metadata=STREAMED)).value == "a+b+c"

        echo = channel.stream_stream(f"/{SERVICE}/Echo", **_codec())
        stream = echo(metadata=STREAMED)
        for word in ("x", "y"):
            await stream.write(StringValue(value=word))
            assert (await stream.read()).value == word.upper()  # one at a time: a real bidi stream
        await stream.done_writing()
        assert await stream.code() == grpc.StatusCode.OK


async def test_errors_deadlines_and_unknown_targets(sidecars: tuple[L8Process, Greeter]) -> None:
    front, _app = sidecars
    async with grpc.aio.insecure_channel(front.grpc_address) as channel:
        say = channel.unary_unary(f"/{SERVICE}/Say", **_codec())
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await say(StringValue(value="fail"), metadata=TARGET, timeout=10)
        assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert failed.value.details() == "no greeting"
        raw = dict(failed.value.trailing_metadata() or ())["grpc-status-details-bin"]
        status = status_pb2.Status.FromString(raw)
        info = error_details_pb2.ErrorInfo()
        assert status.details[0].Unpack(info) and info.reason == "NO_GREETING"

        with pytest.raises(grpc.aio.AioRpcError) as late:
            await say(StringValue(value="slow"), metadata=TARGET, timeout=0.5)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        with pytest.raises(grpc.aio.AioRpcError) as unknown:
            await say(StringValue(value="x"), metadata=(("dapr-app-id", "nobody"),), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.INTERNAL
        assert "nobody" in (unknown.value.details() or "")

        with pytest.raises(grpc.aio.AioRpcError) as gone:
            await say(StringValue(value="x"), metadata=(("dapr-app-id", "ghost"),), timeout=10)
        assert gone.value.code() == grpc.StatusCode.UNAVAILABLE

        with pytest.raises(grpc.aio.AioRpcError) as plain:
            await say(StringValue(value="x"), timeout=10)  # no dapr-app-id: not proxied
        assert plain.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_the_targets_policy_retries_a_call_but_never_a_stream(
    sidecars: tuple[L8Process, Greeter],
) -> None:
    front, app = sidecars
    async with grpc.aio.insecure_channel(front.grpc_address) as channel:
        say = channel.unary_unary(f"/{SERVICE}/Say", **_codec())
        app.failures = 2
        assert (await say(StringValue(value="flaky"), metadata=TARGET, timeout=10)).value == "hello flaky"
        assert app.failures == 0  # two failed attempts, the third answered

        app.failures = 1
        with pytest.raises(grpc.aio.AioRpcError) as streamed:  # dapr-stream: one attempt, no retry
            await say(StringValue(value="flaky"), metadata=STREAMED, timeout=10)
        assert streamed.value.code() == grpc.StatusCode.UNAVAILABLE

        app.failures = 3
        with pytest.raises(grpc.aio.AioRpcError) as exhausted:  # retries run out: the app's last answer
            await say(StringValue(value="flaky"), metadata=TARGET, timeout=10)
        assert exhausted.value.code() == grpc.StatusCode.UNAVAILABLE
        assert exhausted.value.details() == "not yet"

        join = channel.stream_unary(f"/{SERVICE}/Join", **_codec())

        async def words() -> AsyncIterator[StringValue]:
            for word in ("a", "b"):
                yield StringValue(value=word)

        with pytest.raises(grpc.aio.AioRpcError) as refused:  # a stream under retries, unmarked
            await join(words(), metadata=TARGET, timeout=10)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        marked = await join(words(), metadata=STREAMED, timeout=10)
        assert marked.value == "a+b"


async def test_the_api_token_guards_proxied_calls_and_the_app_gets_its_own(
    l8: L8Launcher, tmp_path: Path
) -> None:
    app = Greeter()
    port = await app.start()
    token = {"DAPR_API_TOKEN": "fleet-secret"}
    try:
        back = l8.create(
            app_id="greeter",
            args=["--app-port", str(port), "--app-protocol", "grpc"],
            env={**token, "APP_API_TOKEN": "app-secret"},
        )
        await asyncio.to_thread(back.start)
        config = tmp_path / "front.yaml"
        config.write_text(f"name_resolution:\n  type: static\n  apps:\n    greeter: {LOOPBACK}:{back.port}\n")
        front = l8.create(app_id="caller", args=["--config", str(config)], env=token)
        await asyncio.to_thread(front.start)
        async with grpc.aio.insecure_channel(front.grpc_address) as channel:
            say = channel.unary_unary(f"/{SERVICE}/Say", **_codec())
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await say(StringValue(value="ann"), metadata=TARGET, timeout=10)
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
            answer = await say(
                StringValue(value="ann"), metadata=(*TARGET, ("dapr-api-token", "fleet-secret")), timeout=10
            )
            assert answer.value == "hello ann"
            assert app.metadata[-1]["dapr-api-token"] == "app-secret"  # APP_API_TOKEN, not the caller's
    finally:
        await app.stop()
