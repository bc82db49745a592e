"""The code's shape budgets (issue 17), checked so they hold tomorrow.

- no module over 400 lines and no function over 80 lines in ``layers/``, ``src/`` and ``functions/``;
- no import cycle among the project's modules, counting imports inside functions too (a cycle hidden
  by a function-level import is still a cycle); imports under ``if TYPE_CHECKING:`` are left out,
  since they never run.

Each test names every offender, so a failure says what to split.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("layers", "src", "functions")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# (the roots a package is imported from, the packages under them)
PACKAGE_ROOTS = (
    (ROOT / "layers" / "longform_core", "longform_core"),
    (ROOT / "src", "longform"),
)


def _sources() -> list[Path]:
    found: list[Path] = []
    for name in SOURCE_DIRS:
        found.extend(p for p in (ROOT / name).rglob("*.py") if ".aws-sam" not in p.parts)
    return sorted(found)


def _lines(path: Path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines())


def _functions(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def test_the_budgets_see_the_code() -> None:
    sources = _sources()
    assert len(sources) > 100, "the budget tests must read the project's modules"
    assert any(p.name == "chunk.py" or p.parent.name == "chunk" for p in sources)


def test_no_module_over_400_lines() -> None:
    over = {str(p.relative_to(ROOT)): n for p in _sources() if (n := _lines(p)) > MAX_MODULE_LINES}
    assert not over, f"modules over {MAX_MODULE_LINES} lines (split them by concept): {over}"


def test_no_function_over_80_lines() -> None:
    over: dict[str, int] = {}
    for path in _sources():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in _functions(tree):
            length = (fn.end_lineno or fn.lineno) - fn.lineno + 1
            if length > MAX_FUNCTION_LINES:
                over[f"{path.relative_to(ROOT)}:{fn.lineno} {fn.name}"] = length
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines: {over}"


# --------------------------------------------------------------------------- the import graph


def _module_names() -> dict[str, Path]:
    """Every project module by dotted name (a package by its own name, from ``__init__.py``)."""
    names: dict[str, Path] = {}
    for root, package in PACKAGE_ROOTS:
        for path in (root / package).rglob("*.py"):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            names[".".join(parts)] = path
    return names


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at any depth, except under ``if TYPE_CHECKING:``."""
    stack: list[ast.AST] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _targets(module: str, is_package: bool, node: ast.Import | ast.ImportFrom, known: set[str]) -> set[str]:
    """The project modules an import statement loads (the deepest known module of each name)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
    found: set[str] = set()
    for name in names:
        parts = name.split(".")
        while parts and ".".join(parts) not in known:
            parts.pop()
        if parts:
            found.add(".".join(parts))
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _module_names()
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        edges: set[str] = set()
        for node in _imports(tree):
            edges |= _targets(name, is_package, node, known)
        edges.discard(name)
        # importing ``a.b.c`` runs ``a/__init__`` and ``a/b/__init__`` first: a package's own
        # submodules importing it is the normal order, not a cycle, so those edges are left out
        graph[name] = {e for e in edges if not name.startswith(e + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0

    def visit(start: str) -> None:
        nonlocal counter
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))

    for name in sorted(graph):
        if name not in index:
            visit(name)
    return found


def test_the_cycle_finder_finds_a_hidden_cycle() -> None:
    tree = ast.parse("def later():\n    from pkg.b import x\n")
    edges = set().union(*(_targets("pkg.a", False, n, {"pkg", "pkg.a", "pkg.b"}) for n in _imports(tree)))
    assert edges == {"pkg.b"}
    assert cycles({"pkg.a": edges, "pkg.b": {"pkg.a"}}) == [["pkg.a", "pkg.b"]]
    assert cycles({"pkg.a": {"pkg.b"}, "pkg.b": set()}) == []


def test_type_checking_imports_are_not_edges() -> None:
    tree = ast.parse("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import x\n")
    assert not set().union(*(_targets("pkg.a", False, n, {"pkg", "pkg.a", "pkg.b"}) for n in _imports(tree)))


def test_the_graph_sees_the_project() -> None:
    graph = import_graph()
    assert "longform_core.models" in graph
    assert "longform_core.models" in graph["longform_core.services"] or any(
        "longform_core.models" in edges for edges in graph.values()
    )


@pytest.mark.parametrize("root", [package for _, package in PACKAGE_ROOTS])
def test_no_import_cycle(root: str) -> None:
    graph = import_graph()
    found = [c for c in cycles(graph) if c[0].split(".")[0] == root]
    hint = "a function-level import hides a cycle, it does not end it"
    assert not found, f"import cycles ({hint}): {found}"
