"""TCP copy through running sidecars: the dump holds the raw bytes within its caps, windows open and
close, fuses hold copying back, and ``l8 tcpcopy replay`` sends the captured requests again."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mesh.tcpcopy.dumpfile import MAGIC, OPENED, REQUEST, RESPONSE, dump_files, read_records
from tests.e2e.process import L8, L8Launcher, L8Process
from tests.echo_app import echo_app, received

pytestmark = pytest.mark.e2e


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as http:
        yield http


async def copying(l8: L8Launcher, tmp_path: Path, settings: str, **options: Any) -> tuple[L8Process, Path]:
    folder = tmp_path / f"dump-{uuid.uuid4().hex[:6]}"
    config = tmp_path / f"{folder.name}.yaml"
    config.write_text(f"tcp_copy:\n  switch: ON\n  dir: {folder}\n" + settings)
    args = [*options.pop("args", []), "--config", str(config)]
    return await asyncio.to_thread(l8, args=args, **options), folder


def payloads(folder: Path, kind: int) -> list[bytes]:
    return [r.payload for path in dump_files(folder) for r in read_records(path) if r.kind == kind]


async def tcp_copy_state(client: httpx.AsyncClient, sidecar: L8Process) -> dict[str, Any]:
    state: dict[str, Any] = (await client.get(f"{sidecar.url}/v1.0/metadata")).json()["tcpCopy"]
    return state


async def test_the_dump_holds_the_raw_request_bytes_and_keeps_to_its_caps(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    async with echo_app() as app_port:
        sidecar, folder = await copying(
            l8, tmp_path,
            "  interval: 1\n  duration: 1\n  cpu_max_rate: 100\n  mem_max_rate: 95\n"
            "  max_file_size: 4Ki\n  max_files: 2\n",
            app_id="echo", args=["--app-port", str(app_port)],
        )  # fmt: skip
        binary = bytes(range(256)) * 4  # NULs, CR LF, every byte
        for index in range(12):
            answer = await client.post(
                f"{sidecar.url}/v1.0/invoke/echo/method/raw/{index}?x=1&x=2",
                content=binary,
                headers={"Content-Type": "application/octet-stream", "X-Case-Kept": "Yes"},
            )
            assert answer.status_code == 200
        await asyncio.sleep(0.4)  # the writer drains every 100 ms
        state = await tcp_copy_state(client, sidecar)
        assert state["windowOpen"] and state["files"] >= 3 and state["dropped"] == 0
        await asyncio.to_thread(sidecar.stop_ok)
    files = dump_files(folder)
    assert len(files) == 2  # the oldest were deleted
    for path in files:
        assert path.read_bytes().startswith(MAGIC) and path.stat().st_size <= 4096 + 1500  # one record over
    requests = b"".join(payloads(folder, REQUEST))
    assert b"POST /v1.0/invoke/echo/method/raw/11?x=1&x=2 HTTP/1.1\r\n" in requests
    assert b"X-Case-Kept: Yes\r\n" in requests  # as the client wrote it
    assert b"\r\n\r\n" + binary in requests  # the body, byte for byte
    assert payloads(folder, RESPONSE) == []  # answers only with responses: true


async def test_windows_open_for_their_duration_and_copy_only_then(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    sidecar, folder = await copying(
        l8, tmp_path, "  interval: 2\n  duration: 0.6\n  cpu_max_rate: 100\n  mem_max_rate: 95\n"
    )

    async def when_window(is_open: bool) -> None:
        deadline = time.monotonic() + 5
        while (await tcp_copy_state(client, sidecar))["windowOpen"] != is_open:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)

    async with httpx.AsyncClient() as fresh:  # one connection per phase: a copy starts per connection
        await when_window(False)
        await fresh.get(f"{sidecar.url}/v1.0/state/statestore/outside")
    async with httpx.AsyncClient() as fresh:
        await when_window(True)
        await fresh.get(f"{sidecar.url}/v1.0/state/statestore/inside")
    await asyncio.sleep(0.3)
    copied = b"".join(payloads(folder, REQUEST))
    assert b"/inside" in copied and b"/outside" not in copied
    assert (await tcp_copy_state(client, sidecar))["windows"] >= 2


async def test_a_fuse_holds_copying_back(l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path) -> None:
    sidecar, folder = await copying(l8, tmp_path, "  interval: 1\n  duration: 1\n  mem_max_rate: 0.001\n")
    for _ in range(5):
        await client.get(f"{sidecar.url}/v1.0/state/statestore/k")
    await asyncio.sleep(1.2)
    state = await tcp_copy_state(client, sidecar)
    assert state["fuse"] == "memory" and state["windows"] == 0 and state["fused"] >= 1
    assert state["records"] == 0 and dump_files(folder) == []


async def test_replay_sends_the_captured_requests_again_and_compares_the_statuses(
    l8: L8Launcher, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    uid = uuid.uuid4().hex[:8]
    async with echo_app() as first_app, echo_app() as second_app:
        recorder, folder = await copying(
            l8, tmp_path, "  interval: 1\n  duration: 1\n  cpu_max_rate: 100\n  mem_max_rate: 95\n"
            "  responses: true\n", app_id="echo", args=["--app-port", str(first_app)],
        )  # fmt: skip
        base = f"{recorder.url}/v1.0/invoke/echo/method"
        sent = [
            ("POST", f"/{uid}/items?a=1&a=2", os.urandom(3000)),
            ("PUT", f"/{uid}/items/7", b'{"qty": 2}'),
            ("DELETE", f"/{uid}/items/7", b""),
            ("GET", "/status/418", b""),
        ]
        for method, path, body in sent:
            await client.request(method, base + path, content=body)
        await asyncio.sleep(0.4)
        await asyncio.to_thread(recorder.stop_ok)
        target = await asyncio.to_thread(l8, app_id="echo", args=["--app-port", str(second_app)])
        before = len(received)
        began = time.monotonic()
        result = await asyncio.to_thread(
            subprocess.run,
            [str(L8), "tcpcopy", "replay", str(folder), "--target", target.url, "--rate", "5"],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    # The four calls, and the readiness probes the test launcher sent once the window was open.
    count = int(re.search(r"replayed (\d+) requests", result.stdout)[1])  # type: ignore[index]
    assert count >= 4 and f"same status as recorded: {count} of {count}" in result.stdout
    assert took >= (count - 1) / 5  # at 5 a second
    replayed = [entry for entry in received[before:] if uid in entry[1]]
    originals = [entry for entry in received[:before] if uid in entry[1]]
    assert replayed == originals and len(replayed) == 3
    assert replayed[0] == ("POST", f"/{uid}/items", "a=1&a=2", hashlib.sha256(sent[0][2]).hexdigest())
    opened = [r for path in dump_files(folder) for r in read_records(path) if r.kind == OPENED]
    assert opened and opened[0].payload.startswith(b"127.0.0.1:")


def test_replay_refuses_what_is_not_a_dump(tmp_path: Path) -> None:
    junk = tmp_path / "junk.dump"
    junk.write_bytes(b"GET / HTTP/1.1\r\n\r\n")
    result = subprocess.run([str(L8), "tcpcopy", "replay", str(junk), "--target", "http://127.0.0.1:1"],
                            capture_output=True, text=True, timeout=30)  # fmt: skip
    assert result.returncode == 2 and "not an l8 TCP copy dump" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ("  interval: 0\n", "tcp_copy.interval: must be above 0"),
        ("  interval: 5\n  duration: 9\n", "tcp_copy.duration"),
        ("  cpu_max_rate: 150\n", "tcp_copy.cpu_max_rate"),
        ("  max_file_size: lots\n", "tcp_copy.max_file_size"),
        ("  speed: 1\n", "tcp_copy.speed: unknown field"),
    ],
)
async def test_unusable_tcp_copy_settings_fail_start_up_in_one_line(
    l8: L8Launcher, tmp_path: Path, settings: str, message: str
) -> None:
    config = tmp_path / "bad.yaml"
    config.write_text("tcp_copy:\n  switch: ON\n" + settings)
    process = l8.create(args=["--config", str(config)]).launch()
    assert await asyncio.to_thread(process.wait_exit) == 1
    assert message in process.stderr and "Traceback" not in process.stderr
