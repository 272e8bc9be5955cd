"""Which queues write the broker's log: entries/s and retained entries per quorum queue, per
node, and each one's share of that node's log writes.

Every enqueue, return (a requeue writes the message again) and settlement of a quorum queue
is an entry in its Raft log, which lives in the node's write-ahead log and segment files:
a queue cycling its messages through nack-requeue out-writes everything else by orders of
magnitude, while its depth stays flat.

- **prometheus**: rabbitmq_prometheus' per-object metrics (`/metrics/per-object`, which the
  stack's Prometheus scrapes): `rate(rabbitmq_raft_log_last_written_index[1m])` is a queue's
  log entries/s on that node, `last_written_index - snapshot_index` the entries it retains
  (what its snapshot has not released yet).
- **management (proxy)**: without those, the management API's per-queue publish + redeliver
  + ack rates (messages/s, its 30-second averages) of each quorum queue, counted on each of
  its members' nodes. The same ranking for a requeue loop; retained entries are unknown.

`rank` is the pure part (unit-tested); `log_writers` asks the servers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from likkerctl.core.clients import prometheus, rabbit
from likkerctl.core.errors import LikkerError
from likkerctl.core.profile import Profile

PROMETHEUS = "prometheus"
PROXY = "management (proxy)"
PER_NODE = 10  # writers listed per node, the busiest first

# (node, vhost, queue)
Key = tuple[str, str, str]


@dataclass(frozen=True)
class Writer:
    node: str
    vhost: str
    queue: str
    entries_per_s: float  # log entries/s (the proxy: messages published + redelivered + acked)
    retained: float | None  # entries the log keeps for this queue (unknown from the proxy)
    share: float  # of the node's log writes
    source: str

    def as_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["entries_per_s"] = round(self.entries_per_s, 1)
        doc["share"] = round(self.share, 4)
        return doc


@dataclass
class Attribution:
    source: str | None  # None: no figures at all (see note)
    writers: list[Writer] = field(default_factory=list)
    note: str | None = None

    @property
    def top(self) -> Writer | None:
        return self.writers[0] if self.writers else None


def rank(
    rates: Mapping[Key, float],
    retained: Mapping[Key, float] | None,
    source: str,
    per_node: int = PER_NODE,
) -> list[Writer]:
    """Writers by entries/s (busiest first), with their share of their node's writes."""
    totals: dict[str, float] = {}
    for (node, _vhost, _queue), rate in rates.items():
        totals[node] = totals.get(node, 0.0) + max(rate, 0.0)
    rows = [
        Writer(
            node=node,
            vhost=vhost,
            queue=queue,
            entries_per_s=max(rate, 0.0),
            retained=None if retained is None else retained.get((node, vhost, queue)),
            share=max(rate, 0.0) / totals[node] if totals[node] > 0 else 0.0,
            source=source,
        )
        for (node, vhost, queue), rate in rates.items()
    ]
    rows.sort(key=lambda w: (-w.entries_per_s, -(w.retained or 0.0), w.node, w.queue))
    listed: dict[str, int] = {}
    kept = []
    for w in rows:
        listed[w.node] = listed.get(w.node, 0) + 1
        if listed[w.node] <= per_node:
            kept.append(w)
    return kept


def management_rates(queues: list[dict[str, Any]]) -> dict[Key, float]:
    """Publish + redeliver + ack msg/s of each quorum queue, on each member's node."""
    rates: dict[Key, float] = {}
    for qd in queues:
        if qd.get("type") != "quorum":
            continue
        stats = qd.get("message_stats", {})
        rate = sum(rabbit.message_rate(stats, k) for k in ("publish", "redeliver", "ack"))
        for node in qd.get("members") or [qd.get("node", "?")]:
            rates[(str(node), str(qd.get("vhost", "/")), str(qd["name"]))] = rate
    return rates


def log_writers(profile: Profile, prometheus_note: str | None = None) -> Attribution:
    """From Prometheus when the profile has one with the per-queue Raft metrics, else from
    the management API (a proxy, labelled so). `prometheus_note`: Prometheus is not to be
    asked, and why (the disk forecast just found it unusable). Failures become the note."""
    why = prometheus_note
    if profile.prometheus_url and why is None:
        try:
            rates, retained = prometheus.raft_log_writes(profile)
            if rates:
                return Attribution(PROMETHEUS, rank(rates, retained, PROMETHEUS))
            why = (
                "Prometheus has no per-queue Raft metrics (rabbitmq_raft_log_last_written_index:"
                " scrape /metrics/per-object of each node)"
            )
        except LikkerError as exc:
            why = str(exc)
    try:
        queues = rabbit.Management(profile, timeout=3).queues()
    except LikkerError as exc:
        return Attribution(None, note=f"{why}; and {exc}" if why else str(exc))
    rates = management_rates(queues)
    if not rates:
        return Attribution(None, note=(f"{why}; " if why else "") + "no quorum queues")
    proxy = "management API rates (publish + redeliver + ack msg/s) as a proxy"
    return Attribution(PROXY, rank(rates, None, PROXY), note=f"{why}: {proxy}" if why else proxy)
