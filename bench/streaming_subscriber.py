"""The streaming subscriber of the streaming benchmark: opens ``SubscribeTopicEventsAlpha1`` streams
to l8 (grpcio aio, one per ``--subscribe pubsub:topic``), answers every event SUCCESS at once and
records the time from publication (``{"t": ns}`` in the event's data, as bench/pubsub_subscriber.py
reads it) to arrival. ``GET /stats`` and ``POST /reset`` on ``--port`` as that app's.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from typing import Any

import grpc
import orjson
import uvicorn
from dapr.proto.runtime.v1 import appcallback_pb2, dapr_pb2_grpc, pubsub_pb2
from pubsub_subscriber import stats
from raw_asgi import answer

SUCCESS = appcallback_pb2.TopicEventResponse(status=appcallback_pb2.TopicEventResponse.SUCCESS)


class Recorder:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.arrivals: list[int] = []
        self.bad = 0

    def arrived(self, data: bytes) -> None:
        now = time.time_ns()
        try:
            self.latencies_ms.append((now - orjson.loads(data)["t"]) / 1e6)
        except (orjson.JSONDecodeError, KeyError, TypeError):
            self.bad += 1
            return
        if self.arrivals:
            self.arrivals[1] = now
        else:
            self.arrivals = [now, now]

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        while (await receive()).get("more_body", False):
            pass
        if scope["path"] == "/stats":
            await answer(send, 200, orjson.dumps(stats(sorted(self.latencies_ms), self.bad, self.arrivals)))
        elif scope["path"] == "/reset":
            self.latencies_ms.clear()
            self.arrivals.clear()
            self.bad = 0
            await answer(send, 204, b"")
        else:
            await answer(send, 404, b"")


async def stream(stub: dapr_pb2_grpc.DaprStub, pubsub: str, topic: str, recorder: Recorder) -> None:
    answers: asyncio.Queue[Any] = asyncio.Queue()

    async def requests() -> Any:
        yield pubsub_pb2.SubscribeTopicEventsRequestAlpha1(
            initial_request=pubsub_pb2.SubscribeTopicEventsRequestInitialAlpha1(
                pubsub_name=pubsub, topic=topic
            )
        )
        while True:
            yield await answers.get()

    call = stub.SubscribeTopicEventsAlpha1(requests())
    async for message in call:
        if message.WhichOneof("subscribe_topic_events_response_type") != "event_message":
            continue
        event = message.event_message
        recorder.arrived(event.data)
        processed = pubsub_pb2.SubscribeTopicEventsRequestProcessedAlpha1(id=event.id, status=SUCCESS)
        answers.put_nowait(pubsub_pb2.SubscribeTopicEventsRequestAlpha1(event_processed=processed))


async def main_async(arguments: argparse.Namespace) -> None:
    recorder = Recorder()
    server = uvicorn.Server(
        uvicorn.Config(recorder, host="127.0.0.1", port=arguments.port, log_level="warning", access_log=False)
    )
    async with grpc.aio.insecure_channel(arguments.dapr) as channel:
        stub = dapr_pb2_grpc.DaprStub(channel)
        streams = []
        for item in arguments.subscribe:
            pubsub, _, topic = item.partition(":")
            streams.append(asyncio.create_task(stream(stub, pubsub, topic, recorder)))
        await server.serve()
        for task in streams:
            task.cancel()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--dapr", required=True, help="host:port of l8's gRPC API")
    parser.add_argument("--subscribe", action="append", default=[], help="pubsub:topic")
    arguments = parser.parse_args()
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    # grpcio's asyncio API on the standard loop: on uvloop its reads wait on a poller thread.
    asyncio.run(main_async(arguments))


if __name__ == "__main__":
    main()
