"""Service invocation through real ``l8 run`` processes to a real app (tests/echo_app.py): what the
app receives, what the caller gets back, sidecar to sidecar through static name resolution, the
``dapr-app-id`` header and basic-auth forms, HTTPEndpoint and URL targets, errors, and a large
body streamed both ways."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.e2e.process import L8Launcher, L8Process
from tests.echo_app import calls, echo_app

pytestmark = pytest.mark.e2e

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
async def app_port() -> AsyncIterator[int]:
    async with echo_app() as port:
        yield port


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


def headers_of(answer: dict[str, Any]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in answer["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return found


async def started(l8: L8Launcher, **options: Any) -> L8Process:
    return await asyncio.to_thread(l8, **options)


def settings_file(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
async def sidecar(l8: L8Launcher, app_port: int) -> L8Process:
    return await started(
        l8, app_id="back", args=["--app-port", str(app_port)], env={"APP_API_TOKEN": "app-secret"}
    )


# -- what the app receives and what comes back ------------------------------------------------------


@pytest.mark.parametrize("verb", ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
async def test_every_verb_reaches_the_method_with_path_query_and_body(
    sidecar: L8Process, client: httpx.AsyncClient, verb: str
) -> None:
    body = b"\x00\x01binary\xff" if verb not in ("GET", "OPTIONS") else b""
    answer = await client.request(
        verb,
        f"{sidecar.url}/v1.0/invoke/back/method/orders/a%2Fb/new?x=1&x=2&y=%20z",
        content=body,
        headers={"content-type": "application/x-thing"} if body else {},
    )
    assert answer.status_code == 200, answer.text
    echoed = answer.json()
    assert echoed["method"] == verb
    assert echoed["path"] == "/orders/a%2Fb/new"  # an encoded slash stays encoded
    assert echoed["query"] == "x=1&x=2&y=%20z"  # the raw query string, repeated keys kept
    assert echoed["body_length"] == len(body)
    assert echoed["body_sha256"] == hashlib.sha256(body).hexdigest()
    if body:
        assert headers_of(echoed)["content-type"] == ["application/x-thing"]


async def test_head_answers_the_apps_headers_without_a_body(
    sidecar: L8Process, client: httpx.AsyncClient
) -> None:
    answer = await client.head(f"{sidecar.url}/v1.0/invoke/back/method/status/204")
    assert answer.status_code == 204 and answer.content == b""
    assert answer.headers["x-app"] == "yes"


async def test_headers_the_app_gets(sidecar: L8Process, client: httpx.AsyncClient) -> None:
    answer = await client.post(
        f"{sidecar.url}/v1.0/invoke/back/method/headers",
        content=b"{}",
        headers=[
            ("content-type", "application/json"),
            ("x-multi", "one"),
            ("x-multi", "two"),
            ("connection", "keep-alive, x-private"),
            ("x-private", "hop-by-hop: named by Connection"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("trace-bin", "binary metadata"),
            ("dapr-caller-app-id", "spoofed"),
            ("traceparent", TRACEPARENT),
        ],
    )
    got = headers_of(answer.json())
    assert got["x-multi"] == ["one", "two"]
    for dropped in ("x-private", "keep-alive", "te", "trace-bin", "dapr-app-id"):
        assert dropped not in got, dropped
    assert got["dapr-caller-app-id"] == ["back"]  # a caller's copy is overwritten
    assert got["dapr-callee-app-id"] == ["back"]
    assert got["dapr-api-token"] == ["app-secret"]  # APP_API_TOKEN towards the app
    trace = got["traceparent"][0].split("-")
    assert trace[1] == TRACEPARENT.split("-")[1] and trace[2] != TRACEPARENT.split("-")[2]
    # The caller's own headers, and none that the proxy's client would add of its own.
    assert got["user-agent"] == [f"python-httpx/{httpx.__version__}"]
    assert got["accept-encoding"] == ["gzip, deflate"]


@pytest.mark.parametrize("status", [200, 201, 301, 400, 404, 418, 500, 503])
async def test_the_apps_status_headers_and_body_come_back_unchanged(
    sidecar: L8Process, client: httpx.AsyncClient, status: int
) -> None:
    answer = await client.get(f"{sidecar.url}/v1.0/invoke/back/method/status/{status}")
    assert answer.status_code == status
    assert answer.json() == {"status": status}  # no Dapr error wrapping, redirects not followed
    assert answer.headers["x-app"] == "yes"
    assert "x-hop" not in answer.headers  # named by the app's Connection header: hop-by-hop


async def test_the_method_path_is_cleaned_as_dapr_cleans_it(
    sidecar: L8Process, client: httpx.AsyncClient
) -> None:
    raw = httpx.URL(f"{sidecar.url}/v1.0/invoke/back/method/a/./b/../c/")
    answer = await client.get(raw)
    assert answer.json()["path"] == "/a/c"  # Go's path.Clean: dot segments and the trailing slash go
    escaped = await client.get(httpx.URL(f"{sidecar.url}/v1.0/invoke/back/method/a/%2e%2E/%2E%2e/etc/x"))
    assert escaped.json()["path"] == "/etc/x"  # escaped dots are dot segments too: no way above the root


async def test_the_app_id_header_and_basic_auth_invoke_on_any_other_path(
    sidecar: L8Process, client: httpx.AsyncClient
) -> None:
    by_header = await client.post(
        f"{sidecar.url}/neworder?q=1", content=b"x", headers={"dapr-app-id": "back"}
    )
    assert by_header.json()["path"] == "/neworder" and by_header.json()["query"] == "q=1"
    assert "dapr-app-id" not in headers_of(by_header.json())
    credentials = base64.b64encode(b"dapr-app-id:back").decode()
    by_auth = await client.get(f"{sidecar.url}/neworder", headers={"authorization": f"Basic {credentials}"})
    assert by_auth.status_code == 200 and by_auth.json()["path"] == "/neworder"
    # The header wins even on an invoke path, whose whole path is then the method.
    both = await client.get(f"{sidecar.url}/v1.0/invoke/nobody/method/m", headers={"dapr-app-id": "back"})
    assert both.json()["path"] == "/v1.0/invoke/nobody/method/m"


# -- errors --------------------------------------------------------------------------------------


async def test_calls_that_cannot_be_made_answer_err_direct_invoke(
    l8: L8Launcher, sidecar: L8Process, client: httpx.AsyncClient
) -> None:
    unknown = await client.get(f"{sidecar.url}/v1.0/invoke/nobody/method/x")
    assert unknown.status_code == 500
    assert unknown.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert unknown.json()["message"].startswith("failed to invoke, id: nobody, err: ")
    no_id = await client.get(f"{sidecar.url}/not-a-route")
    assert no_id.status_code == 404 and no_id.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    bad_id = await client.get(f"{sidecar.url}/v1.0/invoke/a.b.c/method/x")
    assert bad_id.status_code == 500 and "invalid app id" in bad_id.json()["message"]
    control = await client.get(f"{sidecar.url}/v1.0/invoke/back/method/a%23b")
    assert control.status_code == 500 and control.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    lonely = await started(l8, app_id="lonely")  # no --app-port
    no_app = await client.get(f"{lonely.url}/v1.0/invoke/lonely/method/x")
    assert no_app.status_code == 500 and "app channel" in no_app.json()["message"]


async def test_a_body_over_the_limit_is_refused_before_the_app_is_called(
    sidecar: L8Process, client: httpx.AsyncClient
) -> None:
    before = calls["/too-big"]
    answer = await client.post(f"{sidecar.url}/v1.0/invoke/back/method/too-big", content=b"x" * (5 << 20))
    assert answer.status_code == 500 and answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert "stream too large" in answer.json()["message"]
    assert calls["/too-big"] == before  # the app never saw it


async def test_an_app_that_is_down_answers_err_direct_invoke(
    l8: L8Launcher, client: httpx.AsyncClient
) -> None:
    async with echo_app() as port:
        pass  # the port is free again: nothing listens there
    process = await started(l8, app_id="gone", args=["--app-port", str(port)])
    answer = await client.get(f"{process.url}/v1.0/invoke/gone/method/x")
    assert answer.status_code == 500
    assert answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert "gone" in answer.json()["message"]


# -- other targets ---------------------------------------------------------------------------------


async def test_another_app_is_called_through_its_own_sidecar(
    l8: L8Launcher, sidecar: L8Process, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    config = settings_file(
        tmp_path,
        "front.yaml",
        f"name_resolution:\n  type: static\n  apps:\n    back: 127.0.0.1:{sidecar.port}\n",
    )
    front = await started(l8, app_id="front", args=["--config", str(config)])
    metadata = (await client.get(f"{front.url}/v1.0/metadata")).json()
    assert metadata["nameResolution"] == {"type": "static", "apps": {"back": [f"127.0.0.1:{sidecar.port}"]}}
    answer = await client.put(
        f"{front.url}/v1.0/invoke/back/method/orders/1?v=2",
        content=b"payload",
        headers={"traceparent": TRACEPARENT},
    )
    assert answer.status_code == 200, answer.text
    echoed = answer.json()
    got = headers_of(echoed)
    assert (echoed["method"], echoed["path"], echoed["query"], echoed.get("body")) == (
        "PUT",
        "/orders/1",
        "v=2",
        "payload",
    )
    assert got["dapr-caller-app-id"] == ["front"]  # the calling app, vouched for by its sidecar
    assert got["dapr-callee-app-id"] == ["back"]
    assert got["dapr-api-token"] == ["app-secret"]  # the callee's sidecar adds its app's token
    assert "l8-forwarded-by" not in got
    assert got["traceparent"][0].split("-")[1] == TRACEPARENT.split("-")[1]
    status = await client.get(f"{front.url}/v1.0/invoke/back/method/status/418")
    assert status.status_code == 418 and status.headers["x-app"] == "yes"


async def test_a_fleet_sharing_an_api_token_invokes_across_sidecars(
    l8: L8Launcher, app_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    fleet = {"DAPR_API_TOKEN": "fleet-token"}
    back = await started(l8, app_id="back", args=["--app-port", str(app_port)], env=fleet)
    config = settings_file(
        tmp_path, "front.yaml", f"name_resolution: {{type: static, apps: {{back: 127.0.0.1:{back.port}}}}}\n"
    )
    front = await started(l8, app_id="front", args=["--config", str(config)], env=fleet)
    answer = await client.get(
        f"{front.url}/v1.0/invoke/back/method/x", headers={"dapr-api-token": "fleet-token"}
    )
    assert answer.status_code == 200, answer.text  # the calling sidecar shows the callee its token
    assert headers_of(answer.json())["dapr-caller-app-id"] == ["front"]


async def test_with_a_mesh_token_only_sidecars_vouch_for_a_caller(
    l8: L8Launcher, app_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    back = await started(
        l8,
        app_id="back",
        args=["--app-port", str(app_port)],
        env={"L8_MESH_TOKEN": "mesh-secret", "DAPR_API_TOKEN": "back-apps-token"},
    )
    config = settings_file(
        tmp_path, "front.yaml", f"name_resolution: {{type: static, apps: {{back: 127.0.0.1:{back.port}}}}}\n"
    )
    front = await started(
        l8, app_id="front", args=["--config", str(config)], env={"L8_MESH_TOKEN": "mesh-secret"}
    )
    through = await client.get(f"{front.url}/v1.0/invoke/back/method/x")
    assert through.status_code == 200, through.text  # the mesh token stands in for back's API token
    got = headers_of(through.json())
    assert got["dapr-caller-app-id"] == ["front"]
    assert "l8-mesh-token" not in got  # the secret never reaches an app
    # Anyone else claiming to be a sidecar, even an app holding back's API token, is not believed.
    forged = {"l8-forwarded-by": "front", "dapr-caller-app-id": "admin", "dapr-api-token": "back-apps-token"}
    spoofed = await client.get(f"{back.url}/v1.0/invoke/back/method/x", headers=forged)
    assert spoofed.status_code == 200, spoofed.text
    assert headers_of(spoofed.json())["dapr-caller-app-id"] == ["back"]
    wrong = await client.get(
        f"{back.url}/v1.0/invoke/back/method/x", headers={"l8-mesh-token": "guess", **forged}
    )
    assert headers_of(wrong.json())["dapr-caller-app-id"] == ["back"]
    refused = await client.get(f"{back.url}/v1.0/invoke/back/method/x", headers={"l8-mesh-token": "guess"})
    assert refused.status_code == 401  # a wrong mesh token is no API token either
    twice = [("l8-mesh-token", "guess"), ("l8-mesh-token", "mesh-secret")]
    refused = await client.get(f"{back.url}/v1.0/invoke/back/method/x", headers=twice)
    assert refused.status_code == 401  # sent twice, neither counts (the last one used to win)


async def test_http_endpoints_and_urls_are_called_without_a_sidecar(
    l8: L8Launcher, app_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "endpoint.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: HTTPEndpoint\nmetadata: {name: external}\n"
        f"spec:\n  baseUrl: http://127.0.0.1:{app_port}/base\n  headers:\n  - {{name: x-key, value: k1}}\n"
    )
    process = await started(l8, app_id="caller", resources=[resources])
    assert (await client.get(f"{process.url}/v1.0/metadata")).json()["httpEndpoints"] == [
        {"name": "external"}
    ]
    by_name = await client.get(f"{process.url}/v1.0/invoke/external/method/items?x=1")
    assert by_name.status_code == 200, by_name.text
    got = headers_of(by_name.json())
    assert by_name.json()["path"] == "/base/items" and got["x-key"] == ["k1"]
    assert "dapr-caller-app-id" not in got
    url = quote(f"http://127.0.0.1:{app_port}", safe="")
    by_url = await client.post(f"{process.url}/v1.0/invoke/{url}/method/direct", content=b"hi")
    assert by_url.status_code == 200 and by_url.json()["path"] == "/direct" and by_url.json()["body"] == "hi"


# -- resiliency ---------------------------------------------------------------------------------

RESILIENCY = """apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: invoke-policies}
spec:
  policies:
    timeouts: {quick: 300ms}
    retries:
      thrice: {policy: constant, duration: 20ms, maxRetries: 3}
    circuitBreakers:
      fragile: {maxRequests: 1, timeout: 1s, trip: consecutiveFailures >= 2}
  targets:
    apps:
      back: {retry: thrice, timeout: quick}
      fragile: {circuitBreaker: fragile}
"""


async def resilient(l8: L8Launcher, tmp_path: Path, app_id: str, app_port: int) -> L8Process:
    resources = tmp_path / f"resources-{app_id}"
    resources.mkdir()
    (resources / "resiliency.yaml").write_text(RESILIENCY)
    return await started(l8, app_id=app_id, resources=[resources], args=["--app-port", str(app_port)])


async def test_retries_resend_the_body_until_the_app_answers(
    l8: L8Launcher, app_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    process = await resilient(l8, tmp_path, "back", app_port)
    answer = await client.post(f"{process.url}/v1.0/invoke/back/method/flaky/a/2", content=b"again")
    assert answer.status_code == 200 and answer.json()["body"] == "again"  # the third attempt
    assert calls["/flaky/a/2"] == 3
    exhausted = await client.post(f"{process.url}/v1.0/invoke/back/method/flaky/b/9", content=b"x")
    assert exhausted.status_code == 503 and exhausted.text == "failure 4 of b"  # the app's last answer
    assert calls["/flaky/b/9"] == 4
    late = await client.get(f"{process.url}/v1.0/invoke/back/method/sleep/2000")
    assert late.status_code == 500 and "context deadline exceeded" in late.json()["message"]


async def test_without_a_policy_an_error_status_is_not_retried(
    sidecar: L8Process, client: httpx.AsyncClient
) -> None:
    answer = await client.get(f"{sidecar.url}/v1.0/invoke/back/method/flaky/c/1")
    assert answer.status_code == 503 and calls["/flaky/c/1"] == 1


async def test_a_circuit_breaker_opens_on_failures_and_closes_after_a_good_probe(
    l8: L8Launcher, app_port: int, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    process = await resilient(l8, tmp_path, "fragile", app_port)
    url = f"{process.url}/v1.0/invoke/fragile/method"
    assert (await client.get(f"{url}/status/200")).status_code == 200
    before = calls["/status/503"]
    for _ in range(2):
        assert (await client.get(f"{url}/status/503")).status_code == 503
    opened = await client.get(f"{url}/status/503")
    assert opened.status_code == 500 and "circuit breaker is open" in opened.json()["message"]
    assert calls["/status/503"] == before + 2  # the open breaker did not call the app
    await asyncio.sleep(1.2)
    assert (await client.get(f"{url}/status/200")).status_code == 200  # half-open probe succeeds
    assert (await client.get(f"{url}/status/200")).status_code == 200


# -- large bodies ----------------------------------------------------------------------------------


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def test_large_bodies_stream_through_both_ways(
    l8: L8Launcher, app_port: int, client: httpx.AsyncClient
) -> None:
    process = await started(l8, app_id="big", args=["--app-port", str(app_port), "--max-body-size", "2Gi"])
    size = 300 * 1024 * 1024
    block = os.urandom(1024 * 1024)
    digest = hashlib.sha256()
    for _ in range(size // len(block)):
        digest.update(block)
    before = rss_mb(process.pid)

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(size // len(block)):
            yield block

    answer = await client.post(
        f"{process.url}/v1.0/invoke/big/method/upload",
        content=upload(),
        headers={"content-length": str(size)},
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["body_length"] == size and answer.json()["body_sha256"] == digest.hexdigest()
    received = 0
    async with client.stream("GET", f"{process.url}/v1.0/invoke/big/method/download/{size}") as download:
        assert download.status_code == 200
        async for chunk in download.aiter_bytes():
            received += len(chunk)
    assert received == size
    assert rss_mb(process.pid) - before < 100  # streamed, never held whole


# -- name resolution through Redis and etcd registries ---------------------------------------------


def registry_config(tmp_path: Path, name: str, kind: str, server: str, ttl: float) -> Path:
    where = f"redisHost: {server}" if kind == "redis" else f"endpoints: [{server}]\n  keyPrefix: {name}/"
    return settings_file(
        tmp_path,
        name,
        f"name_resolution:\n  type: {kind}\n  {where}\n  ttl: {ttl}s\n  cacheSeconds: 0.1\n",
    )


@pytest.fixture(params=["redis", "etcd"])
def registry(request: pytest.FixtureRequest) -> tuple[str, str, float]:
    """(kind, server address, ttl): etcd grants leases of 2 s at least."""
    kind = request.param
    server = request.getfixturevalue(f"{kind}_server")
    return kind, server.address, 1.0 if kind == "redis" else 2.0


async def test_sidecars_found_through_a_registry_share_the_calls_and_a_dead_one_drops_out(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path, registry: tuple[str, str, float]
) -> None:
    kind, server, ttl = registry
    config = registry_config(tmp_path, f"registry-{kind}.yaml", kind, server, ttl)
    async with echo_app() as first_app, echo_app() as second_app:
        first = await started(
            l8, app_id="shared", args=["--app-port", str(first_app), "--config", str(config)]
        )
        second = await started(
            l8, app_id="shared", args=["--app-port", str(second_app), "--config", str(config)]
        )
        front = await started(l8, app_id="front", args=["--config", str(config)])
        metadata = (await client.get(f"{first.url}/v1.0/metadata")).json()["nameResolution"]
        assert metadata["type"] == kind and metadata["registered"] == {
            "appId": "shared",
            "address": f"127.0.0.1:{first.port}",
        }

        async def served_by() -> set[str]:
            hosts = set()
            for _ in range(8):
                answer = await client.get(f"{front.url}/v1.0/invoke/shared/method/who")
                assert answer.status_code == 200, answer.text
                hosts.add(headers_of(answer.json())["host"][0])
            return hosts

        assert await served_by() == {f"127.0.0.1:{first_app}", f"127.0.0.1:{second_app}"}  # round robin
        await asyncio.sleep(ttl * 1.2)  # leases outlive their ttl while they are renewed
        assert await served_by() == {f"127.0.0.1:{first_app}", f"127.0.0.1:{second_app}"}
        first.kill()  # no deregistration: its lease runs out, and until then callers pass it over
        assert await served_by() == {f"127.0.0.1:{second_app}"}
        await asyncio.sleep(ttl + 1.0)
        assert await served_by() == {f"127.0.0.1:{second_app}"}
        await asyncio.to_thread(second.stop_ok)  # a graceful stop deregisters at once
        await asyncio.sleep(0.2)
        gone = await client.get(f"{front.url}/v1.0/invoke/shared/method/who")
        assert gone.status_code == 500 and "couldn't find service: shared" in gone.json()["message"]


@pytest.mark.parametrize(
    ("kind", "message"),
    [("redis", "name_resolution.redisHost: cannot register"), ("etcd", "name_resolution.endpoints: no etcd")],
)
async def test_an_unreachable_registry_fails_start_up_in_one_line(
    l8: L8Launcher, tmp_path: Path, kind: str, message: str
) -> None:
    from tests.servers import free_port

    config = registry_config(tmp_path, f"nowhere-{kind}.yaml", kind, f"127.0.0.1:{free_port()}", 2)
    process = l8.create(app_id="lonely", args=["--config", str(config)]).launch()
    assert await asyncio.to_thread(process.wait_exit) == 1
    assert message in process.stderr and "Traceback" not in process.stderr
