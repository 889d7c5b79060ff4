"""The app behind the actor host stream benchmark: no port of its own; it dials the sidecar's gRPC
API (``--grpc-port``), opens ``SubscribeActorEventsAlpha1`` registering the actor type ``Bench``,
and answers every invoke request with the same 2-byte JSON body ``actor_target.py`` answers over
HTTP, so what is measured is the path to it. Requests are answered in the order they come (a
call's work is nothing), the answers written by a task of their own. Connects again if the stream
ends. It runs on the standard asyncio loop, as an SDK app does.

Run: ``python bench/actor_stream_target.py --grpc-port P``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from datetime import timedelta

import grpc
from dapr.proto.runtime.v1 import actors_pb2, dapr_pb2_grpc

Outgoing = actors_pb2.SubscribeActorEventsRequestAlpha1
_JSON = {"content-type": "application/json"}


async def host(port: int) -> None:
    """One stream: registered, then each request answered as it is read. The answers are written
    by a task of their own, so reading the next request does not wait for a write to finish (as
    the SDK's ``ActorGrpcHost`` answers each request from a task of its own)."""
    initial = actors_pb2.SubscribeActorEventsRequestInitialAlpha1(entities=["Bench"])
    initial.actor_idle_timeout.FromTimedelta(timedelta(hours=1))
    answers: asyncio.Queue[Outgoing] = asyncio.Queue()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)  # type: ignore[no-untyped-call]
        call = stub.SubscribeActorEventsAlpha1()
        await call.write(Outgoing(initial_request=initial))

        async def write() -> None:
            while True:
                await call.write(await answers.get())

        writer = asyncio.create_task(write())
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                kind = message.WhichOneof("response_type")
                if kind == "invoke_request":
                    answer = actors_pb2.SubscribeActorEventsRequestInvokeResponseAlpha1(
                        id=message.invoke_request.id, data=b"{}", metadata=_JSON
                    )
                    answers.put_nowait(Outgoing(invoke_response=answer))
                elif kind == "deactivate_request":
                    done = actors_pb2.SubscribeActorEventsRequestDeactivateResponseAlpha1(
                        id=message.deactivate_request.id
                    )
                    answers.put_nowait(Outgoing(deactivate_response=done))
        finally:
            writer.cancel()


async def main_loop(port: int) -> None:
    while True:
        with contextlib.suppress(grpc.aio.AioRpcError):
            await host(port)
        await asyncio.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grpc-port", type=int, required=True)
    asyncio.run(main_loop(parser.parse_args().grpc_port))


if __name__ == "__main__":
    main()
