"""Layotto's GetNextId, TryLock and Unlock over services/sequencer.py and services/lock.py. The
message's fields are handed over as the HTTP API's JSON names, so both transports check them in
one place and one order."""

from __future__ import annotations

from typing import Any

from routers.grpc.calls import Context, Unary
from routers.grpc.layotto.proto import runtime_pb2
from services.sidecar import Services

_INCREMENTS = runtime_pb2.SequencerOptions.AutoIncrement


async def get_next_id(services: Services, request: Any, context: Context) -> runtime_pb2.GetNextIdResponse:
    fields = {
        "key": request.key,
        "options": {"increment": _INCREMENTS.Name(request.options.increment)},
        "metadata": dict(request.metadata),
    }
    next_id = await services.sequencer.next_id(request.store_name, fields)
    return runtime_pb2.GetNextIdResponse(next_id=next_id)


async def try_lock(services: Services, request: Any, context: Context) -> runtime_pb2.TryLockResponse:
    fields = {
        "resourceId": request.resource_id,
        "lockOwner": request.lock_owner,
        "expiryInSeconds": request.expire,
    }
    acquired = await services.lock.try_lock(request.store_name, fields)
    return runtime_pb2.TryLockResponse(success=acquired)


async def unlock(services: Services, request: Any, context: Context) -> runtime_pb2.UnlockResponse:
    fields = {"resourceId": request.resource_id, "lockOwner": request.lock_owner}
    status = await services.lock.unlock(request.store_name, fields)
    return runtime_pb2.UnlockResponse(status=int(status))  # type: ignore[arg-type]  # the same numbers


RPCS: dict[str, Unary] = {"GetNextId": get_next_id, "TryLock": try_lock, "Unlock": unlock}
