"""Which process a pid is, across wall-clock steps: by its start time, as psutil reads it.

A pid alone is not an identity (pids are recycled), so the stack's pid files and the webhook's
run owners keep the pid's start time too. On Linux psutil derives that start time from the
kernel's ticks since boot plus the boot time, and the boot time is itself derived from the
wall clock: when the clock is stepped (NTP, a VM resumed; seen on this machine, 16 s in one
soak) every running process appears to have started that much earlier or later. So a stamp
keeps the boot time it was taken with, and a start that moved by exactly as much as the boot
time did is the same process. Elsewhere (macOS, the BSDs) the start time is kept as wall time
and does not move, which the first comparison covers.
"""

from __future__ import annotations

from dataclasses import dataclass

import psutil

# psutil's start times have the kernel's tick resolution (10 ms); two reads of one process
# agree to well within this, a recycled pid started this close to the original is not credible.
TOLERANCE_S = 0.05


@dataclass(frozen=True)
class Start:
    since: float  # seconds since the epoch, as psutil reported it
    boot: float | None  # the system's boot time psutil reported with it (None: not recorded)


def start_of(pid: int | None = None) -> Start:
    """The start stamp of `pid` (this process if None); psutil.Error if it is gone."""
    return Start(psutil.Process(pid).create_time(), psutil.boot_time())


def same_start(recorded: Start, now: Start, tolerance: float = TOLERANCE_S) -> bool:
    """Whether two stamps, taken at different times, are of one process start."""
    if abs(now.since - recorded.since) <= tolerance:
        return True
    if recorded.boot is None or now.boot is None:
        return False
    return abs((now.since - now.boot) - (recorded.since - recorded.boot)) <= tolerance


def is_process(pid: int, recorded: Start, tolerance: float = TOLERANCE_S) -> bool:
    """Whether `pid` is still the process `recorded` was taken of (False if it is gone)."""
    try:
        return same_start(recorded, start_of(pid), tolerance)
    except (psutil.Error, ValueError):
        return False
