"""The subscriber app of the soak (bench/soak.py): a raw ASGI app that lists one subscription at
``GET /dapr/subscribe`` and records every event delivered to ``POST /events``: the number the soak
put in its data (``{"n": 7}``) and its CloudEvent id. ``GET /stats`` answers the numbers seen
(once each), how many deliveries there were in all, and how many CloudEvent ids came more than once.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

import orjson
import uvicorn
from raw_asgi import answer, lifespan, read_body

Scope = dict[str, Any]


class Recorder:
    def __init__(self, pubsub: str, topic: str) -> None:
        self.subscriptions = orjson.dumps([{"pubsubname": pubsub, "topic": topic, "route": "/events"}])
        self.numbers: set[int] = set()
        self.ids: Counter[str] = Counter()
        self.deliveries = 0
        self.bad = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, _nothing, _nothing)
            return
        body = await read_body(receive)
        path = scope["path"]
        if path == "/events":
            self.deliveries += 1
            try:
                event = orjson.loads(body)
                self.numbers.add(int(event["data"]["n"]))
                self.ids[str(event["id"])] += 1
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                self.bad += 1
            await answer(send, 200, b"")
        elif path == "/dapr/subscribe":
            await answer(send, 200, self.subscriptions)
        elif path == "/stats":
            stats = {
                "numbers": sorted(self.numbers),
                "deliveries": self.deliveries,
                "repeated_ids": sum(1 for count in self.ids.values() if count > 1),
                "bad": self.bad,
            }
            await answer(send, 200, orjson.dumps(stats))
        else:
            await answer(send, 404, b"")


async def _nothing() -> None:
    pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pubsub", default="pubsub")
    parser.add_argument("--topic", default="soak")
    arguments = parser.parse_args()
    uvicorn.run(
        Recorder(arguments.pubsub, arguments.topic),
        host="127.0.0.1",
        port=arguments.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
