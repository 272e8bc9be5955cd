"""Every action that changes something, written once.

The CLI commands, the dashboard's keys and the webhook's runbook steps all go through
`perform()`: plan (what a dry run shows, with counts), ask, execute, and the audit row
around all of it. An operation is a small object with a `command` name for the audit log,
its `params`, `plan()` and `execute()`; both return JSON-able dicts with a `summary` line.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from likkerctl.core import move
from likkerctl.core.clients import auth, control, rabbit
from likkerctl.core.errors import Conflict, Failed, InvalidInput, NotFound
from likkerctl.core.messages import fields, predicate, sampling
from likkerctl.core.messages.archive import ArchiveWriter, default_archive_path
from likkerctl.core.profile import Profile

ENGINES = ("auto", "broker", "client")
ORIGINAL = "original"  # `dlq replay --to original`: each message to where it came from
OnProgress = Callable[[move.Progress], None]


class Operation(Protocol):
    @property
    def command(self) -> str: ...

    @property
    def params(self) -> dict[str, Any]: ...

    def plan(self, profile: Profile, dry_run: bool) -> dict[str, Any]: ...

    def execute(
        self, profile: Profile, plan: dict[str, Any], on_progress: OnProgress | None
    ) -> dict[str, Any]: ...


@dataclass
class Performed:
    plan: dict[str, Any]
    result: dict[str, Any] | None  # None for a dry run
    audit_id: int

    @property
    def summary(self) -> str:
        """One line for people: what was done, or for a dry run what would have been."""
        if self.result is None:
            planned = str(self.plan["summary"])
            return f"would {planned[:1].lower()}{planned[1:]}"
        return str(self.result["summary"])


def perform(
    profile: Profile,
    op: Operation,
    *,
    dry_run: bool,
    confirm: Callable[[str], None] | None = None,
    on_progress: OnProgress | None = None,
    alert: str | None = None,
    runbook: dict[str, Any] | None = None,
) -> Performed:
    """Plan, then (unless a dry run) confirm and execute; one audit row for all of it.

    `confirm(question)` raises to refuse. A result with an `error` is recorded as failed.
    `alert` files the row under an alert's key (a runbook's steps; a decision on a run says
    its own, `alert_key`); `runbook` says which run of which runbook, in which mode.
    """
    from likkerctl.core.store import audit  # SQLAlchemy: only when something is done

    with audit.audited(
        profile.audit_url,
        profile=profile.name,
        command=op.command,
        params=op.params,
        dry_run=dry_run,
        alert=alert if alert is not None else getattr(op, "alert_key", None),
        runbook=runbook,
    ) as action:
        plan = op.plan(profile, dry_run)
        action.counts.update(plan=plan)
        if dry_run:
            return Performed(plan, None, action.id)
        if confirm is not None:
            confirm(plan["summary"] + "?")
        try:
            result = op.execute(profile, plan, on_progress)
        except KeyboardInterrupt:
            action.counts.update(interrupted=True)
            raise
        action.counts.update(result)
    return Performed(plan, result, action.id)


def parse_where(
    where: str | None, aliases: dict[str, str] | None = None
) -> predicate.Predicate | None:
    """The --where predicate, with the profile's field aliases (Likker's by default)."""
    return predicate.parse(where, fields.aliases_of(aliases)) if where else None


def params_of(**kw: Any) -> dict[str, Any]:
    return {k: v for k, v in kw.items() if v is not None}


# -- moves --------------------------------------------------------------------------
def choose_engine(
    engine: str, pred: predicate.Predicate | None, limit: int | None, mgmt: rabbit.Management
) -> tuple[str, str]:
    """(engine, why) for a move; raises for an impossible forced choice."""
    if engine not in ENGINES:
        raise InvalidInput(f"--engine must be one of {', '.join(ENGINES)}")
    header_ok = pred is None or pred.broker_side
    if pred is not None and limit is not None:
        header_ok = False
    why_client = pred.client_reason() if pred is not None else None
    if pred is not None and limit is not None and why_client is None:
        why_client = "--limit with a predicate needs likkerctl to count what matches"
    if engine == "client":
        return "client", "asked for"
    if engine == "broker":
        if not header_ok:
            raise InvalidInput(
                f"--engine broker cannot run --where {pred.text if pred else ''!r}: "
                f"{why_client}; the broker selects by = and in on headers only",
                "engine",
            )
        mgmt.require_plugin(rabbit.SHOVEL_PLUGIN, "for --engine broker")
        return "broker", "asked for"
    if not header_ok:
        return "client", str(why_client)
    if rabbit.SHOVEL_PLUGIN not in mgmt.enabled_plugins():
        return "client", f"the broker has no {rabbit.SHOVEL_PLUGIN} plugin"
    return "broker", "header predicate: the broker selects at its own speed"


def plan_move(
    profile: Profile,
    source: str,
    destination: str | None,
    pred: predicate.Predicate | None,
    limit: int | None,
    engine: str,
    estimate: bool,
) -> dict[str, Any]:
    """What a move would do. `estimate` samples 500 messages to count the matching ones."""
    mgmt = rabbit.Management(profile)
    src = mgmt.queue(source)
    if src.get("type") == "stream":
        raise Conflict(
            f"{source!r} is a stream: its messages are never removed by reading them, so "
            "nothing can be moved out of it (read it with peek/top; copy with a shovel of "
            "your own)"
        )
    if destination is not None:
        mgmt.queue(destination)
    chosen, why = choose_engine(engine, pred, limit, mgmt)
    if pred is not None and pred.reads_body:
        # A body path on a body that is not JSON is the user's mistake: refuse before moving.
        # A small sample, read the safest way the queue allows (it may refuse, too).
        predicate.check_bodies(pred, list(sampling.sample(profile, source, 20)))
    total = rabbit.ready_count(profile, source)
    plan: dict[str, Any] = {
        "source": source,
        "destination": destination,
        "where": pred.text if pred else None,
        "limit": limit,
        "engine": chosen,
        "engine_reason": why,
        "messages_in_source": total,
        "bindings": pred.bindings() if pred else None,
    }
    if pred is None:
        plan["will_move"] = min(total, limit) if limit is not None else total
    elif estimate and total:
        msgs = sampling.sample(profile, source, 500)
        hits = sum(1 for m in msgs if _matches(pred, m))
        share = hits / len(msgs) if msgs else 0.0
        est = round(share * total)
        plan["estimated_matching"] = min(est, limit) if limit is not None else est
        plan["estimate_from_sample"] = len(msgs)
    return plan


def _matches(pred: predicate.Predicate, msg: fields.Envelope) -> bool:
    try:
        return pred(msg)
    except fields.NotJson:
        return False


def describe_plan(plan: dict[str, Any], verb: str) -> str:
    target = plan.get("destination") or plan.get("archive") or "nowhere (deleted)"
    if plan.get("will_move") is not None:
        what = f"{plan['will_move']:,} message(s)"
    elif plan.get("estimated_matching") is not None:
        what = (
            f"≈{plan['estimated_matching']:,} of {plan['messages_in_source']:,} message(s) "
            f"matching {plan['where']!r} (estimate from {plan['estimate_from_sample']} sampled)"
        )
    else:
        what = f"messages matching {plan['where']!r} among {plan['messages_in_source']:,}"
    return f"{verb} {what} from {plan['source']} to {target} (engine: {plan['engine']})"


def run_move(
    profile: Profile,
    plan: dict[str, Any],
    pred: predicate.Predicate | None,
    sink: move.Sink | None,
    on_progress: OnProgress | None,
) -> move.MoveResult:
    if plan["engine"] == "broker":
        assert plan["destination"] is not None
        result = move.move_broker(
            profile,
            plan["source"],
            plan["destination"],
            predicate=pred,
            limit=plan["limit"],
            on_progress=on_progress,
        )
        if pred is not None and not (result.error or result.interrupted):
            sweep(profile, result, pred)
        return result
    assert sink is not None
    return move.move_client(
        profile, plan["source"], sink, predicate=pred, limit=plan["limit"], on_progress=on_progress
    )


def sweep(profile: Profile, result: move.MoveResult, pred: predicate.Predicate) -> None:
    """After a selective broker move, one exact pass of likkerctl's consumer over the source.

    The shovel moves the queue's length as it was when it started. Matching messages that
    reach the source after that are left behind: ones a consumer was holding and returns
    late (a paused taker's last deliveries), and ones whose acks RabbitMQ 3.10's quorum
    queues dropped as the shovel stopped (they are in the destination and back in the
    source). An offender's message left behind keeps cycling, so they are moved too
    (at-least-once: the consumers store each request_id once).
    """
    extra = move.move_client(
        profile, result.source, move.QueueSink(result.destination), predicate=pred
    )
    result.moved += extra.moved
    result.kept = extra.kept
    result.seconds += extra.seconds
    result.notes.append(
        f"sweep: {extra.moved:,} matching message(s) that reached the source after the "
        f"shovel started moved by likkerctl's consumer ({extra.scanned:,} examined)"
    )
    if extra.error or extra.interrupted:
        result.error = f"sweep: {extra.error or 'interrupted'}"
        result.interrupted = extra.interrupted


def move_summary(result: move.MoveResult, verb: str) -> str:
    approx = "" if result.counts_exact else "≈"
    return (
        f"{verb} {approx}{result.moved:,} of {result.scanned:,} examined from "
        f"{result.source} to {result.destination}; {approx}{result.kept:,} kept in the "
        f"source; {result.seconds:.1f}s ({result.rate:,.0f} msg/s, {result.engine} engine)"
    )


def _move_result(result: move.MoveResult, verb: str) -> dict[str, Any]:
    return {**result.as_json(), "summary": move_summary(result, verb)}


@dataclass
class QueueMove:
    """`shovel` and `dlq replay`: losslessly move all or matching messages to a queue."""

    source: str
    destination: str
    where: str | None = None
    limit: int | None = None
    engine: str = "auto"
    command: str = "shovel"
    aliases: dict[str, str] | None = None  # the profile's field aliases
    pred: predicate.Predicate | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.source == self.destination:
            raise InvalidInput("source and destination are the same queue")
        if self.destination == ORIGINAL and self.engine == "broker":
            raise InvalidInput(
                "--to original needs the client engine: each message goes to the queue it "
                "names (x-death or likkerctl's marker), which a shovel cannot read",
                "engine",
            )
        # A bad predicate fails before anything runs.
        self.pred = parse_where(self.where, self.aliases)

    @property
    def verb(self) -> str:
        return "replay" if self.command == "dlq replay" else "move"

    @property
    def params(self) -> dict[str, Any]:
        return params_of(
            source=self.source, destination=self.destination, where=self.where, limit=self.limit
        )

    def plan(self, profile: Profile, dry_run: bool) -> dict[str, Any]:
        original = self.destination == ORIGINAL
        plan = plan_move(
            profile,
            self.source,
            None if original else self.destination,
            self.pred,
            self.limit,
            "client" if original else self.engine,
            dry_run,
        )
        if original:
            plan.update(
                destination=ORIGINAL,
                engine_reason="each message goes back to the queue it came from (x-death, "
                "or likkerctl's likker-moved-from marker); ones naming none stay",
            )
            if dry_run and plan["messages_in_source"]:
                msgs = sampling.sample(profile, self.source, 500)
                chosen = [m for m in msgs if self.pred is None or _matches(self.pred, m)]
                origins = Counter(m.origin() or "(none: stays)" for m in chosen)
                plan["origins_in_sample"] = dict(origins.most_common())
        return {**plan, "summary": describe_plan(plan, self.verb.capitalize())}

    def execute(
        self, profile: Profile, plan: dict[str, Any], on_progress: OnProgress | None
    ) -> dict[str, Any]:
        sink: move.Sink = (
            move.OriginSink() if self.destination == ORIGINAL else move.QueueSink(self.destination)
        )
        return _move_result(run_move(profile, plan, self.pred, sink, on_progress), f"{self.verb}d")


@dataclass
class Purge:
    """Delete all or matching messages, archived to a JSON-lines file unless `archive` is None."""

    queue: str
    where: str | None = None
    archive: Path | None = None
    command: str = "purge"
    aliases: dict[str, str] | None = None  # the profile's field aliases
    pred: predicate.Predicate | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.pred = parse_where(self.where, self.aliases)

    @classmethod
    def archived(cls, profile: Profile, queue: str, where: str | None = None) -> Purge:
        return cls(queue, where, default_archive_path(profile.state_path, queue))

    @property
    def params(self) -> dict[str, Any]:
        return params_of(queue=self.queue, where=self.where, archive=str(self.archive or "none"))

    def plan(self, profile: Profile, dry_run: bool) -> dict[str, Any]:
        plan = plan_move(profile, self.queue, None, self.pred, None, "client", estimate=dry_run)
        broker_purge = self.pred is None and self.archive is None
        plan.update(
            engine="broker purge" if broker_purge else "client", archive=str(self.archive or "")
        )
        return {**plan, "summary": describe_plan(plan, "Delete")}

    def execute(
        self, profile: Profile, plan: dict[str, Any], on_progress: OnProgress | None
    ) -> dict[str, Any]:
        if plan["engine"] == "broker purge":
            purged = broker_purge(profile, self.queue)
            return {
                "queue": self.queue,
                "purged": purged,
                "archive": None,
                "engine": "broker",
                "summary": f"purged {purged:,} message(s) from {self.queue} (not archived)",
            }
        sink: move.Sink = (
            move.FileSink(ArchiveWriter(self.archive)) if self.archive else move.DropSink()
        )
        verb = "archived and deleted" if self.archive else "deleted"
        return _move_result(run_move(profile, plan, self.pred, sink, on_progress), verb)


def broker_purge(profile: Profile, queue: str) -> int:
    conn = rabbit.connect(profile)
    try:
        return int(conn.channel().queue_purge(queue).method.message_count)
    finally:
        if conn.is_open:
            conn.close()


# -- takers and bots ------------------------------------------------------------------
@dataclass
class TakersCommand:
    """Pause or resume takers over the control exchange."""

    verb: str  # pause | resume
    target: str = "*"

    def __post_init__(self) -> None:
        if self.verb not in ("pause", "resume"):
            raise InvalidInput(f"takers: unknown command {self.verb!r}")

    @property
    def command(self) -> str:
        return f"takers {self.verb}"

    @property
    def params(self) -> dict[str, Any]:
        return {"target": self.target}

    def plan(self, profile: Profile, dry_run: bool) -> dict[str, Any]:
        current = control.command(profile, "status", self.target)
        want = "paused" if self.verb == "pause" else "running"
        change = [t["taker_id"] for t in current if t.get("state") != want]
        if not current and not dry_run:
            raise NotFound(f"no takers answered on {profile.control_exchange}")
        return {
            "command": self.verb,
            "takers": current,
            "would_change": change,
            "summary": f"{self.verb.capitalize()} {len(current)} taker(s) ({self.target}); "
            f"{len(change)} not {want} now: {', '.join(change) or 'none'}",
        }

    def execute(
        self, profile: Profile, plan: dict[str, Any], on_progress: OnProgress | None
    ) -> dict[str, Any]:
        rows = control.command(profile, self.verb, self.target)
        result: dict[str, Any] = {
            "command": self.verb,
            "takers": rows,
            "answered": len(rows),
            "changed": plan["would_change"],
            "summary": f"{self.verb}d {len(rows)} taker(s)",
        }
        if len(rows) < len(plan["takers"]):
            result["error"] = f"only {len(rows)} of {len(plan['takers'])} taker(s) confirmed"
        return result


@dataclass
class BotCommand:
    """Block or unblock a bot through the auth admin API."""

    verb: str  # block | unblock
    bot_id: int
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.verb not in ("block", "unblock"):
            raise InvalidInput(f"bots: unknown command {self.verb!r}")
        if self.verb == "block" and not (self.reason or "").strip():
            raise InvalidInput("--reason must not be empty")

    @property
    def command(self) -> str:
        return f"bots {self.verb}"

    @property
    def params(self) -> dict[str, Any]:
        return params_of(bot=self.bot_id, reason=self.reason)

    def plan(self, profile: Profile, dry_run: bool) -> dict[str, Any]:
        current = auth.AuthAdmin(profile).bot(self.bot_id)
        now = "blocked" if current["blocked"] else "not blocked"
        return {
            "command": self.verb,
            "bot": current,
            "summary": f"{self.verb.capitalize()} bot {self.bot_id} "
            f"(owner {current['user_id']}, now {now})",
        }

    def execute(
        self, profile: Profile, plan: dict[str, Any], on_progress: OnProgress | None
    ) -> dict[str, Any]:
        admin = auth.AuthAdmin(profile)
        result = (
            admin.block(self.bot_id, self.reason or "")
            if self.verb == "block"
            else admin.unblock(self.bot_id)
        )
        summary = (
            f"bot {self.bot_id}: {'blocked' if result['blocked'] else 'unblocked'}"
            + (f" ({result['blocked_reason']})" if result.get("blocked_reason") else "")
            + (
                ""
                if result.get("announced", True)
                else " — gateways not notified; their token caches expire within 30 s"
            )
        )
        return {"bot": result, "summary": summary}


# -- decisions on the webhook's runs ---------------------------------------------------
@dataclass
class RunDecision:
    """Approve or reject a run the webhook planned in approve mode.

    The decision goes to likkerctl's database, where the webhook polls for it (within a
    second), so it works from any process and across a restart of the webhook. Who decided:
    `by` (or the OS user), and the audit row's OS user; filed under the run's alert.
    """

    verb: str  # approve | reject
    run_id: int
    by: str | None = None
    reason: str | None = None
    alert_key: str | None = None  # the run's alert, so the audit row sits with its steps

    def __post_init__(self) -> None:
        if self.verb not in ("approve", "reject"):
            raise InvalidInput(f"webhook: unknown decision {self.verb!r}")
        if self.by is not None and not self.by.strip():
            raise InvalidInput("--by must not be empty")

    @classmethod
    def of(
        cls,
        profile: Profile,
        verb: str,
        run_id: int,
        by: str | None = None,
        reason: str | None = None,
    ) -> RunDecision:
        """The decision, filed under its run's alert when the run is known."""
        from likkerctl.core.store import approvals  # SQLAlchemy: only for a decision

        approval, ledger = approvals.get(profile.audit_url, run_id)
        key = (approval or ledger or {}).get("alert")
        return cls(verb, run_id, by, reason, key)

    @property
    def command(self) -> str:
        return f"webhook {self.verb}"

    @property
    def params(self) -> dict[str, Any]:
        return params_of(run=self.run_id, by=self.by, reason=self.reason)

    def plan(self, profile: Profile, dry_run: bool) -> dict[str, Any]:
        from likkerctl.core.store import approvals  # SQLAlchemy: only for a decision

        approval, ledger = approvals.get(profile.audit_url, self.run_id)
        noop = approvals.check(self.run_id, approval, ledger, self.verb, time.time()) == "noop"
        assert approval is not None  # check raised otherwise
        steps = approval["plan"].get("steps", [])
        if noop:
            summary = (
                f"Leave run {self.run_id} as it is: already {approval['decision']} by "
                f"{approval['decided_by']}"
            )
        else:
            summary = (
                f"{self.verb.capitalize()} run {self.run_id}: runbook {approval['runbook']} for "
                f"{approval['alertname']}, {len(steps)} step(s) planned, waiting until "
                f"{approval['expires_at'][11:19]} UTC"
            )
        return {
            "run": self.run_id,
            "runbook": approval["runbook"],
            "alert": approval["alert"],
            "alertname": approval["alertname"],
            "expires_at": approval["expires_at"],
            "steps": steps,
            "noop": noop,
            "decision": approval["decision"],
            "summary": summary,
        }

    def execute(
        self, profile: Profile, plan: dict[str, Any], on_progress: OnProgress | None
    ) -> dict[str, Any]:
        from likkerctl.core.store import approvals, audit  # SQLAlchemy: only for a decision

        user = audit.os_user()
        approval, decided = approvals.decide(
            profile.audit_url,
            self.run_id,
            self.verb,
            by=self.by or user,
            os_user=user,
            reason=self.reason,
        )
        who = approval["decided_by"]
        if not decided:
            summary = f"run {self.run_id} was already {approval['decision']} by {who}; no change"
        elif self.verb == "approve":
            summary = f"run {self.run_id} approved by {who}: the webhook runs it within seconds"
        else:
            summary = f"run {self.run_id} rejected by {who}: nothing is done; the webhook escalates"
        return {
            "run": self.run_id,
            "decision": approval["decision"],
            "decided_by": who,
            "os_user": approval["os_user"],
            "decided_at": approval["decided_at"],
            "noop": not decided,
            "summary": summary,
        }


def raise_for(result: dict[str, Any]) -> None:
    """Exit 1 for a result that carries an error (after its summary was shown)."""
    if result.get("error"):
        moved = f" (moved so far: {result['moved']:,})" if "moved" in result else ""
        raise Failed(f"{result['error']}{moved}")
