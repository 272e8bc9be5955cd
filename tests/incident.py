"""The Friday incident and its fix on a stack with a disk of its own, for the forecast's
recovery test (tests/stack/test_forecast_recovery.py) and benchmark
(bench/bench_forecast_recovery.py), so both run exactly the same thing.

- `own_disk`: a tmpfs mounted for the stack's state dir. The forecast reads the broker's
  *free disk*, and this machine's disk is shared: other test runs write and delete hundreds
  of MB while ours runs. On a filesystem of its own, free disk moves only with what the
  stack writes (the broker's log, Prometheus, the likes store, logs), so a test can expect
  what the broker's behaviour implies. Needs root (as the stack's packages do).
- `StoppableLoad`: the load generator in a thread, stopped when the test is done with it.
- `disk_full_ran_once`: the webhook's disk-full run, each step once and for real (its audit).
- `fix`: the fix an operator makes with likkerctl's commands: block the bot, pause the
  takers (they hold the bot's cycling messages under `requeue`), shovel the bot's messages
  to the DLQ, resume.
"""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from stack.load import LoadReport, Population, run_load
from tests.helpers import RunningStack
from tests.ops.conftest import Cli


@contextmanager
def own_disk(path: Path, size: str = "3g") -> Iterator[Path]:
    """`path` as a tmpfs of `size` for as long as the block runs (unmounted after)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "likker-test-disk", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        raise RuntimeError(
            f"cannot mount a tmpfs at {path} for the stack's own disk (needs root): "
            f"{mounted.stderr.strip()}"
        )
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "--lazy", str(path)], check=False)


class StoppableLoad:
    """`run_load` in a thread of its own until `stop()`; `report` is its running tally."""

    def __init__(self, stack: RunningStack, pop: Population, **kw: Any) -> None:
        self.stack, self.pop, self.kw = stack, pop, kw
        self.report: LoadReport | None = None
        self._loop = asyncio.new_event_loop()
        self._task: asyncio.Task[LoadReport] | None = None
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def _run(self) -> None:
        async def tick(report: LoadReport) -> None:
            self.report = report

        async def main() -> None:
            self._task = asyncio.current_task()
            with suppress(asyncio.CancelledError):
                self.report = await run_load(
                    self.stack.settings.gateway_url, self.pop, on_tick=tick, **self.kw
                )

        self._loop.run_until_complete(main())
        self._loop.close()

    def start(self) -> StoppableLoad:
        self._thread.start()
        return self

    def stop(self) -> LoadReport | None:
        if self._thread.is_alive():
            while self._task is None and self._thread.is_alive():
                time.sleep(0.05)
            if self._task is not None:
                self._loop.call_soon_threadsafe(self._task.cancel)
            self._thread.join(timeout=60)
        return self.report


def fix(cli: Cli, bot_id: int) -> dict[str, float]:
    """Block the bot, pause the takers, shovel its messages to the DLQ, resume: each step's
    end (epoch seconds), by command."""
    ended: dict[str, float] = {}
    for args in (
        ("bots", "block", str(bot_id), "--reason", "cycling likes"),
        ("takers", "pause"),
        ("shovel", "likker.actions", "likker.actions.dlq", "--where", f"bot={bot_id}"),
        ("takers", "resume"),
    ):
        done = cli(*args, "--yes", "--json")
        assert done.rc == 0, f"{' '.join(args)}: {done.stderr}"
        ended[" ".join(args[:2])] = time.time()
    return ended


def disk_full_ran_once(cli: Cli, alert_key: str) -> dict[str, dict[str, Any]]:
    """Each step of the disk-full runbook ran once, for real and ok, under the alert's key:
    the audit entries by command."""
    audit = cli("audit", "--alert", alert_key, "--json").json["entries"]
    assert Counter(e["command"] for e in audit) == {
        "runbook disk-full": 1,
        "find-offenders": 1,
        "bots block": 1,
        "takers pause": 1,
        "shovel": 1,
        "takers resume": 1,
        "verify-forecast": 1,
    }, audit
    assert all(e["result"] == "ok" and not e["dry_run"] for e in audit), audit
    return {e["command"]: e for e in audit}
