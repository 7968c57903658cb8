"""The modules of src/parcelwatch import one another without cycles.

The graph is built with the standard library's `ast` only (nothing is imported):
- relative imports are resolved against the importing module's package;
- `from pkg import name` is an edge to `pkg.name` when that is a module, else to `pkg`;
- imports inside functions count (one that only dodges a cycle is still a cycle);
- imports under `if TYPE_CHECKING:` do not (they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import parcelwatch

PACKAGE_ROOT = Path(parcelwatch.__file__).parent
PACKAGE = "parcelwatch"

Graph = dict[str, set[str]]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE_ROOT.rglob("*.py"))}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import that can run: at module level, in classes and in functions, but not in
    the body of an `if TYPE_CHECKING:` block (its `else:` branch does run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                yield from _imports(ast.Module(body=[child], type_ignores=[]))
        else:
            yield from _imports(node)


def _resolve_base(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module.split(".") if is_package else module.split(".")[:-1]
    base = package[: len(package) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def _target(name: str, modules: dict[str, Path]) -> str | None:
    """`name` itself when it is one of ours, else its longest prefix that is."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in modules:
            return candidate
        parts.pop()
    return None


def _edges(module: str, is_package: bool, tree: ast.AST, modules: dict[str, Path]) -> set[str]:
    """The modules of ours that `module` (parsed as `tree`) imports."""
    targets: set[str | None] = set()
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            targets.update(_target(alias.name, modules) for alias in node.names)
            continue
        base = _resolve_base(module, is_package, node)
        if not (base == PACKAGE or base.startswith(PACKAGE + ".")):
            continue
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            targets.add(submodule if submodule in modules else _target(base, modules))
    return {target for target in targets if target is not None and target != module}


def build_import_graph() -> Graph:
    modules = _modules()
    return {
        module: _edges(
            module,
            path.name == "__init__.py",
            ast.parse(path.read_text(encoding="utf-8"), filename=str(path)),
            modules,
        )
        for module, path in modules.items()
    }


def _strongly_connected(graph: Graph) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return components


def _shortest_cycle_through(graph: Graph, start: str, within: set[str]) -> list[str]:
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node] & within):
                if child == start:
                    return [*paths[node], start]
                if child not in paths:
                    paths[child] = [*paths[node], child]
                    following.append(child)
        frontier = following
    return [start]  # pragma: no cover - every member of a component is on a cycle


def find_cycles(graph: Graph) -> list[list[str]]:
    """One shortest cycle through each module that is on one (each cycle listed once)."""
    cycles: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    for component in _strongly_connected(graph):
        members = set(component)
        for module in component:
            cycle = _shortest_cycle_through(graph, module, members)
            ring = cycle[:-1]
            turned = ring.index(min(ring))
            key = tuple(ring[turned:] + ring[:turned])
            if key not in seen:
                seen.add(key)
                cycles.append(cycle)
    return cycles


def test_the_modules_of_parcelwatch_import_one_another_without_cycles() -> None:
    cycles = find_cycles(build_import_graph())
    for cycle in cycles:
        print("import cycle: " + " -> ".join(cycle))  # noqa: T201 - the failure report
    assert cycles == [], f"{len(cycles)} import cycle(s), printed above"


def test_no_feature_imports_the_app_that_mounts_it() -> None:
    # Features once appended their lifespan hooks to a list in api/app.py at import time;
    # create_app now lists them itself, so the app imports the features and never the reverse.
    graph = build_import_graph()
    importers = sorted(
        module for module, targets in graph.items() if "parcelwatch.api.app" in targets
    )
    assert importers, "nothing imports api.app: the graph is not seeing imports"
    assert all(module.startswith("parcelwatch.cli.") for module in importers), importers


def test_the_graph_sees_relative_function_level_and_from_package_imports(tmp_path: Path) -> None:
    # The builder itself: a tiny package with every kind of import it must resolve.
    tree = ast.parse(
        "from typing import TYPE_CHECKING\n"
        "from . import sibling\n"
        "from .. import helpers\n"
        "from ..helpers import CONSTANT\n"
        "if TYPE_CHECKING:\n"
        "    from parcelwatch.hidden import Only\n"
        "def late():\n"
        "    import parcelwatch.late.module\n"
    )
    names = (
        "parcelwatch.pkg.sub",
        "parcelwatch.pkg.sub.sibling",
        "parcelwatch.pkg.helpers",
        "parcelwatch.hidden",
        "parcelwatch.late",
    )
    modules = dict.fromkeys(names, tmp_path)
    assert _edges("parcelwatch.pkg.sub", True, tree, modules) == {
        "parcelwatch.pkg.sub.sibling",
        "parcelwatch.pkg.helpers",
        "parcelwatch.late",
    }


def test_a_cycle_is_found_and_reported_once() -> None:
    graph: Graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]


def test_the_emulator_signing_keys_need_none_of_the_push_or_carrier_modules() -> None:
    # They used to share a module with the push builder, tying six emulator modules into
    # one cycle (state -> webhooks -> shipengine -> fedex/ups/usps -> state).
    graph = build_import_graph()
    assert graph["parcelwatch.emulator.signing"] == {"parcelwatch.emulator.wire"}
    assert "parcelwatch.emulator.webhooks" not in graph["parcelwatch.emulator.state"]


def test_the_batch_writer_is_given_what_it_writes_with_not_the_sync_engine() -> None:
    # Not even for type checking: the writer's interface is its keyword arguments.
    path = PACKAGE_ROOT / "sync" / "batches.py"
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert "parcelwatch.sync.engine" not in imported
