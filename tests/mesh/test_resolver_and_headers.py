"""Name resolution settings and the proxy's header rules, without a network (the end-to-end
behaviour is in tests/e2e/test_invoke.py)."""

from __future__ import annotations

from typing import Any

import pytest

from mesh.errors import SettingsError
from mesh.name_resolution import build_resolver as build_from
from mesh.name_resolution import parse_name_resolution
from mesh.proxy import outbound_headers, response_headers
from mesh.resolver import ResolveError, Resolver


def build_resolver(raw: dict[str, Any]) -> Resolver:
    """The resolver of ``name_resolution`` as the settings file gives it."""
    return build_from(parse_name_resolution(raw))


async def test_static_resolution_takes_instances_in_turn() -> None:
    resolver = build_resolver(
        {"type": "static", "apps": {"orders": ["127.0.0.1:1", "127.0.0.1:2"], "one": "h:9"}}
    )
    assert [await resolver.resolve("orders") for _ in range(4)] == ["127.0.0.1:1", "127.0.0.1:2"] * 2
    assert await resolver.resolve("one") == "h:9"
    with pytest.raises(ResolveError, match="couldn't find service: nobody"):
        await resolver.resolve("nobody")
    assert resolver.describe() == {
        "type": "static",
        "apps": {"orders": ["127.0.0.1:1", "127.0.0.1:2"], "one": ["h:9"]},
    }


async def test_no_settings_resolve_nothing() -> None:
    with pytest.raises(ResolveError):
        await build_resolver({}).resolve("orders")


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"type": "consul"}, "name_resolution.type"),
        ({"apps": ["orders"]}, "name_resolution.apps"),
        ({"apps": {"orders": []}}, "name_resolution.apps.orders"),
        ({"apps": {"orders": "no-port"}}, "name_resolution.apps.orders"),
        ({"apps": {"orders": "h:99999"}}, "name_resolution.apps.orders"),
        ({"type": "redis"}, "name_resolution.redisHost"),
        ({"type": "redis", "redisHost": "r:6379", "ttl": "soon"}, "name_resolution.ttl"),
        ({"type": "redis", "redisHost": "r:6379", "cacheSeconds": "0"}, "name_resolution.cacheSeconds"),
        ({"type": "etcd"}, "name_resolution.endpoints"),
        ({"type": "etcd", "endpoints": ["e:2379", "nowhere"]}, "name_resolution.endpoints"),
        ({"type": "etcd", "endpoints": "e:2379", "ttl": "-1"}, "name_resolution.ttl"),
        ({"type": "etcd", "endpoints": "e:2379", "dialTimeout": "x"}, "name_resolution.dialTimeout"),
    ],
)
def test_bad_settings_name_the_field(config: dict[str, object], field: str) -> None:
    with pytest.raises(SettingsError, match=f"^{field}"):
        build_resolver(config)


def test_outbound_headers_drop_hop_by_hop_and_daprs_own_and_replace_what_l8_sets() -> None:
    raw = [
        (b"host", b"l8:3500"),
        (b"Connection", b"keep-alive, X-Secret"),
        (b"x-secret", b"1"),
        (b"transfer-encoding", b"chunked"),
        (b"dapr-app-id", b"orders"),
        (b"dapr-api-token", b"t"),
        (b"grpc-trace-bin", b"x"),
        (b"x-multi", b"a"),
        (b"x-multi", b"b"),
        (b"dapr-caller-app-id", b"spoofed"),
    ]
    headers = outbound_headers(raw, {"dapr-caller-app-id": "me"})
    assert headers == [("x-multi", "a"), ("x-multi", "b"), ("dapr-caller-app-id", "me")]


def test_response_headers_drop_hop_by_hop_ones() -> None:
    raw = [
        (b"Content-Type", b"text/plain"),
        (b"Connection", b"close, x-hop"),
        (b"X-Hop", b"1"),
        (b"Keep-Alive", b"5"),
    ]
    assert response_headers(raw) == [(b"content-type", b"text/plain")]
