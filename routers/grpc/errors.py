"""The gRPC error door: every :class:`ApiError` of the catalogue becomes one gRPC status, with the
``google.rpc`` details daprd sends, so the SDKs' error handling (the Python SDK's
``DaprGrpcError.code()`` / ``.error_code()``, the Go SDK's ``status.FromError``) reads what it
reads from daprd.

The status code is daprd's for the error (pkg/messages/predefined.go and the kit errors of
pkg/api/errors: a missing store is INVALID_ARGUMENT, an unconfigured block FAILED_PRECONDITION, an
ETag mismatch ABORTED, ...); where the catalogue's HTTP status says enough, it is read from that.
The details are the catalogue's (``ErrorInfo``, ``ResourceInfo``, ``BadRequest``, ``Help``); an
error the catalogue gives no ``ErrorInfo`` gets one whose reason is its legacy code
(``ERR_STATE_SAVE``), as daprd's ``apierrors.Basic`` builds it.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.errors import BAD_REQUEST, ERROR_INFO, GO_ERROR, HELP, RESOURCE_INFO, ApiError

DOMAIN = "dapr.io"

_BY_HTTP_STATUS = {
    400: code_pb2.INVALID_ARGUMENT,
    401: code_pb2.UNAUTHENTICATED,
    403: code_pb2.PERMISSION_DENIED,
    404: code_pb2.NOT_FOUND,
    409: code_pb2.ABORTED,
    416: code_pb2.OUT_OF_RANGE,
    429: code_pb2.RESOURCE_EXHAUSTED,
    501: code_pb2.UNIMPLEMENTED,
    503: code_pb2.UNAVAILABLE,
}

_BY_CODE = {
    # An unconfigured block: daprd's FailedPrecondition, whatever the HTTP status.
    "ERR_STATE_STORE_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_PUBSUB_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_SECRET_STORES_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_LOCK_STORE_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_CONFIGURATION_STORE_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_SEQUENCER_STORE_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_FILE_STORE_NOT_CONFIGURED": code_pb2.FAILED_PRECONDITION,
    "ERR_ACTOR_STREAM_NO_GRPC_CHANNEL": code_pb2.FAILED_PRECONDITION,
    # HTTP says 401 / 404 / 500 where gRPC says the request named something wrong.
    "ERR_SECRET_STORE_NOT_FOUND": code_pb2.INVALID_ARGUMENT,
    "ERR_PUBSUB_NOT_FOUND": code_pb2.INVALID_ARGUMENT,
    "ERR_PUBSUB_EMPTY": code_pb2.INVALID_ARGUMENT,
    "ERR_TOPIC_NAME_EMPTY": code_pb2.INVALID_ARGUMENT,
    "ERR_PUBSUB_CLOUD_EVENTS_SER": code_pb2.INVALID_ARGUMENT,
    "ERR_DIRECT_INVOKE": code_pb2.INTERNAL,
    # A reminder registered with overwrite false where one exists; a binary file likewise.
    "ERR_ACTOR_REMINDER_ALREADY_EXISTS": code_pb2.ALREADY_EXISTS,
    "ERR_BINARY_STORE_FILE_EXISTS": code_pb2.ALREADY_EXISTS,
}

_BY_REASON = {
    "DAPR_STATE_TRANSACTIONS_NOT_SUPPORTED": code_pb2.UNIMPLEMENTED,
}

_CONFLICT_IS_ALREADY_EXISTS = frozenset({"DAPR_SCHEDULER_SCHEDULE_JOB"})
"""Errors whose 409 is the scheduler's AlreadyExists passed on (elsewhere a 409 is an ETag's ABORTED)."""


def grpc_code(error: ApiError) -> int:
    """daprd's gRPC status code for ``error`` (a ``google.rpc.Code`` number)."""
    if error.code == GO_ERROR:
        return int(code_pb2.UNKNOWN)  # what grpc-go makes of a handler's plain error
    for detail in error.details or ():
        if detail.get("@type") == ERROR_INFO:
            found = _BY_REASON.get(detail.get("reason") or "")
            if found is not None:
                return int(found)
    if error.status == 409 and error.code in _CONFLICT_IS_ALREADY_EXISTS:
        return int(code_pb2.ALREADY_EXISTS)
    found = _BY_CODE.get(error.code)
    if found is not None:
        return int(found)
    return int(_BY_HTTP_STATUS.get(error.status, code_pb2.INTERNAL))


class _PlainStatus(grpc.Status):  # type: ignore[misc]  # grpcio is untyped
    def __init__(self, code: grpc.StatusCode, details: str, trailing_metadata: tuple[Any, ...]) -> None:
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _detail(detail: dict[str, Any]) -> Any | None:
    kind = detail.get("@type")
    if kind == ERROR_INFO:
        return error_details_pb2.ErrorInfo(
            reason=detail.get("reason") or "",
            domain=detail.get("domain") or DOMAIN,
            metadata=detail.get("metadata") or {},
        )
    if kind == RESOURCE_INFO:
        return error_details_pb2.ResourceInfo(
            resource_type=detail.get("resource_type", ""),
            resource_name=detail.get("resource_name", ""),
            owner=detail.get("owner", ""),
            description=detail.get("description", ""),
        )
    if kind == BAD_REQUEST:
        violations = [
            error_details_pb2.BadRequest.FieldViolation(field=v["field"], description=v["description"])
            for v in detail.get("field_violations", ())
        ]
        return error_details_pb2.BadRequest(field_violations=violations)
    if kind == HELP:
        links = [
            error_details_pb2.Help.Link(description=link["description"], url=link["url"])
            for link in detail.get("links", ())
        ]
        return error_details_pb2.Help(links=links)
    return None


def to_status(error: ApiError) -> grpc.Status:
    """The gRPC status (with its ``grpc-status-details-bin`` trailer) of a catalogue error."""
    if error.code == GO_ERROR:  # grpc-go sends such an error's code and message, no details
        return _PlainStatus(grpc.StatusCode.UNKNOWN, error.message, ())
    details = [d for d in (_detail(detail) for detail in error.details or ()) if d is not None]
    if not any(isinstance(detail, error_details_pb2.ErrorInfo) for detail in details):
        details.insert(0, error_details_pb2.ErrorInfo(reason=error.code, domain=DOMAIN))
    status = status_pb2.Status(
        code=grpc_code(error), message=error.message, details=[_packed(d) for d in details]
    )
    converted: grpc.Status = rpc_status.to_status(status)
    return converted
