"""How figures read, once for every interface: sizes, rates, durations, forecast urgency.

Plain strings and level names only; each interface maps a level to its own style (the CLI's
Rich markup, the dashboard's Text styles), so a figure reads the same everywhere.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

Level = Literal["critical", "warning", "ok"]

HOUR_S = 3600.0
DAY_S = 86400.0


def mb(n: float | None) -> str:
    """Bytes as whole megabytes; "?" when the figure is unknown (a node that is down)."""
    return "?" if n is None else f"{n / 1e6:,.0f} MB"


def count(value: float) -> str:
    """A count or a per-second rate of messages, to the unit."""
    return f"{value:,.0f}"


def byte_rate(bytes_per_s: float) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if bytes_per_s >= size:
            return f"{bytes_per_s / size:,.1f} {unit}/s"
    return f"{bytes_per_s:,.0f} B/s"


def falling(rate: float | None) -> str:
    """How fast headroom falls, from a forecast's (negative) rate in bytes/s."""
    return f"falling {byte_rate(-(rate or 0.0))}"


def humanize(seconds: float | None) -> str:
    """A duration for people; None is "never"."""
    if seconds is None:
        return "never"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def lag(seconds: float | None) -> str:
    """A taker's lag (age of its oldest message): to the hundredth below 10 s, where a healthy
    one lives, else a duration; "-" when the taker reports none (an older taker, a recording)."""
    if seconds is None:
        return "-"
    return f"{seconds:.2f}s" if seconds < 10 else humanize(seconds)


def optional(value: float | None, fmt: str = "{:,.1f}") -> str:
    """A figure a source may not report: "-" when it is absent."""
    return "-" if value is None else fmt.format(value)


def eta_level(eta_s: float | None) -> Level:
    """How urgent a disk-full ETA is: within the hour, within the day, or later."""
    eta = eta_s or 0.0
    return "critical" if eta < HOUR_S else "warning" if eta < DAY_S else "ok"


def eta_range(low_s: float | None, high_s: float | None) -> str:
    return f"between {humanize(low_s)} and {humanize(high_s)}"


def clock(epoch: float) -> str:
    """A time of day (local), to the minute."""
    return datetime.fromtimestamp(epoch).strftime("%H:%M")


REGIME_AFTER = {"step up": "a step up", "slope change": "a slope change"}


def regime(reason: str | None, since: float | None) -> str:
    """Where a forecast's fit begins, when it is not simply the window: "since 18:04, after a
    slope change"; "" otherwise (and for forecasts made before regimes were said)."""
    if reason not in REGIME_AFTER or since is None:
        return ""
    return f"since {clock(since)}, after {REGIME_AFTER[reason]}"


def writer(row: dict[str, Any]) -> str:
    """One queue writing a node's log: "likker.actions 97% (2,410 entries/s, 1,234 retained)";
    the management proxy's rates are messages/s."""
    unit = "entries/s" if row.get("retained") is not None else "msg/s"
    retained = f", {count(row['retained'])} retained" if row.get("retained") is not None else ""
    return f"{row['queue']} {row['share']:.0%} ({count(row['entries_per_s'])} {unit}{retained})"
