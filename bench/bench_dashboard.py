"""Benchmark: the dashboard's first full frame, and the UI thread's time per refresh.

Run:  .venv/bin/python bench/bench_dashboard.py [--queues 50] [--refreshes 40]

Headless (Textual's pilot, 120x40), fed by the Friday recording in tests/dashboard with
the queue list grown to `--queues` queues, so the figures measure likkerctl's rendering and
not the network:

- first frame: from creating the app until every panel has been filled once;
- apply: the UI thread's time to put one round of fresh figures (all eight panels) into the
  widgets; fetching happens in worker threads and is not counted;
- refresh: apply plus the pilot's wait until the screen has been repainted.

Reference for the refresh, in the same process: a bare Textual app with one DataTable of
the same 50 rows cleared and refilled each round, and the same wait.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import time
from copy import deepcopy
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from likkerctl.tui.app import Dashboard
from likkerctl.tui.backend import PARTS, RecordedBackend

RECORDING = Path(__file__).resolve().parents[1] / "tests/dashboard/recordings/friday.json"


def grown(data: dict[str, Any], n: int) -> dict[str, Any]:
    data = deepcopy(data)
    queues = data["parts"]["queues"]["value"]
    template = queues[-1]
    for i in range(n - len(queues)):
        queues.append({**template, "name": f"bench.queue.{i:03d}", "messages": i * 10})
    return data


def p90(xs: list[float]) -> float:
    return sorted(xs)[int(0.9 * (len(xs) - 1))]


async def dashboard_run(
    data: dict[str, Any], refreshes: int
) -> tuple[float, list[float], list[float]]:
    app = Dashboard(RecordedBackend(data), refresh_s=0)
    async with app.run_test(size=(120, 40)) as pilot:
        while app.first_frame_at is None:
            await pilot.pause(0.001)
        await pilot.pause()
        first = app.first_frame_at
        times, applies = [], []
        for r in range(refreshes):
            started = time.perf_counter()
            for part in PARTS:
                value = data["parts"][part].get("value")
                if part == "queues":  # changing depths, so every cell is rewritten
                    value = [
                        {**q, "messages": q["messages"] + r, "ready": q["ready"] + r} for q in value
                    ]
                app.store(part, value, None)
            applies.append(time.perf_counter() - started)
            await pilot.pause()
            times.append(time.perf_counter() - started)
    return first, applies, times


class Reference(App[None]):
    def compose(self) -> ComposeResult:
        yield DataTable()


async def reference_run(data: dict[str, Any], refreshes: int) -> list[float]:
    queues = data["parts"]["queues"]["value"]
    app = Reference()
    async with app.run_test(size=(120, 40)) as pilot:
        table = app.query_one(DataTable)
        table.add_columns("queue", "ready", "unacked", "in", "out", "redelivered", "consumers")
        times = []
        for r in range(refreshes):
            started = time.perf_counter()
            table.clear()
            for q in queues:
                table.add_row(
                    q["name"],
                    str(q["ready"] + r),
                    str(q["unacked"]),
                    str(q["publish_rate"]),
                    str(q["deliver_rate"]),
                    str(q["redeliver_rate"]),
                    str(q["consumers"]),
                )
            await pilot.pause()
            times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queues", type=int, default=50)
    parser.add_argument("--refreshes", type=int, default=40)
    args = parser.parse_args()
    data = grown(json.loads(RECORDING.read_text()), args.queues)
    first, applies, times = asyncio.run(dashboard_run(data, args.refreshes))
    ref = asyncio.run(reference_run(data, args.refreshes))
    print(
        json.dumps(
            {
                "date": datetime.now(UTC).date().isoformat(),
                "machine": f"{os.cpu_count()} cores {platform.machine()}",
                "queues": args.queues,
                "refreshes": args.refreshes,
                "first_frame_s": round(first, 3),
                "apply_ms": {
                    "median": round(statistics.median(applies) * 1000, 1),
                    "p90": round(p90(applies) * 1000, 1),
                },
                "refresh_ms": {
                    "median": round(statistics.median(times) * 1000, 1),
                    "p90": round(p90(times) * 1000, 1),
                },
                "reference_ms": {
                    "median": round(statistics.median(ref) * 1000, 1),
                    "p90": round(p90(ref) * 1000, 1),
                },
                "vs_reference": round(statistics.median(times) / statistics.median(ref), 2),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
