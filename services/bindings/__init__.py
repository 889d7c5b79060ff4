"""The bindings building block: output bindings the app invokes (services/bindings/output.py) and
input bindings whose events reach the app (services/bindings/input.py)."""

from __future__ import annotations

from collections.abc import Iterable

from components.bindings.base import Feature
from components.loaded import LoadedComponent
from mesh.app_channel import AppConnection
from mesh.resiliency import OutboundFor, Resiliency, no_policy
from services.bindings.answers import BindingAnswers
from services.bindings.directions import check_contracts, directions
from services.bindings.input import InputBindings
from services.bindings.output import OutputBindings, TraceHeaders, answer_headers

__all__ = ["BindingsService", "InputBindings", "OutputBindings", "TraceHeaders", "answer_headers"]


class BindingsService:
    def __init__(
        self, output: OutputBindings, input: InputBindings, answers: BindingAnswers | None = None
    ) -> None:
        self.output = output
        self.input = input
        self.answers = answers

    @classmethod
    def from_components(
        cls,
        components: Iterable[LoadedComponent],
        channel: AppConnection,
        resiliency: Resiliency,
        outbound: OutboundFor = no_policy,
    ) -> BindingsService:
        """Each component in the directions it serves and its ``direction`` metadata allows; a type
        claiming a direction it does not implement raises ResourceError naming the component."""
        outputs, inputs = [], []
        for component in components:
            check_contracts(component)
            used = directions(component)
            if Feature.OUTPUT_BINDING in used:
                outputs.append(component)
            if Feature.INPUT_BINDING in used:
                inputs.append(component)
        output = OutputBindings.from_components(outputs, outbound)
        answers = BindingAnswers(output)
        return cls(output, InputBindings(inputs, channel, resiliency, answers=answers), answers)

    async def aclose(self) -> None:
        await self.input.aclose()
        if self.answers is not None:
            await self.answers.aclose()
