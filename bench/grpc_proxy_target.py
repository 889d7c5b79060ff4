"""The app behind the gRPC proxying benchmark (bench/grpc_proxy_bench.py): ``bench.Echo/Say``
answers each message's bytes as they came (a generic handler, no proto), on the port given."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import grpc


def _identity(value: bytes) -> bytes:
    return value


async def _say(request: bytes, _context: Any) -> bytes:
    return request


async def main(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.unary_unary_rpc_method_handler(
        _say, request_deserializer=_identity, response_serializer=_identity
    )
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Echo", {"Say": handler}),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
