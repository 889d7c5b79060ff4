"""Request bodies as JSON: one decoder and one encoder for every building block.

orjson does the work. It refuses documents nested deeper than 1024 levels and writes no more than
254, where Go's encoding/json (and so Dapr) reads and writes up to 10,000. Documents between the
two limits go to an iterative parser and writer here: their own stack is a list, so no depth can
blow the C stack or need a raised recursion limit, and a document past 10,000 levels is refused as
soon as its 10,001st level opens (a 4 MB body of ``[`` takes milliseconds, not a traceback). Those
are slow pure-Python paths, taken only by documents that deep (a 3 MB one takes about a second, in
a worker thread: see :func:`loads_off_loop`).

Invalid UTF-8 anywhere in a JSON body is refused, as orjson refuses it.
"""

from __future__ import annotations

import asyncio
import gc
import json.decoder
import re
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import orjson

MAX_DEPTH = 10_000
"""Go's encoding/json scanner limit (maxNestingDepth), which Dapr's request decoding inherits."""

OFFLOAD_BYTES = 256 * 1024
"""Bodies bigger than this are decoded one at a time (:func:`loads_off_loop`)."""

_ORJSON_DEPTH = "depth limit exceeded"
_ORJSON_WRITE_DEPTH = "Recursion limit reached"


class JsonBodyError(ValueError):
    """The body is not one JSON document; ``str()`` is the reason."""


class JsonRefused(JsonBodyError):
    """JSON that no Dapr endpoint takes: nested deeper than :data:`MAX_DEPTH`, or not UTF-8. A
    publish answers these 400 even where a body that is merely not JSON is sent as a string."""


def loads(body: bytes) -> Any:
    """The whole body as one JSON value (numbers as int and float)."""
    value = _fast(body)
    return _deep(body) if value is _TOO_DEEP_FOR_ORJSON else value


async def loads_off_loop(body: bytes) -> Any:
    """:func:`loads` for a request, with the event loop in mind. orjson holds the GIL (a 3.7 MB
    body of 150,000 items takes ~90 ms), so a worker thread would only make the loop wait for the
    GIL; instead big bodies are decoded one at a time, each in a loop turn of its own, so requests
    that arrive together stall the loop one decode at a time, not four at once. A big body that
    needs the pure-Python parser is parsed in a worker thread, which lets go of the GIL."""
    if len(body) <= OFFLOAD_BYTES:
        return loads(body)
    async with _one_big_decode():
        await asyncio.sleep(0)  # a turn of its own: others that arrived with it wait on the lock
        value = _without_collections(_fast, body)
    if value is not _TOO_DEEP_FOR_ORJSON:
        return value
    return await asyncio.to_thread(_deep, body)


def _without_collections(decode: Callable[[bytes], Any], body: bytes) -> Any:
    """Decoding allocates a container per item, and every few thousand allocations CPython's
    collector runs; with a few big requests in flight a full pass walks a million live objects
    (0.1-0.3 s each, several within one decode). What orjson builds holds no cycles, so
    collections wait until it is done: at most one pass follows, in a later turn."""
    if not gc.isenabled():
        return decode(body)
    gc.disable()
    try:
        return decode(body)
    finally:
        gc.enable()


_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


def _one_big_decode() -> asyncio.Lock:
    """The running loop's lock for big decodes (one per loop: a lock belongs to one loop)."""
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    return lock


_TOO_DEEP_FOR_ORJSON = object()


def _fast(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        reason = str(exc)
        if reason.startswith(_ORJSON_DEPTH):
            return _TOO_DEEP_FOR_ORJSON
        if "utf-8" in reason.lower() or "surrogate" in reason.lower():
            raise JsonRefused(reason) from None
        raise JsonBodyError(reason) from None


def _deep(body: bytes) -> Any:
    text = _text(body)
    value, end = _Parser(text, exact=False).parse(_skip_space(text))
    if text[end:].strip(" \t\n\r"):
        raise JsonBodyError(f"trailing characters at char {end}")
    return value


def loads_exact(body: bytes) -> Any:
    """The first JSON value of ``body`` (trailing data ignored, as Go's json.Decoder does), numbers
    kept as their original text (``orjson.Fragment``), so writing it again changes none."""
    text = _text(body)
    return _first(text, _skip_space(text))[0]


def first_value(body: bytes) -> bytes:
    """The bytes of the first JSON value of ``body``, checked (trailing data ignored)."""
    try:
        orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    else:
        return body
    text = _text(body)
    start = _skip_space(text)
    _, end = _first(text, start)
    return text[start:end].encode()


def dumps(value: Any, *, sort_keys: bool = False) -> bytes:
    """``value`` as compact JSON, as orjson writes it, at any depth up to :data:`MAX_DEPTH`; the
    bytes object is exactly its length (see :func:`compact`)."""
    try:
        return compact(orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else None))
    except TypeError as exc:
        if str(exc) != _ORJSON_WRITE_DEPTH:
            raise
    return _write(value, sort_keys)


def compact(encoded: bytes) -> bytes:
    """orjson hands back its working buffer: a 10-byte result holds 4 KiB. Bytes kept beyond the
    call (a batch's values, a queued message) are copied to their size, or a 3.7 MB save of 150,000
    items holds 600 MB."""
    return b"%b" % encoded if len(encoded) < 2048 else encoded


# -- the deep paths --------------------------------------------------------------------------------


def _text(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JsonRefused(f"invalid UTF-8 at byte {exc.start}") from None


def _skip_space(text: str) -> int:
    return len(text) - len(text.lstrip(" \t\n\r"))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"invalid JSON literal {name}")


_EXACT = json.decoder.JSONDecoder(
    parse_float=orjson.Fragment, parse_int=orjson.Fragment, parse_constant=_reject_constant
)


def _first(text: str, start: int) -> tuple[Any, int]:
    """The first value from ``start`` and the index after it, numbers as ``orjson.Fragment``. The
    standard library's C scanner is fast but recursive; past Python's recursion limit the
    iterative parser takes over."""
    try:
        return _EXACT.raw_decode(text, start)
    except RecursionError:
        pass
    except ValueError as exc:
        raise JsonBodyError(str(exc)) from None
    return _Parser(text, exact=True).parse(start)


_WS = re.compile(r"[ \t\n\r]*")


def _ws(text: str, at: int) -> int:
    """The index after the whitespace at ``at`` (the pattern always matches, maybe empty)."""
    match = _WS.match(text, at)
    return match.end() if match is not None else at


_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = {"t": ("true", True), "f": ("false", False), "n": ("null", None)}


class _Parser:
    """JSON by an explicit stack: containers are pushed and popped, never recursed into."""

    def __init__(self, text: str, *, exact: bool) -> None:
        self.text = text
        self.exact = exact

    def fail(self, what: str, at: int) -> JsonBodyError:
        return JsonBodyError(f"{what} at char {at}")

    def parse(self, at: int) -> tuple[Any, int]:
        text = self.text
        stack: list[Any] = []  # open containers; a dict's pending key is pushed after it
        while True:
            at = _ws(text, at)
            if at >= len(text):
                raise self.fail("unexpected end of JSON input", at)
            char = text[at]
            if char == "[" or char == "{":
                if len(stack) >= MAX_DEPTH * 2:
                    raise JsonRefused(f"exceeded max depth ({MAX_DEPTH}) at char {at}")
                at = _ws(text, at + 1)
                closing = "]" if char == "[" else "}"
                if at < len(text) and text[at] == closing:
                    value: Any = [] if char == "[" else {}
                    at += 1
                else:
                    if char == "[":
                        stack.append([])
                        stack.append(None)  # depth counts two entries a level, as for objects
                    else:
                        stack.append({})
                        at = self._key(stack, at)
                    continue
            elif char == '"':
                value, at = self._string(at)
            elif char in _LITERALS:
                word, value = _LITERALS[char]
                if not text.startswith(word, at):
                    raise self.fail("invalid literal", at)
                at += len(word)
            else:
                value, at = self._number(at)
            # A value is complete: add it to the container it belongs to, closing what ends here.
            while True:
                if not stack:
                    return value, at
                key = stack.pop()
                container = stack[-1]
                if key is None:
                    container.append(value)
                else:
                    container[key] = value
                at = _ws(text, at)
                separator = text[at] if at < len(text) else ""
                if separator == ",":
                    at += 1
                    if isinstance(container, dict):
                        at = self._key(stack, _ws(text, at))
                    else:
                        stack.append(None)
                    break
                if separator != ("]" if isinstance(container, list) else "}"):
                    raise self.fail("expected ',' or the container's end", at)
                at += 1
                value = stack.pop()

    def _key(self, stack: list[Any], at: int) -> int:
        if at >= len(self.text) or self.text[at] != '"':
            raise self.fail("expected an object key", at)
        key, at = self._string(at)
        at = _ws(self.text, at)
        if at >= len(self.text) or self.text[at] != ":":
            raise self.fail("expected ':' after an object key", at)
        stack.append(key)
        return at + 1

    def _string(self, at: int) -> tuple[str, int]:
        try:
            found: tuple[str, int] = json.decoder.scanstring(self.text, at + 1, True)  # type: ignore[attr-defined]
            return found
        except json.JSONDecodeError as exc:
            raise self.fail(exc.msg, exc.pos) from None

    def _number(self, at: int) -> tuple[Any, int]:
        match = _NUMBER.match(self.text, at)
        if match is None:
            raise self.fail("invalid character", at)
        literal = match.group()
        if self.exact:
            return orjson.Fragment(literal), match.end()
        if match.group(1) is None and match.group(2) is None:
            return int(literal), match.end()
        return float(literal), match.end()


def _write(value: Any, sort_keys: bool) -> bytes:
    """Compact JSON by an explicit stack of iterators, for values orjson will not write so deep.
    Values come from decoded JSON, so a tuple met here is always an object's (key, value)."""
    out: list[bytes] = []
    emit = out.append
    stack: list[Iterator[Any]] = []
    closers: list[bytes] = []
    item, first = value, True
    while True:
        if isinstance(item, tuple):  # an object's (key, value)
            key, item = item
            if not isinstance(key, str):
                raise TypeError("Dict key must be str")
            emit(orjson.dumps(key))
            emit(b":")
        if isinstance(item, dict | list):
            if len(stack) >= MAX_DEPTH:
                raise TypeError(_ORJSON_WRITE_DEPTH)
            opening, closing = (b"{", b"}") if isinstance(item, dict) else (b"[", b"]")
            emit(opening)
            if isinstance(item, dict):
                stack.append(iter(sorted(item.items()) if sort_keys else list(item.items())))
            else:
                stack.append(iter(item))
            closers.append(closing)
            first = True
        else:
            emit(orjson.dumps(item))
            first = False
        # The next item, closing every container that has none left.
        while stack:
            item = next(stack[-1], _DONE)
            if item is not _DONE:
                if not first:
                    emit(b",")
                break
            stack.pop()
            emit(closers.pop())
            first = False
        else:
            return b"".join(out)


_DONE = object()
