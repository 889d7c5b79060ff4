"""bindings.aws.s3 through a real ``l8 run`` against the session's moto server: Dapr's output
binding body in, Dapr's answers out (200 with the binding's JSON and ``metadata.key``, 204 for a
delete, ERR_INVOKE_OUTPUT_BINDING for a missing object), a presigned URL fetched directly from S3,
and the binding listed in GET /v1.0/metadata."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, write_component
from tests.s3_buckets import new_bucket, s3_client, s3_metadata
from tests.servers import S3Server

pytestmark = pytest.mark.e2e


async def test_create_get_list_presign_delete_through_l8(
    l8: L8Launcher, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = await new_bucket(s3_server)
    folder = tmp_path / "resources"
    write_component(folder, "archive", "bindings.aws.s3", s3_metadata(s3_server, bucket))
    sidecar = await asyncio.to_thread(l8, app_id="s3-binding", resources=[folder])
    binary = bytes(range(256)) * 4
    async with httpx.AsyncClient(base_url=sidecar.url, timeout=30) as client:
        created = await client.post(
            "/v1.0/bindings/archive",
            json={"operation": "create", "data": "hello s3", "metadata": {"key": "docs/hello.txt"}},
        )
        assert created.status_code == 200, created.text
        assert created.headers["metadata.key"] == "docs/hello.txt"
        assert created.json() == {"location": f"{s3_server.url}/{bucket}/docs/hello.txt", "versionID": None}
        uploaded = await client.put(
            "/v1.0/bindings/archive",
            json={
                "operation": "create",
                "data": base64.b64encode(binary).decode(),
                "metadata": {"key": "docs/blob.bin", "decodeBase64": "true", "Content-Type": "image/x-test"},
            },
        )
        assert uploaded.status_code == 200, uploaded.text
        async with s3_client(s3_server) as direct:
            answer = await direct.get_object(Bucket=bucket, Key="docs/blob.bin")
            async with answer["Body"] as body:
                assert (await body.read(), answer["ContentType"]) == (binary, "image/x-test")

        got = await client.post(
            "/v1.0/bindings/archive", json={"operation": "get", "metadata": {"key": "docs/hello.txt"}}
        )
        assert (got.status_code, got.content) == (200, b"hello s3")
        encoded = await client.post(
            "/v1.0/bindings/archive",
            json={"operation": "get", "metadata": {"key": "docs/blob.bin", "encodeBase64": "true"}},
        )
        assert base64.b64decode(encoded.content) == binary

        listed = await client.post(
            "/v1.0/bindings/archive", json={"operation": "list", "data": {"maxResults": 1, "prefix": "docs/"}}
        )
        assert listed.status_code == 200, listed.text
        page = listed.json()
        assert ([o["Key"] for o in page["Contents"]], page["IsTruncated"]) == (["docs/blob.bin"], True)
        rest = await client.post(
            "/v1.0/bindings/archive",
            json={"operation": "list", "data": {"marker": "docs/blob.bin", "prefix": "docs/"}},
        )
        assert [o["Key"] for o in rest.json()["Contents"]] == ["docs/hello.txt"]

        presigned = await client.post(
            "/v1.0/bindings/archive",
            json={"operation": "presign", "metadata": {"key": "docs/hello.txt", "presignTTL": "5m"}},
        )
        assert (await client.get(presigned.json()["presignURL"])).content == b"hello s3"

        deleted = await client.post(
            "/v1.0/bindings/archive", json={"operation": "delete", "metadata": {"key": "docs/hello.txt"}}
        )
        assert (deleted.status_code, deleted.content) == (204, b"")
        missing = await client.post(
            "/v1.0/bindings/archive", json={"operation": "get", "metadata": {"key": "docs/hello.txt"}}
        )
        assert missing.status_code == 500
        assert missing.json() == {
            "errorCode": "ERR_INVOKE_OUTPUT_BINDING",
            "message": "error invoking output binding archive: object not found",
        }
        unsupported = await client.post("/v1.0/bindings/archive", json={"operation": "increment"})
        assert unsupported.status_code == 500
        assert (
            "supported operations:create get delete list presign bulkGet bulkCreate bulkDelete"
            in (unsupported.json()["message"])
        )

        metadata = (await client.get("/v1.0/metadata")).json()
        (component,) = [c for c in metadata["components"] if c["name"] == "archive"]
        assert component["type"] == "bindings.aws.s3"
        assert "OUTPUT_BINDING" in component["capabilities"]
