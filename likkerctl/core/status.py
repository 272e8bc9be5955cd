"""The broker's state as operators read it: queue and node rows, and the rules derived from
them, computed once for `status`, `top`, `forecast`, the dashboard and the runbooks.

- A queue's rates are the management API's 30-second averages (`rabbit.message_rate`).
- Redeliveries are **hot** when a queue redelivers more than it acks (at least 1/s): the
  Friday signature, where depth looks calm (`redeliveries_hot`). On the actions queue a
  redelivery share of deliveries above `HOT_SHARE` is the same alarm said as a share.
- A queue's **depth** is the larger of the management API's count (lags a statistics
  interval) and AMQP's exact ready count (`queue_depth`).
"""

from __future__ import annotations

from typing import Any

from likkerctl.core.clients import rabbit
from likkerctl.core.clients.rabbit import message_rate
from likkerctl.core.profile import Profile

HOT_SHARE = 0.5


def replicas(qd: dict[str, Any]) -> dict[str, Any] | None:
    """A quorum queue's leader, members and the members online; None for other queues.

    Fewer than a majority online: the queue cannot take or give messages (`available`).
    """
    members = qd.get("members")
    if not isinstance(members, list) or not members:
        return None
    online = [m for m in qd.get("online") or [] if m in members]
    return {
        "leader": qd.get("leader"),
        "members": members,
        "online": online,
        "available": len(online) > len(members) // 2,
    }


def replicas_line(rep: dict[str, Any] | None) -> str:
    """`3/3 online`, `2/3 online`, `queue unavailable: 1/3 online`; '' when not replicated."""
    if rep is None:
        return ""
    line = f"{len(rep['online'])}/{len(rep['members'])} online"
    return line if rep["available"] else f"queue unavailable: {line}"


def replicas_degraded(rep: dict[str, Any] | None) -> bool:
    return rep is not None and len(rep["online"]) < len(rep["members"])


def queue_row(qd: dict[str, Any]) -> dict[str, Any]:
    stats = qd.get("message_stats", {})
    deliver = message_rate(stats, "deliver_get")
    redeliver = message_rate(stats, "redeliver")
    return {
        "name": qd["name"],
        "type": qd.get("type"),
        "state": qd.get("state"),
        "messages": qd.get("messages", 0),
        "ready": qd.get("messages_ready", 0),
        "unacked": qd.get("messages_unacknowledged", 0),
        "bytes": qd.get("message_bytes", 0),
        "consumers": qd.get("consumers", 0),
        "publish_rate": message_rate(stats, "publish"),
        "deliver_rate": deliver,
        "ack_rate": message_rate(stats, "ack"),
        "redeliver_rate": redeliver,
        # deliver_get counts redeliveries too: the share of deliveries that are repeats.
        "redeliver_share": round(redeliver / deliver, 4) if deliver > 0 else None,
        # Quorum queues: where the leader and the replicas are (None for classic queues).
        "replicas": replicas(qd),
    }


def trouble(row: dict[str, Any]) -> tuple[int, list[str]]:
    """How much a queue needs looking at, and why: redeliveries, growth, no consumers.

    A score for ranking any queue of any application, from its row (3: cycling through
    redeliveries, 2: most deliveries are repeats, 2: growing, 1: messages and nobody
    consuming them).
    """
    deliver = float(row.get("deliver_rate") or 0.0)
    redeliver = float(row.get("redeliver_rate") or 0.0)
    ack = float(row.get("ack_rate") or 0.0)
    publish = float(row.get("publish_rate") or 0.0)
    reasons: list[str] = []
    score = 0
    if redeliver > max(ack, 1.0):
        score += 3
        reasons.append(f"redelivering {redeliver:,.0f}/s, more than it acks")
    elif deliver > 0 and redeliver / deliver > HOT_SHARE:
        score += 2
        reasons.append(f"{redeliver / deliver:.0%} of deliveries are redeliveries")
    if publish >= 1.0 and publish > ack * 1.1:
        score += 2
        reasons.append(f"growing: {publish:,.0f}/s in, {ack:,.0f}/s acked")
    if int(row.get("ready") or 0) > 0 and int(row.get("consumers") or 0) == 0:
        score += 1
        reasons.append("messages and no consumers")
    return score, reasons


def by_trouble(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows ranked by trouble; ties keep their order (actions queue, DLQ, then by name)."""
    return sorted(rows, key=lambda r: -trouble(r)[0])


def redeliveries_hot(row: dict[str, Any]) -> bool:
    """More redeliveries than acks (and at least one a second): messages are cycling."""
    return float(row.get("redeliver_rate", 0.0)) > max(float(row.get("ack_rate", 0.0)), 1.0)


def share_hot(share: float | None) -> bool:
    return share is not None and share > HOT_SHARE


def node_row(node: dict[str, Any]) -> dict[str, Any]:
    # A node just booted (or down) has no disk figures yet: say so rather than show zeros.
    known = "disk_free" in node
    free = int(node.get("disk_free", 0))
    limit = int(node.get("disk_free_limit", 0))
    running = bool(node.get("running"))
    return {
        "name": node["name"],
        "running": running,
        # The management API keeps listing a dead member, with no figures: it is down.
        "state": "running" if running else "down",
        "disk_free": free if known else None,
        "disk_free_limit": limit if known else None,
        "disk_headroom": free - limit if known else None,
        "disk_alarm": bool(node.get("disk_free_alarm")) and running,
        "mem_alarm": bool(node.get("mem_alarm")) and running,
        "mem_used": node.get("mem_used"),
        "mem_limit": node.get("mem_limit"),
    }


def node_rows(profile: Profile) -> list[dict[str, Any]]:
    return [node_row(n) for n in rabbit.Management(profile, timeout=3).nodes()]


def queue_rows(profile: Profile, all_queues: bool = False) -> list[dict[str, Any]]:
    """The vhost's queues as rows: actions queue, DLQ, then by name; exact counts for those two."""
    queues = [
        queue_row(qd)
        for qd in rabbit.Management(profile, timeout=3).queues()
        if all_queues or not (qd.get("exclusive") or qd.get("auto_delete"))
    ]
    order = {profile.actions_queue: 0, profile.dlq: 1}
    queues.sort(key=lambda r: (order.get(r["name"], 2), r["name"]))
    # A quorum queue without a majority answers no queue.declare: ask only those that can.
    askable = [
        q["name"]
        for q in queues
        if q["name"] in order and (q["replicas"] is None or q["replicas"]["available"])
    ]
    exact = rabbit.exact_counts(profile, askable)
    for row in queues:
        if row["name"] in exact:
            row["ready"], row["consumers"] = exact[row["name"]]
            row["messages"] = row["ready"] + row["unacked"]
    return queues


def queue_depth(profile: Profile, queue: str) -> int:
    """max(management count, AMQP ready count): the first lags, the second omits unacked."""
    listed = int(rabbit.Management(profile, timeout=3).queue(queue).get("messages", 0))
    return max(listed, rabbit.ready_count(profile, queue))


def redelivery_signals(profile: Profile) -> dict[str, Any]:
    """Redeliveries/s on the actions queue and their share of its deliveries."""
    row = queue_row(rabbit.Management(profile).queue(profile.actions_queue))
    return {
        "queue": profile.actions_queue,
        "redeliver_rate": row["redeliver_rate"],
        "deliver_rate": row["deliver_rate"],
        "redeliver_share": row["redeliver_share"],
    }
