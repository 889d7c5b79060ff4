"""What an input binding event's answer asks of the sidecar: its data sent to output bindings
(daprd's ``onAppResponse`` in pkg/runtime/processor/binding/send.go). Only a gRPC app asks it
(``BindingEventResponse.to``, ``data``, ``concurrency``; mesh/app_channel.py ``BindingAnswer``):

- the data is read as JSON and written again, as daprd's ``json.Unmarshal`` then ``json.Marshal``
  do: compact, object keys sorted, ``<``, ``>`` and ``&`` escaped, a whole float as an integer;
  data that is not JSON (or none) goes as ``null``;
- each named output binding gets it with operation ``create`` and no metadata, through
  :meth:`OutputBindings.invoke_request` (its checks, its outbound Resiliency policy);
- SEQUENTIAL (the default): one after the other, before the event is acknowledged; the first
  failure (an unknown binding, an operation it lacks, the backend's error) stops the rest and is
  logged; the event stays taken, as daprd only logs "error executing app response";
- PARALLEL: all at once, each failure logged, the event acknowledged without waiting for them;
  closing waits for those still running.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import structlog

from mesh.app_channel import BindingAnswer
from services.bindings.output import OutputBindings

log = structlog.get_logger(__name__)

CREATE = "create"
_GO_ESCAPES = ((b"&", b"\\u0026"), (b"<", b"\\u003c"), (b">", b"\\u003e"))


def go_json(data: bytes) -> bytes:
    """``data`` as daprd re-encodes it: Go's ``json.Marshal`` of what ``json.Unmarshal`` read."""
    try:
        value = orjson.loads(data) if data else None
    except orjson.JSONDecodeError:
        value = None
    encoded = orjson.dumps(_go_numbers(value), option=orjson.OPT_SORT_KEYS)
    for raw, escaped in _GO_ESCAPES:
        encoded = encoded.replace(raw, escaped)  # only inside strings: JSON's own syntax has none
    return encoded.replace("\u2028".encode(), b"\\u2028").replace("\u2029".encode(), b"\\u2029")


def _go_numbers(value: Any) -> Any:
    """Go reads every JSON number as a float64 and writes a whole one below 1e21 as an integer."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {key: _go_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_go_numbers(item) for item in value]
    return value


class BindingAnswers:
    """Carries out the answers of one sidecar's input binding events."""

    def __init__(self, output: OutputBindings) -> None:
        self._output = output
        self._running: set[asyncio.Task[None]] = set()
        """The parallel sends not finished yet."""

    async def follow(self, binding: str, answer: BindingAnswer) -> None:
        """Send what the app answered to the event of ``binding`` where it asked."""
        data = go_json(answer.data)
        if answer.parallel:
            for name in answer.to:
                task = asyncio.create_task(self._send_logged(binding, name, data))
                self._running.add(task)
                task.add_done_callback(self._running.discard)
            return
        try:
            for name in answer.to:
                await self._output.invoke_request(name, data, {}, CREATE)
        except Exception as exc:
            log.error("error executing app response", binding=binding, error=str(exc))

    async def _send_logged(self, binding: str, name: str, data: bytes) -> None:
        try:
            await self._output.invoke_request(name, data, {}, CREATE)
        except Exception as exc:
            log.error("error executing app response", binding=binding, output=name, error=str(exc))

    async def aclose(self) -> None:
        """Wait for the parallel sends still running (each bounded by its binding's policy)."""
        while self._running:
            await asyncio.gather(*list(self._running), return_exceptions=True)
