"""One Kafka subscription: a consumer group member that hands records to the handler and commits
offsets only for what the handler finished.

* **Fetching.** One task polls the consumer and appends records to per-partition buffers; a buffer
  over :data:`_BUFFER_HIGH` records pauses its partition (the consumer keeps polling, so the group
  does not evict it), and draining below half resumes it.
* **Dispatch.** One worker per assigned partition takes records in offset order and starts a
  delivery for each while a slot of the subscription's ``max_in_flight`` semaphore is free, so
  with ``max_in_flight == 1`` every partition is delivered strictly in order.
* **Retries.** A delivery whose handler raises keeps its record: it waits ``retry_interval``
  (giving its slot to other partitions meanwhile) and calls the handler again, until it succeeds
  or the partition is revoked or the subscription stops. While one of its records is failing a
  partition dispatches nothing new, so later offsets wait.
* **Commits.** Offsets are committed contiguously: the commit point of a partition is one past
  the last record of an unbroken run of finished ones, never past an unfinished record. A single
  committer task sends what accumulated since its last commit, so a busy partition costs one
  commit per round trip rather than one per record.
* **Rebalance.** Revoked partitions stop dispatching and drop their buffers, in-flight deliveries
  get ``drain_timeout`` to finish (then are cancelled, not acknowledged), and what is finished is
  committed before the group moves on; the next owner resumes from there.
* **Stop.** The same for every partition with ``stop_timeout``, then the consumer leaves the group.
  Every wait of a stop has a deadline (:func:`finish_within`): a commit or a leave that the broker
  does not answer (a coordinator that moved, a group in the middle of a join) is abandoned with a
  warning, so a stop never hangs the runtime's shutdown; the group then evicts the member after
  its session timeout and redelivers from the last commit.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka import errors as kafka_errors
from aiokafka.structs import ConsumerRecord

from components.pubsub.base import Handler, Message

log = structlog.get_logger(__name__)

StartOffsets = dict[int, int] | None
"""Where partitions without a committed offset start (partition -> offset; partitions missing
from the map, created after the subscription, start at their beginning), or None for the consumer's
``auto_offset_reset``."""

_BUFFER_HIGH = 256
_POLL_MS = 500
_MAX_BACKOFF = 5.0
_CANCEL_GRACE = 0.5
"""How long a task cancelled at a deadline gets to unwind before it is abandoned."""


def _retrieve(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # an abandoned task's late failure is not an "exception never retrieved"


async def finish_within(awaitable: Awaitable[object], seconds: float, what: str, **context: object) -> bool:
    """Await ``awaitable`` for at most ``seconds``; True when it finished without error.

    Past the deadline it is cancelled and, unlike ``asyncio.wait_for`` or ``asyncio.timeout``
    (which wait for the cancellation to complete, however long that takes), abandoned after
    :data:`_CANCEL_GRACE` with a warning. A failure is logged, not raised: this is for teardown,
    which must go on. Cancelling the caller cancels ``awaitable`` and returns at once."""
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()
        task.add_done_callback(_retrieve)
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=_CANCEL_GRACE)
        task.add_done_callback(_retrieve)
        log.warning(
            "kafka: shutdown step did not finish in time; abandoned", step=what, seconds=seconds, **context
        )
        return False
    if task.cancelled():
        log.warning("kafka: shutdown step was cancelled", step=what, **context)
        return False
    error = task.exception()
    if error is not None:
        log.warning(
            "kafka: shutdown step failed", step=what, error=str(error) or type(error).__name__, **context
        )
        return False
    return True


class _Delivery:
    __slots__ = ("done", "offset")

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.done = False


class _Partition:
    """What the subscription tracks for one assigned partition."""

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.buffer: deque[ConsumerRecord[Any, Any]] = deque()
        self.outstanding: deque[_Delivery] = deque()
        """Dispatched records in offset order, finished or not, above the commit point."""
        self.commit_to: int | None = None
        self.committed: int | None = None
        self.failing = 0
        self.paused = False
        self.gone = asyncio.Event()
        """Set on revoke and stop: nothing more is dispatched or retried."""
        self.wakeup = asyncio.Event()
        self.deliveries: set[asyncio.Task[None]] = set()
        self.worker: asyncio.Task[None] | None = None
        self.positioning: asyncio.Task[None] | None = None
        """Finding where a partition the group never committed starts (see _position_new_group)."""

    def advance(self) -> bool:
        """Move the commit point over finished records; True when it moved."""
        moved = False
        while self.outstanding and self.outstanding[0].done:
            self.commit_to = self.outstanding.popleft().offset + 1
            moved = True
        return moved


def _message(record: ConsumerRecord[Any, Any]) -> Message:
    metadata = {name: bytes(value or b"").decode(errors="replace") for name, value in record.headers}
    if record.key is not None:
        metadata["__key"] = bytes(record.key).decode(errors="replace")
    metadata["__topic"] = record.topic
    metadata["__partition"] = str(record.partition)
    metadata["__offset"] = str(record.offset)
    metadata["__timestamp"] = str(record.timestamp)
    return Message(
        topic=record.topic,
        data=bytes(record.value or b""),
        metadata=metadata,
        id=f"{record.partition}-{record.offset}",
    )


class KafkaSubscription(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka ships no types
    """A running subscription (the :class:`~components.pubsub.base.Consumer` of ``pubsub.kafka``)."""

    stop_timeout: ClassVar[float] = 5.0
    """How long ``stop()`` lets in-flight handler calls finish before cancelling them."""
    commit_timeout: ClassVar[float] = 2.0
    """Deadline of the last commit of a stop or a revoke (what is not committed is redelivered)."""
    leave_timeout: ClassVar[float] = 3.0
    """Deadline of closing the consumer (finishing a join in progress, LeaveGroup, connections)."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        handler: Handler,
        *,
        max_in_flight: int,
        retry_interval: float,
        start_offsets: StartOffsets,
        drain_timeout: float,
        on_stopped: Callable[[KafkaSubscription], None] = lambda _: None,
    ) -> None:
        self._consumer = consumer
        self._topic = topic
        self._handler = handler
        self._slots = asyncio.Semaphore(max(1, max_in_flight))
        self._retry_interval = retry_interval
        self._start_offsets = start_offsets
        self._drain_timeout = drain_timeout
        self._on_stopped = on_stopped
        self._partitions: dict[TopicPartition, _Partition] = {}
        self._commit_wanted = asyncio.Event()
        self._commit_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping: asyncio.Task[None] | None = None

    @property
    def partitions(self) -> frozenset[int]:
        """The partitions this member of the group owns now (empty while it joins)."""
        return frozenset(tp.partition for tp in self._partitions)

    def start(self) -> None:
        self._consumer.subscribe([self._topic], listener=self)
        self._tasks = [
            asyncio.create_task(self._fetch_loop(), name=f"kafka fetch {self._topic}"),
            asyncio.create_task(self._commit_loop(), name=f"kafka commit {self._topic}"),
        ]

    async def stop(self) -> None:
        if self._stopping is None:
            self._stopping = asyncio.create_task(self._shutdown())
        await asyncio.shield(self._stopping)

    async def _shutdown(self) -> None:
        """Bounded: about ``stop_timeout + commit_timeout + leave_timeout`` at worst."""
        try:
            for task in self._tasks:
                task.cancel()
            if self._tasks:
                _, stuck = await asyncio.wait(self._tasks, timeout=_CANCEL_GRACE)
                if stuck:
                    log.warning(
                        "kafka: fetch or commit task ignores cancellation; abandoned", topic=self._topic
                    )
            partitions = list(self._partitions.values())
            self._partitions.clear()
            await self._release(partitions, self.stop_timeout)
            # Finishes a join in progress (the coordinator's task runs to its end), leaves the
            # group and closes the connections: all of it waits on the broker.
            await finish_within(self._consumer.stop(), self.leave_timeout, "consumer stop", topic=self._topic)
        finally:
            self._on_stopped(self)

    # -- group membership (aiokafka calls these around every rebalance) ------------------------

    async def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        partitions = [part for tp in revoked if (part := self._partitions.pop(tp, None)) is not None]
        await self._release(partitions, self._drain_timeout)

    async def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        if self._stopping is not None:
            return
        for tp in assigned:
            part = self._partitions[tp] = _Partition(tp)
            part.worker = asyncio.create_task(self._dispatch(part), name=f"kafka dispatch {tp}")
        if self._start_offsets is not None:
            for tp in assigned:
                # Nothing is fetched from the partition until it is positioned: a fetch before the
                # seek would start at auto_offset_reset (latest) and skip what arrived meanwhile.
                with contextlib.suppress(kafka_errors.IllegalStateError):
                    self._consumer.pause(tp)
                part = self._partitions[tp]
                part.positioning = asyncio.create_task(
                    self._position_new_group(part, self._start_offsets), name=f"kafka position {tp}"
                )

    async def _position_new_group(self, part: _Partition, start: dict[int, int]) -> None:
        """Start a partition the group never committed at the end it had when ``subscribe`` was
        called, and commit that (through the commit loop, which retries): the group then resumes
        there even if the partition gets no message before the group stops (otherwise ``newest``
        would skip what arrives while no member runs, a restart after a crash included).

        Looking up the committed offset fails while the group coordinator is not known yet (just
        after a restart) or is moving: it is retried until it answers or the partition is revoked,
        because falling back to ``latest`` would lose the messages published meanwhile."""
        tp = part.tp
        backoff = 0.1
        while not part.gone.is_set():
            try:
                if await self._consumer.committed(tp) is None:
                    offset = start.get(tp.partition)
                    if offset is None:  # the partition was created after subscribe: all of it is new
                        offset = (await self._consumer.beginning_offsets([tp]))[tp]
                    self._consumer.seek(tp, offset)
                    part.commit_to = offset
                    self._commit_wanted.set()
                if not part.paused:
                    self._consumer.resume(tp)
                return
            except kafka_errors.IllegalStateError:
                return  # no longer assigned to this member
            except kafka_errors.KafkaError as exc:
                log.warning("kafka: cannot position partition; retrying", partition=str(tp), error=str(exc))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(backoff):
                    await part.gone.wait()
            backoff = min(backoff * 2, _MAX_BACKOFF)

    async def _release(self, partitions: list[_Partition], wait: float) -> None:
        """Stop dispatching ``partitions``, let their deliveries finish within ``wait`` seconds (then
        cancel them) and commit what finished."""
        if not partitions:
            return
        for part in partitions:
            part.gone.set()
            part.wakeup.set()
            part.buffer.clear()
            for task in (part.worker, part.positioning):
                if task is not None:
                    task.cancel()
        deliveries = {task for part in partitions for task in part.deliveries}
        if deliveries:
            _, late = await asyncio.wait(deliveries, timeout=wait)
            for task in late:
                task.cancel()
            if late:
                log.warning("kafka: cancelled deliveries still running", topic=self._topic, count=len(late))
                _, stuck = await asyncio.wait(late, timeout=_CANCEL_GRACE)
                if stuck:
                    log.warning(
                        "kafka: deliveries ignore cancellation; abandoned",
                        topic=self._topic,
                        count=len(stuck),
                    )
        # A commit waits for the group coordinator, which may be unknown or moving: bounded.
        await finish_within(self._commit(partitions), self.commit_timeout, "commit", topic=self._topic)

    # -- fetching ----------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        backoff = 0.1
        while True:
            try:
                batches = await self._consumer.getmany(timeout_ms=_POLL_MS)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Broker restarts and network trouble: aiokafka reconnects; keep polling.
                log.warning("kafka fetch failed; retrying", topic=self._topic, error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF)
                continue
            backoff = 0.1
            for tp, records in batches.items():
                part = self._partitions.get(tp)
                if part is None or part.gone.is_set():
                    continue  # revoked meanwhile: the next owner starts from the commit point
                part.buffer.extend(records)
                part.wakeup.set()
                if len(part.buffer) >= _BUFFER_HIGH and not part.paused:
                    with contextlib.suppress(kafka_errors.IllegalStateError):
                        self._consumer.pause(tp)
                        part.paused = True

    # -- dispatch and delivery ---------------------------------------------------------------

    async def _dispatch(self, part: _Partition) -> None:
        while True:
            while not part.buffer or part.failing:
                part.wakeup.clear()
                await part.wakeup.wait()
            await self._slots.acquire()
            if part.gone.is_set() or part.failing or not part.buffer:
                self._slots.release()
                continue
            record = part.buffer.popleft()
            if part.paused and len(part.buffer) <= _BUFFER_HIGH // 2:
                with contextlib.suppress(kafka_errors.IllegalStateError):
                    self._consumer.resume(part.tp)
                part.paused = False
            delivery = _Delivery(record.offset)
            part.outstanding.append(delivery)
            task = asyncio.create_task(self._deliver(part, record, delivery))
            part.deliveries.add(task)
            task.add_done_callback(part.deliveries.discard)

    async def _deliver(self, part: _Partition, record: ConsumerRecord[Any, Any], delivery: _Delivery) -> None:
        """Runs holding one slot, which it gives back while waiting to retry."""
        message = _message(record)
        holding, failed = True, False
        try:
            while True:
                try:
                    await self._handler(message)
                except Exception as exc:
                    if not failed:
                        failed = True
                        part.failing += 1
                    log.warning(
                        "kafka message handler failed; retrying",
                        topic=record.topic,
                        id=message.id,
                        error=str(exc) or type(exc).__name__,
                    )
                    self._slots.release()
                    holding = False
                    # asyncio.timeout, not wait_for: Python 3.11's wait_for drops a cancellation
                    # that arrives as the wait ends.
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self._retry_interval):
                            await part.gone.wait()
                    if part.gone.is_set():
                        return  # not acknowledged: redelivered from the commit point
                    await self._slots.acquire()
                    holding = True
                    if part.gone.is_set():
                        return
                    continue
                delivery.done = True
                if part.advance():
                    self._commit_wanted.set()
                return
        finally:
            if failed:
                part.failing -= 1
                part.wakeup.set()
            if holding:
                self._slots.release()

    # -- commits -----------------------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            await self._commit_wanted.wait()
            self._commit_wanted.clear()
            try:
                committed = await self._commit(list(self._partitions.values()))
            except Exception:
                log.exception("kafka commit failed unexpectedly; retrying", topic=self._topic)
                committed = False
            if not committed:
                await asyncio.sleep(0.2)
                self._commit_wanted.set()

    async def _commit(self, partitions: list[_Partition]) -> bool:
        """Commit the commit points of ``partitions``; False when it should be tried again."""
        async with self._commit_lock:
            due = [p for p in partitions if p.commit_to is not None and p.commit_to != p.committed]
            if not due:
                return True
            offsets = {p.tp: p.commit_to for p in due}
            try:
                await self._consumer.commit(offsets)
            except (kafka_errors.CommitFailedError, kafka_errors.IllegalStateError) as exc:
                # The partitions moved to another member, which redelivers from the last commit.
                log.warning("kafka commit refused after a rebalance", topic=self._topic, error=str(exc))
                return True
            except kafka_errors.KafkaError as exc:
                log.warning("kafka commit failed; retrying", topic=self._topic, error=str(exc))
                return False
            for part in due:
                part.committed = offsets[part.tp]
            return True
