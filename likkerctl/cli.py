"""The `likkerctl` command: sub-apps per noun, one-line errors with documented exit codes."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.console import Console

from likkerctl import __version__, ops_cli, stack_cli
from likkerctl.dashboard import cli as dashboard_cli
from likkerctl.errors import INTERRUPTED, CliError
from likkerctl.ui import AppState

app = typer.Typer(
    help="On-call tool for the RabbitMQ-backed Likker likes pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Docstrings are wrapped paragraphs: let the help reflow them to the terminal.
    rich_markup_mode="markdown",
)
app.add_typer(stack_cli.app, name="stack")
ops_cli.register(app)
app.command("dashboard")(dashboard_cli.dashboard)


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
    ctx.obj = AppState(profile)


@app.command()
def version() -> None:
    """Print likkerctl's version."""
    print(__version__)


def main() -> None:
    err = Console(stderr=True)
    try:
        # standalone_mode=False lets CliError reach us; click then returns exit codes.
        result = app(standalone_mode=False)
        sys.exit(result if isinstance(result, int) else 0)
    except CliError as exc:
        err.print(f"[red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.code)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # click's own usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(INTERRUPTED)
        raise
