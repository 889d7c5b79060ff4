"""Running a wasm call on the event-loop thread in a greenlet, so that a host call that needs the
loop (``proxy_get_state``) suspends the call instead of blocking a worker thread.

The call runs in a greenlet (the pattern SQLAlchemy's asyncio layer uses); a host function hands
its coroutine to :func:`wait`, which switches back to :func:`run` on the loop; ``run`` awaits the
coroutine (bounded by the call's deadline) and switches into the greenlet again with its result.
No thread hop and no GIL hand-off, where a call on a worker thread crosses threads four times.

**One call at a time per thread (the loop's wasm slot).** wasmtime keeps, per OS thread, a chain
of the wasm activations on the stack, stored in those stack frames. A greenlet left suspended
inside wasm keeps its activation in that chain while the loop (or another greenlet) reuses the
same stack addresses: a second call suspended at once aborts the process when the two resume out
of order (``assertion failed: core::ptr::eq(head, self)``), and a trap in any call made meanwhile
walks the chain into overwritten memory and hangs (both seen with wasmtime 51; the subprocess test
in tests/wasm/test_suspend.py keeps watching the first). So while a call holds the slot, no other
wasm runs on the loop thread: another call that would have run on the loop, suspending or not,
takes a worker thread (wasm/runner.py). Waiting for the slot instead (up to 5 ms) was measured
and dropped: it serialises the state reads (one Redis round trip in flight), which left l8 idle
half the time under load.

A call that outgrows its fuel traps and is run again on a worker thread, which is safe only
because the host calls that suspend here change nothing (wasm/runner.py READ_IMPORTS).
"""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import greenlet

if TYPE_CHECKING:
    from wasm.abi import HostContext


class Slot:
    """The loop thread's one place for a wasm call suspended in a greenlet."""

    __slots__ = ("busy",)

    def __init__(self) -> None:
        self.busy = False

    def take(self) -> bool:
        """Takes the slot when it is free; False when a call holds it."""
        if self.busy:
            return False
        self.busy = True
        return True

    def give_back(self) -> None:
        self.busy = False


_slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Slot] = weakref.WeakKeyDictionary()


def slot(loop: asyncio.AbstractEventLoop) -> Slot:
    """``loop``'s slot."""
    found = _slots.get(loop)
    if found is None:
        found = _slots[loop] = Slot()
    return found


class _Cancelled(Exception):
    """The request was cancelled while its call waited: the call is ended through its host call."""


def wait(coroutine: Coroutine[Any, Any, Any]) -> Any:
    """From a host function in a greenlet started by :func:`run`: the coroutine's result (or its
    exception), awaited on the loop."""
    parent = greenlet.getcurrent().parent
    if parent is None:  # pragma: no cover - only run() starts the calls that reach here
        coroutine.close()
        raise RuntimeError("wasm.suspend.wait outside a suspendable call")
    ok, value = parent.switch(coroutine)
    if ok:
        return value
    raise value


async def run(context: HostContext, work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in a greenlet on this thread, its host calls awaited here (each until the
    call's deadline, ``context.deadline`` on time.monotonic()'s clock). The caller holds the slot.
    Returns what ``work`` returns, raises what it raises. Always drives the call to its end, even
    when the awaiting task is cancelled (a call abandoned inside wasm would leave its activation
    in wasmtime's chain); the cancellation is raised afterwards."""
    from wasm.abi import DeadlineExceeded

    call = greenlet.greenlet(work)
    context.suspend = wait
    cancelled = False
    try:
        outcome = call.switch(*args)
        while not call.dead:
            reply: tuple[bool, Any]
            if cancelled:
                outcome.close()
                reply = (False, _Cancelled("the request was cancelled"))
            else:
                try:
                    reply = (True, await _bounded(outcome, context.deadline))
                except TimeoutError:
                    reply = (False, DeadlineExceeded(f"function {context.function} exceeded its time limit"))
                except asyncio.CancelledError:
                    cancelled = True
                    reply = (False, _Cancelled("the request was cancelled"))
                except Exception as exc:  # the service's failure, the module's to handle
                    reply = (False, exc)
            outcome = call.switch(reply)
    finally:
        context.suspend = None
    if cancelled:
        raise asyncio.CancelledError
    return outcome


async def _bounded(coroutine: Coroutine[Any, Any, Any], deadline: float) -> Any:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        coroutine.close()
        raise TimeoutError
    async with asyncio.timeout(remaining):
        return await coroutine
