"""The Python ceiling for bench/layotto_grpc_bench.py: a minimal grpcio asyncio server of
Layotto's service (the repo's generated stubs) doing the least work, with nothing else (no store
lookup, no checks, no door):

    python bench/layotto_grpc_ceiling.py PORT FOLDER

- ``GetNextId``: a dict counter per key;
- ``PutFile``: each message's data written to ``FOLDER/<name>`` (plain blocking writes: the page
  cache takes them);
- ``GetFile``: the file read in 100 KiB messages.

Runs on uvloop, as l8 does. Stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import uvloop
from google.protobuf import empty_pb2

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from routers.grpc.layotto.proto import runtime_pb2 as pb
from routers.grpc.layotto.proto import runtime_pb2_grpc

CHUNK = 100 * 1024


class Ceiling(runtime_pb2_grpc.RuntimeServicer):  # type: ignore[misc]
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.counters: defaultdict[str, int] = defaultdict(int)

    async def GetNextId(self, request: Any, context: Any) -> pb.GetNextIdResponse:
        self.counters[request.key] += 1
        return pb.GetNextIdResponse(next_id=self.counters[request.key])

    async def PutFile(self, requests: AsyncIterator[Any], context: Any) -> empty_pb2.Empty:
        sink = None
        try:
            async for request in requests:
                if sink is None:
                    sink = (self.folder / request.name).open("wb")
                sink.write(request.data)
        finally:
            if sink is not None:
                sink.close()
        return empty_pb2.Empty()

    async def GetFile(self, request: Any, context: Any) -> AsyncIterator[pb.GetFileResponse]:
        with (self.folder / request.name).open("rb") as source:
            while block := source.read(CHUNK):
                yield pb.GetFileResponse(data=block)


async def serve(port: int, folder: Path) -> None:
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", 8 << 20), ("grpc.max_send_message_length", 8 << 20)]
    )
    runtime_pb2_grpc.add_RuntimeServicer_to_server(Ceiling(folder), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stopped = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopped.set)
    await stopped.wait()
    await server.stop(1)


if __name__ == "__main__":
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve(int(sys.argv[1]), Path(sys.argv[2])))
