"""The `likkerctl` command: sub-apps per noun, one-line errors with documented exit codes."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from likkerctl import __version__
from likkerctl.cli import errors as exit_codes
from likkerctl.cli.commands import (
    audit,
    bots,
    dashboard,
    forecast,
    inspect,
    moves,
    plugins,
    stack,
    status,
    takers,
    webhook,
)
from likkerctl.cli.output import AppState, err
from likkerctl.core.errors import Failed, LikkerError
from likkerctl.core.profile import load_profile
from likkerctl.plugins import registry
from likkerctl.plugins.run import mount_commands, run_executable

app = typer.Typer(
    help="On-call tool for the RabbitMQ-backed Likker likes pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped paragraphs: let the help reflow them to the terminal.
    rich_markup_mode="markdown",
)
app.add_typer(stack.app, name="stack")
app.command("status")(status.status_cmd)
app.command("forecast")(forecast.forecast_cmd)
app.command()(inspect.peek)
app.command()(inspect.top)
app.command()(moves.shovel)
app.command()(moves.purge)
app.add_typer(moves.dlq_app, name="dlq")
app.add_typer(takers.takers_app, name="takers")
app.add_typer(bots.bots_app, name="bots")
app.command("audit")(audit.audit_cmd)
app.add_typer(audit.config_app, name="config")
app.command("help-predicates")(inspect.help_predicates)
app.command("dashboard")(dashboard.dashboard)
app.add_typer(webhook.app, name="webhook")
app.add_typer(plugins.app, name="plugins")


@app.callback()
def root(
    ctx: typer.Context,
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            help="Profile from $XDG_CONFIG_HOME/likkerctl/config.toml [env: LIKKER_PROFILE; "
            "default: local, the local stack]",
            show_default=False,
        ),
    ] = None,
) -> None:
    if isinstance(ctx.obj, AppState):  # in-process callers (tests) bring their own state
        ctx.obj.profile_name = profile or ctx.obj.profile_name
    else:
        ctx.obj = AppState(profile)


@app.command()
def version() -> None:
    """Print likkerctl's version."""
    print(__version__)


def builtin_names() -> set[str]:
    names = {
        c.name or (c.callback.__name__.replace("_", "-") if c.callback else "")
        for c in app.registered_commands
    }
    return names | {g.name for g in app.registered_groups if g.name}


def command_of(argv: list[str]) -> tuple[str | None, str | None, list[str]]:
    """(command, --profile value, the command's args) from argv, past the global options."""
    profile = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-p", "--profile"):
            profile = argv[i + 1] if i + 1 < len(argv) else None
            i += 2
        elif arg.startswith("--profile="):
            profile = arg.partition("=")[2]
            i += 1
        elif arg.startswith("-"):
            return None, profile, []
        else:
            return arg, profile, argv[i + 1 :]
    return None, profile, []


def _plugins(argv: list[str]) -> tuple[int | None, set[str]]:
    """Mount plugin commands when argv asks for one (or for help); run an executable plugin.

    Returns (exit status if an executable ran, names of the Python plugin commands).
    Built-in commands do not pay for the plugin scan.
    """
    builtin = builtin_names()
    name, profile_name, args = command_of(argv)
    if name in builtin:
        return None, set()
    infos = mount_commands(app, builtin)
    mounted = {i.name for i in infos if i.status == "ok"}
    if name is None or name in mounted:
        return None, mounted
    failed = next((i for i in infos if i.name == name), None)
    if failed is not None:
        raise Failed(f"plugin command {name!r} ({failed.source}) is broken: {failed.error}")
    profile = load_profile(profile_name)
    exe = registry.find_executable(name, profile.plugins_dir, os.environ.get("PATH", ""))
    if exe is None:
        return None, mounted  # click says "No such command"
    return run_executable(profile, exe, args), mounted


def main() -> None:
    plugin_commands: set[str] = set()
    try:
        code, plugin_commands = _plugins(sys.argv[1:])
        if code is not None:
            sys.exit(code)
        # standalone_mode=False lets our errors reach us; click then returns exit codes.
        result = app(standalone_mode=False)
        sys.exit(result if isinstance(result, int) else 0)
    except LikkerError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exit_codes.exit_code(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(exit_codes.INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # click's own usage errors arrive here in non-standalone mode
        # typer 0.29 runs a vendored copy of click (typer._click), whose exceptions are not
        # the `click` package's classes: recognise them by their shape.
        code = getattr(exc, "exit_code", None)
        if callable(getattr(exc, "show", None)) and isinstance(code, int):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(code)
        if type(exc).__name__ == "Exit" and isinstance(code, int):
            sys.exit(code)
        if type(exc).__name__ == "Abort":
            sys.exit(exit_codes.INTERRUPTED)
        name = command_of(sys.argv[1:])[0]
        if name in plugin_commands:  # a plugin's bug is reported, not a traceback of ours
            err.print(
                f"[red]error:[/] plugin command {name!r} failed: {type(exc).__name__}: {exc}",
                highlight=False,
                soft_wrap=True,
            )
            sys.exit(exit_codes.FAILED)
        raise
