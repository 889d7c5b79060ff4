"""The component registry: every registered type against its block's contract, and types added by
other packages through the ``l8.components`` entry points.

Plug-ins here are real installed distributions: a ``*.dist-info`` folder with an
``entry_points.txt`` and a module beside it on ``sys.path``, found by ``importlib.metadata`` as pip's
would be. The example package of tests/plugins is installed in the test environment (make test).
"""

from __future__ import annotations

import enum
import importlib.util
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from components import registry
from components.registry import BrokenComponentType, UnknownComponentType, contract_problems
from components.state.base import StateStore

EXAMPLE = "state.example"  # tests/plugins/l8-example-store


@pytest.mark.parametrize("component_type", registry.component_types())
async def test_every_registered_type_meets_its_contract(component_type: str) -> None:
    owner = registry.registry_of(component_type)
    cls = owner.load(component_type)
    assert contract_problems(cls, owner.contract) == []
    instance = registry.create(component_type)  # constructors do no I/O: nothing runs here
    assert type(instance) is cls
    assert all(isinstance(feature, enum.Enum) for feature in instance.features())
    # Start-up closes a component whose init failed, so close works on one never initialised.
    await instance.close()
    await instance.close()


def test_mypy_checks_every_registered_class_against_its_contract(tmp_path: Path) -> None:
    """Argument and return types too, which inspect cannot see: each class, built-in or installed,
    assigned to its contract's type, in a file mypy checks with the project's settings."""
    lines, paths = [], set()
    for index, component_type in enumerate(registry.component_types()):
        owner = registry.registry_of(component_type)
        module, cls = owner.types()[component_type].split(":")
        contract_module, contract = owner.contract_target.split(":")
        lines += [
            f"from {module} import {cls} as C{index}",
            f"from {contract_module} import {contract} as P{index}",
            f"V{index}: type[P{index}] = C{index}  # {component_type}",
            f"reveal_type(C{index})",
        ]
        spec = importlib.util.find_spec(module.split(".")[0])
        assert spec is not None and spec.submodule_search_locations
        paths.add(
            str(Path(next(iter(spec.submodule_search_locations))).parent)
        )  # plug-ins: editable installs
    check = tmp_path / "contracts_check.py"
    check.write_text("\n".join(lines) + "\n")
    root = Path(registry.__file__).parents[1]
    paths.discard(str(root))
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary", str(check)],
        cwd=root,
        env={**os.environ, "MYPYPATH": os.pathsep.join(sorted(paths))},
        capture_output=True,
        text=True,
        check=False,
    )
    reports = done.stdout.splitlines()
    errors = [line for line in reports if ": error:" in line]
    assert errors == [], done.stdout
    revealed = [line.split('Revealed type is "', 1)[1] for line in reports if "Revealed type is" in line]
    assert len(revealed) == len(registry.component_types())
    assert all(type_.startswith("def ") for type_ in revealed), revealed  # not Any: every import resolved


def test_built_in_and_plug_in_types_are_listed() -> None:
    types = set(registry.component_types())
    assert {"state.redis", "pubsub.kafka", "lock.etcd", "sequencer.sqlite", "configuration.file"} <= types
    assert EXAMPLE in types
    assert registry.STATE.types()[EXAMPLE] == "l8_example_store.store:ExampleStateStore"
    assert EXAMPLE not in registry.PUBSUB.types()


def test_the_typed_registry_hands_out_its_block_only() -> None:
    assert type(registry.STATE.create("state.in-memory")).__name__ == "InMemoryStateStore"
    with pytest.raises(UnknownComponentType, match=r"unknown component type 'pubsub.redis'"):
        registry.STATE.create("pubsub.redis")


def test_unknown_types_and_versions_are_refused_naming_the_known_ones() -> None:
    with pytest.raises(UnknownComponentType) as refused:
        registry.create("state.nope")
    message = str(refused.value)
    assert message.startswith("unknown component type 'state.nope' (known: ")
    assert "state.redis" in message and EXAMPLE in message
    with pytest.raises(UnknownComponentType, match=r"unknown component type 'conversation.openai'"):
        registry.create("conversation.openai")
    with pytest.raises(UnknownComponentType, match="has no version 'v2'"):
        registry.create("state.redis", "v2")
    assert registry.category("state.redis") == "state"


def test_entry_points_are_not_read_at_import_nor_for_built_in_types() -> None:
    probe = (
        "from components import registry;"
        "registry.create('state.in-memory'); registry.create('pubsub.redis');"
        "print(registry.plugin_types.cache_info().misses)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "0"


# -- plug-ins installed for one test ---------------------------------------------------------------

PluginSite = Callable[[Mapping[str, str], str], str]


@pytest.fixture
def plugin_site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PluginSite]:
    """Install a distribution with these entry points and this module source; returns the module's
    (unique) name. The entry-point cache is cleared before and after."""

    def install(entries: Mapping[str, str], source: str) -> str:
        module = f"plugin_{uuid.uuid4().hex[:8]}"
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source), encoding="utf-8")
        info = tmp_path / f"{module}-0.1.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 0.1\n")
        lines = [f"{name} = {target.replace('MODULE', module)}" for name, target in entries.items()]
        (info / "entry_points.txt").write_text("[l8.components]\n" + "\n".join(lines) + "\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        registry.plugin_types.cache_clear()
        return module

    registry.plugin_types.cache_clear()
    yield install
    registry.plugin_types.cache_clear()


DICT_STORE = """
    class Store:
        async def init(self, metadata): ...
        def features(self): return frozenset()
        async def get(self, request): return None
        async def bulk_get(self, requests): return [None for _ in requests]
        async def set(self, request): ...
        async def bulk_set(self, requests): ...
        async def delete(self, request): ...
        async def close(self): ...
"""


def test_a_plug_in_type_is_created_through_its_entry_point(plugin_site: PluginSite) -> None:
    name = f"state.tmp-{uuid.uuid4().hex[:6]}"
    module = plugin_site({name: "MODULE:Store"}, DICT_STORE)
    store = registry.create(name)
    assert type(store).__module__ == module
    assert name in registry.component_types()


def test_a_plug_in_cannot_replace_a_built_in_type(plugin_site: PluginSite) -> None:
    with capture_logs() as logs:
        plugin_site({"state.redis": "MODULE:Store"}, DICT_STORE)
        types = registry.plugin_types()
    assert "state.redis" not in types
    assert type(registry.create("state.redis")).__name__ == "RedisStateStore"
    warned = [entry for entry in logs if entry["log_level"] == "warning"]
    assert [(w["event"], w["type"]) for w in warned] == [
        ("component entry point ignored: a built-in type has that name", "state.redis")
    ]


def test_a_plug_in_of_a_block_l8_lacks_is_ignored(plugin_site: PluginSite) -> None:
    with capture_logs() as logs:
        plugin_site({"conversation.mine": "MODULE:Store"}, DICT_STORE)
        assert "conversation.mine" not in registry.plugin_types()
    assert [entry["event"] for entry in logs] == ["component entry point ignored: no such building block"]
    with pytest.raises(UnknownComponentType, match=r"unknown component type 'conversation.mine'"):
        registry.create("conversation.mine")


def test_a_plug_in_that_cannot_be_imported_fails_naming_its_target(plugin_site: PluginSite) -> None:
    plugin_site({"state.gone": "nowhere_to_be_found.store:Store", "state.typo": "MODULE:Stor"}, DICT_STORE)
    with pytest.raises(BrokenComponentType, match=r"'state.gone': cannot load nowhere_to_be_found\.store:"):
        registry.create("state.gone")
    with pytest.raises(BrokenComponentType, match=r"'state.typo': cannot load plugin_\w+:Stor: "):
        registry.create("state.typo")


def test_a_plug_in_whose_module_fails_to_import_fails_saying_why(plugin_site: PluginSite) -> None:
    plugin_site({"state.failing": "MODULE:Store"}, "raise RuntimeError('no licence key')\n")
    with pytest.raises(BrokenComponentType, match=r"'state.failing': cannot load .*: no licence key"):
        registry.create("state.failing")


def test_a_plug_in_missing_part_of_its_contract_fails_saying_what(plugin_site: PluginSite) -> None:
    source = """
        class Store:
            async def init(self, metadata): ...
            def features(self): return frozenset()
            def get(self, request): return None
            async def bulk_get(self): return []
            async def set(self, request, extra): ...
            async def bulk_set(self, requests, *more): ...
            async def delete(self, request, etag=None): ...
    """
    plugin_site({"state.half": "MODULE:Store"}, source)
    with pytest.raises(BrokenComponentType) as refused:
        registry.create("state.half")
    message = str(refused.value)
    assert message.startswith("component type 'state.half' (plugin_")
    assert "does not meet the state contract: " in message
    problems = message.split("contract: ", 1)[1].split("; ")
    assert [problem.split(" ", 1)[0] for problem in problems] == [
        "get()",
        "bulk_get()",
        "set()",
        "close()",
    ]
    assert problems[0] == "get() must be async"
    assert problems[3] == "close() is missing"


def test_contract_problems_reads_signatures() -> None:
    class Fine:
        async def init(self, metadata, *, extra=None): ...
        def features(self): ...
        async def get(self, req): ...  # a renamed positional is fine
        async def bulk_get(self, *requests): ...
        async def set(self, request, ttl=None): ...
        async def bulk_set(self, requests): ...
        async def delete(self, request): ...
        async def close(self): ...

    class Async(Fine):
        async def features(self): ...

    assert contract_problems(Fine, StateStore) == []
    assert contract_problems(Async, StateStore) == ["features() must be a plain method, not async"]
