"""The subscriber app of the pub/sub benchmark: a raw ASGI app (uvicorn on uvloop + httptools) that
lists its subscriptions at ``GET /dapr/subscribe`` and records, for every event delivered to
``POST /events``, the time from publication to arrival.

Publication time travels in the event: the load client puts ``time.time_ns()`` at the moment it
writes the publish request into the event's data (``{"t": ns}``), and this app subtracts it from
``time.time_ns()`` on arrival (both processes read the same machine clock). ``GET /stats`` answers
the count and percentiles in milliseconds; ``POST /reset`` clears them.
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import orjson
import uvicorn
from raw_asgi import answer

Scope = dict[str, Any]


def percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(fraction * len(values) + 0.5) - 1))
    return round(values[index], 3)


def stats(values: list[float], bad: int, arrivals: list[int]) -> dict[str, Any]:
    """``GET /stats``' answer: the count, latency percentiles (ms) and the delivery rate between the
    first and the last arrival."""
    span = (arrivals[-1] - arrivals[0]) / 1e9 if len(arrivals) == 2 else 0.0
    return {
        "count": len(values),
        "bad": bad,
        "p50_ms": percentile(values, 0.5),
        "p90_ms": percentile(values, 0.9),
        "p99_ms": percentile(values, 0.99),
        "max_ms": round(values[-1], 3) if values else None,
        "per_second": round((len(values) - 1) / span, 1) if span > 0 else None,
    }


class Subscriber:
    def __init__(self, subscriptions: list[dict[str, str]]) -> None:
        self.subscriptions = orjson.dumps(subscriptions)
        self.latencies_ms: list[float] = []
        self.arrivals: list[int] = []
        """First and last arrival (ns), for a delivery rate."""
        self.bad = 0

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        path = scope["path"]
        if path == "/events":
            arrived = time.time_ns()
            try:
                sent = orjson.loads(body)["data"]["t"]
                self.latencies_ms.append((arrived - sent) / 1e6)
                if self.arrivals:
                    self.arrivals[1] = arrived
                else:
                    self.arrivals = [arrived, arrived]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                self.bad += 1
            await answer(send, 200, b"")
        elif path == "/dapr/subscribe":
            await answer(send, 200, self.subscriptions)
        elif path == "/stats":
            values = sorted(self.latencies_ms)
            await answer(send, 200, orjson.dumps(stats(values, self.bad, self.arrivals)))
        elif path == "/reset":
            self.latencies_ms.clear()
            self.arrivals.clear()
            self.bad = 0
            await answer(send, 204, b"")
        else:
            await answer(send, 404, b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--subscribe", action="append", default=[], help="pubsub:topic, delivered to /events")
    arguments = parser.parse_args()
    subscriptions = []
    for item in arguments.subscribe:
        pubsub, _, topic = item.partition(":")
        subscriptions.append({"pubsubname": pubsub, "topic": topic, "route": "/events"})
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)
    uvicorn.run(
        Subscriber(subscriptions),
        host="127.0.0.1",
        port=arguments.port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
