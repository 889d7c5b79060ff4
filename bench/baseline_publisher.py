"""The cheapest Python publish API, for the pub/sub benchmark: a raw ASGI app served by uvicorn on
uvloop + httptools like l8, with one redis-py asyncio client and one aiokafka producer (acks=all).

It does the least a publish API must do: read the body, wrap it in a CloudEvent-shaped envelope
(one dict, one ``orjson.dumps``, a random id) and hand it to the broker, answering 204 once the
broker has it. No framework, no middleware, no validation, no topic scopes, no tracing.

- ``POST /redis/<topic>``: XADD ``data`` (the envelope) and ``metadata`` (``{}``), as l8 writes it.
- ``POST /kafka/<topic>``: ``send_and_wait`` of the envelope.

Run: ``python bench/baseline_publisher.py --port P --redis 127.0.0.1:N --kafka 127.0.0.1:M``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import orjson
from raw_asgi import EMPTY, NO_CONTENT, NOT_FOUND, lifespan, read_body, serve


def envelope(body: bytes, topic: str) -> bytes:
    return orjson.dumps(
        {
            "data": orjson.Fragment(body),
            "datacontenttype": "application/json",
            "id": os.urandom(16).hex(),
            "pubsubname": "bench",
            "source": "bench",
            "specversion": "1.0",
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "topic": topic,
            "type": "com.dapr.event.sent",
        }
    )


def make_app(redis_address: str, kafka_address: str) -> Any:
    clients: dict[str, Any] = {}

    async def start() -> None:
        from aiokafka import AIOKafkaProducer
        from redis.asyncio import Redis

        host, _, port = redis_address.rpartition(":")
        clients["redis"] = Redis(host=host, port=int(port), max_connections=10_000)
        producer = AIOKafkaProducer(bootstrap_servers=kafka_address, acks="all")
        await producer.start()
        clients["kafka"] = producer

    async def stop() -> None:
        await clients["kafka"].stop()
        await clients["redis"].aclose()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, start, stop)
            return
        broker, _, topic = scope["path"][1:].partition("/")
        if broker not in clients or not topic:
            await send(NOT_FOUND)
            await send(EMPTY)
            return
        data = envelope(await read_body(receive), topic)
        if broker == "redis":
            await clients["redis"].xadd(topic, {"data": data, "metadata": b"{}"})
        else:
            await clients["kafka"].send_and_wait(topic, data)
        await send(NO_CONTENT)
        await send(EMPTY)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--kafka", required=True)
    arguments = parser.parse_args()
    serve(make_app(arguments.redis, arguments.kafka), arguments.port)


if __name__ == "__main__":
    main()
