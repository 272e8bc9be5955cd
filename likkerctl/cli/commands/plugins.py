"""`likkerctl plugins list`: both kinds of plugins, where each came from, and which failed."""

from __future__ import annotations

import os

import typer
from rich.markup import escape
from rich.table import Table

from likkerctl.cli.output import JsonOut, show, state
from likkerctl.plugins import registry
from likkerctl.plugins.run import mount_commands
from likkerctl.runbooks.steps import builtin

app = typer.Typer(help="Installed plugins.", no_args_is_help=True)


@app.command("list")
def list_plugins(ctx: typer.Context, json_out: JsonOut = False) -> None:
    """Plugin commands and runbook steps (Python packages) and `likkerctl-NAME` executables.

    Executables are looked for in the profile's plugins_dir (LIKKER_PLUGINS_DIR; default
    $XDG_CONFIG_HOME/likkerctl/plugins), then on PATH; the first of a name wins.
    """
    profile = state(ctx).profile
    # `plugins` is a built-in command, so no plugin was mounted: the root's commands are ours.
    root = ctx.find_root()
    commands = mount_commands(typer.Typer(), set(getattr(root.command, "commands", {})))
    _, steps = registry.load_steps(builtin())
    exes = registry.executables(profile.plugins_dir, os.environ.get("PATH", ""))
    rows = [*commands, *steps, *exes]
    document = {"plugins_dir": profile.plugins_dir, "plugins": [p.as_json() for p in rows]}
    if not rows:
        show(
            json_out,
            document,
            f"no plugins (executables looked for in {profile.plugins_dir} and PATH)",
        )
        return
    table = Table(title="plugins", title_justify="left")
    for col in ("kind", "name", "status", "from", "what"):
        table.add_column(col)
    for p in rows:
        status = p.status if p.status == "ok" else f"[red]{p.status}[/]"
        table.add_row(
            p.kind, escape(p.name), status, escape(p.source), escape(p.error or p.description)
        )
    show(json_out, document, table)
