"""What a likkerctl process imports: `-X importtime` output, and who imported what.

Used by `bench/bench_cli.py --imports`, which compares two trees (the current one and a
`--baseline` revision) command by command. Nothing here imports likkerctl.

- `parse_importtime`: the modules in `python -X importtime`'s stderr, each with its nesting
  depth and self/cumulative microseconds.
- `TRACER`: source prepended to the `-c` program of one extra (untimed) run per variant and
  command. A finder at the front of `sys.meta_path` records, for every module imported, the
  frame that asked for it (module, line, function), which `-X importtime`'s nesting cannot
  tell for imports made inside functions. At exit it checks that every `likkerctl.*` and
  `stack.*` module came from the variant's own tree (`BENCH_TREE`) and writes it all as
  JSON to `BENCH_TRACE_OUT`.
- `chain`: from that record, the path of importers from the `-c` program to a module;
  `top_level_importers`: every module that imports it at import time (from the source).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Imported:
    name: str
    depth: int
    self_us: int
    cumulative_us: int


def parse_importtime(stderr: str) -> list[Imported]:
    """`import time:  self | cumulative | <2 spaces per level>name` lines, header skipped."""
    out = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, name = line[len("import time:") :].split("|", 2)
        name = name[1:]  # the one space after "|"; the rest of the indent is the depth
        depth = (len(name) - len(name.lstrip(" "))) // 2
        out.append(Imported(name.strip(), depth, int(self_us), int(cumulative_us)))
    return out


def total_us(imports: list[Imported]) -> int:
    """All the process's import time: the cumulative times of the outermost imports."""
    return sum(i.cumulative_us for i in imports if i.depth == 0)


def grouped(names: set[str]) -> dict[str, list[str]]:
    """Module names by top-level package, packages sorted by how many they bring."""
    groups: dict[str, list[str]] = {}
    for name in sorted(names):
        groups.setdefault(name.partition(".")[0], []).append(name)
    return dict(sorted(groups.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def in_tree(module: str, tree: Path) -> bool:
    """Whether `tree` has a source file (or package directory) for `module`."""
    base = tree.joinpath(*module.split("."))
    return base.with_suffix(".py").is_file() or base.is_dir()


def chain(trace: dict[str, Any], module: str) -> list[str]:
    """`-c` → … → `module`: each step is the module (and line) whose import loaded the next.

    Only the first import of a module loads it; `top_level_importers` finds the others.
    """
    importers = trace["importers"]
    steps = [module]
    seen = {module}
    name = module
    while name in importers:
        importer, line, function = importers[name]
        if importer == "__main__":
            steps.append("-c")
            break
        steps.append(f"{importer}:{line}" + ("" if function == "<module>" else f" in {function}()"))
        if importer in seen:
            break
        seen.add(importer)
        name = importer
    return list(reversed(steps))


def source_of(module: str, tree: Path) -> Path | None:
    base = tree.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def source_lines(tree: Path, loaded: Iterable[str]) -> int:
    """Lines of source of the loaded `likkerctl.*` modules: how much of our code ran."""
    paths = (source_of(m, tree) for m in loaded if m.partition(".")[0] == "likkerctl")
    return sum(len(p.read_text().splitlines()) for p in paths if p is not None)


def top_level_importers(tree: Path, loaded: Iterable[str], target: str) -> list[str]:
    """`module:line` of every loaded module of `tree` whose import-time code imports `target`.

    Import-time code: the module's body and its class bodies, not functions, not
    `if TYPE_CHECKING:` blocks.
    """
    found = []
    for module in sorted(loaded):
        path = source_of(module, tree)
        if path is None:
            continue
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        for node in _import_time_nodes(ast.parse(path.read_text()).body):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    parent = ".".join(parts[: len(parts) - node.level + 1])
                    base = f"{parent}.{base}" if base else parent
                names = [base] + [f"{base}.{a.name}" for a in node.names]
            if target in names:
                found.append(f"{module}:{node.lineno}")
    return found


def _import_time_nodes(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            yield from _import_time_nodes(node.orelse)
        elif isinstance(node, ast.ClassDef | ast.If | ast.Try | ast.With):
            for field in ("body", "orelse", "finalbody", "handlers"):
                for child in getattr(node, field, []):
                    if isinstance(child, ast.ExceptHandler):
                        yield from _import_time_nodes(child.body)
                    else:
                        yield from _import_time_nodes([child])


TRACER = r"""
import sys as _sys


class _BenchTrace:
    importers = {}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name not in cls.importers:
            f = _sys._getframe(1)
            while f is not None and (
                f.f_code.co_filename.startswith("<frozen importlib")
                or f.f_globals.get("__name__") == "importlib"
            ):
                f = f.f_back
            if f is not None:
                cls.importers[name] = (f.f_globals.get("__name__", "?"), f.f_lineno,
                                       f.f_code.co_name)
        return None


_sys.meta_path.insert(0, _BenchTrace)


def _bench_report():
    _sys.meta_path.remove(_BenchTrace)
    import json
    import os

    tree = os.path.realpath(os.environ["BENCH_TREE"])
    ours, outside = 0, []
    for name, mod in list(_sys.modules.items()):
        if name.partition(".")[0] not in ("likkerctl", "stack"):
            continue
        ours += 1
        file = getattr(mod, "__file__", None)
        paths = [file] if file else [p for p in getattr(mod, "__path__", []) if os.path.isdir(p)]
        for p in paths:
            if os.path.commonpath([os.path.realpath(p), tree]) != tree:
                outside.append(f"{name}: {p}")
    with open(os.environ["BENCH_TRACE_OUT"], "w") as fh:
        json.dump({
            "likkerctl_file": _sys.modules["likkerctl"].__file__,
            "our_modules": ours,
            "outside_tree": outside,
            "modules": sorted(_sys.modules),
            "importers": _BenchTrace.importers,
        }, fh)


import atexit as _atexit

_atexit.register(_bench_report)
"""
