"""`forecast` against a Prometheus that scrapes only the broker's aggregated `/metrics`.

Such a Prometheus has the disk figures but no per-queue Raft metrics (those are on
`/metrics/per-object`): the forecast still comes from it, and the log writers come from the
management API as a labelled proxy, with a note saying what to scrape. A real Prometheus
(the stack's binary), started here on a free port and stopped by pid.
"""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from stack import procs
from stack.prometheus import BINARY
from tests.helpers import RunningStack, wait_for
from tests.ops.conftest import Cli


@pytest.fixture
def aggregated_only(ops_stack: RunningStack, tmp_path: Path) -> Iterator[str]:
    s = ops_stack.settings
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s}\n"
        "scrape_configs:\n"
        "  - job_name: rabbitmq\n"
        f"    static_configs: [{{targets: ['{s.host}:{s.ports.rabbitmq_prometheus}']}}]\n"
    )
    port = procs.free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            BINARY,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def has_disk_series() -> bool:
            try:
                got = requests.get(
                    f"{url}/api/v1/query",
                    params={"query": "count_over_time(rabbitmq_disk_space_available_bytes[1m])"},
                    timeout=2,
                ).json()
            except requests.RequestException:
                return False
            result = got.get("data", {}).get("result", [])
            return bool(result) and float(result[0]["value"][1]) >= 4

        assert wait_for(has_disk_series, 30, 0.5), "the private Prometheus never scraped"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def publishing(stack: RunningStack, queue: str) -> Iterator[None]:
    """~100 msg/s into a fresh quorum queue until the block ends."""
    conn = stack.connect()
    conn.channel().queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
    conn.close()
    stop = threading.Event()

    def run() -> None:
        out = stack.connect()
        ch = out.channel()
        while not stop.is_set():
            ch.basic_publish("", queue, b"{}")
            out.sleep(0.01)
        out.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
        conn = stack.connect()
        conn.channel().queue_delete(queue)
        conn.close()


def test_without_per_object_metrics_the_writers_come_from_the_proxy_with_a_note(
    cli: Cli, aggregated_only: str, ops_stack: RunningStack
) -> None:
    # The shared ops stack's queues are idle or busy as earlier tests left them: give the
    # proxy a writer of our own to find, once the management API shows its rate.
    busy = f"writer.{uuid.uuid4().hex[:8]}"
    with publishing(ops_stack, busy):

        def rated() -> bool:
            stats = ops_stack.queue(busy).get("message_stats", {})
            return stats.get("publish_details", {}).get("rate", 0) > 10

        assert wait_for(rated, 30, 0.5), ops_stack.queue(busy)
        done = cli("forecast", "--json", env={"LIKKER_PROMETHEUS_URL": aggregated_only})
    assert done.rc == 0, done.stderr
    doc = done.json
    assert doc["source"] == "prometheus"
    assert doc["writers_note"] == (
        "Prometheus has no per-queue Raft metrics (rabbitmq_raft_log_last_written_index: "
        "scrape /metrics/per-object of each node): management API rates (publish + redeliver "
        "+ ack msg/s) as a proxy"
    )
    assert doc["writers"], "the ops stack has quorum queues"
    assert {w["source"] for w in doc["writers"]} == {"management (proxy)"}
    assert {w["retained"] for w in doc["writers"]} == {None}
    assert busy in {w["queue"] for w in doc["writers"]}, doc["writers"]
    human = cli("forecast", env={"LIKKER_PROMETHEUS_URL": aggregated_only})
    assert "log writers (management (proxy)):" in human.stdout.splitlines()
