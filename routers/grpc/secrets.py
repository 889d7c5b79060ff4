"""GetSecret and GetBulkSecret over services/secrets.py (scopes and store lookup included)."""

from __future__ import annotations

from typing import Any

from dapr.proto.runtime.v1 import secret_pb2

from routers.grpc.calls import Context, Unary, string_map
from services.sidecar import Services


async def get_secret(services: Services, request: Any, context: Context) -> secret_pb2.GetSecretResponse:
    secret = await services.secrets.get(request.store_name, request.key, string_map(request.metadata))
    return secret_pb2.GetSecretResponse(data=secret or {})


async def get_bulk_secret(
    services: Services, request: Any, context: Context
) -> secret_pb2.GetBulkSecretResponse:
    found = await services.secrets.bulk_get(request.store_name, string_map(request.metadata))
    return secret_pb2.GetBulkSecretResponse(
        data={name: secret_pb2.SecretResponse(secrets=values) for name, values in found.items()}
    )


RPCS: dict[str, Unary] = {"GetSecret": get_secret, "GetBulkSecret": get_bulk_secret}
