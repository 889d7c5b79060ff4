"""Rate limits through running sidecars: settings-file rules (reject and queue, by route, target
and caller), Dapr's rate-limit middleware through a Configuration, and one limit shared by two
sidecars through a real Redis."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.process import L8Launcher, L8Process, write_component
from tests.echo_app import echo_app

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def started(l8: L8Launcher, **options: Any) -> L8Process:
    return await asyncio.to_thread(l8, **options)


def config_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / f"settings-{uuid.uuid4().hex[:6]}.yaml"
    path.write_text(text)
    return path


def rule_of(metadata: dict[str, Any], name: str) -> dict[str, Any]:
    return next(rule for rule in metadata["rateLimits"] if rule["name"] == name)


async def test_a_route_rule_refuses_past_its_threshold_with_429_retry_after_and_an_error_body(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path,
        "rate_limits:\n  rules:\n"
        "    - {name: state-writes, resource: /v1.0/state/*, methods: [POST], threshold: 3, interval: 60s}\n",
    )
    sidecar = await started(l8, args=["--config", str(config)])
    write = f"{sidecar.url}/v1.0/state/statestore"
    statuses = [(await client.post(write, json=[{"key": f"k{i}", "value": i}])).status_code for i in range(3)]
    assert statuses == [204, 204, 204]
    refused = await client.post(write, json=[{"key": "late", "value": 1}])
    assert refused.status_code == 429
    assert refused.json()["errorCode"] == "ERR_TOO_MANY_REQUESTS"
    assert "state-writes" in refused.json()["message"]
    assert 1 <= int(refused.headers["retry-after"]) <= 20  # one token every 20 s
    assert (await client.get(f"{write}/late")).status_code == 204  # the refused write did not happen
    assert (await client.get(f"{write}/k1")).status_code == 200  # reads are not limited
    for _ in range(5):
        assert (await client.get(f"{sidecar.url}/v1.0/healthz")).status_code == 204
    metadata = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()
    counted = rule_of(metadata, "state-writes")
    assert (counted["allowed"], counted["rejected"], counted["queued"]) == (3, 1, 0)


async def test_a_queueing_rule_spaces_requests_out_and_refuses_past_the_longest_wait(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    config = config_file(
        tmp_path,
        "rate_limits:\n  rules:\n"
        "    - {name: paced, resource: /v1.0/metadata, threshold: 5, interval: 1s, burst: 1,\n"
        "       behavior: queue, maxQueueingTime: 900ms}\n",
    )
    sidecar = await started(l8, args=["--config", str(config)])
    begun = time.monotonic()
    answers = await asyncio.gather(*(client.get(f"{sidecar.url}/v1.0/metadata") for _ in range(6)))
    took = time.monotonic() - begun
    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200, 200, 200, 200, 200, 429]  # waits of 0, .2, .4, .6, .8 and 1 s
    assert took >= 0.75  # the fifth waited its turn
    await asyncio.sleep(1.0)
    paced = rule_of((await client.get(f"{sidecar.url}/v1.0/metadata")).json(), "paced")
    assert (paced["queued"], paced["rejected"]) == (4, 1)


async def test_target_and_caller_rules_limit_invocations_on_both_sidecars(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with echo_app() as app_port:
        back_config = config_file(
            tmp_path,
            "rate_limits:\n  rules:\n    - {name: from-front, caller: front, threshold: 2, interval: 60s}\n",
        )
        back = await started(
            l8, app_id="back", args=["--app-port", str(app_port), "--config", str(back_config)]
        )
        front_config = config_file(
            tmp_path,
            f"name_resolution: {{type: static, apps: {{back: 127.0.0.1:{back.port}}}}}\n"
            "rate_limits:\n  rules:\n"
            "    - {name: slow, target: {app: back, method: 'slow/*'}, threshold: 1, interval: 60s}\n",
        )
        front = await started(l8, app_id="front", args=["--config", str(front_config)])
        assert (await client.get(f"{front.url}/v1.0/invoke/back/method/slow/1")).status_code == 200
        limited = await client.get(f"{front.url}/v1.0/invoke/back/method/slow/2")  # by front's target rule
        assert limited.status_code == 429 and "'slow'" in limited.json()["message"]
        header = await client.get(f"{front.url}/slow/3", headers={"dapr-app-id": "back"})
        assert header.status_code == 429  # the same target by the dapr-app-id header
        assert (await client.get(f"{front.url}/v1.0/invoke/back/method/fast")).status_code == 200
        # back's caller rule counted front's two calls that reached it: the third is refused there,
        # and front passes back's answer on unchanged.
        by_callee = await client.get(f"{front.url}/v1.0/invoke/back/method/fast")
        assert by_callee.status_code == 429 and "'from-front'" in by_callee.json()["message"]
        own = await client.get(f"{back.url}/v1.0/invoke/back/method/fast")  # back's own app calls
        assert own.status_code == 200


async def test_daprs_rate_limit_middleware_limits_per_path_through_a_configuration(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "ratelimit", "middleware.http.ratelimit", {"maxRequestsPerSecond": "2"})
    config = config_file(
        tmp_path,
        "apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: appconfig}\n"
        "spec:\n  httpPipeline:\n    handlers:\n      - {name: ratelimit, type: middleware.http.ratelimit}\n",
    )
    write_component(resources, "statestore", "state.in-memory", {})
    sidecar = await started(l8, resources=[resources], args=["--config", str(config)])
    key = f"{sidecar.url}/v1.0/state/statestore/a"
    statuses = [(await client.get(key)).status_code for _ in range(3)]
    assert statuses == [204, 204, 429]
    assert (await client.get(f"{sidecar.url}/v1.0/state/statestore/b")).status_code == 204  # per path
    await asyncio.sleep(0.6)  # two tokens a second
    assert (await client.get(key)).status_code == 204
    metadata = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()
    assert "ratelimit" not in {c["name"] for c in metadata["components"]}  # a pipeline, not a building block
    assert rule_of(metadata, "ratelimit")["rejected"] == 1


async def test_a_shared_rule_is_one_limit_for_two_sidecars(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path, redis_server: Any
) -> None:
    name = f"shared-{uuid.uuid4().hex[:6]}"
    config = config_file(
        tmp_path,
        f"rate_limits:\n  redisHost: {redis_server.address}\n  rules:\n"
        f"    - {{name: {name}, resource: /v1.0/metadata, threshold: 4, interval: 60s, shared: true}}\n",
    )
    first, second = await asyncio.gather(
        started(l8, args=["--config", str(config)]), started(l8, args=["--config", str(config)])
    )
    statuses = []
    for sidecar in (first, second, first, second, first, second):
        statuses.append((await client.get(f"{sidecar.url}/v1.0/metadata")).status_code)
    assert statuses == [200, 200, 200, 200, 429, 429]
    unrelated = config_file(
        tmp_path,
        f"rate_limits:\n  redisHost: {redis_server.address}\n  rules:\n"
        f"    - {{name: {name}-other, resource: /v1.0/metadata, threshold: 4, interval: 60s, shared: true}}\n",
    )
    third = await started(l8, args=["--config", str(unrelated)])  # another rule name: another bucket
    assert (await client.get(f"{third.url}/v1.0/metadata")).status_code == 200


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("rate_limits:\n  rules:\n    - {resource: /v1.0/*}\n", "rate_limits.rules[0].threshold"),
        ("rate_limits:\n  redisHost: 127.0.0.1:1\n  rules:\n    - {resource: /x, threshold: 1, shared: true}\n",
         "rate_limits.redisHost: cannot reach Redis"),
        ("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata: {name: c}\n"
         "spec: {httpPipeline: {handlers: [{name: nothing, type: middleware.http.ratelimit}]}}\n",
         "no middleware component named 'nothing'"),
    ],
)  # fmt: skip
async def test_unusable_rate_limits_fail_start_up_in_one_line(
    l8: L8Launcher, tmp_path: Path, settings: str, message: str
) -> None:
    process = l8.create(args=["--config", str(config_file(tmp_path, settings))]).launch()
    assert await asyncio.to_thread(process.wait_exit) == 1
    assert message in process.stderr and "Traceback" not in process.stderr
