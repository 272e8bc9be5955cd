"""Benchmark: how soon the disk forecast follows a fix, and whether it names the right queue.

Run:  .venv/bin/python bench/bench_forecast_recovery.py [--headroom 600MB] [--rate 150]
      [--bot-share 0.7] [--taker-rate 0] [--incident 75] [--after 150] [--shared-disk]
      [--save run.json]

Starts a stack (`requeue`, two takers, unpaced by default, the webhook observing) whose
state dir is a tmpfs of its own (tests/incident.py: free disk moves only with what the stack
writes; `--shared-disk` runs on this machine's shared disk instead), sends the `friday` load for
the whole run, and applies the fix with likkerctl's commands after `--incident` seconds
(block the bot, pause the takers, shovel the bot's messages to the DLQ, resume). The load
goes on at the same rate: the bot is now refused at the gateway, people's likes flow.

Meanwhile, every 2 s, likkerctl's forecast is made in-process from Prometheus, from its own
sampler (which this benchmark polls every 2 s, as the dashboard does), and — as the
reference — from the same Prometheus samples fitted the way the previous release did: the
whole window since the last step up, no slope change. Reported:

- **recovery**: seconds from the fix's last step (`takers resume` done) until the forecast
  is out of the hour (`recovered`: not filling, or the soonest ETA an hour away) and stays
  so for the rest of the run; per source, and for the reference;
- **attribution**: during the incident, how often `likker.actions` is named the top writer
  and its share; its entries/s before and after the fix. Correctness against two
  references: a control quorum queue this benchmark feeds at a known rate (each message
  one enqueue and one settlement: 2 entries per message), and the broker's own
  `/metrics/per-object` read directly (not through Prometheus) at the start and end of the
  incident; and the management proxy's ranking next to Prometheus'.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import pika

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from likkerctl.core.disk import sources
from likkerctl.core.disk.attribution import log_writers
from likkerctl.core.disk.forecast import Sample, forecast
from likkerctl.core.disk.sampler import Sampler
from likkerctl.core.profile import Profile
from likkerctl.runbooks.steps import recovered
from tests.helpers import RunningStack, assert_all_gone, start_stack, wait_for
from tests.incident import StoppableLoad, fix, own_disk
from tests.ops.conftest import Cli

CONTROL_QUEUE = "bench.control"
PER_OBJECT = re.compile(
    r'^rabbitmq_raft_log_last_written_index\{vhost="([^"]*)",queue="([^"]*)"\} (\S+)'
)
KINDS = ("prometheus", "sampler", "reference")


def profile_of(stack: RunningStack, state: Path) -> Profile:
    s = stack.settings
    return Profile(
        amqp_url=s.amqp_url,
        mgmt_url=s.management_url,
        prometheus_url=s.prometheus_url,
        state_dir=str(state),
    )


def per_object_indexes(stack: RunningStack) -> tuple[float, dict[str, float]]:
    """(time, last written index by queue) straight from the node's per-object endpoint."""
    url = f"http://{stack.settings.host}:{stack.settings.ports.rabbitmq_prometheus}"
    text = stack.http.get(f"{url}/metrics/per-object", timeout=10).text
    found = {}
    for line in text.splitlines():
        m = PER_OBJECT.match(line)
        if m:
            found[m.group(2)] = float(m.group(3))
    return time.time(), found


class ControlQueue:
    """Publishes to a quorum queue at `rate` msg/s and consumes it, acking each message."""

    def __init__(self, amqp_url: str, rate: float) -> None:
        self.amqp_url, self.rate = amqp_url, rate
        self.stop = threading.Event()
        self.published = 0
        self.threads = [threading.Thread(target=f, daemon=True) for f in (self.pub, self.sub)]

    def start(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        conn.channel().queue_declare(
            CONTROL_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
        )
        conn.close()
        for t in self.threads:
            t.start()

    def pub(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        ch = conn.channel()
        start = time.monotonic()
        body = b"x" * 300
        while not self.stop.is_set():
            ch.basic_publish("", CONTROL_QUEUE, body, pika.BasicProperties(delivery_mode=2))
            self.published += 1
            delay = start + self.published / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        conn.close()

    def sub(self) -> None:
        conn = pika.BlockingConnection(pika.URLParameters(self.amqp_url))
        ch = conn.channel()
        ch.basic_qos(prefetch_count=10)
        for method, _props, _body in ch.consume(CONTROL_QUEUE, inactivity_timeout=0.5):
            if self.stop.is_set():
                break
            if method is not None:
                ch.basic_ack(method.delivery_tag)
        conn.close()


def reference_forecast(profile: Profile) -> dict[str, Any] | None:
    """The previous release's fit: the window since the last step up, no slope change."""
    from likkerctl.core.clients import prometheus

    series = prometheus.disk_series(profile, 600.0)
    if not series:
        return None
    samples = [Sample(*p) for p in next(iter(series.values()))]
    return forecast(samples, min_rate_change=float("inf")).as_json()


def recovery_s(polls: list[dict[str, Any]], key: str, fixed_at: float) -> float | None:
    """Seconds from the fix until `key`'s answer was recovered and stayed so."""
    after = [p for p in polls if p["t"] >= fixed_at and p.get(key) is not None]
    since = None
    for p in after:
        if not recovered(p[key], 3600):
            since = None
        elif since is None:
            since = p["t"]
    return round(since - fixed_at, 1) if since is not None else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="bench-recovery-"))
    disk = None if args.shared_disk else own_disk(work / "state")
    state = disk.__enter__() if disk else work / "state"
    stack = start_stack(
        state,
        takers=2,
        retry_policy="requeue",
        taker_rate=args.taker_rate,
        disk_headroom_bytes=args.headroom,
    )
    profile = profile_of(stack, work / "likkerctl")
    cli = Cli(stack, work / "config")
    sampler = Sampler(profile)
    stop = threading.Event()
    polls: list[dict[str, Any]] = []
    events: dict[str, float] = {}
    disk_log: list[tuple[float, float, float]] = []

    def sample_loop() -> None:
        while not stop.is_set():
            try:
                for n in sampler.poll():
                    if "disk_free" in n:
                        disk_log.append((time.time(), n["disk_free"], n["disk_free_limit"]))
            except Exception as exc:  # a slow answer under load: the next poll will do
                print(f"sampler: {exc}", file=sys.stderr)
            stop.wait(2.0)

    control = ControlQueue(stack.settings.amqp_url, args.control_rate)
    load = None
    try:
        wait_for(lambda: sources.forecast_all(profile, "prometheus").nodes, 60, 2)
        control.start()
        pop = stack.population(users=120, posts=100, friday=True)
        assert pop.bot is not None and pop.bot.bot_id is not None
        threading.Thread(target=sample_loop, daemon=True).start()
        load = StoppableLoad(
            stack,
            pop,
            scenario="friday",
            rate=args.rate,
            duration_s=args.incident + args.after + 120,
            bot_share=args.bot_share,
            concurrency=16,
        ).start()
        events["load"] = time.time()

        def poll(phase: str) -> None:
            t = time.time()
            fc = sources.forecast_all(profile, "prometheus", writers=False).as_json()
            own = sources.forecast_all(profile, "sampler", sampler=_NoPoll(sampler))
            polls.append(
                {
                    "t": t,
                    "phase": phase,
                    "prometheus": fc["answer"],
                    "sampler": own.as_json()["answer"],
                    "reference": reference_forecast(profile),
                    "writers": [w.as_json() for w in log_writers(profile).writers],
                    "proxy": [
                        w.as_json()
                        for w in log_writers(profile, prometheus_note="benchmark").writers
                    ],
                }
            )

        time.sleep(10)
        direct_start = per_object_indexes(stack)
        while time.time() < events["load"] + args.incident:
            poll("incident")
            time.sleep(2)
        direct_end = per_object_indexes(stack)
        events["fix"] = time.time()
        steps = fix(cli, pop.bot.bot_id)
        events.update({f"done {k}": v for k, v in steps.items()})
        fixed_at = steps["takers resume"]
        while time.time() < fixed_at + args.after:
            poll("after")
            time.sleep(2)
    finally:
        stop.set()
        control.stop.set()
        report = load.stop() if load else None
        assert_all_gone(stack.down())
        if disk:
            disk.__exit__(None, None, None)

    incident = [p for p in polls if p["phase"] == "incident"]
    after = [p for p in polls if p["phase"] == "after"]
    late = [p for p in incident if p["t"] >= events["load"] + args.incident / 2]

    def rate_of(p: dict[str, Any], queue: str, key: str = "writers") -> float:
        return next((w["entries_per_s"] for w in p[key] if w["queue"] == queue), 0.0)

    def median(values: list[float]) -> float | None:
        values = sorted(values)
        return values[len(values) // 2] if values else None

    span = direct_end[0] - direct_start[0]
    direct = {q: (direct_end[1][q] - direct_start[1].get(q, 0.0)) / span for q in direct_end[1]}
    in_window = [
        p for p in incident if direct_start[0] + 60 <= p["t"] <= direct_end[0]
    ]  # rate()[1m] covers only the incident then
    result = {
        "settings": {
            "headroom": args.headroom,
            "rate": args.rate,
            "bot_share": args.bot_share,
            "taker_rate": args.taker_rate,
            "incident_s": args.incident,
            "after_s": args.after,
            "disk": "shared" if args.shared_disk else "own tmpfs",
            "control_rate": args.control_rate,
        },
        "fix_s": round(fixed_at - events["fix"], 1),
        "before_fix": {k: _brief(incident[-1][k]) if incident else None for k in KINDS},
        "recovery_s": {k: recovery_s(polls, k, fixed_at) for k in KINDS},
        "end": {k: _brief(after[-1][k]) if after else None for k in KINDS},
        "attribution": {
            "polls_in_incident_second_half": len(late),
            "actions_named_top": sum(
                1 for p in late if p["writers"] and p["writers"][0]["queue"] == "likker.actions"
            ),
            "actions_share_median": median(
                [p["writers"][0]["share"] for p in late if p["writers"]]
            ),
            "actions_entries_per_s_incident": median([rate_of(p, "likker.actions") for p in late]),
            "actions_entries_per_s_end": median(
                [rate_of(p, "likker.actions") for p in after[-10:]]
            ),
            "proxy_names_actions_top": sum(
                1 for p in late if p["proxy"] and p["proxy"][0]["queue"] == "likker.actions"
            ),
            "direct_entries_per_s": {q: round(r, 1) for q, r in direct.items()},
            "prometheus_entries_per_s_same_span": {
                q: median([rate_of(p, q) for p in in_window])
                for q in ("likker.actions", "likker.actions.dlq", CONTROL_QUEUE)
            },
            "control_expected_entries_per_s": 2 * args.control_rate,
            "control_prometheus_entries_per_s": median(
                [rate_of(p, CONTROL_QUEUE) for p in incident + after]
            ),
            "control_proxy_msg_per_s": median(
                [rate_of(p, CONTROL_QUEUE, "proxy") for p in incident + after]
            ),
        },
        "load": report.as_json() if report else None,
    }
    if args.save:
        Path(args.save).write_text(
            json.dumps({"result": result, "events": events, "polls": polls, "disk": disk_log})
        )
    return result


class _NoPoll:
    """The benchmark's sampler, read without another poll (its own loop polls every 2 s)."""

    def __init__(self, sampler: Sampler) -> None:
        self.sampler = sampler

    def poll(self) -> list[dict[str, Any]]:
        return []

    def series(self, window_s: float) -> dict[str, list[Sample]]:
        return self.sampler.series(window_s)


def _brief(answer: dict[str, Any] | None) -> dict[str, Any] | None:
    if not answer:
        return None
    keys = ("status", "eta_s", "eta_low_s", "rate", "headroom", "regime_reason", "note")
    return {k: answer.get(k) for k in keys}


def size(text: str) -> int:
    units = {"KB": 1e3, "MB": 1e6, "GB": 1e9}
    for unit, factor in units.items():
        if text.upper().endswith(unit):
            return int(float(text[: -len(unit)]) * factor)
    return int(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headroom", type=size, default=600_000_000, help="e.g. 600MB")
    parser.add_argument("--rate", type=float, default=150.0, help="likes/s of the load")
    parser.add_argument("--bot-share", type=float, default=0.7)
    parser.add_argument("--taker-rate", type=float, default=0.0, help="msg/s per taker, 0: unpaced")
    parser.add_argument("--incident", type=float, default=75.0, help="seconds before the fix")
    parser.add_argument("--after", type=float, default=150.0, help="seconds watched after it")
    parser.add_argument("--control-rate", type=float, default=50.0, help="msg/s, control queue")
    parser.add_argument("--shared-disk", action="store_true", help="no tmpfs of its own")
    parser.add_argument("--save", help="write every poll and disk sample to this file")
    args = parser.parse_args()
    result = run(args)
    result["machine"] = f"{platform.machine()} python {platform.python_version()}"
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
