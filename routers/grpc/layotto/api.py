"""Layotto's runtime service (``spec.proto.runtime.v1.Runtime``) on the gRPC port beside Dapr's,
through the same door (routers/grpc/api.py: services, tracing, errors, metrics, API log). Only
the RPCs of routers/grpc/layotto/proto/runtime.proto are declared, so any other method of
Layotto's service is unknown to the server and answers UNIMPLEMENTED."""

from __future__ import annotations

from typing import Any

from routers.grpc.api import Door
from routers.grpc.calls import Streaming, Unary
from routers.grpc.layotto import configuration, coordination, files, shared
from routers.grpc.layotto.proto import runtime_pb2_grpc

SERVICE = "spec.proto.runtime.v1.Runtime"
RPCS: dict[str, Unary] = {**coordination.RPCS, **configuration.RPCS, **files.RPCS, **shared.RPCS}
STREAMS: dict[str, Streaming] = {**configuration.STREAMS, **files.STREAMS}


def layotto_servicer(door: Door) -> runtime_pb2_grpc.RuntimeServicer:
    """The servicer of every RPC of runtime.proto, each through ``door``."""
    methods: dict[str, Any] = {name: door.unary(name, handler, SERVICE) for name, handler in RPCS.items()}
    methods.update({name: door.streaming(name, handler, SERVICE) for name, handler in STREAMS.items()})
    missing = {name for name in dir(runtime_pb2_grpc.RuntimeServicer) if name[:1].isupper()} - set(methods)
    assert not missing, f"runtime.proto declares RPCs with no handler: {sorted(missing)}"
    servicer_class = type("L8LayottoServicer", (runtime_pb2_grpc.RuntimeServicer,), methods)
    servicer: runtime_pb2_grpc.RuntimeServicer = servicer_class()
    return servicer
