"""Running plugins: executables with the profile's context on stdin, Python commands mounted."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
from typing import Any

import typer

from likkerctl import __version__
from likkerctl.core.errors import Failed
from likkerctl.core.profile import Profile
from likkerctl.plugins.registry import (
    COMMANDS_GROUP,
    PluginInfo,
    entry_points,
    first_line,
    mark_taken,
)

CONTEXT_VERSION = 1


def context(profile: Profile, plugin: PluginInfo, args: list[str]) -> dict[str, Any]:
    """What an executable plugin reads on stdin. It holds the profile's secrets (URLs with
    passwords, the admin token): stdin, unlike argv or the environment, is not visible to
    other users of the machine."""
    data = {k: v for k, v in dataclasses.asdict(profile).items() if k != "sources"}
    data["admin_token"] = profile.token()
    return {
        "context_version": CONTEXT_VERSION,
        "likkerctl_version": __version__,
        "plugin": {"name": plugin.name, "path": plugin.source},
        "args": args,
        "profile": data,
    }


def run_executable(profile: Profile, plugin: PluginInfo, args: list[str]) -> int:
    """Run `plugin` with `args`, its stdout/stderr ours; its exit status is returned."""
    payload = json.dumps(context(profile, plugin, args)).encode()
    try:
        proc = subprocess.Popen([plugin.source, *args], stdin=subprocess.PIPE)
    except OSError as exc:
        raise Failed(
            f"plugin {plugin.source} could not be started: {exc.strerror or exc}",
        ) from exc
    try:
        assert proc.stdin is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # a plugin that does not read its context is fine
        code = proc.wait()
    except KeyboardInterrupt:
        proc.send_signal(signal.SIGINT)
        proc.wait()
        raise
    if code < 0:
        raise Failed(f"plugin {plugin.source} was killed by {signal.Signals(-code).name}")
    return code


def mount_commands(app: typer.Typer, builtin_names: set[str]) -> list[PluginInfo]:
    """Add the `likkerctl.commands` entry points to `app`; the failed ones are returned too."""
    infos = entry_points(COMMANDS_GROUP)
    mark_taken(infos, builtin_names)
    for info in infos:
        if info.status != "ok":
            continue
        obj = info.obj
        if isinstance(obj, typer.Typer):
            app.add_typer(obj, name=info.name)
            info.description = first_line(obj.info.help)
        elif callable(obj):
            app.command(info.name)(obj)
            info.description = first_line(obj.__doc__)
        else:
            info.status = "failed"
            info.error = f"not a typer.Typer or a function: {type(obj).__name__}"
    return infos
