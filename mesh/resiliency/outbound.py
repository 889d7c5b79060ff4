"""A component's outbound calls (state, lock, sequencer, configuration, publishing) under its
``Resiliency`` policy, or under the sidecar's deadline alone.

Every service runs its store calls through the :class:`Outbound` of the store's handle, so the
policy is applied in one place per building block. With no policy the call only gets the deadline
(``component_timeout``); a policy's own timeout replaces the deadline, per attempt, as in daprd.

A write that is not idempotent (a publish, a lock acquisition) goes through
:meth:`Outbound.call_non_idempotent`: it is retried only after a failure that proves it was not
applied, never after a timeout or a lost reply, so one request never puts two copies of an event
on a topic. Whatever the policy, a call that ran out of time answers
:class:`~components.errors.OutcomeUnknownError`, which the services report as their block's error.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from components.errors import BackendError, OutcomeUnknownError
from components.loaded import LoadedComponent
from mesh.resiliency.breaker import CircuitOpenError
from mesh.resiliency.deadline import Deadline
from mesh.resiliency.policy import Policy

T = TypeVar("T")


def _not_applied(error: Exception) -> bool:
    """A timeout or a lost reply may have left a write applied; any other failure did not."""
    return not isinstance(error, OutcomeUnknownError | TimeoutError)


class Outbound:
    """The calls from the sidecar to one component."""

    __slots__ = ("_deadline", "name", "policy")

    def __init__(self, name: str, policy: Policy | None = None, deadline: float | None = None) -> None:
        self.name = name
        self.policy = policy
        """None when no Resiliency policy applies: the call then costs one deadline and nothing else."""
        self._deadline = Deadline(deadline, self._past_deadline) if deadline else None

    @property
    def deadline(self) -> float | None:
        return self._deadline.seconds if self._deadline is not None else None

    async def call(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``operation(*args)`` under the policy, retried after any failure the policy retries."""
        if self.policy is None:
            if self._deadline is None:
                return await operation(*args)
            return await self._deadline.run(operation, args)
        return await self._run(self.policy, operation, args, None)

    async def call_non_idempotent(self, operation: Callable[..., Awaitable[T]], *args: Any) -> T:
        """As :meth:`call`, but never retried after a failure that may have left it applied."""
        if self.policy is None:
            if self._deadline is None:
                return await operation(*args)
            return await self._deadline.run(operation, args)
        return await self._run(self.policy, operation, args, _not_applied)

    async def _run(
        self,
        policy: Policy,
        operation: Callable[..., Awaitable[T]],
        args: tuple[Any, ...],
        retryable: Callable[[Exception], bool] | None,
    ) -> T:
        try:
            return await policy.run(functools.partial(operation, *args), retryable)
        except CircuitOpenError as exc:
            raise BackendError(f"{exc}: {self.name} is not called until it half-opens") from None
        except TimeoutError:
            # Components translate their own timeouts, so a bare TimeoutError is the policy's.
            raise self._late(policy.timeout or 0.0, "resiliency timeout") from None

    def _past_deadline(self) -> OutcomeUnknownError:
        return self._late(self.deadline or 0.0, "component_timeout")

    def _late(self, seconds: float, setting: str) -> OutcomeUnknownError:
        return OutcomeUnknownError(
            f"{self.name} did not answer within {seconds:g}s ({setting}); a write may still be applied"
        )


NO_POLICY = Outbound("component")

OutboundFor = Callable[[LoadedComponent], Outbound]
"""What a building block's factory is given: each of its components' outbound calls."""


def no_policy(component: LoadedComponent) -> Outbound:
    """No Resiliency policy and no deadline: for services built outside the runtime."""
    return NO_POLICY


"""For handles built without a runtime (tests, tools): no policy, no deadline."""


def outbound(name: str, policy: Policy, deadline: float | None) -> Outbound:
    """The :class:`Outbound` of ``name`` from its resolved policy (possibly empty) and the sidecar's
    deadline; an empty policy is dropped so the call stays on the lean path."""
    if policy.retry is None and policy.breaker is None and not policy.timeout:
        return Outbound(name, None, deadline)
    if not policy.timeout:
        policy.timeout = deadline or None
    return Outbound(name, policy, deadline)
