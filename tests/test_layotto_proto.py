"""The checked-in modules of Layotto's gRPC service are what grpcio-tools makes of
routers/grpc/layotto/proto/runtime.proto (``make layotto-proto`` regenerates them), and the
.proto keeps Layotto's interface: package, service, and the field numbers its clients send."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from dapr.proto.runtime.v1 import binding_pb2, pubsub_pb2, secret_pb2, state_pb2
from grpc_tools import protoc

from routers.grpc.layotto.proto import runtime_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTO = "routers/grpc/layotto/proto/runtime.proto"
GENERATED = ("runtime_pb2.py", "runtime_pb2.pyi", "runtime_pb2_grpc.py")
# The versions of grpcio-tools and of its protobuf that a module names: a patch release of either
# regenerates the same code under another number (CI may install a newer one than generated them).
_VERSIONS = re.compile(
    r"(GRPC_GENERATED_VERSION = '[^']*'|# Protobuf Python Version: \S+|"
    r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*\d+,\s*\d+,\s*\d+,)"
)


def _code(text: str) -> str:
    return _VERSIONS.sub("<version>", text)


def test_regenerating_gives_the_checked_in_modules(tmp_path: Path) -> None:
    includes = Path(protoc.__file__).parent / "_proto"  # google/protobuf/empty.proto
    status = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{ROOT}",
            f"-I{includes}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / PROTO),
        ]
    )
    assert status == 0
    folder = Path(PROTO).parent
    for name in GENERATED:
        fresh = (tmp_path / folder / name).read_text()
        checked_in = (ROOT / folder / name).read_text()
        assert _code(fresh) == _code(checked_in), f"{name} is stale: run make layotto-proto"


@pytest.mark.parametrize(
    ("message", "fields"),
    [
        ("GetNextIdRequest", {"store_name": 1, "key": 2, "options": 3, "metadata": 4}),
        ("GetNextIdResponse", {"next_id": 1}),
        ("ConfigurationItem", {"key": 1, "content": 2, "group": 3, "label": 4, "tags": 5, "metadata": 6}),
        ("SaveConfigurationRequest", {"store_name": 1, "app_id": 2, "items": 3, "metadata": 4}),
        ("SubscribeConfigurationResponse", {"store_name": 1, "app_id": 2, "items": 3}),
        ("TryLockRequest", {"store_name": 1, "resource_id": 2, "lock_owner": 3, "expire": 4}),
        ("PutFileRequest", {"store_name": 1, "name": 2, "data": 3, "metadata": 4}),
        ("ListFileRequest", {"request": 1, "page_size": 2, "marker": 3}),
        ("GetFileMetaResponse", {"size": 1, "last_modified": 2, "response": 3}),
    ],
)
def test_layottos_field_numbers(message: str, fields: dict[str, int]) -> None:
    descriptor = runtime_pb2.DESCRIPTOR.message_types_by_name[message]
    assert {field.name: field.number for field in descriptor.fields} == fields
    assert descriptor.full_name == f"spec.proto.runtime.v1.{message}"


def test_layottos_service_name() -> None:
    assert "spec.proto.runtime.v1.Runtime" in {
        s.full_name for s in runtime_pb2.DESCRIPTOR.services_by_name.values()
    }


def _shape(descriptor: Any, seen: frozenset[str] = frozenset()) -> dict[str, Any]:
    """A message's fields, nested messages included: (number, type, repeated, and the shape of a
    message field); what decides the bytes on the wire."""
    fields: dict[str, Any] = {}
    for field in descriptor.fields:
        nested = field.message_type
        inner = None
        if nested is not None and nested.full_name not in seen:
            inner = _shape(nested, seen | {descriptor.full_name})
        fields[field.name] = (field.number, field.type, field.is_repeated, inner)
    return fields


SHARED = [
    ("GetStateRequest", state_pb2.GetStateRequest),
    ("GetStateResponse", state_pb2.GetStateResponse),
    ("GetBulkStateRequest", state_pb2.GetBulkStateRequest),
    ("GetBulkStateResponse", state_pb2.GetBulkStateResponse),
    ("SaveStateRequest", state_pb2.SaveStateRequest),
    ("DeleteStateRequest", state_pb2.DeleteStateRequest),
    ("DeleteBulkStateRequest", state_pb2.DeleteBulkStateRequest),
    ("ExecuteStateTransactionRequest", state_pb2.ExecuteStateTransactionRequest),
    ("PublishEventRequest", pubsub_pb2.PublishEventRequest),
    ("InvokeBindingRequest", binding_pb2.InvokeBindingRequest),
    ("InvokeBindingResponse", binding_pb2.InvokeBindingResponse),
    ("GetSecretRequest", secret_pb2.GetSecretRequest),
    ("GetSecretResponse", secret_pb2.GetSecretResponse),
    ("GetBulkSecretRequest", secret_pb2.GetBulkSecretRequest),
    ("GetBulkSecretResponse", secret_pb2.GetBulkSecretResponse),
]


@pytest.mark.parametrize(("message", "dapr"), SHARED, ids=[name for name, _ in SHARED])
def test_shared_rpcs_have_daprs_fields(message: str, dapr: Any) -> None:
    """routers/grpc/layotto/shared.py serves these with Dapr's handlers: Layotto's message must
    have Dapr's fields (Dapr's may have more, which Layotto's clients never send)."""
    layotto = _shape(runtime_pb2.DESCRIPTOR.message_types_by_name[message])
    daprs = _shape(dapr.DESCRIPTOR)

    def within(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
        for name, (number, kind, repeated, inner) in ours.items():
            assert name in theirs, f"{message}.{name} is not Dapr's"
            assert theirs[name][:3] == (number, kind, repeated), f"{message}.{name}"
            if inner is not None and theirs[name][3] is not None:
                within(inner, theirs[name][3])

    within(layotto, daprs)
