"""``secretKeyRef`` in component files: values read from a secret store before the component
starts (with real Redis), the choice of store, the start order of secret stores, and one-line
start-up errors that name the field but never show a secret's value."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from redis.asyncio import Redis

from app.factory import create_app
from app.settings import Settings
from app.startup import StartupError
from tests.servers import RedisServer


def document(name: str, type: str, *, auth: str | None = None, **metadata: Any) -> dict[str, Any]:
    """A Component; a metadata value given as a dict is a secretKeyRef."""
    items = [
        {"name": key, "secretKeyRef": value} if isinstance(value, dict) else {"name": key, "value": value}
        for key, value in metadata.items()
    ]
    found: dict[str, Any] = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {"type": type, "version": "v1", "metadata": items},
    }
    if auth is not None:
        found["auth"] = {"secretStore": auth}
    return found


@pytest.fixture
def secrets_file(tmp_path: Path, redis_server: RedisServer) -> Path:
    path = tmp_path / "secrets.json"
    path.write_bytes(
        orjson.dumps({"redis": {"host": redis_server.address, "db": "0"}, "plain": "value-of-plain"})
    )
    return path


def file_store(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return document(name, "secretstores.local.file", secretsFile=str(path), multiValued="true", **extra)


@contextlib.asynccontextmanager
async def sidecar(tmp_path: Path, *documents: dict[str, Any]) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    folder = tmp_path / f"resources-{uuid.uuid4().hex[:6]}"
    folder.mkdir()
    (folder / "components.yaml").write_text(yaml.safe_dump_all(documents))
    settings = Settings.load(
        {"data_dir": str(tmp_path / "data"), "app_id": "refs", "resources_paths": [folder]}
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://l8") as client:
        yield app, client


async def start_fails(tmp_path: Path, *documents: dict[str, Any]) -> str:
    with pytest.raises(StartupError) as caught:
        async with sidecar(tmp_path, *documents):
            pass
    message = str(caught.value)
    assert "\n" not in message
    return message


async def test_a_component_gets_its_metadata_from_the_named_store(
    tmp_path: Path, secrets_file: Path, redis_server: RedisServer
) -> None:
    state = document("cache", "state.redis", auth="vault", redisHost={"name": "redis", "key": "host"})
    host = redis_server.address
    async with sidecar(tmp_path, file_store("vault", secrets_file), state) as (_app, client):
        saved = await client.post("/v1.0/state/cache", json=[{"key": "k", "value": 1}])
        assert saved.status_code == 204, saved.text
        assert (await client.get("/v1.0/state/cache/k")).json() == 1
        metadata = (await client.get("/v1.0/metadata")).text
        assert "cache" in metadata
        assert host not in metadata  # a secret never shows in the metadata answer


async def test_key_defaults_to_the_secret_name(tmp_path: Path) -> None:
    path = tmp_path / "single.json"
    path.write_bytes(orjson.dumps({"keyPrefix": "none"}))
    store = document("vault", "secretstores.local.file", secretsFile=str(path))
    lock = document("locks", "lock.in-memory", auth="vault", keyPrefix={"name": "keyPrefix"})
    async with sidecar(tmp_path, store, lock) as (app, _client):
        assert app.state.runtime.components.of("lock")["locks"].metadata["keyPrefix"] == "none"


async def test_without_auth_the_only_secret_store_is_used(tmp_path: Path, secrets_file: Path) -> None:
    state = document("cache", "state.redis", redisHost={"name": "redis", "key": "host"})
    async with sidecar(tmp_path, state, file_store("vault", secrets_file)) as (_app, client):
        assert (await client.post("/v1.0/state/cache", json=[{"key": "k", "value": 1}])).status_code == 204


async def test_without_auth_several_secret_stores_are_ambiguous(tmp_path: Path, secrets_file: Path) -> None:
    state = document("cache", "state.redis", redisHost={"name": "redis", "key": "host"})
    message = await start_fails(
        tmp_path, file_store("one", secrets_file), file_store("two", secrets_file), state
    )
    assert "component 'cache': field 'redisHost': secretKeyRef: several secret stores are loaded" in message


@pytest.mark.parametrize(
    ("auth", "ref", "expected"),
    [
        ("nope", {"name": "redis", "key": "host"}, "secret store 'nope' is not loaded (auth.secretStore)"),
        ("vault", {"name": "absent"}, "cannot read secret 'absent' from 'vault': secret absent not found"),
        ("vault", {"name": "redis", "key": "port"}, "secret 'redis' in 'vault' has no key 'port'"),
    ],
)
async def test_an_unresolvable_reference_fails_start_up_naming_it(
    tmp_path: Path, secrets_file: Path, auth: str, ref: dict[str, str], expected: str
) -> None:
    state = document("cache", "state.redis", auth=auth, redisHost=ref)
    message = await start_fails(tmp_path, file_store("vault", secrets_file), state)
    assert "component 'cache': field 'redisHost'" in message
    assert expected in message


async def test_no_secret_store_at_all(tmp_path: Path) -> None:
    state = document("cache", "state.in-memory", something={"name": "s"})
    assert "secretKeyRef: no secret store is loaded" in await start_fails(tmp_path, state)


async def test_ignore_errors_skips_a_component_whose_reference_fails(
    tmp_path: Path, secrets_file: Path
) -> None:
    state = document("cache", "state.in-memory", auth="vault", something={"name": "absent"})
    state["spec"]["ignoreErrors"] = True
    async with sidecar(tmp_path, file_store("vault", secrets_file), state) as (app, _client):
        assert "cache" not in app.state.runtime.components.of("state")


async def test_a_secret_store_starts_after_the_store_holding_its_credentials(
    tmp_path: Path, secrets_file: Path, redis_server: RedisServer
) -> None:
    prefix = f"refs-{uuid.uuid4().hex[:6]}:"
    client = Redis.from_url(redis_server.url)
    await client.set(prefix + "token", "from-redis")
    await client.aclose()
    # Listed first, but it needs "files" for its host: it starts second.
    shared = document(
        "shared",
        "secretstores.redis",
        auth="files",
        redisHost={"name": "redis", "key": "host"},
        keyPrefix=prefix,
    )
    async with sidecar(tmp_path, shared, file_store("files", secrets_file)) as (_app, client):
        answer = await client.get("/v1.0/secrets/shared/token")
        assert answer.json() == {"token": "from-redis"}


async def test_secret_stores_referring_to_each_other_fail_start_up(
    tmp_path: Path, secrets_file: Path
) -> None:
    one = file_store("one", secrets_file, auth="two", nestedSeparator={"name": "plain"})
    two = file_store("two", secrets_file, auth="one", nestedSeparator={"name": "plain"})
    message = await start_fails(tmp_path, one, two)
    assert "is not loaded (auth.secretStore)" in message


async def test_a_start_up_error_never_shows_the_secret_value(tmp_path: Path) -> None:
    path = tmp_path / "secrets.json"
    path.write_bytes(orjson.dumps({"host": "no-port-hunter2"}))
    store = document("vault", "secretstores.local.file", secretsFile=str(path))
    state = document("cache", "state.redis", auth="vault", redisHost={"name": "host"})
    message = await start_fails(tmp_path, store, state)
    assert "field 'redisHost'" in message
    assert "hunter2" not in message and "***" in message
