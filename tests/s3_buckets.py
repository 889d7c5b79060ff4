"""Buckets on the session's S3-compatible server (tests/servers.py S3Server): each test makes its own,
and the file.s3 metadata naming it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tests.servers import S3Server

ACCESS_KEY = "l8-test-access"
SECRET_KEY = "l8-test-secret"  # moto checks no credentials; any pair signs requests


def s3_metadata(server: S3Server, bucket: str, **extra: str) -> dict[str, str]:
    """file.s3 metadata for ``bucket`` on ``server`` (Dapr's aws.s3 names)."""
    return {
        "endpoint": server.url,
        "region": "us-east-1",
        "bucket": bucket,
        "accessKey": ACCESS_KEY,
        "secretKey": SECRET_KEY,
        "forcePathStyle": "true",
        **extra,
    }


@asynccontextmanager
async def s3_client(server: S3Server) -> AsyncIterator[Any]:
    """A plain aiobotocore client on ``server``, to look at buckets directly."""
    from aiobotocore.session import get_session

    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    ) as client:
        yield client


async def new_bucket(server: S3Server) -> str:
    """A new, empty bucket of the caller's own."""
    name = f"l8-{uuid.uuid4().hex[:16]}"
    async with s3_client(server) as client:
        await client.create_bucket(Bucket=name)
    return name


def new_bucket_now(server: S3Server) -> str:
    """``new_bucket`` for synchronous callers (metadata tables built outside the event loop)."""
    from botocore.session import get_session as get_sync_session

    name = f"l8-{uuid.uuid4().hex[:16]}"
    client = get_sync_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=server.url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
    )
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()
    return name
