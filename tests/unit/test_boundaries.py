"""Import boundaries of the sqsloops package, read from the source with `ast` (nothing is imported).

- The runtime (what the Lambda layer ships: lib/layer.txt, i.e. sqsloops/*.py and sqsloops/jobs/) imports none of
  sqsloops.ops, sqsloops.cli, sqsloops.local, rich or matplotlib, anywhere (inside functions and TYPE_CHECKING
  blocks too), and no sqsloops module the layer does not ship.
- Arrows point down: cli -> ops -> jobs -> core; core imports nothing of jobs/ops/cli/local, jobs only core, ops
  core and jobs (never cli or local). local/ and cli/ are off to the side.
- The dashboard (a web front end beside the CLI) may import ops, jobs and core; only the CLI imports it.
- The module-level import graph of sqsloops (TYPE_CHECKING blocks and imports inside functions left out) has no
  cycle.
"""

from __future__ import annotations

import ast
import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest

from sqsloops.local.provision import layer_files

LIB = Path(__file__).resolve().parents[2] / "lib"
PACKAGE = LIB / "sqsloops"
FORBIDDEN_IN_RUNTIME = ("sqsloops.ops", "sqsloops.cli", "sqsloops.local", "rich", "matplotlib")


def module_name(path: Path) -> str:
    parts = path.relative_to(LIB).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES: dict[str, Path] = {
    module_name(path): path for path in sorted(PACKAGE.rglob("*.py")) if "__pycache__" not in path.parts
}


@dataclass(frozen=True)
class Import:
    """One import in `module`: the module it names (resolved, absolute), where, and whether it runs at import."""

    module: str
    target: str
    line: int
    module_level: bool

    def __str__(self) -> str:
        where = "at module level" if self.module_level else "inside a function or TYPE_CHECKING"
        return f"{self.module} imports {self.target} ({MODULES[self.module].relative_to(LIB)}:{self.line}, {where})"


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve_from(module: str, node: ast.ImportFrom, *, is_package: bool) -> list[str]:
    """The modules a `from X import a, b` names: X.a where X.a is a sqsloops module, else X itself."""
    if node.level:
        package = module if is_package else module.rpartition(".")[0]
        base_parts = package.split(".")[: len(package.split(".")) - (node.level - 1)]
        base = ".".join([*base_parts, *([node.module] if node.module else [])])
    else:
        base = node.module or ""
    targets = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        targets.append(candidate if candidate in MODULES else base)
    return targets


def imports_of(module: str, source: str | None = None, *, is_package: bool | None = None) -> list[Import]:
    """Every import of `module` (its file, or `source`), flagged module-level (runs at import time) or not."""
    path = MODULES.get(module, LIB / "<source>")
    tree = ast.parse(path.read_text() if source is None else source, filename=str(path))
    package = path.name == "__init__.py" if is_package is None else is_package
    found: list[Import] = []

    def visit(node: ast.AST, module_level: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(module, alias.name, node.lineno, module_level) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            targets = dict.fromkeys(_resolve_from(module, node, is_package=package))
            found.extend(Import(module, target, node.lineno, module_level) for target in targets)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            for child in ast.iter_child_nodes(node):
                visit(child, False)
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                visit(child, False)
            for child in node.orelse:
                visit(child, module_level)
        else:
            for child in ast.iter_child_nodes(node):
                visit(child, module_level)

    visit(tree, True)
    return found


IMPORTS: dict[str, list[Import]] = {module: imports_of(module) for module in MODULES}


def runtime_modules() -> list[str]:
    listed = layer_files(LIB)
    assert listed is not None, "lib/layer.txt is missing"
    return sorted(module_name(LIB / f) for f in listed if f.startswith("sqsloops/") and f.endswith(".py"))


def names(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


PACKAGES = {name for name, path in MODULES.items() if path.name == "__init__.py"}


def wing(module: str) -> str:
    """The subpackage of sqsloops a module belongs to (jobs, ops, cli, local, dashboard), or core for the top-level
    ones."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and f"sqsloops.{parts[1]}" in PACKAGES else "core"


# ---------------------------------------------------------------- the runtime


def test_the_runtime_is_what_the_layer_ships() -> None:
    runtime = runtime_modules()
    assert {"sqsloops", "sqsloops.loop", "sqsloops.tokens"} <= set(runtime)
    assert not [m for m in runtime if wing(m) in ("ops", "cli", "local", "dashboard")]
    assert set(runtime) >= {m for m in MODULES if wing(m) in ("core", "jobs")}


@pytest.mark.parametrize("module", runtime_modules())
def test_the_runtime_imports_no_operator_tool_embedded_aws_or_terminal_library(module: str) -> None:
    bad = [str(i) for i in IMPORTS[module] if any(names(i.target, f) for f in FORBIDDEN_IN_RUNTIME)]
    assert not bad, "the runtime must not import " + ", ".join(FORBIDDEN_IN_RUNTIME) + ":\n" + "\n".join(bad)


@pytest.mark.parametrize("module", runtime_modules())
def test_the_runtime_imports_only_sqsloops_modules_the_layer_ships(module: str) -> None:
    shipped = set(runtime_modules())
    bad = [str(i) for i in IMPORTS[module] if names(i.target, "sqsloops") and i.target not in shipped]
    assert not bad, "not in the layer (lib/layer.txt):\n" + "\n".join(bad)


# ---------------------------------------------------------------- arrows point down

ALLOWED = {
    "core": {"core"},
    "jobs": {"core", "jobs"},
    "ops": {"core", "jobs", "ops"},
    "dashboard": {"core", "jobs", "ops", "dashboard"},
}
IMPORTS_DASHBOARD = {"dashboard", "cli"}  # the wings that may import the dashboard


@pytest.mark.parametrize("module", [m for m in MODULES if wing(m) in ALLOWED])
def test_arrows_point_down(module: str) -> None:
    allowed = ALLOWED[wing(module)]
    bad = [
        f"{i}: {wing(module)} may import only {sorted(allowed)}, not {wing(i.target)}"
        for i in IMPORTS[module]
        if i.target in MODULES and wing(i.target) not in allowed
    ]
    assert not bad, "\n".join(bad)


def test_the_wings_are_classified() -> None:
    assert wing("sqsloops") == "core"
    assert wing("sqsloops.loop") == "core"
    assert wing("sqsloops.ops") == "ops"
    assert wing("sqsloops.ops.watch") == "ops"
    assert wing("sqsloops.dashboard.app") == "dashboard"
    assert {wing(m) for m in MODULES} <= {"core", "jobs", "ops", "cli", "local", "dashboard"}


@pytest.mark.parametrize("module", [m for m in MODULES if wing(m) not in IMPORTS_DASHBOARD])
def test_only_the_cli_imports_the_dashboard(module: str) -> None:
    bad = [str(i) for i in IMPORTS[module] if names(i.target, "sqsloops.dashboard")]
    assert not bad, "only sqsloops.cli may import sqsloops.dashboard:\n" + "\n".join(bad)


# ---------------------------------------------------------------- no cycle


def module_level_graph() -> dict[str, set[str]]:
    return {
        module: {i.target for i in imports if i.module_level and i.target in MODULES and i.target != module}
        for module, imports in IMPORTS.items()
    }


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as one cycle through it."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(component)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [_cycle_in(graph, component) for component in components]


def _cycle_in(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """One shortest cycle through the component's first module (breadth first, inside the component)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for nxt in sorted(graph[node] & component):
            if nxt == start:
                return [*paths[node], start]
            if nxt not in paths:
                paths[nxt] = [*paths[node], nxt]
                queue.append(nxt)
    raise AssertionError(f"no cycle through {start}")  # pragma: no cover - a component has one


def describe(cycle: list[str]) -> str:
    steps = []
    for here, there in itertools.pairwise(cycle):
        line = next(i.line for i in IMPORTS[here] if i.module_level and i.target == there)
        steps.append(f"{here} -> {there} ({MODULES[here].relative_to(LIB)}:{line})")
    return "cycle: " + "; ".join(steps)


def test_find_cycles_finds_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert find_cycles(graph) == [["a", "b", "c", "a"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_module_level_import_graph_has_no_cycle() -> None:
    cycles = find_cycles(module_level_graph())
    assert not cycles, "\n".join(describe(c) for c in cycles)


SAMPLE = """\
from __future__ import annotations
from typing import TYPE_CHECKING
import sqsloops.tokens as tokens_module
from . import loop, not_a_module
from .envelope import Envelope
if TYPE_CHECKING:
    from sqsloops.ops import OpsRoot
else:
    from .. import settle
class Thing:
    from sqsloops.clock import Clock
def f():
    import rich
    from ..ops.watch import Watch
"""


def test_the_parser_resolves_relative_imports_and_flags_what_runs_at_import_time() -> None:
    # As if sqsloops/jobs/sample.py: `.` is sqsloops.jobs, `..` is sqsloops
    found = {(i.target, i.module_level) for i in imports_of("sqsloops.jobs.sample", SAMPLE, is_package=False)}
    assert found >= {
        ("sqsloops.tokens", True),
        ("sqsloops.jobs", True),  # `from . import not_a_module`: a name of the package, so its __init__
        ("sqsloops.jobs.envelope", True),
        ("sqsloops.ops", False),  # `OpsRoot` is not a module of sqsloops.ops: the package
        ("sqsloops.settle", True),
        ("sqsloops.clock", True),  # class bodies run at import
        ("rich", False),
        ("sqsloops.ops.watch", False),
    }
    as_package = {i.target for i in imports_of("sqsloops.jobs", "from . import envelope\n", is_package=True)}
    assert as_package == {"sqsloops.jobs.envelope"}


def test_the_graph_is_not_empty() -> None:
    graph = module_level_graph()
    assert "sqsloops.tokens" in graph["sqsloops.root"]
    assert sum(len(targets) for targets in graph.values()) > 50
