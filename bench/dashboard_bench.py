"""The cost of the dashboard's traffic charts (``make bench-dashboard``): nothing is recorded per
request for them, so their whole cost is one sampling of the HTTP server histogram every two
seconds, on the event loop. Measured here for 20, 100 and 400 label sets (a route template, a verb
and a status each), against the baseline of one Prometheus scrape of the same registry (what
Prometheus costs the sidecar every 15 s or so), in the same run.

    PYTHONPATH=. python bench/dashboard_bench.py
"""

from __future__ import annotations

import time

from prometheus_client import generate_latest

from observability.metrics import Metrics
from observability.traffic import TrafficWindow

ROUNDS = 200


def per_call_ms(call: object, rounds: int = ROUNDS) -> float:
    assert callable(call)
    call()
    started = time.perf_counter()
    for _ in range(rounds):
        call()
    return (time.perf_counter() - started) / rounds * 1000


def main() -> None:
    print("| label sets | one sampling (ms) | one scrape (ms) | sampling / scrape | loop time per 2 s |")
    print("|---|---|---|---|---|")
    for label_sets in (20, 100, 400):
        metrics = Metrics("bench")
        for index in range(label_sets):
            template = f"/v1.0/state/{{storeName}}/route{index // 4}"
            metrics.http_server.record("GET", template, "/x", 200 + index % 4, 0.001)
        window = TrafficWindow(metrics.http_server.by_path, metrics.http_server.buckets)
        sampling = per_call_ms(window.sample)
        scrape = per_call_ms(lambda registry=metrics.registry: generate_latest(registry))
        share = sampling / 2000 * 100
        print(f"| {label_sets} | {sampling:.3f} | {scrape:.3f} | {sampling / scrape:.2f} | {share:.3f}% |")


if __name__ == "__main__":
    main()
