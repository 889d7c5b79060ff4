"""The Python ceiling for bench/grpc_bench.py: a minimal grpcio asyncio server of Dapr's service
doing the same store work as l8, with nothing else (no store lookup, no key checks, no
envelope, no resiliency, no error door).

    python bench/grpc_ceiling.py PORT REDIS_PORT APP_ID

- ``GetState``: one Redis ``HGETALL`` of ``<app>||<key>`` (the hash ``state.redis`` keeps: data and
  version), answered with its data and version as the ETag;
- ``PublishEvent``: one Redis ``XADD`` of the request's data to the topic's stream, as
  ``pubsub.redis`` writes an event;
- ``SetMetadata``: nothing (the no-op).

Runs on uvloop, as l8 does. Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Any

import grpc
import redis.asyncio as aioredis
import uvloop
from dapr.proto.runtime.v1 import dapr_pb2_grpc, state_pb2
from google.protobuf import empty_pb2

EMPTY = empty_pb2.Empty()


class Ceiling(dapr_pb2_grpc.DaprServicer):  # type: ignore[misc]
    def __init__(self, client: aioredis.Redis, app_id: str) -> None:
        self.client = client
        self.prefix = f"{app_id}||"

    async def GetState(self, request: Any, context: Any) -> state_pb2.GetStateResponse:
        found = await self.client.hgetall(self.prefix + request.key)
        if not found:
            return state_pb2.GetStateResponse()
        return state_pb2.GetStateResponse(data=found[b"data"], etag=found.get(b"version", b"").decode())

    async def PublishEvent(self, request: Any, context: Any) -> empty_pb2.Empty:
        await self.client.xadd(request.topic, {"data": request.data})
        return EMPTY

    async def SetMetadata(self, request: Any, context: Any) -> empty_pb2.Empty:
        return EMPTY


async def serve(port: int, redis_port: int, app_id: str) -> None:
    client = aioredis.Redis(port=redis_port)
    server = grpc.aio.server()
    dapr_pb2_grpc.add_DaprServicer_to_server(Ceiling(client, app_id), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    await server.stop(1)
    await client.aclose()


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]))
