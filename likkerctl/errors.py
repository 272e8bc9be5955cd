"""Documented exit codes and the one-line errors that go with them (see docs/CLI.md)."""

from __future__ import annotations

OK = 0
FAILED = 1  # the operation ran and failed (e.g. a part of the stack did not come up)
USAGE = 2  # bad arguments, predicate or config: nothing was changed
UNREACHABLE = 3  # a server could not be reached; the message names the URL
AUTH = 4  # a server refused our credentials
NOT_FOUND = 5  # unknown queue, part, bot...
CONFLICT = 6  # the machine is not in a state to do it (port in use, missing package)
INTERRUPTED = 130


class CliError(Exception):
    """An expected failure: printed as one line on stderr, then exit with `code`."""

    def __init__(self, message: str, code: int = FAILED) -> None:
        super().__init__(message)
        self.code = code
