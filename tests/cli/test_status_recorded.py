"""`status` fed a recorded broker state, and the dashboard fed the very same one.

The recordings are the dashboard's (tests/dashboard/recordings: `likkerctl dashboard
--record` on the reference stack). `status` takes them through `AppState(readings=...)`,
the root context's object, which is what CliRunner's `obj=` passes; the dashboard takes them
through `RecordedBackend`. Both then run their real rendering code.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from textual.widgets import DataTable, Static
from typer.testing import CliRunner, Result

from likkerctl.cli import errors as exit_codes
from likkerctl.cli.main import app
from likkerctl.cli.output import AppState
from likkerctl.core.errors import LikkerError
from likkerctl.core.readings import RecordedReadings
from likkerctl.tui.app import Dashboard
from likkerctl.tui.backend import RecordedBackend
from tests.cli.conftest import DASHBOARD_RECORDINGS

# The stable `status --json` field names (docs/CLI.md: "field names are stable").
STATUS_KEYS = {
    "profile",
    "management_url",
    "nodes",
    "queues",
    "takers",
    "forecast",
    "alertmanager",
}
QUEUE_KEYS = {
    "name",
    "type",
    "state",
    "messages",
    "ready",
    "unacked",
    "bytes",
    "consumers",
    "publish_rate",
    "deliver_rate",
    "ack_rate",
    "redeliver_rate",
    "redeliver_share",
    "replicas",
}
NODE_KEYS = {
    "name",
    "running",
    "state",
    "disk_free",
    "disk_free_limit",
    "disk_headroom",
    "disk_alarm",
    "mem_alarm",
    "mem_used",
    "mem_limit",
}
FORECAST_KEYS = {"source", "fallback_reason", "window_s", "answer", "nodes"}


def recording(name: str) -> dict[str, Any]:
    return dict(json.loads((DASHBOARD_RECORDINGS / f"{name}.json").read_text()))


def status_of(name: str | Path, *args: str, env: dict[str, str | None]) -> Result:
    """`status` on a recording (by name, or a file), through the Typer app: main() builds its
    own AppState, so readings can only be given as CliRunner's `obj=`. An error then stays in
    `result.exception` (main() would print it and map it with cli.errors.exit_code)."""
    path = name if isinstance(name, Path) else DASHBOARD_RECORDINGS / f"{name}.json"
    readings = RecordedReadings.load(path)
    return CliRunner().invoke(app, ["status", *args], obj=AppState(readings=readings), env=env)


def table_rows(text: str, first_column: str) -> dict[str, dict[str, str]]:
    """A Rich table printed by the CLI, as {first cell: {column: cell}}, found by its header."""
    lines = text.splitlines()
    header_at = next(i for i, line in enumerate(lines) if re.match(rf"┃ {first_column}\s+┃", line))
    columns = [c.strip() for c in lines[header_at].strip("┃").split("┃")]
    rows: dict[str, dict[str, str]] = {}
    for line in lines[header_at + 2 :]:
        if not line.startswith("│"):
            break
        cells = [c.strip() for c in line.strip("│").split("│")]
        rows[cells[0]] = dict(zip(columns, cells, strict=True))
    return rows


# -- status --json ----------------------------------------------------------------------
def test_status_json_has_the_stable_field_names(env: dict[str, str | None]) -> None:
    result = status_of("friday", "--json", env=env)
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert set(doc) == STATUS_KEYS
    assert doc["queues"] and all(set(q) == QUEUE_KEYS for q in doc["queues"])
    assert doc["nodes"] and all(set(n) == NODE_KEYS for n in doc["nodes"])
    assert set(doc["forecast"]) == FORECAST_KEYS


def test_status_json_carries_the_recorded_figures_unchanged(env: dict[str, str | None]) -> None:
    parts = recording("friday")["parts"]
    doc = json.loads(status_of("friday", "--json", env=env).stdout)
    assert doc["profile"] == "local"
    # Recorded before clusters were shown: the rows gain `replicas` / `state`, nothing else.
    assert [
        {k: q[k] for k in r} for q, r in zip(doc["queues"], parts["queues"]["value"], strict=True)
    ] == (parts["queues"]["value"])
    assert [q["replicas"] for q in doc["queues"]] == [None] * len(doc["queues"])
    assert [
        {k: n[k] for k in r} for n, r in zip(doc["nodes"], parts["nodes"]["value"], strict=True)
    ] == (parts["nodes"]["value"])
    assert [n["state"] for n in doc["nodes"]] == ["running"] * len(doc["nodes"])
    assert doc["takers"] == parts["takers"]["value"]
    assert doc["forecast"] == parts["forecast"]["value"]
    assert doc["alertmanager"] == parts["alerts"]["value"]


def test_status_table_shows_each_queue_its_ready_count_and_the_forecast_sentence(
    env: dict[str, str | None],
) -> None:
    queues = recording("friday")["parts"]["queues"]["value"]
    result = status_of("friday", env=env)
    assert result.exit_code == 0, result.output
    rows = table_rows(result.stdout, "queue")
    assert list(rows) == [q["name"] for q in queues] == ["likker.actions", "likker.actions.dlq"]
    assert [rows[q["name"]]["ready"] for q in queues] == ["2,045", "8,296"]
    assert (
        "disk forecast (prometheus): filling: the broker blocks publishers in ~49 min "
        "(between 39 min and 63 min, 90% interval); headroom 831 MB, falling 284.7 kB/s"
    ) in result.stdout
    assert "alerts: LikkerBrokerDiskFullWithinOneHour, LikkerRedeliveryStorm" in result.stdout


def test_status_of_a_recording_with_the_broker_down_fails_in_one_line_naming_the_url(
    env: dict[str, str | None],
) -> None:
    said = recording("broker-down")["parts"]["nodes"]["error"]
    assert "http://127.0.0.1:1" in said  # what the recording's nodes part says
    result = status_of("broker-down", env=env)
    # An expected failure of the core (main() prints it as one `error:` line, no traceback),
    # raised before anything was printed.
    assert isinstance(result.exception, LikkerError), result.exception
    assert str(result.exception) == said
    assert len(str(result.exception).splitlines()) == 1
    assert result.stdout == ""


def test_status_of_a_recording_with_the_broker_down_exits_as_unreachable(
    env: dict[str, str | None],
) -> None:
    result = status_of("broker-down", env=env)
    assert isinstance(result.exception, LikkerError)
    assert exit_codes.exit_code(result.exception) == exit_codes.UNREACHABLE


# -- the CLI and the dashboard agree -------------------------------------------------------
def dashboard_texts(path: Path) -> dict[str, Any]:
    """The dashboard on a recording: its queue table's cells and its panels' plain text."""

    async def drive() -> dict[str, Any]:
        dashboard = Dashboard(RecordedBackend.load(path), refresh_s=0)
        async with dashboard.run_test(size=(120, 40)) as pilot:
            await pilot.app.workers.wait_for_complete()
            await pilot.pause()
            table = dashboard.query_one("#queues", DataTable)
            columns = [str(c.label) for c in table.columns.values()]
            queues = {
                str(key.value): dict(zip(columns, map(str, table.get_row(key)), strict=True))
                for key in table.rows
            }
            return {
                "queues": queues,
                "disk": str(dashboard.query_one("#disk", Static).render()),
                "redeliveries": str(dashboard.query_one("#redeliveries", Static).render()),
            }

    return asyncio.run(drive())


ETA = re.compile(r"~(\d[\d.,]* (?:s|min|h|days))\b")
RANGE = re.compile(r"between \S+ \S+ and \S+ \S+?(?=[,)])")


def test_cli_and_dashboard_show_the_same_figures_for_the_same_recorded_state(
    env: dict[str, str | None],
) -> None:
    """The issue's acceptance test: one recorded state, the same figures on both screens."""
    path = DASHBOARD_RECORDINGS / "friday.json"
    parts = recording("friday")["parts"]
    cli = status_of("friday", env=env)
    assert cli.exit_code == 0, cli.output
    cli_queues = table_rows(cli.stdout, "queue")
    cli_nodes = table_rows(cli.stdout, "node")
    tui = dashboard_texts(path)

    # Each queue: its ready count and its redeliveries/s.
    assert set(cli_queues) == set(tui["queues"]) == {q["name"] for q in parts["queues"]["value"]}
    for name in cli_queues:
        assert cli_queues[name]["ready"] == tui["queues"][name]["ready"]
        assert cli_queues[name]["redeliver/s"] == tui["queues"][name]["redeliv/s"]
    assert cli_queues["likker.actions"]["redeliver/s"] == "175"  # 175.4/s recorded
    assert tui["redeliveries"].startswith("175/s redelivered")

    # The broker node's headroom above its disk limit, in MB.
    node = parts["nodes"]["value"][0]
    assert cli_nodes[node["name"]]["headroom"] == "561 MB"
    assert f"headroom 561 MB on {node['name']}" in tui["disk"]

    # The forecast: the same ETA and the same range.
    cli_line = next(line for line in cli.stdout.splitlines() if line.startswith("disk forecast"))
    assert ETA.findall(cli_line) == ETA.findall(tui["disk"]) == ["49 min"]
    assert RANGE.findall(cli_line) == RANGE.findall(tui["disk"]) == ["between 39 min and 63 min"]


# Per-object Raft figures read from the reference stack's broker while its actions queue was
# shovelled to the DLQ (a Friday fix), in the shape `forecast --json` gives them.
WRITERS = [
    {
        "node": "127.0.0.1:15790",
        "vhost": "/",
        "queue": "likker.actions",
        "entries_per_s": 1601.4,
        "retained": 36420.0,
        "share": 0.7660,
        "source": "prometheus",
    },
    {
        "node": "127.0.0.1:15790",
        "vhost": "/",
        "queue": "likker.actions.dlq",
        "entries_per_s": 489.2,
        "retained": 9801.0,
        "share": 0.2340,
        "source": "prometheus",
    },
]


def test_cli_and_dashboard_name_the_same_top_log_writer_and_regime(
    env: dict[str, str | None], tmp_path: Path
) -> None:
    data = recording("friday")
    forecast = data["parts"]["forecast"]["value"]
    since = forecast["answer"]["at"] - 95
    forecast["answer"].update(regime_since=since, regime_reason="slope change")
    forecast.update(writers=WRITERS, writers_note=None)
    path = tmp_path / "friday-with-writers.json"
    path.write_text(json.dumps(data))

    cli = status_of(path, env=env)
    assert cli.exit_code == 0, cli.output
    clock = datetime.fromtimestamp(since).strftime("%H:%M")
    top = "likker.actions 77% (1,601 entries/s, 36,420 retained)"
    assert f"top log writer (prometheus): {top} on 127.0.0.1:15790" in cli.stdout
    assert f"falling 284.7 kB/s; since {clock}, after a slope change" in cli.stdout
    disk = dashboard_texts(path)["disk"]
    assert f"top log writer {top}" in disk
    assert f"since {clock}, after a slope change" in disk
    assert json.loads(status_of(path, "--json", env=env).stdout)["forecast"]["writers"] == WRITERS


def test_a_recording_without_writers_shows_no_writer_line(env: dict[str, str | None]) -> None:
    assert "writers" not in recording("friday")["parts"]["forecast"]["value"]
    assert "log writer" not in status_of("friday", env=env).stdout
    assert "log writer" not in dashboard_texts(DASHBOARD_RECORDINGS / "friday.json")["disk"]
