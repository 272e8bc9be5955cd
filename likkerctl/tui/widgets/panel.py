"""The bordered panel every figure of the dashboard sits in, so each says how fresh it is."""

from __future__ import annotations

from typing import Any

from textual.containers import Vertical

from likkerctl.tui.parts import Part


class Panel(Vertical):
    """A bordered panel whose subtitle says how fresh its figures are."""

    def __init__(self, title: str, *children: Any, id: str) -> None:
        super().__init__(*children, id=id, classes="panel")
        self.border_title = title

    def freshness(self, part: Part, now: float, note: str = "") -> None:
        """Mark the panel down or stale if `part` failed; otherwise show `note`."""
        if part.error and part.error.startswith("not configured"):
            # The profile names no source for it (a bare broker): nothing is wrong.
            self.border_subtitle = f"[dim]{part.error}[/]"
            self.set_class(False, "-down")
        elif part.error and part.value is None:
            self.border_subtitle = f"[b red]down[/]: {part.error}"
            self.set_class(True, "-down")
        elif part.error:
            age = now - (part.at or now)
            self.border_subtitle = f"[yellow]stale {age:.0f}s[/]: {part.error}"
            self.set_class(True, "-down")
        else:
            self.border_subtitle = note
            self.set_class(False, "-down")
