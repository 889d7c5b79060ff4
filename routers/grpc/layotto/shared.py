"""The RPCs Layotto's service shares with Dapr's (state, PublishEvent, InvokeBinding, secrets),
served by Dapr's own handlers (routers/grpc/state.py, ...): their request messages have the same
field names and numbers, so a handler reads Layotto's request as it reads Dapr's, and its answer
is re-read as Layotto's message of the same fields (tests/test_layotto_proto.py compares them)."""

from __future__ import annotations

from typing import Any

from google.protobuf import empty_pb2

from routers.grpc import bindings, pubsub, secrets, state
from routers.grpc.calls import Context, Unary
from routers.grpc.layotto.proto import runtime_pb2
from services.sidecar import Services

ANSWERS: dict[str, Any] = {
    "GetState": runtime_pb2.GetStateResponse,
    "GetBulkState": runtime_pb2.GetBulkStateResponse,
    "SaveState": empty_pb2.Empty,
    "DeleteState": empty_pb2.Empty,
    "DeleteBulkState": empty_pb2.Empty,
    "ExecuteStateTransaction": empty_pb2.Empty,
    "PublishEvent": empty_pb2.Empty,
    "InvokeBinding": runtime_pb2.InvokeBindingResponse,
    "GetSecret": runtime_pb2.GetSecretResponse,
    "GetBulkSecret": runtime_pb2.GetBulkSecretResponse,
}
"""Each shared RPC's answer in Layotto's messages."""
DAPR_RPCS: dict[str, Unary] = {**state.RPCS, **pubsub.RPCS, **bindings.RPCS, **secrets.RPCS}


def _layottos(handler: Unary, answer: Any) -> Unary:
    if answer is empty_pb2.Empty:
        return handler

    async def rpc(services: Services, request: Any, context: Context) -> Any:
        found = await handler(services, request, context)
        return answer.FromString(found.SerializeToString())

    return rpc


RPCS: dict[str, Unary] = {name: _layottos(DAPR_RPCS[name], answer) for name, answer in ANSWERS.items()}
