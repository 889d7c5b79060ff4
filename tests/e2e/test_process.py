"""l8 as a user runs it: the ``l8`` command in a subprocess, spoken to over HTTP.

Covers the embedded default store and its durability, a Redis component file shared by two
sidecars, graceful and forced shutdown, start-up errors as one line, the ``--version`` and
``openapi`` commands, the API token, the body size limit, component scopes and JSON logs.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
import redis

from app import __version__
from tests.e2e.process import L8Launcher, run_l8, write_component
from tests.servers import RedisServer, free_port

pytestmark = pytest.mark.e2e

STATE = "/v1.0/state/statestore"


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json", response.text
    return str(response.json()["errorCode"])


# -- (a) the embedded default store ------------------------------------------------------------


def test_embedded_default_store_saves_and_survives_a_restart(l8: L8Launcher) -> None:
    sidecar = l8(app_id="durable")
    saved = httpx.post(sidecar.url + STATE, json=[{"key": "a", "value": {"x": 1}}])
    assert (saved.status_code, saved.content) == (204, b"")

    got = httpx.get(f"{sidecar.url}{STATE}/a")
    assert got.status_code == 200
    assert got.headers["content-type"] == "application/json"
    assert got.json() == {"x": 1}
    etag = got.headers["etag"]
    assert etag

    sidecar.stop_ok()
    assert (sidecar.data_dir / "state.db").is_file()
    sidecar.start()
    again = httpx.get(f"{sidecar.url}{STATE}/a")
    assert (again.status_code, again.json(), again.headers["etag"]) == (200, {"x": 1}, etag)


def test_any_decoded_key_reaches_the_state_api(l8: L8Launcher) -> None:
    """Dapr routes on the escaped path, so an encoded newline or slash in a key is still that key."""
    sidecar = l8(app_id="keys")
    for key, escaped in [("a\nb", "a%0Ab"), ("x/y", "x%2Fy"), ("sp ace", "sp%20ace")]:
        assert httpx.post(sidecar.url + STATE, json=[{"key": key, "value": key}]).status_code == 204
        got = httpx.get(f"{sidecar.url}{STATE}/{escaped}")
        assert (got.status_code, got.json()) == (200, key)
        assert httpx.delete(f"{sidecar.url}{STATE}/{escaped}").status_code == 204
        assert httpx.get(f"{sidecar.url}{STATE}/{escaped}").status_code == 204


# -- (b) a Redis component file ----------------------------------------------------------------


def _redis_resources(folder: Path) -> Path:
    path = write_component(folder, "statestore", "state.redis", {"redisHost": "{env:REDIS_ADDR}"})
    assert "{env:REDIS_ADDR}" in path.read_text()  # the address only comes from the substitution
    return folder


def test_redis_component_stores_in_dapr_layout(
    l8: L8Launcher, redis_server: RedisServer, tmp_path: Path
) -> None:
    app_id = _unique("orders")
    sidecar = l8(
        app_id=app_id,
        resources=[_redis_resources(tmp_path / "res")],
        env={"REDIS_ADDR": redis_server.address},
    )
    saved = httpx.post(sidecar.url + STATE, json=[{"key": "order-1", "value": {"x": 1}}])
    assert saved.status_code == 204, saved.text
    got = httpx.get(f"{sidecar.url}{STATE}/order-1")
    assert (got.status_code, got.json(), got.headers["etag"]) == (200, {"x": 1}, "1")

    direct = redis.Redis(host=redis_server.host, port=redis_server.port)
    try:
        assert direct.type(f"{app_id}||order-1") == b"hash"
        assert direct.hgetall(f"{app_id}||order-1") == {b"data": b'{"x":1}', b"version": b"1"}
    finally:
        direct.close()

    components = httpx.get(sidecar.url + "/v1.0/metadata").json()["components"]
    assert [(c["name"], c["type"]) for c in components] == [("statestore", "state.redis")]


def test_two_sidecars_share_one_redis(l8: L8Launcher, redis_server: RedisServer, tmp_path: Path) -> None:
    options = {
        "app_id": _unique("shared"),
        "resources": [_redis_resources(tmp_path / "res")],
        "env": {"REDIS_ADDR": redis_server.address},
    }
    first, second = l8(**options), l8(**options)

    assert httpx.post(first.url + STATE, json=[{"key": "k", "value": "one"}]).status_code == 204
    seen = httpx.get(f"{second.url}{STATE}/k")
    assert (seen.status_code, seen.json()) == (200, "one")
    etag = seen.headers["etag"]

    update = [{"key": "k", "value": "two", "etag": etag}]
    assert httpx.post(second.url + STATE, json=update).status_code == 204
    assert httpx.get(f"{first.url}{STATE}/k").json() == "two"

    stale = httpx.post(first.url + STATE, json=[{"key": "k", "value": "three", "etag": etag}])
    assert (stale.status_code, _error_code(stale)) == (409, "ERR_STATE_SAVE")
    stale_delete = httpx.delete(f"{first.url}{STATE}/k", headers={"If-Match": etag})
    assert (stale_delete.status_code, _error_code(stale_delete)) == (409, "ERR_STATE_DELETE")
    assert httpx.get(f"{second.url}{STATE}/k").json() == "two"


# -- (c) shutdown ------------------------------------------------------------------------------


async def test_sigterm_finishes_requests_in_flight(l8: L8Launcher) -> None:
    sidecar = l8(app_id="graceful")
    count = 8
    started: list[int] = []
    release = asyncio.Event()

    async def slow_body(i: int) -> AsyncIterator[bytes]:
        # Headers and half the body reach l8 now; the rest only after SIGTERM.
        yield b'[{"key":"k%d","value":' % i
        started.append(i)
        await release.wait()
        yield b"%d}]" % i

    async with httpx.AsyncClient(base_url=sidecar.url, timeout=15) as client:
        calls = [asyncio.create_task(client.post(STATE, content=slow_body(i))) for i in range(count)]
        for _ in range(100):
            if len(started) == count:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        sidecar.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert sidecar.running, "l8 exited with requests still in flight"
        with pytest.raises(httpx.ConnectError):
            await client.get("/v1.0/healthz", headers={"connection": "close"})
        release.set()
        answers = await asyncio.gather(*calls)

    assert [a.status_code for a in answers] == [204] * count, [a.text for a in answers]
    assert await asyncio.to_thread(sidecar.wait_exit) == 0, sidecar.stderr
    await asyncio.to_thread(sidecar.start)
    async with httpx.AsyncClient(base_url=sidecar.url) as client:
        for i in range(count):
            assert (await client.get(f"{STATE}/k{i}")).json() == i


def test_shutdown_api_stops_gracefully(l8: L8Launcher) -> None:
    sidecar = l8(app_id="api-stop")
    answer = httpx.post(sidecar.url + "/v1.0/shutdown")
    assert (answer.status_code, answer.content) == (204, b"")
    started = time.monotonic()
    assert sidecar.wait_exit() == 0, sidecar.stderr
    assert time.monotonic() - started < 5


def test_forced_shutdown_exits_with_status_1(l8: L8Launcher) -> None:
    sidecar = l8(app_id="api-kill")
    answer = httpx.post(sidecar.url + "/v1.0/shutdown", headers={"dapr-force-shutdown": "true"})
    assert answer.status_code == 204
    assert sidecar.wait_exit(timeout=5) == 1


def test_sigint_stops_cleanly(l8: L8Launcher) -> None:
    sidecar = l8(app_id="ctrl-c")
    sidecar.stop_ok(signal.SIGINT)
    assert "Traceback" not in sidecar.stderr


# -- (d) start-up errors -----------------------------------------------------------------------

# Each builds its resources in a folder and answers (extra args, env, what the l8: line must name).
StartupCase = Callable[[Path], tuple[list[str], dict[str, str], list[str]]]


def _invalid_yaml(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    folder.mkdir()
    path = folder / "broken.yaml"
    path.write_text("apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata: {name: broken\n")
    return ["--resources-path", str(folder)], {}, [str(path), "invalid YAML"]


def _unknown_type(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    path = write_component(folder, "mystore", "state.nope")
    return ["--resources-path", str(folder)], {}, [str(path), "'mystore'", "spec.type", "state.nope"]


def _redis_without_host(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    path = write_component(folder, "cache", "state.redis", {"redisPassword": "x"})
    return ["--resources-path", str(folder)], {}, [str(path), "'cache'", "redisHost"]


def _redis_unreachable(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    address = f"127.0.0.1:{free_port()}"
    path = write_component(folder, "cache", "state.redis", {"redisHost": "{env:NOWHERE}"})
    return ["--resources-path", str(folder)], {"NOWHERE": address}, [str(path), "'cache'", "redisHost"]


def _missing_path(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    return ["--resources-path", str(folder / "nope")], {}, [str(folder / "nope"), "does not exist"]


def _bad_flag_value(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    return ["--max-body-size", "lots"], {}, ["max_body_size", "lots"]


def _unknown_resolver(folder: Path) -> tuple[list[str], dict[str, str], list[str]]:
    folder.mkdir()
    config = folder / "l8.yaml"
    config.write_text("name_resolution:\n  type: consul\n")
    return ["--config", str(config)], {}, ["name_resolution.type", "consul"]


@pytest.mark.parametrize(
    "case",
    [
        _invalid_yaml,
        _unknown_type,
        _redis_without_host,
        _redis_unreachable,
        _missing_path,
        _bad_flag_value,
        _unknown_resolver,
    ],
    ids=lambda case: case.__name__.strip("_"),
)
def test_startup_error_is_one_line(case: StartupCase, tmp_path: Path) -> None:
    args, env, expected = case(tmp_path / "resources")
    port = str(free_port())
    started = time.monotonic()
    result = run_l8(
        "run", "--port", port, "--app-id", "boot", "--data-dir", str(tmp_path / "d"), *args, env=env
    )
    assert time.monotonic() - started < 10
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("l8:")]
    assert len(lines) == 1, result.stderr
    for part in expected:
        assert part in lines[0], lines[0]


# -- (e) the other commands --------------------------------------------------------------------


def test_version() -> None:
    result = run_l8("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"l8 {__version__}"


def test_openapi_command_prints_the_document(tmp_path: Path) -> None:
    result = run_l8("openapi", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["openapi"].startswith("3.")
    assert {"post", "put"} <= set(document["paths"]["/v1.0/state/{storeName}"])
    assert "get" in document["paths"]["/v1.0/state/{storeName}/{key}"]
    assert list(tmp_path.iterdir()) == []  # printing the document touches no data directory


# -- (f, g, h, i) settings seen from outside ---------------------------------------------------


def test_api_token(l8: L8Launcher) -> None:
    sidecar = l8(app_id="guarded", env={"DAPR_API_TOKEN": "s3cret"})
    item = [{"key": "t", "value": 1}]
    refused = httpx.post(sidecar.url + STATE, json=item)
    assert (refused.status_code, refused.text) == (401, "invalid api token\n")
    wrong = httpx.get(sidecar.url + "/v1.0/metadata", headers={"dapr-api-token": "nope"})
    assert wrong.status_code == 401
    accepted = httpx.post(sidecar.url + STATE, json=item, headers={"dapr-api-token": "s3cret"})
    assert accepted.status_code == 204
    got = httpx.get(f"{sidecar.url}{STATE}/t", headers={"dapr-api-token": "s3cret"})
    assert (got.status_code, got.json()) == (200, 1)
    assert httpx.get(sidecar.url + "/v1.0/healthz").status_code == 204
    assert httpx.get(sidecar.url + "/v1.0/healthz/outbound").status_code == 204


def test_max_body_size(l8: L8Launcher) -> None:
    sidecar = l8(app_id="small", args=["--max-body-size", "1Ki"])
    big = json.dumps([{"key": "big", "value": "x" * 2048}]).encode()

    def chunks() -> list[bytes]:  # no Content-Length: the limit must hold on a streamed body too
        return [big[:1000], big[1000:]]

    for content in (big, iter(chunks())):
        refused = httpx.post(sidecar.url + STATE, content=content)
        assert (refused.status_code, _error_code(refused)) == (400, "ERR_MALFORMED_REQUEST")
    assert httpx.get(f"{sidecar.url}{STATE}/big").status_code == 204
    small = httpx.post(sidecar.url + STATE, json=[{"key": "small", "value": "x" * 512}])
    assert small.status_code == 204


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_max_request_items(l8: L8Launcher, how: str) -> None:
    if how == "flag":
        sidecar = l8(app_id="capped", args=["--max-request-items", "2"])
    else:
        sidecar = l8(app_id="capped", env={"L8_MAX_REQUEST_ITEMS": "2"})
    three = [{"key": f"k{n}", "value": n} for n in range(3)]
    refused = httpx.post(sidecar.url + STATE, json=three)
    assert (refused.status_code, _error_code(refused)) == (400, "ERR_MALFORMED_REQUEST")
    assert httpx.get(f"{sidecar.url}{STATE}/k0").status_code == 204
    assert httpx.post(sidecar.url + STATE, json=three[:2]).status_code == 204


def test_component_scopes(l8: L8Launcher, tmp_path: Path) -> None:
    resources = tmp_path / "res"
    write_component(resources, "mine", "state.in-memory", scopes=["me", "someone"])
    write_component(resources, "theirs", "state.in-memory", scopes=["other"])
    expectations = {"me": ("mine", "theirs"), "other": ("theirs", "mine")}
    for app_id, (loaded, excluded) in expectations.items():
        sidecar = l8(app_id=app_id, resources=[resources])
        item = [{"key": "k", "value": app_id}]
        assert httpx.post(f"{sidecar.url}/v1.0/state/{loaded}", json=item).status_code == 204
        missing = httpx.post(f"{sidecar.url}/v1.0/state/{excluded}", json=item)
        assert (missing.status_code, _error_code(missing)) == (400, "ERR_STATE_STORE_NOT_FOUND")
        components = httpx.get(sidecar.url + "/v1.0/metadata").json()["components"]
        assert [c["name"] for c in components] == [loaded]
        sidecar.stop_ok()


def test_log_as_json(l8: L8Launcher) -> None:
    sidecar = l8(app_id="logs", args=["--log-as-json", "--enable-api-logging"])
    assert httpx.get(sidecar.url + "/v1.0/metadata").status_code == 200
    sidecar.stop_ok()
    lines = sidecar.stderr.splitlines()
    assert lines
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r, dict) and r.get("level") and r.get("event") for r in records), lines
    events = [r["event"] for r in records]
    assert {"l8 listening", "api call", "l8 stopped"} <= set(events), events
