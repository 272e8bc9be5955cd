"""The documented exit codes (README "Exit codes", docs/CLI.md) and the one table that maps
the core's errors to them."""

from __future__ import annotations

from likkerctl.core import errors

OK = 0
FAILED = 1  # the operation ran and failed (e.g. a part of the stack did not come up)
USAGE = 2  # bad arguments, predicate or config, or not confirmed: nothing was changed
UNREACHABLE = 3  # a server could not be reached; the message names the URL
AUTH = 4  # a server refused our credentials
NOT_FOUND = 5  # unknown queue, part, bot...
CONFLICT = 6  # the machine is not in a state to do it (port in use, missing package)
INTERRUPTED = 130

# Most specific first: NotConfirmed is an InvalidInput.
EXIT_CODES: tuple[tuple[type[errors.LikkerError], int], ...] = (
    (errors.InvalidInput, USAGE),
    (errors.Unreachable, UNREACHABLE),
    (errors.AuthRefused, AUTH),
    (errors.NotFound, NOT_FOUND),
    (errors.Conflict, CONFLICT),
    (errors.Interrupted, INTERRUPTED),
    (errors.Failed, FAILED),
)


def exit_code(exc: errors.LikkerError) -> int:
    return next((code for kind, code in EXIT_CODES if isinstance(exc, kind)), FAILED)
