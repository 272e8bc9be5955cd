"""The receiver's brakes: one remediation per target at a time, and a cap on runs per hour.

Pure (the clock is passed in), so the unit tests drive them without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """At most `limit` acquisitions in any `window_s` seconds (a sliding window)."""

    def __init__(
        self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if limit < 0 or window_s <= 0:
            raise ValueError("limit must be >= 0 and window_s > 0")
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            now = self.clock()
            while self._times and self._times[0] <= now - self.window_s:
                self._times.popleft()
            if len(self._times) >= self.limit:
                return False
            self._times.append(now)
            return True

    def retry_in(self) -> float:
        with self._lock:
            if len(self._times) < self.limit or not self._times:
                return 0.0
            return max(0.0, self._times[0] + self.window_s - self.clock())


class TargetLocks:
    """Which target (e.g. a queue) is being remediated, and for which alert."""

    def __init__(self) -> None:
        self._held: dict[str, str] = {}
        self._lock = threading.Lock()

    def try_take(self, target: str, holder: str) -> str | None:
        """Take `target` for `holder`; the current holder when it is taken already."""
        with self._lock:
            current = self._held.get(target)
            if current is not None:
                return current
            self._held[target] = holder
            return None

    def release(self, target: str, holder: str) -> None:
        with self._lock:
            if self._held.get(target) == holder:
                del self._held[target]

    def held(self) -> dict[str, str]:
        with self._lock:
            return dict(self._held)
