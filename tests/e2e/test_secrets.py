"""The secrets building block through real ``l8 run`` processes: a resources folder holding only a
``local.file`` store, a Redis store shared by two sidecars, scopes from ``--config``, an
HTTPEndpoint whose header comes from a secret, and logs that never carry a secret value."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import orjson
import pytest
import yaml
from redis.asyncio import Redis

from tests.e2e.process import L8Launcher, write_component
from tests.echo_app import echo_app
from tests.servers import LOOPBACK, RedisServer

pytestmark = pytest.mark.e2e

VALUE = "s3cr3t-value-4f1d"


def _secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.json"
    path.write_bytes(orjson.dumps({"api-key": VALUE, "db": {"user": "u", "password": VALUE + "-db"}}))
    return path


async def test_a_folder_with_only_a_local_file_store_serves_secrets(l8: L8Launcher, tmp_path: Path) -> None:
    folder = tmp_path / "resources"
    write_component(
        folder, "localsecretstore", "secretstores.local.file", {"secretsFile": str(_secrets_file(tmp_path))}
    )
    process = await asyncio.to_thread(l8, resources=[folder], args=["--log-level", "debug"])
    async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
        single = await client.get("/v1.0/secrets/localsecretstore/api-key")
        assert single.status_code == 200 and single.json() == {"api-key": VALUE}
        bulk = await client.get("/v1.0/secrets/localsecretstore/bulk")
        assert bulk.json() == {
            "api-key": {"api-key": VALUE},
            "db:password": {"db:password": VALUE + "-db"},
            "db:user": {"db:user": "u"},
        }
        missing = await client.get("/v1.0/secrets/localsecretstore/nope")
        assert missing.status_code == 500 and missing.json()["errorCode"] == "ERR_SECRET_GET"
        components = (await client.get("/v1.0/metadata")).json()["components"]
        assert {
            "name": "localsecretstore",
            "type": "secretstores.local.file",
            "version": "v1",
            "capabilities": [],
        } in components
    process.stop_ok()
    assert VALUE not in process.stderr
    assert "localsecretstore" in process.stderr  # the log did run at debug level


async def test_scopes_from_the_config_file(l8: L8Launcher, tmp_path: Path) -> None:
    folder = tmp_path / "resources"
    write_component(
        folder,
        "vault",
        "secretstores.local.file",
        {"secretsFile": str(_secrets_file(tmp_path)), "multiValued": "true"},
    )
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "dapr.io/v1alpha1",
                "kind": "Configuration",
                "metadata": {"name": "scoped"},
                "spec": {
                    "secrets": {
                        "scopes": [{"storeName": "vault", "defaultAccess": "deny", "allowedSecrets": ["db"]}]
                    }
                },
            }
        )
    )
    process = await asyncio.to_thread(l8, resources=[folder], args=["--config", str(config)])
    async with httpx.AsyncClient(base_url=process.url, timeout=10) as client:
        assert (await client.get("/v1.0/secrets/vault/db")).json() == {"user": "u", "password": VALUE + "-db"}
        denied = await client.get("/v1.0/secrets/vault/api-key")
        assert denied.status_code == 403
        assert denied.json() == {
            "errorCode": "ERR_PERMISSION_DENIED",
            "message": 'access denied by policy to get "api-key" from "vault"',
        }
        assert list((await client.get("/v1.0/secrets/vault/bulk")).json()) == ["db"]


async def test_two_sidecars_read_the_secrets_an_operator_wrote_to_redis(
    l8: L8Launcher, tmp_path: Path, redis_server: RedisServer
) -> None:
    prefix = f"e2e-secrets-{uuid.uuid4().hex[:6]}:"
    folder = tmp_path / "resources"
    write_component(
        folder, "shared", "secretstores.redis", {"redisHost": redis_server.address, "keyPrefix": prefix}
    )
    first, second = await asyncio.gather(
        asyncio.to_thread(l8, app_id="one", resources=[folder]),
        asyncio.to_thread(l8, app_id="two", resources=[folder]),
    )
    client = Redis.from_url(redis_server.url)
    await client.hset(prefix + "db", mapping={"user": "u", "password": "p"})
    async with httpx.AsyncClient(timeout=10) as http:
        for process in (first, second):
            answer = await http.get(f"{process.url}/v1.0/secrets/shared/db")
            assert answer.json() == {"password": "p", "user": "u"}
        await client.hset(prefix + "db", "password", "rotated")  # read fresh on every request
        assert (await http.get(f"{second.url}/v1.0/secrets/shared/db")).json()["password"] == "rotated"
    await client.aclose()


async def test_an_http_endpoint_header_comes_from_a_secret(l8: L8Launcher, tmp_path: Path) -> None:
    folder = tmp_path / "resources"
    write_component(folder, "vault", "secretstores.local.file", {"secretsFile": str(_secrets_file(tmp_path))})
    async with echo_app() as port:
        endpoint = {
            "apiVersion": "dapr.io/v1alpha1",
            "kind": "HTTPEndpoint",
            "metadata": {"name": "partner"},
            "spec": {
                "baseUrl": f"http://{LOOPBACK}:{port}",
                "headers": [
                    {"name": "x-api-key", "secretKeyRef": {"name": "api-key", "key": "api-key"}},
                    {"name": "x-plain", "value": "p"},
                ],
            },
            "auth": {"secretStore": "vault"},
        }
        (folder / "endpoint.yaml").write_text(yaml.safe_dump(endpoint))
        process = await asyncio.to_thread(l8, resources=[folder])
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(f"{process.url}/v1.0/invoke/partner/method/hello")
            assert answer.status_code == 200, answer.text
            headers = dict(answer.json()["headers"])
            assert headers["x-api-key"] == VALUE
            assert headers["x-plain"] == "p"
