"""The router suites' shared pieces: an l8 app built from Dapr component YAML and driven over ASGI,
the table of state backends (the only place that knows them), and assertions on Dapr's answers.

Redis is the session's one server (``redis_server`` in tests/conftest.py): every sidecar gets an
app id of its own, so with the default ``appid`` key prefix tests never see each other's keys.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import pytest
import yaml
from fastapi import FastAPI

from app.factory import create_app
from app.settings import Settings

JSON = "application/json"
STATE = "/v1.0/state"
QUERY = "/v1.0-alpha1/state"


def component(name: str, type: str, **metadata: str) -> str:
    """A Dapr Component document."""
    document = {
        "apiVersion": "dapr.io/v1alpha1",
        "kind": "Component",
        "metadata": {"name": name},
        "spec": {
            "type": type,
            "version": "v1",
            "metadata": [{"name": key, "value": value} for key, value in metadata.items()],
        },
    }
    return yaml.safe_dump(document, sort_keys=False)


# -- the backends ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Backend:
    id: str
    type: str
    metadata: Callable[[pytest.FixtureRequest], dict[str, str]]
    """Built per test from the test's fixtures (tmp_path, redis_server...)."""
    capabilities: frozenset[str]
    """What GET /v1.0/metadata must report for a store of this type."""

    def component(self, name: str, request: pytest.FixtureRequest, **extra: str) -> str:
        return component(name, self.type, **self.metadata(request), **extra)


BACKENDS = (
    Backend(
        "in-memory",
        "state.in-memory",
        lambda request: {},
        frozenset({"ETAG", "TRANSACTIONAL", "QUERY_API", "TTL", "ACTOR"}),
    ),
    Backend(
        "sqlite",
        "state.sqlite",
        lambda request: {"connectionString": str(request.getfixturevalue("tmp_path") / "state.db")},
        frozenset({"ETAG", "TRANSACTIONAL", "QUERY_API", "TTL", "ACTOR"}),
    ),
    Backend(
        "redis",
        "state.redis",
        lambda request: {"redisHost": request.getfixturevalue("redis_server").address},
        frozenset({"ETAG", "TRANSACTIONAL", "TTL", "ACTOR"}),
    ),
)
BY_ID = {backend.id: backend for backend in BACKENDS}


def claiming(*capabilities: str) -> Callable[[Any], Any]:
    """Run the test only against backends the table says claim every one of ``capabilities``."""
    return _select(lambda backend: set(capabilities) <= backend.capabilities)


def lacking(capability: str) -> Callable[[Any], Any]:
    """Run the test only against backends the table says do not claim ``capability``."""
    return _select(lambda backend: capability not in backend.capabilities)


def _select(choose: Callable[[Backend], bool]) -> Callable[[Any], Any]:
    def mark(test: Any) -> Any:
        test.backend_filter = choose
        return test

    return mark


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        choose = getattr(metafunc.function, "backend_filter", lambda backend: True)
        chosen = [pytest.param(b, id=b.id) for b in BACKENDS if choose(b)]
        metafunc.parametrize("backend", chosen)


# -- the sidecar -----------------------------------------------------------------------------------


@dataclass(slots=True)
class Sidecar:
    app: FastAPI
    client: httpx.AsyncClient
    app_id: str
    headers: dict[str, str] = field(default_factory=dict)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def save(
        self, store: str, items: list[dict[str, Any]], *, method: str = "POST", **kwargs: Any
    ) -> httpx.Response:
        return await self.request(method, f"{STATE}/{store}", json=items, **kwargs)

    async def saved(self, store: str, key: str, value: Any, **item: Any) -> str:
        """Save one item, which must succeed; its new ETag."""
        response = await self.save(store, [{"key": key, "value": value, **item}])
        assert response.status_code == 204, response.text
        current = await self.get(store, key)
        assert current.status_code == 200, current.text
        return current.headers["etag"]

    async def get(self, store: str, key: str, **kwargs: Any) -> httpx.Response:
        return await self.request("GET", f"{STATE}/{store}/{key}", **kwargs)

    async def delete(self, store: str, key: str, **kwargs: Any) -> httpx.Response:
        return await self.request("DELETE", f"{STATE}/{store}/{key}", **kwargs)

    async def bulk(self, store: str, keys: list[str], **kwargs: Any) -> httpx.Response:
        return await self.request("POST", f"{STATE}/{store}/bulk", json={"keys": keys}, **kwargs)

    async def transact(self, store: str, operations: list[dict[str, Any]], **kwargs: Any) -> httpx.Response:
        body = {"operations": operations}
        return await self.request("POST", f"{STATE}/{store}/transaction", json=body, **kwargs)

    async def query(self, store: str, query: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return await self.request("POST", f"{QUERY}/{store}/query", json=query, **kwargs)

    async def value(self, store: str, key: str) -> Any:
        """The stored JSON value, or None for a missing key (asserting the 200/204 shapes)."""
        response = await self.get(store, key)
        if response.status_code == 204:
            assert response.content == b""
            assert "etag" not in response.headers
            return None
        assert response.status_code == 200, response.text
        return response.json()

    async def metadata(self) -> dict[str, Any]:
        response = await self.request("GET", "/v1.0/metadata")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == JSON
        body: dict[str, Any] = response.json()
        return body

    async def capabilities(self, store: str) -> set[str]:
        components = {c["name"]: c for c in (await self.metadata())["components"]}
        return set(components[store]["capabilities"])

    def store_instance(self, name: str) -> Any:
        """The live component behind ``name``, to look at storage keys through its own contract."""
        return self.app.state.runtime.components.of("state")[name].instance


class StartSidecar(Protocol):
    def __call__(self, *components: str, **settings: Any) -> Awaitable[Sidecar]: ...


@pytest.fixture
async def start_sidecar(tmp_path: Any) -> AsyncIterator[StartSidecar]:
    """``await start_sidecar(component_yaml, ..., **settings)``: a started app with exactly those
    components (none at all when given none) and a client on it; stopped at the end of the test."""
    async with contextlib.AsyncExitStack() as stack:
        count = 0

        async def start(*components: str, **settings: Any) -> Sidecar:
            nonlocal count
            count += 1
            resources = tmp_path / f"resources-{count}"
            resources.mkdir()
            for index, text in enumerate(components):
                (resources / f"component-{index}.yaml").write_text(text, encoding="utf-8")
            overrides = {
                "data_dir": str(tmp_path / "data"),
                "app_id": f"myapp-{uuid.uuid4().hex[:8]}",
                "resources_paths": [resources],
                **settings,
            }
            app = create_app(Settings.load(overrides))
            await stack.enter_async_context(app.lifespan())
            client = await stack.enter_async_context(
                httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://l8")
            )
            return Sidecar(app, client, overrides["app_id"])

        yield start


# -- assertions ------------------------------------------------------------------------------------


def assert_error(
    response: httpx.Response,
    status: int,
    code: str,
    *,
    message: str | None = None,
    details: list[str] | None = None,
) -> dict[str, Any]:
    """A Dapr error answer: the status, JSON content type, and a body with exactly errorCode and
    message, plus details (whose ``@type`` names, in order, are ``details``) when given."""
    assert response.status_code == status, f"{response.status_code} {response.text}"
    assert response.headers["content-type"] == JSON
    body: dict[str, Any] = response.json()
    expected_keys = {"errorCode", "message", "details"} if details else {"errorCode", "message"}
    assert set(body) == expected_keys, body
    assert body["errorCode"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    if message is not None:
        assert body["message"] == message
    if details:
        assert [detail["@type"].rsplit(".", 1)[-1] for detail in body["details"]] == details, body
    return body


def detail(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """The one detail of type ``kind`` (ErrorInfo, ResourceInfo, BadRequest, Help)."""
    found = [d for d in body["details"] if d["@type"] == f"type.googleapis.com/google.rpc.{kind}"]
    assert len(found) == 1, body
    return found[0]
