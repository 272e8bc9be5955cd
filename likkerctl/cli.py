"""The `likkerctl` command: sub-apps per noun, one-line errors with documented exit codes."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from likkerctl import __version__, stack_cli
from likkerctl.errors import INTERRUPTED, CliError

app = typer.Typer(
    help="On-call tool for the RabbitMQ-backed Likker likes pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(stack_cli.app, name="stack")


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
