"""The expected failures of likkerctl's core: what went wrong and what it was about.

Each is one line for people (what failed and what to try). None carries an exit code or an
HTTP status: the interfaces map them — `likkerctl.cli.errors` to the documented exit codes,
the webhook to its answers, the dashboard to its panels' states. Anything else raised from
the core is a bug and surfaces as such.
"""

from __future__ import annotations


class LikkerError(Exception):
    """An expected failure, said in one line."""


class InvalidInput(LikkerError):
    """Bad arguments, predicate, config or file: nothing was changed.

    `field` names what was wrong (an option, a config key, a runbook's step) when known.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotConfirmed(InvalidInput):
    """The operator did not confirm (or nobody could be asked): nothing was changed."""


class Unreachable(LikkerError):
    """A server did not answer; `url` is where we asked (credentials redacted)."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class AuthRefused(LikkerError):
    """A server refused our credentials (or we have none to offer)."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class NotFound(LikkerError):
    """An unknown queue, taker, bot, part, or no stack where one was looked for."""

    def __init__(self, message: str, what: str | None = None) -> None:
        super().__init__(message)
        self.what = what


class Conflict(LikkerError):
    """The world is not in a state to do it: a missing broker plugin, a port in use."""


class NotConfigured(LikkerError):
    """The profile names no source for it (no auth_url, no takers): not a failure. Its
    message starts with "not configured", which is how the dashboard tells it from down."""

    def __init__(self, what: str) -> None:
        super().__init__(f"not configured: {what}")


class Failed(LikkerError):
    """The operation ran and failed (a shovel terminated, a part did not become healthy)."""


class Interrupted(LikkerError):
    """The operator interrupted it; what was not done is said in the message."""


def first_line(exc: BaseException) -> str:
    """How an error is shown in one line: ours as they are, anything else with its type."""
    if isinstance(exc, LikkerError):
        return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return f"{type(exc).__name__}: {exc}"
