"""Which directions of a binding component a sidecar uses: Dapr's ``direction`` metadata.

Without it, every direction the binding type serves is used. With it (``input``, ``output`` or
``input, output``, any case), only the named ones that the type serves; a direction naming
``input`` also tells the sidecar the app listens, so the ``OPTIONS`` probe is skipped, as in daprd.
"""

from __future__ import annotations

from components.bindings.base import Feature, InputBinding, OutputBinding
from components.loaded import LoadedComponent
from components.registry import contract_problems

DIRECTION = "direction"
_WORDS = {"input": Feature.INPUT_BINDING, "output": Feature.OUTPUT_BINDING}
_CONTRACTS = {Feature.INPUT_BINDING: InputBinding, Feature.OUTPUT_BINDING: OutputBinding}


def declared(component: LoadedComponent) -> frozenset[Feature] | None:
    """The directions the ``direction`` metadata names; None when it is absent or empty."""
    text = component.setting(DIRECTION)
    if not text or not text.strip():
        return None
    return frozenset(_WORDS[word] for part in text.split(",") if (word := part.strip().lower()) in _WORDS)


def directions(component: LoadedComponent) -> frozenset[Feature]:
    """The directions this sidecar uses the binding in (its capabilities in GET /v1.0/metadata)."""
    served = frozenset(Feature(str(feature)) for feature in component.instance.features())
    named = declared(component)
    return served if named is None else served & named


def skips_probe(component: LoadedComponent) -> bool:
    """daprd sends no ``OPTIONS`` probe to a binding whose ``direction`` names ``input``."""
    named = declared(component)
    return named is not None and Feature.INPUT_BINDING in named


def check_contracts(component: LoadedComponent) -> None:
    """A type claiming a direction implements its Protocol; a start-up error names what it lacks."""
    for feature in component.instance.features():
        contract = _CONTRACTS.get(Feature(str(feature)))
        if contract is None:
            continue
        problems = contract_problems(type(component.instance), contract)
        if problems:
            raise component.error(
                f"component type {component.type!r} claims {feature} but does not meet its contract: "
                + "; ".join(problems),
                "spec.type",
            )
