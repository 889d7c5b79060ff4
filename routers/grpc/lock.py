"""TryLockAlpha1 and UnlockAlpha1 over services/lock.py: the message's fields are handed over as
the HTTP API's JSON names, so both transports check them in one place and one order."""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import lock_pb2

from routers.grpc.calls import Context, Unary
from services.sidecar import Services


async def try_lock(services: Services, request: Any, context: Context) -> lock_pb2.TryLockResponse:
    fields = {
        "resourceId": request.resource_id,
        "lockOwner": request.lock_owner,
        "expiryInSeconds": request.expiry_in_seconds,
    }
    acquired = await services.lock.try_lock(request.store_name, fields)
    return lock_pb2.TryLockResponse(success=acquired)


async def unlock(services: Services, request: Any, context: Context) -> lock_pb2.UnlockResponse:
    fields = {"resourceId": request.resource_id, "lockOwner": request.lock_owner}
    status = await services.lock.unlock(request.store_name, fields)
    return lock_pb2.UnlockResponse(status=int(status))  # type: ignore[arg-type]  # the same numbers


RPCS: dict[str, Unary] = {"TryLockAlpha1": try_lock, "UnlockAlpha1": unlock}
