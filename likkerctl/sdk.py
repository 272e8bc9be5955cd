"""The public API for plugins: everything a plugin imports from likkerctl comes from here.

What is named in `__all__` is the documented, stable surface (docs/PLUGINS.md); every other
module of likkerctl is internal and may change between releases.

- Runbook steps: `Param`, `RunContext`, `Step`, `StepResult`, `AlertInfo`.
- Operations a step (or a command) runs through `RunContext.perform`: `QueueMove`, `Purge`,
  `TakersCommand`, `BotCommand`, and `Performed`, what perform returns.
- Errors a plugin raises for a one-line message (the CLI maps each to its exit code):
  `InvalidInput` (2), `Unreachable` (3), `AuthRefused` (4), `NotFound` (5), `Conflict` (6),
  `Failed` (1), and their base `LikkerError`.
- `Profile`: which servers the user's profile names.
"""

from __future__ import annotations

from likkerctl.core.errors import (
    AuthRefused,
    Conflict,
    Failed,
    InvalidInput,
    LikkerError,
    NotFound,
    Unreachable,
)
from likkerctl.core.operations import BotCommand, Performed, Purge, QueueMove, TakersCommand
from likkerctl.core.profile import Profile
from likkerctl.runbooks.context import AlertInfo, Param, RunContext, Step, StepResult

__all__ = [
    "AlertInfo",
    "AuthRefused",
    "BotCommand",
    "Conflict",
    "Failed",
    "InvalidInput",
    "LikkerError",
    "NotFound",
    "Param",
    "Performed",
    "Profile",
    "Purge",
    "QueueMove",
    "RunContext",
    "Step",
    "StepResult",
    "TakersCommand",
    "Unreachable",
]
