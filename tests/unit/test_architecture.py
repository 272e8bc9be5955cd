"""The import structure the layering promises, read from the source (no import runs).

import-linter (`lint-imports`, contracts in pyproject.toml) enforces the layers; these checks
say the same rules again from an AST walk, so they hold even where a contract would need a
list kept up to date:
- no import cycle among the project's modules, counting imports inside functions;
- nothing under likkerctl/core imports typer, rich, textual or click;
- stack/ imports nothing of likkerctl except the contract;
- an import inside a function carries a comment saying why (it keeps a heavy library out of
  start-up), on its line or the line above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("likkerctl", "stack")
UI_LIBRARIES = {"typer", "rich", "textual", "click"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module
    target: str  # the imported module (resolved; `from a import b` is `a.b` when b is one)
    line: int
    in_function: bool


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for package in PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "__pycache__" not in p.parts
    }


def imports_of(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    is_package = path.name == "__init__.py"

    def walk(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, in_function)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    candidate = f"{base}.{alias.name}"
                    target = candidate if candidate in known else base
                    yield Import(name, target, child.lineno, in_function)
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                continue  # typing-only imports never run
            else:
                yield from walk(child, inside)

    yield from walk(tree, False)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


MODULES = project_modules()
IMPORTS = [i for name, path in MODULES.items() for i in imports_of(name, path, set(MODULES))]


def internal(target: str) -> str | None:
    """The project module an import names (a module, or the package it is in), if any."""
    while target:
        if target in MODULES:
            return target
        target = target.rpartition(".")[0]
    return None


def test_the_walk_sees_the_project() -> None:
    # A walk that found nothing would pass every check below.
    assert {"likkerctl.cli.main", "likkerctl.core.operations", "stack.supervisor"} <= set(MODULES)
    assert any(
        i.module == "likkerctl.cli.main" and i.target == "likkerctl.cli.output" for i in IMPORTS
    )
    assert any(i.in_function for i in IMPORTS)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_cycle_among_the_projects_modules() -> None:
    graph: dict[str, set[str]] = {}
    for i in IMPORTS:
        target = internal(i.target)
        if target and target != i.module:
            graph.setdefault(i.module, set()).add(target)
    assert find_cycle(graph) is None


def test_the_core_imports_no_user_interface_library() -> None:
    bad = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.module.startswith("likkerctl.core") and i.target.split(".")[0] in UI_LIBRARIES
    ]
    assert bad == []


def test_the_stack_imports_only_the_contract_of_likkerctl() -> None:
    bad = [
        f"{i.module}:{i.line} imports {i.target}"
        for i in IMPORTS
        if i.module.startswith("stack")
        and i.target.startswith("likkerctl")
        and not i.target.startswith("likkerctl.core.contract")
    ]
    assert bad == []


def test_every_import_inside_a_function_says_why() -> None:
    unexplained = []
    for i in IMPORTS:
        if not i.in_function:
            continue
        lines = MODULES[i.module].read_text().splitlines()
        # The comment may stand above a block of imports: look past the block.
        above = i.line - 2
        while above >= 0 and lines[above].strip().startswith(("from ", "import ")):
            above -= 1
        if "#" not in lines[i.line - 1] and not lines[above].strip().startswith("#"):
            unexplained.append(f"{i.module}:{i.line} imports {i.target}")
    assert unexplained == []
