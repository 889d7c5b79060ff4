"""routers/grpc/proxy_observer.py without a server: which calls are watched and what each records
(the real sidecars' spans and metrics are tests/e2e/test_grpc_proxy_observed.py's)."""

from __future__ import annotations

from typing import Any

import grpc
from prometheus_client.parser import text_string_to_metric_families

from observability.metrics import Metrics
from observability.metrics.exposition import render
from routers.grpc.proxy_observer import ProxyObserver

METHOD = "/test.Greeter/Say"
CALL = [("dapr-app-id", "greeter"), ("traceparent", "00-" + "1" * 32 + "-" + "2" * 16 + "-01")]


class Context:
    def __init__(self, code: grpc.StatusCode | None = None, details: str | None = None) -> None:
        self._code, self._details = code, details

    def code(self) -> Any:
        return self._code

    def details(self) -> Any:
        return self._details


def counts(metrics: Metrics, name: str) -> dict[tuple[str, str], float]:
    return {
        (
            s.labels.get("grpc_server_method") or s.labels["grpc_client_method"],
            s.labels.get("grpc_server_status") or s.labels["grpc_client_status"],
        ): s.value
        for family in text_string_to_metric_families(render(metrics.registry).decode())
        for s in family.samples
        if s.name == name
    }


def test_nothing_is_watched_with_tracing_and_metrics_off_and_the_api_log_quiet() -> None:
    assert ProxyObserver("caller").watch(METHOD, "greeter", CALL, from_peer=False) is None
    metrics = Metrics("greeter")
    only_server = ProxyObserver("greeter", server_metrics=metrics.grpc_server)
    assert only_server.watch(METHOD, "greeter", CALL, from_peer=True) is None  # a peer's: client metrics


def test_the_caller_sidecar_counts_server_rpcs_and_the_target_client_rpcs() -> None:
    metrics = Metrics("caller")
    observer = ProxyObserver("caller", server_metrics=metrics.grpc_server, client_metrics=metrics.grpc_client)
    for from_peer, context in (
        (False, Context()),
        (False, Context(grpc.StatusCode.NOT_FOUND, "no")),
        (True, Context(grpc.StatusCode.OK)),
    ):
        watch = observer.watch(METHOD, "greeter", CALL, from_peer)
        assert watch is not None and watch.trace is None  # no tracer: the headers go on as they came
        watch.end(context, cancelled=False)
    cancelled = observer.watch(METHOD, "greeter", CALL, False)
    assert cancelled is not None
    cancelled.end(Context(), cancelled=True)
    assert counts(metrics, "dapr_grpc_io_server_completed_rpcs") == {
        (METHOD, "OK"): 1.0,
        (METHOD, "NOT_FOUND"): 1.0,
        (METHOD, "CANCELLED"): 1.0,
    }
    assert counts(metrics, "dapr_grpc_io_client_completed_rpcs") == {(METHOD, "OK"): 1.0}
