"""Finding plugins and loading them safely; see the package docstring for the two kinds."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

COMMANDS_GROUP = "likkerctl.commands"
STEPS_GROUP = "likkerctl.steps"
EXEC_PREFIX = "likkerctl-"


@dataclass
class PluginInfo:
    kind: str  # command | step | executable
    name: str
    source: str  # "package 1.0 (entry point module:attr)" or the executable's path
    status: str = "ok"  # ok | failed | shadowed
    error: str | None = None
    description: str = ""
    obj: Any = field(default=None, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "source": self.source,
            "status": self.status,
            "error": self.error,
            "description": self.description,
        }


def first_line(text: object) -> str:
    """The first line of a docstring or message ("" for anything else)."""
    return text.strip().splitlines()[0] if isinstance(text, str) and text.strip() else ""


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {first_line(str(exc)) or 'no message'}"


def entry_points(group: str) -> list[PluginInfo]:
    """Every entry point of `group`, loaded; one that fails to import is kept as failed."""
    found: list[PluginInfo] = []
    try:
        eps = metadata.entry_points(group=group)
    except Exception as exc:  # a broken distribution's metadata: report, do not crash
        return [PluginInfo("command", "?", "installed packages", "failed", _error(exc))]
    kind = "step" if group == STEPS_GROUP else "command"
    for ep in sorted(eps, key=lambda e: e.name):
        dist = ep.dist
        where = f"{dist.name} {dist.version}" if dist is not None else "unknown package"
        info = PluginInfo(kind, ep.name, f"{where} ({ep.value})")
        try:
            info.obj = ep.load()
        except BaseException as exc:  # SystemExit from a bad import is a failure too
            if isinstance(exc, KeyboardInterrupt):
                raise
            info.status, info.error = "failed", _error(exc)
        found.append(info)
    return found


def load_steps(builtin: Mapping[str, Any]) -> tuple[dict[str, Any], list[PluginInfo]]:
    """Built-in steps plus plugin steps (instantiated); plugins may not replace built-ins."""
    steps = dict(builtin)
    infos = entry_points(STEPS_GROUP)
    for info in infos:
        if info.status != "ok":
            continue
        try:
            step = info.obj() if isinstance(info.obj, type) else info.obj
            missing = [a for a in ("name", "params", "run") if not hasattr(step, a)]
            if missing:
                raise TypeError(f"not a runbook step (no {', '.join(missing)})")
            if step.name != info.name:
                raise ValueError(f"entry point {info.name!r} names a step called {step.name!r}")
            if step.name in builtin:
                raise ValueError(f"{step.name!r} is a built-in step")
        except Exception as exc:
            info.status, info.error = "failed", _error(exc)
            continue
        info.description = first_line(getattr(step, "description", ""))
        steps[step.name] = step
    return steps, infos


def _is_executable(path: Path) -> bool:
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return stat.S_ISREG(mode) and os.access(path, os.X_OK)


def executables(plugins_dir: str | None, path_env: str) -> list[PluginInfo]:
    """`likkerctl-NAME` executables: the plugins dir first, then PATH; the first one wins."""
    dirs: list[Path] = [Path(plugins_dir).expanduser()] if plugins_dir else []
    dirs += [Path(p) for p in path_env.split(os.pathsep) if p]
    found: list[PluginInfo] = []
    seen: set[str] = set()
    for directory in dirs:
        try:
            entries = sorted(directory.iterdir())
        except OSError:
            continue
        for entry in entries:
            if not entry.name.startswith(EXEC_PREFIX) or not _is_executable(entry):
                continue
            name = entry.name.removeprefix(EXEC_PREFIX)
            if not name:
                continue
            info = PluginInfo("executable", name, str(entry))
            if name in seen:
                info.status, info.error = "shadowed", "an earlier one of that name wins"
            seen.add(name)
            found.append(info)
    return found


def find_executable(name: str, plugins_dir: str | None, path_env: str) -> PluginInfo | None:
    return next(
        (p for p in executables(plugins_dir, path_env) if p.name == name and p.status == "ok"),
        None,
    )


def mark_taken(infos: Iterable[PluginInfo], builtin_names: set[str]) -> None:
    """A plugin command may not replace a built-in command."""
    for info in infos:
        if info.status == "ok" and info.name in builtin_names:
            info.status, info.error = "failed", f"{info.name!r} is a built-in command"
