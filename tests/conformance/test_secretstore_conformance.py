"""Every secret store against the contract in components/secretstores/base.py.

Each backend is seeded with the same secrets through its own source (a JSON file, environment
variables, a real Redis written with its own client) and then read through the contract only.
Single-valued backends hold ``{name: {name: value}}`` secrets; multi-valued ones also hold secrets
of several keys. ``local.env`` differs from the others in one documented way: an unknown name
answers ``{name: ""}`` rather than raising.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from redis.asyncio import Redis

from components import registry
from components.secretstores.base import Feature, SecretNotFoundError, SecretStore

Secrets = dict[str, dict[str, str]]
Seed = Callable[[pytest.FixtureRequest, Secrets], Awaitable[dict[str, str]]]
"""Writes the secrets into the backend's source; returns the component metadata reading them."""


async def _file(request: pytest.FixtureRequest, secrets: Secrets, multi: bool) -> dict[str, str]:
    folder: Path = request.getfixturevalue("tmp_path")
    path = folder / f"secrets-{uuid.uuid4().hex[:8]}.json"
    if multi:
        document: dict[str, object] = {name: dict(values) for name, values in secrets.items()}
    else:
        document = {name: values[name] for name, values in secrets.items()}
    path.write_bytes(orjson.dumps(document))
    return {"secretsFile": str(path), "multiValued": "true" if multi else "false"}


async def _single_file(request: pytest.FixtureRequest, secrets: Secrets) -> dict[str, str]:
    return await _file(request, secrets, multi=False)


async def _multi_file(request: pytest.FixtureRequest, secrets: Secrets) -> dict[str, str]:
    return await _file(request, secrets, multi=True)


async def _env(request: pytest.FixtureRequest, secrets: Secrets) -> dict[str, str]:
    monkeypatch: pytest.MonkeyPatch = request.getfixturevalue("monkeypatch")
    prefix = f"L8TEST_{uuid.uuid4().hex[:8].upper()}_"
    for name, values in secrets.items():
        monkeypatch.setenv(prefix + name, values[name])
    return {"prefix": prefix}


async def _redis(request: pytest.FixtureRequest, secrets: Secrets) -> dict[str, str]:
    server = request.getfixturevalue("redis_server")
    prefix = f"conformance-{uuid.uuid4().hex[:8]}/"
    client = Redis.from_url(server.url)
    try:
        for name, values in secrets.items():
            if list(values) == [name]:
                await client.set(prefix + name, values[name])
            else:
                await client.hset(prefix + name, mapping=values)  # type: ignore[arg-type]
    finally:
        await client.aclose()
    return {"redisHost": server.address, "keyPrefix": prefix}


@dataclass(frozen=True, slots=True)
class Backend:
    id: str
    type: str
    seed: Seed
    multi_valued: bool
    missing_is_empty: bool = False
    """local.env: an unknown name answers {name: ""}, as daprd's env store does."""


BACKENDS = (
    Backend("local.file", "secretstores.local.file", _single_file, multi_valued=False),
    Backend("local.file-multi", "secretstores.local.file", _multi_file, multi_valued=True),
    Backend("local.env", "secretstores.local.env", _env, multi_valued=False, missing_is_empty=True),
    Backend("redis", "secretstores.redis", _redis, multi_valued=True),
)

SINGLE: Secrets = {
    "db-password": {"db-password": "hunter2"},
    "api_key": {"api_key": "k-123"},
    "UNICODE": {"UNICODE": "pässwörd ✓"},
    "quotes": {"quotes": 'a "quoted" value\nwith a newline'},
    "empty": {"empty": ""},
}
MULTI: Secrets = {"database": {"user": "admin", "password": "p@ss", "port": "5432"}}


@pytest.fixture(params=BACKENDS, ids=lambda backend: backend.id)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param  # type: ignore[no-any-return]


Open = Callable[[Secrets], Awaitable[SecretStore]]


@pytest.fixture
async def open_store(backend: Backend, request: pytest.FixtureRequest) -> AsyncIterator[Open]:
    opened: list[SecretStore] = []

    async def open_(secrets: Secrets) -> SecretStore:
        metadata = await backend.seed(request, secrets)
        store: SecretStore = registry.SECRETSTORES.create(backend.type)
        await store.init(metadata)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        await store.close()


def _seeded(backend: Backend) -> Secrets:
    return {**SINGLE, **MULTI} if backend.multi_valued else dict(SINGLE)


async def test_get_answers_a_single_valued_secret_by_its_name(backend: Backend, open_store: Open) -> None:
    store = await open_store(_seeded(backend))
    for name, values in SINGLE.items():
        assert await store.get(name, {}) == values


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b.multi_valued], ids=lambda backend: backend.id)
async def test_get_answers_every_key_of_a_multi_valued_secret(backend: Backend, open_store: Open) -> None:
    store = await open_store(_seeded(backend))
    assert await store.get("database", {}) == MULTI["database"]


async def test_features_claim_multiple_values_exactly_when_the_backend_has_them(
    backend: Backend, open_store: Open
) -> None:
    store = await open_store(_seeded(backend))
    assert (Feature.MULTIPLE_KEY_VALUES_PER_SECRET in store.features()) is backend.multi_valued


async def test_an_unknown_name_is_not_found(backend: Backend, open_store: Open) -> None:
    store = await open_store(_seeded(backend))
    name = f"absent-{uuid.uuid4().hex[:6]}"
    if backend.missing_is_empty:
        assert await store.get(name, {}) == {name: ""}
        return
    with pytest.raises(SecretNotFoundError) as caught:
        await store.get(name, {})
    assert str(caught.value) == f"secret {name} not found"


async def test_bulk_get_answers_every_secret_with_its_keys(backend: Backend, open_store: Open) -> None:
    seeded = _seeded(backend)
    store = await open_store(seeded)
    assert await store.bulk_get({}) == seeded


async def test_bulk_get_of_an_empty_store_is_empty(backend: Backend, open_store: Open) -> None:
    store = await open_store({})
    assert await store.bulk_get({}) == {}


async def test_request_metadata_the_store_does_not_know_is_ignored(
    backend: Backend, open_store: Open
) -> None:
    store = await open_store(_seeded(backend))
    assert await store.get("api_key", {"version_id": "7", "namespace": "x"}) == {"api_key": "k-123"}
    assert await store.bulk_get({"version_id": "7"}) == _seeded(backend)


async def test_answers_are_copies_the_caller_may_change(backend: Backend, open_store: Open) -> None:
    store = await open_store(_seeded(backend))
    first = await store.get("api_key", {})
    assert first is not None
    first["api_key"] = "changed"
    everything = await store.bulk_get({})
    everything["api_key"]["api_key"] = "changed"
    assert await store.get("api_key", {}) == {"api_key": "k-123"}


async def test_close_is_safe_after_use(backend: Backend, open_store: Open) -> None:
    store = await open_store(_seeded(backend))
    await store.get("api_key", {})
    await store.close()
    await store.close()
