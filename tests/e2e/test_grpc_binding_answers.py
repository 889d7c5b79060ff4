"""A gRPC app's answer to an input binding event, through a real ``l8 run --app-protocol grpc``
(services/bindings/answers.py, as daprd's ``onAppResponse``): a cron binding's events reach a raw
``AppCallback`` servicer (tests/grpc_callback_app.py: the SDK's ``dapr.ext.grpc.App`` always
answers an empty ``BindingEventResponse``) whose answer names output bindings; a local-storage
binding gets the data as daprd re-encodes it. SEQUENTIAL stops at an unknown binding (logged, the
event still taken), PARALLEL sends to the others anyway; ``store_name``/``states`` save nothing,
as daprd reads neither from a gRPC answer."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import httpx
import pytest
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import appcallback_pb2

from tests.e2e.process import L8Launcher, write_component
from tests.e2e.test_actuator import json_lines
from tests.e2e.test_grpc_app_callback import received
from tests.grpc_callback_app import Recorder
from tests.servers import free_port

pytestmark = pytest.mark.e2e

Answer = appcallback_pb2.BindingEventResponse


def contents(folder: Path) -> list[bytes]:
    return [path.read_bytes() for path in folder.iterdir()]


async def written(folder: Path, content: bytes, within: float = 10.0) -> None:
    """Until a file in ``folder`` holds ``content``."""
    deadline = time.monotonic() + within
    while content not in (found := await asyncio.to_thread(contents, folder)):
        assert time.monotonic() < deadline, found
        await asyncio.sleep(0.05)


async def test_the_answers_data_goes_to_the_output_bindings_it_names(l8: L8Launcher, tmp_path: Path) -> None:
    files = tmp_path / "files"
    files.mkdir()
    resources = tmp_path / "resources"
    write_component(resources, "tick", "bindings.cron", {"schedule": "@every 1s"})
    write_component(resources, "files", "bindings.localstorage", {"rootPath": str(files)})
    write_component(resources, "statestore", "state.sqlite", {"connectionString": str(tmp_path / "s.db")})
    app = Recorder()
    state = common_pb2.StateItem(key="from-binding", value=b'"v"')
    app.binding_reply = Answer(
        data=b'{"b": 2, "a": 1.0}', to=["nowhere", "files"], store_name="statestore", states=[state]
    )
    port = await app.start(free_port())
    process = l8.create(
        app_id="binder",
        resources=[resources],
        args=["--app-port", str(port), "--app-protocol", "grpc", "--log-as-json"],
    )
    try:
        await asyncio.to_thread(process.start)
        await received(app, "OnBindingEvent", 2)
        await asyncio.sleep(0.3)  # the second event's answer carried out (or not)
        assert not await asyncio.to_thread(
            contents, files
        )  # SEQUENTIAL: the unknown binding first stops the rest
        failures = [line for line in json_lines(process) if line["event"] == "error executing app response"]
        assert failures and failures[0]["binding"] == "tick"
        assert "couldn't find output binding nowhere" in failures[0]["error"]
        async with httpx.AsyncClient(base_url=process.url) as client:
            assert (await client.get("/v1.0/state/statestore/from-binding")).status_code == 204

        parallel = Answer.PARALLEL
        app.binding_reply = Answer(
            data=b'{"b": 2, "a": 1.0, "t": "<x>"}', to=["nowhere", "files"], concurrency=parallel
        )
        await written(files, b'{"a":1,"b":2,"t":"\\u003cx\\u003e"}')  # Go's json.Marshal of what it read
        app.binding_reply = Answer(data=b"not json", to=["files"])
        # daprd sends null for data that is not JSON (which the local-storage binding, as Dapr's,
        # takes for base64 and decodes).
        await written(files, base64.b64decode("null"))
    finally:
        await app.stop()
