"""The house rules the tools can check (STYLE.md): every import points down a floor or stays on its
own (app -> routers -> services -> mesh -> components; wasm beside services), no two modules import
each other even through others, and nothing below the routers speaks FastAPI or Starlette (the mesh
works on ASGI scopes with the ASGI spec's types, mesh/asgi.py) or gRPC (routers/grpc/ is the only
place Dapr's proto messages and grpcio appear).

Every import counts, including those inside functions and under TYPE_CHECKING: a lazy import is
still a dependency, and a cycle through one is one that a refactor turns into an ImportError.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FLOORS = {"app": 4, "routers": 3, "services": 2, "wasm": 2, "mesh": 1, "components": 0, "observability": -1}
"""Higher imports lower. ``wasm`` sits beside ``services`` (the engine its building blocks use);
``observability`` (metrics) is under everything: every floor records into it."""
WEB_FRAMEWORKS = ("fastapi", "starlette")
GRPC = ("grpc", "grpc_status", "grpc_health", "grpc_reflection", "dapr", "google.rpc", "google.protobuf")
"""gRPC and the proto messages: the gRPC transport's (routers/grpc/), never the services'."""
TRANSPORT_FREE = ("services", "wasm", "mesh", "components")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    found = {}
    for package in FLOORS:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _absolute(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    package = module.split(".")
    is_package = modules()[module].name == "__init__.py"
    base = package if is_package else package[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


@cache
def imports(module: str) -> frozenset[str]:
    """Every module (product or not) ``module`` imports: ``from a import b`` is ``a.b`` when that is
    a module, else ``a``."""
    tree = ast.parse(modules()[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = _absolute(module, node)
            for alias in node.names:
                candidate = f"{source}.{alias.name}"
                found.add(candidate if candidate in modules() else source)
    return frozenset(found)


def product_imports(module: str) -> Iterator[str]:
    for name in imports(module):
        if name.split(".")[0] in FLOORS:
            # ``import a.b.c`` runs a, a.b and a.b.c; the nearest that is a module of ours counts.
            while name and name not in modules():
                name = name.rpartition(".")[0]
            if name and name != module:
                yield name


def floor(module: str) -> int:
    return FLOORS[module.split(".")[0]]


def test_the_product_packages_are_found() -> None:
    assert {"app.factory", "routers.state", "services.state", "mesh.proxy", "components.registry"} <= set(
        modules()
    )


def _upward() -> list[str]:
    return sorted(
        f"{module} -> {target}"
        for module in modules()
        for target in product_imports(module)
        if floor(target) > floor(module)
    )


def test_the_floor_check_finds_an_upward_import(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {
        "mesh.a": ["components.b", "services.c"],
        "services.c": ["wasm.d"],
        "wasm.d": [],
        "components.b": [],
    }
    monkeypatch.setitem(globals(), "modules", lambda: dict.fromkeys(fake, ROOT))
    monkeypatch.setitem(globals(), "product_imports", lambda module: iter(fake[module]))
    assert _upward() == ["mesh.a -> services.c"]


def test_no_import_points_up_a_floor() -> None:
    assert _upward() == []


def _cycles() -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    graph = {module: sorted(set(product_imports(module))) for module in modules()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:
        # Iterative, so a deep import chain cannot hit the recursion limit.
        work = [(start, iter(graph[start]))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, edges = work[-1]
            for target in edges:
                if target not in index:
                    index[target] = low[target] = len(index)
                    stack.append(target)
                    on_stack.add(target)
                    work.append((target, iter(graph[target])))
                    break
                if target in on_stack:
                    low[node] = min(low[node], index[target])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return sorted(found)


def test_no_import_cycles() -> None:
    assert _cycles() == []


def test_the_cycle_finder_finds_cycles(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = {"mesh.a": ["mesh.b"], "mesh.b": ["mesh.c"], "mesh.c": ["mesh.a"], "mesh.d": ["mesh.a"]}
    monkeypatch.setitem(globals(), "modules", lambda: dict.fromkeys(fake, ROOT))
    monkeypatch.setitem(globals(), "product_imports", lambda module: iter(fake[module]))
    assert _cycles() == [["mesh.a", "mesh.b", "mesh.c"]]


def test_nothing_below_the_routers_speaks_fastapi_or_starlette() -> None:
    speaking = sorted(
        f"{module} -> {name}"
        for module in modules()
        if module.split(".")[0] in TRANSPORT_FREE
        for name in imports(module)
        if name.split(".")[0] in WEB_FRAMEWORKS
    )
    assert speaking == []


def test_nothing_below_the_routers_speaks_grpc() -> None:
    speaking = sorted(
        f"{module} -> {name}"
        for module in modules()
        if module.split(".")[0] in TRANSPORT_FREE
        for name in imports(module)
        if any(name == prefix or name.startswith(prefix + ".") for prefix in GRPC)
    )
    assert speaking == []
