"""What every S3-backed component shares (file.s3, and the aws.s3 binding): the connection fields of
its metadata under the names of Dapr's ``bindings.aws.s3`` (``endpoint``, ``region``, ``bucket``,
``accessKey``, ``secretKey``, ``sessionToken``, ``forcePathStyle``, ``disableSSL``,
``insecureSSL``), one aiobotocore client per component proved by a HEAD of the bucket, and the
translation of botocore's exceptions at the component boundary.

aiobotocore is imported when a component connects, never at import: a sidecar without an S3
component never loads it. Keys are never logged nor put in an error message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from pydantic import SecretStr, field_validator, model_validator

from components.errors import BackendError, ComponentInitError
from components.metadata import ComponentMetadata, GoBool, metadata_error

NOT_FOUND_CODES = frozenset({"NoSuchKey", "404", "NotFound"})
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 60.0


class S3ConnectionMetadata(ComponentMetadata):
    bucket: str
    region: str = "us-east-1"
    awsRegion: str = ""
    """Dapr's other name for ``region`` (taken when ``region`` is not given)."""
    endpoint: str = ""
    """An S3-compatible server (MinIO, Ceph, moto...): ``http(s)://host:port``, or ``host:port``
    (https unless disableSSL). Empty: AWS's own endpoint for the region."""
    accessKey: SecretStr | None = None
    secretKey: SecretStr | None = None
    sessionToken: SecretStr | None = None
    forcePathStyle: GoBool = False
    """``endpoint/bucket/key`` addressing instead of ``bucket.endpoint/key`` (MinIO wants it)."""
    disableSSL: GoBool = False
    insecureSSL: GoBool = False
    """Accept any TLS certificate from the endpoint (a self-signed test server)."""

    @model_validator(mode="before")
    @classmethod
    def _aws_region(cls, values: Any) -> Any:
        if isinstance(values, dict) and not values.get("region") and values.get("awsRegion"):
            return {**values, "region": values["awsRegion"]}
        return values

    @field_validator("bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not 3 <= len(value) <= 63:
            raise metadata_error("give the bucket's name (3 to 63 characters)")
        return value

    @property
    def endpoint_url(self) -> str | None:
        if not self.endpoint:
            return None
        if "://" in self.endpoint:
            return self.endpoint
        return ("http://" if self.disableSSL else "https://") + self.endpoint


async def connect(settings: S3ConnectionMetadata, stack: contextlib.AsyncExitStack) -> Any:
    """An aiobotocore S3 client, entered on ``stack`` (closed with it), once a HEAD of the bucket
    answered; ComponentInitError naming ``bucket`` (missing, refused) or ``endpoint`` (no answer)."""
    from aiobotocore.config import AioConfig
    from aiobotocore.session import get_session
    from aiohttp import ClientError as HttpError
    from botocore.exceptions import BotoCoreError, ClientError

    config = AioConfig(
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        retries={"max_attempts": 3, "mode": "standard"},
        s3={"addressing_style": "path" if settings.forcePathStyle else "auto"},
        # Presigned URLs as AWS's SDKs make them today (SigV4), not botocore's legacy default.
        signature_version="s3v4",
        # S3-compatible servers differ in the checksums they know: send one only where S3 needs it.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    client = await stack.enter_async_context(
        get_session().create_client(
            "s3",
            region_name=settings.region,
            endpoint_url=settings.endpoint_url,
            aws_access_key_id=_secret(settings.accessKey),
            aws_secret_access_key=_secret(settings.secretKey),
            aws_session_token=_secret(settings.sessionToken),
            use_ssl=not settings.disableSSL,
            verify=False if settings.insecureSSL else None,
            config=config,
        )
    )
    try:
        await client.head_bucket(Bucket=settings.bucket)
    except ClientError as exc:
        code = error_code(exc)
        if code in NOT_FOUND_CODES or code == "NoSuchBucket":
            raise ComponentInitError(f"bucket {settings.bucket} does not exist", "bucket") from None
        raise ComponentInitError(f"bucket {settings.bucket} cannot be used: {code}", "bucket") from None
    except (BotoCoreError, HttpError, OSError) as exc:
        where = settings.endpoint_url or f"AWS S3 in {settings.region}"
        raise ComponentInitError(f"S3 at {where} does not answer: {type(exc).__name__}", "endpoint") from None
    return client


def error_code(error: Exception) -> str:
    """The S3 error code of a botocore ClientError (``NoSuchKey``, ``InvalidRange``...)."""
    response = getattr(error, "response", None) or {}
    return str(response.get("Error", {}).get("Code", "")) or type(error).__name__


@contextlib.contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """botocore's and aiohttp's failures as BackendError naming ``what`` and S3's error code. The
    caller handles the codes it expects (a missing key) before this sees them."""
    from aiohttp import ClientError as HttpError
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except ClientError as exc:
        raise BackendError(f"{what}: {error_code(exc)}") from None
    except (BotoCoreError, HttpError, OSError) as exc:
        raise BackendError(f"{what}: {type(exc).__name__}") from None


async def ping_bucket(client: Any, bucket: str) -> None:
    """A component's health check: HEAD on its bucket."""
    with s3_errors(f"s3: bucket {bucket!r} does not answer"):
        await client.head_bucket(Bucket=bucket)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None
