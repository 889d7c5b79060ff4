"""A third-party component in a real ``l8 run``: ``state.example`` comes from the package in
tests/plugins/l8-example-store, found through its ``l8.components`` entry point, never imported by l8
until a component file names it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.e2e.process import L8Launcher, run_l8, write_component
from tests.servers import free_port

pytestmark = pytest.mark.e2e


def test_a_plug_in_store_serves_state_and_is_listed(l8: L8Launcher, tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    write_component(resources, "plugged", "state.example", {"maxKeys": "2"})
    sidecar = l8(app_id="plugged", resources=[resources])
    state = f"{sidecar.url}/v1.0/state/plugged"

    saved = httpx.post(state, json=[{"key": "a", "value": {"x": 1}}, {"key": "b", "value": "two"}])
    assert (saved.status_code, saved.content) == (204, b"")
    got = httpx.get(f"{state}/a")
    assert (got.status_code, got.json()) == (200, {"x": 1})
    etag = got.headers["etag"]
    stale = httpx.post(state, json=[{"key": "a", "value": 2, "etag": str(int(etag) + 10)}])
    assert (stale.status_code, stale.json()["errorCode"]) == (409, "ERR_STATE_SAVE")
    full = httpx.post(state, json=[{"key": "c", "value": 3}])  # maxKeys: 2, from the component file
    assert (full.status_code, full.json()["errorCode"]) == (500, "ERR_STATE_SAVE")
    assert "maximum of 2 keys" in full.json()["message"]

    listed = httpx.get(f"{sidecar.url}/v1.0/metadata").json()["components"]
    assert {"name": "plugged", "type": "state.example", "version": "v1", "capabilities": ["ETAG"]} in listed


def test_a_plug_in_store_with_bad_metadata_fails_start_up_naming_the_field(tmp_path: Path) -> None:
    path = write_component(tmp_path / "resources", "plugged", "state.example", {"maxKeys": "lots"})
    result = run_l8(
        "run", "--port", str(free_port()), "--data-dir", str(tmp_path / "d"),
        "--resources-path", str(path.parent),
    )  # fmt: skip
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("l8:")]
    assert len(lines) == 1, result.stderr
    assert all(part in lines[0] for part in (str(path), "'plugged'", "maxKeys")), lines[0]
