"""What is specific to each secret store: local.file's flattening and its errors, local.env's
refused variables, and the Redis store's layout, types and failures (against real Redis)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

from components.errors import BackendError, ComponentInitError, MetadataError
from components.secretstores.base import SecretNotFoundError
from components.secretstores.local_env import LocalEnvSecretStore
from components.secretstores.local_file import LocalFileSecretStore
from components.secretstores.redis import RedisSecretStore
from tests.servers import RedisServer, free_port

NESTED = b"""{
  "db": {"user": "u", "tls": {"ca": "CA-TEXT"}},
  "hosts": ["a", "b"],
  "port": 5432,
  "debug": true,
  "nothing": null,
  "plain": "p"
}"""


async def _file_store(tmp_path: Path, content: bytes, **metadata: str) -> LocalFileSecretStore:
    path = tmp_path / "secrets.json"
    path.write_bytes(content)
    store = LocalFileSecretStore()
    await store.init({"secretsFile": str(path), **metadata})
    return store


async def test_local_file_flattens_nested_keys_with_the_separator(tmp_path: Path) -> None:
    store = await _file_store(tmp_path, NESTED)
    assert await store.bulk_get({}) == {
        "db:user": {"db:user": "u"},
        "db:tls:ca": {"db:tls:ca": "CA-TEXT"},
        "hosts:0": {"hosts:0": "a"},
        "hosts:1": {"hosts:1": "b"},
        "port": {"port": "5432"},
        "debug": {"debug": "true"},
        "nothing": {"nothing": ""},
        "plain": {"plain": "p"},
    }
    with pytest.raises(SecretNotFoundError):
        await store.get("db", {})


async def test_local_file_takes_another_separator(tmp_path: Path) -> None:
    store = await _file_store(tmp_path, NESTED, nestedSeparator=".")
    assert await store.get("db.tls.ca", {}) == {"db.tls.ca": "CA-TEXT"}


async def test_local_file_multi_valued_makes_each_top_level_key_a_secret(tmp_path: Path) -> None:
    store = await _file_store(tmp_path, NESTED, multiValued="true")
    assert await store.get("db", {}) == {"user": "u", "tls:ca": "CA-TEXT"}
    assert await store.get("plain", {}) == {"plain": "p"}
    # Top-level numbers, booleans and arrays are not secrets in this mode (as daprd).
    for skipped in ("port", "debug", "hosts"):
        with pytest.raises(SecretNotFoundError):
            await store.get(skipped, {})
    assert sorted(await store.bulk_get({})) == ["db", "plain"]


async def test_local_file_relative_path_is_read_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "relative.json").write_bytes(b'{"a": "1"}')
    monkeypatch.chdir(tmp_path)
    store = LocalFileSecretStore()
    await store.init({"secretsFile": "relative.json"})
    assert await store.get("a", {}) == {"a": "1"}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"a": {"b": "1"}, "a:b": "2"}', "the secret 'a:b' is defined twice"),
        (b'["not", "an", "object"]', "must hold a JSON object"),
        (b'{"password": "hunter2-secret" oops', "is not valid JSON (line 1, column"),
    ],
)
async def test_local_file_bad_content_fails_init_without_quoting_it(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    with pytest.raises(ComponentInitError) as caught:
        await _file_store(tmp_path, content)
    assert caught.value.field == "secretsFile"
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


async def test_local_file_needs_a_readable_file(tmp_path: Path) -> None:
    with pytest.raises(MetadataError) as missing:
        await LocalFileSecretStore().init({})
    assert missing.value.field == "secretsFile"
    with pytest.raises(ComponentInitError) as unreadable:
        await LocalFileSecretStore().init({"secretsFile": str(tmp_path / "absent.json")})
    assert "No such file" in str(unreadable.value)


async def test_local_env_reads_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MYAPP_TOKEN", "t")
    monkeypatch.setenv("OTHER_TOKEN", "o")
    store = LocalEnvSecretStore()
    await store.init({"prefix": "MYAPP_"})
    assert await store.get("TOKEN", {}) == {"TOKEN": "t"}
    assert await store.get("MISSING", {}) == {"MISSING": ""}
    assert await store.bulk_get({}) == {"TOKEN": {"TOKEN": "t"}}


@pytest.mark.parametrize(
    "variable", ["APP_API_TOKEN", "DAPR_API_TOKEN", "dapr_anything", "L8_API_TOKEN", "L8_MESH_TOKEN"]
)
async def test_local_env_never_serves_the_sidecars_own_credentials(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "credential")
    store = LocalEnvSecretStore()
    await store.init({})
    assert await store.get(variable, {}) == {variable: ""}
    assert variable not in await store.bulk_get({})


async def test_local_env_prefix_alone_is_not_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PFX_", "bare")
    store = LocalEnvSecretStore()
    await store.init({"prefix": "PFX_"})
    assert await store.bulk_get({}) == {}


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> Redis:
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


async def _redis_store(redis_server: RedisServer, prefix: str) -> RedisSecretStore:
    store = RedisSecretStore()
    await store.init({"redisHost": redis_server.address, "keyPrefix": prefix})
    return store


async def test_redis_reads_strings_and_hashes_and_refuses_other_types(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    prefix = f"secrets-{uuid.uuid4().hex[:6]}:"
    await redis_client.set(prefix + "token", "t")
    await redis_client.hset(prefix + "db", mapping={"user": "u", "password": "p"})
    await redis_client.rpush(prefix + "queue", "x")
    store = await _redis_store(redis_server, prefix)
    try:
        assert await store.get("token", {}) == {"token": "t"}
        assert await store.get("db", {}) == {"user": "u", "password": "p"}
        with pytest.raises(BackendError, match="secret queue is a Redis list, not a string or a hash"):
            await store.get("queue", {})
        # Bulk skips keys of other types rather than failing.
        assert await store.bulk_get({}) == {"token": {"token": "t"}, "db": {"user": "u", "password": "p"}}
    finally:
        await store.close()


async def test_redis_bulk_reads_only_its_prefix_with_glob_characters_taken_literally(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    base = f"secrets-{uuid.uuid4().hex[:6]}"
    await redis_client.set(f"{base}[x]*:a", "1")
    await redis_client.set(f"{base}y:b", "2")  # would match the prefix read as a glob
    store = await _redis_store(redis_server, f"{base}[x]*:")
    try:
        assert await store.bulk_get({}) == {"a": {"a": "1"}}
    finally:
        await store.close()


async def test_redis_bulk_reads_more_secrets_than_one_scan_batch(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    prefix = f"secrets-{uuid.uuid4().hex[:6]}:"
    await redis_client.mset({f"{prefix}s{i}": str(i) for i in range(2500)})
    store = await _redis_store(redis_server, prefix)
    try:
        found = await store.bulk_get({})
        assert len(found) == 2500
        assert found["s1234"] == {"s1234": "1234"}
    finally:
        await store.close()


async def test_redis_script_is_reloaded_after_script_flush(
    redis_server: RedisServer, redis_client: Redis
) -> None:
    prefix = f"secrets-{uuid.uuid4().hex[:6]}:"
    await redis_client.set(prefix + "a", "1")
    store = await _redis_store(redis_server, prefix)
    try:
        assert await store.get("a", {}) == {"a": "1"}
        await redis_client.script_flush()
        assert await store.get("a", {}) == {"a": "1"}
        assert await store.bulk_get({}) == {"a": {"a": "1"}}
    finally:
        await store.close()


async def test_redis_unreachable_fails_init_naming_the_host() -> None:
    with pytest.raises(ComponentInitError) as caught:
        await RedisSecretStore().init({"redisHost": f"127.0.0.1:{free_port()}", "dialTimeout": "1s"})
    assert caught.value.field == "redisHost"


async def test_redis_going_away_is_a_backend_error(own_redis: RedisServer) -> None:
    store = RedisSecretStore()
    await store.init({"redisHost": own_redis.address, "readTimeout": "1s"})
    try:
        own_redis.stop()
        with pytest.raises(BackendError):
            await store.get("anything", {})
        with pytest.raises(BackendError):
            await store.bulk_get({})
    finally:
        await store.close()
