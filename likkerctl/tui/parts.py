"""What the dashboard holds of each part (see backend.PARTS) between two fetches."""

from __future__ import annotations

from typing import Any


class Part:
    """The latest answer of one source; its own module because the panels read it as well as
    the app."""

    def __init__(self) -> None:
        self.value: Any = None
        self.error: str | None = None
        self.at: float | None = None  # when the value was fetched
        self.busy = False
        self.last_try = 0.0
