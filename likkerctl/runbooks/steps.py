"""The built-in runbook steps. Each acts through the operation of the CLI command it is named
after (`bots block`, `takers pause`, `shovel`, `purge`), so a step can do nothing the CLI
cannot, and observe mode is exactly the CLI's --dry-run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from likkerctl.core import operations
from likkerctl.core.clients import alertmanager
from likkerctl.core.messages import sampling
from likkerctl.core.readable import humanize
from likkerctl.runbooks import offenders
from likkerctl.runbooks.context import Param, RunContext, Step, StepResult


class FindOffenders:
    name = "find-offenders"
    description = (
        "Sample the queue and pick the actors whose messages are cycling (delivered again and "
        "again: refused by the likes service). Leaves them for the steps that follow."
    )
    params = {
        "queue": Param(str, "{actions_queue}", "queue to sample"),
        "sample": Param(int, 2000, "messages to sample from the head of the queue"),
        "min_deliveries": Param(int, 5, "a message delivered this often counts as cycling"),
        "min_refusal_share": Param(
            float, 0.2, "act only on actors with at least this share of the sample's refusals"
        ),
        "min_messages": Param(int, 10, "ignore actors with fewer cycling messages"),
        "max_actors": Param(int, 3, "more qualifying actors than this: act on none, escalate"),
        "bots_only": Param(bool, True, "only bots are acted on (humans are left to people)"),
        "if_none": Param(
            str, "escalate", "escalate or stop when nobody qualifies", ("escalate", "stop")
        ),
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        t = offenders.Thresholds(
            min_deliveries=params["min_deliveries"],
            min_refusal_share=params["min_refusal_share"],
            min_messages=params["min_messages"],
            max_actors=params["max_actors"],
            bots_only=params["bots_only"],
        )
        with ctx.record(self.name, params) as counts:
            msgs = sampling.sample(ctx.profile, params["queue"], params["sample"])
            stats = offenders.actor_stats(msgs, t.min_deliveries)
            choice = offenders.choose(stats, t)
            approved = ctx.state.get("approved_actors")
            if approved is not None:  # an approved run acts on no one the human did not see
                choice = offenders.within(choice, approved)
            found = [s.as_json() for s in choice.selected]
            ctx.state["offenders"] = found
            counts.update(
                sampled=len(msgs),
                offenders=found,
                passed_over=[{**s.as_json(), "why": why} for s, why in choice.passed_over][:20],
                too_many=choice.too_many,
            )
        if choice.too_many:
            return StepResult(
                "escalate",
                f"{choice.too_many} actors have cycling messages, more than max_actors="
                f"{t.max_actors}: an outage rather than abuse; acting on none",
                counts,
            )
        if not found:
            status = "escalate" if params["if_none"] == "escalate" else "stop"
            return StepResult(
                status,  # type: ignore[arg-type]
                f"no actor qualifies in a sample of {len(msgs):,} from {params['queue']}",
                counts,
            )
        names = ", ".join(
            f"{s['actor']} ({s['cycling']} of {s['messages']} msgs cycling, "
            f"{s['refusal_share']:.0%} of refusals)"
            for s in found
        )
        return StepResult("ok", f"cycling in a sample of {len(msgs):,}: {names}", counts)


def _offender_bots(ctx: RunContext) -> list[int]:
    return [o["bot"] for o in ctx.state.get("offenders", []) if o.get("bot") is not None]


def _outcome(ctx: RunContext, done: operations.Performed) -> StepResult:
    """A step's result from its operation's: failed when the operation says so."""
    result = done.result or {}
    if result.get("error") or result.get("interrupted"):
        problem = result.get("error") or "interrupted"
        return StepResult("failed", f"{result.get('summary')}: {problem}", result)
    return StepResult("ok", done.summary, result or done.plan)


class BlockBots:
    name = "bots block"
    description = "Block the offending bots at the gateway (likkerctl bots block)."
    params = {
        "reason": Param(
            str,
            "likkerctl runbook {runbook}: messages cycling ({alertname} {alert})",
            "reason recorded with the block",
        )
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        bots = _offender_bots(ctx)
        if not bots:
            return StepResult("skipped", "no offending bots")
        lines, failed = [], []
        for bot_id in bots:
            try:
                done = ctx.perform(operations.BotCommand("block", bot_id, params["reason"]))
                lines.append(done.summary)
            except Exception as exc:  # the others are still blocked; the run escalates
                failed.append(f"bot {bot_id}: {exc}")
        if failed:
            return StepResult("failed", "; ".join(lines + failed), {"failed": failed})
        return StepResult("ok", "; ".join(lines), {"bots": bots})


class TakersStep:
    description = (
        "Pause or resume the takers (likkerctl takers pause|resume). Resume only resumes "
        "what this run paused, unless only_paused_here = false."
    )

    def __init__(self, verb: str) -> None:
        self.verb = verb
        self.name = f"takers {verb}"
        self.params = {"target": Param(str, "*", "a taker id or * for all")}
        if verb == "resume":
            self.params["only_paused_here"] = Param(
                bool, True, "resume only if this run paused them (never undo an operator)"
            )

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        if params.get("only_paused_here") and "paused" not in ctx.state:
            return StepResult("skipped", "this run paused no takers")
        if self.verb == "pause":
            # Set first, and saved before acting: even a pause that fails half-way, or that
            # the process dies in, is this run's to undo.
            ctx.state["paused"] = params["target"]
            ctx.checkpoint()
        return _outcome(ctx, ctx.perform(operations.TakersCommand(self.verb, params["target"])))


def _where(ctx: RunContext, params: dict[str, Any]) -> str | None:
    if params["where"]:
        return str(params["where"])
    bots = _offender_bots(ctx)
    return f"bot in ({', '.join(map(str, bots))})" if bots else None


class Shovel:
    name = "shovel"
    description = (
        "Move messages losslessly (likkerctl shovel); without `where`, the offending bots' "
        "messages. Pause the takers first: messages they hold are not in the queue."
    )
    params = {
        "source": Param(str, "{actions_queue}", "queue to take messages from"),
        "destination": Param(str, "{dlq}", "queue to put them in"),
        "where": Param(str, "", "predicate; default: bot in (the offending bots)"),
        "limit": Param(int, 0, "move at most this many (0: no limit)"),
        "engine": Param(str, "auto", "auto, broker or client"),
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        where = _where(ctx, params)
        if where is None:
            return StepResult("skipped", "no offenders and no `where`: nothing to move")
        op = operations.QueueMove(
            params["source"],
            params["destination"],
            where=where,
            limit=params["limit"] or None,
            engine=params["engine"],
        )
        return _outcome(ctx, ctx.perform(op))


class Purge:
    name = "purge"
    description = (
        "Delete messages, always archived first (likkerctl purge); a runbook can never purge "
        "without an archive."
    )
    params = {
        "queue": Param(str, "{actions_queue}", "queue to purge from"),
        "where": Param(str, "", "predicate; default: bot in (the offending bots)"),
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        where = _where(ctx, params)
        if where is None:
            return StepResult("skipped", "no offenders and no `where`: nothing to purge")
        return _outcome(
            ctx, ctx.perform(operations.Purge.archived(ctx.profile, params["queue"], where))
        )


def recovered(answer: dict[str, Any] | None, horizon_s: float) -> bool:
    """The disk is out of danger: not filling, or not filling within the alert's horizon."""
    if answer is None:
        return False
    if answer["status"] == "not filling":
        return True
    soonest = answer.get("eta_low_s")
    return answer["status"] == "filling" and soonest is not None and soonest >= horizon_s


class VerifyForecast:
    name = "verify-forecast"
    description = (
        "Wait for the fix to show, then check the disk-full forecast over the time since: "
        "recovered (not filling, or not within the horizon) or escalate."
    )
    params = {
        "settle_s": Param(float, 60.0, "seconds to wait before the first check"),
        "window_s": Param(float, 0.0, "forecast window (0: the time since this step began)"),
        "timeout_s": Param(float, 180.0, "give up (escalate) after this many seconds"),
        "poll_s": Param(float, 10.0, "seconds between checks"),
        "horizon_s": Param(float, 3600.0, "an ETA beyond this counts as recovered"),
        "source": Param(str, "auto", "auto, prometheus or sampler"),
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        from likkerctl.core.disk import sources  # numpy: only when a forecast is checked

        began = time.monotonic()
        with ctx.record(self.name, params) as counts:
            if ctx.dry_run:
                fc = sources.forecast_all(ctx.profile, params["source"], 600.0).as_json()
                counts.update(forecast=fc["answer"])
                return StepResult(
                    "ok", f"dry run: not waiting; the forecast now: {_describe(fc['answer'])}"
                )
            ctx.sleep(params["settle_s"])
            checks = 0
            while True:
                window = params["window_s"] or max(15.0, time.monotonic() - began)
                fc = sources.forecast_all(ctx.profile, params["source"], window).as_json()
                checks += 1
                counts.update(forecast=fc["answer"], checks=checks, window_s=round(window, 1))
                if recovered(fc["answer"], params["horizon_s"]):
                    return StepResult("ok", f"recovered: {_describe(fc['answer'])}", counts)
                if time.monotonic() - began + params["poll_s"] > params["timeout_s"]:
                    counts.update(error="not recovered")
                    return StepResult(
                        "escalate",
                        f"not recovered after {time.monotonic() - began:.0f}s: "
                        f"{_describe(fc['answer'])}",
                        counts,
                    )
                ctx.sleep(params["poll_s"])


def _describe(answer: dict[str, Any] | None) -> str:
    if not answer:
        return "no forecast"
    if answer["status"] == "filling":
        return f"filling, full in {humanize(answer.get('eta_s'))}"
    return str(answer["status"])


ESCALATED = "LikkerRunbookEscalated"
AWAITS_APPROVAL = "LikkerRunbookAwaitsApproval"


class Escalate:
    name = "escalate"
    description = (
        "Page a human: post an alert (LikkerRunbookEscalated, severity page) to Alertmanager "
        "saying what the runbook could not fix. Never purges."
    )
    params = {
        "summary": Param(
            str,
            "Runbook {runbook} could not fix {alertname}: {escalation}",
            "the page's summary",
        ),
        "severity": Param(str, "page", "severity label of the escalation alert"),
        "hours": Param(float, 1.0, "the escalation alert expires after this many hours"),
        "alertname": Param(
            str, ESCALATED, f"the page's alertname ({AWAITS_APPROVAL} for a pending run)"
        ),
    }

    def run(self, ctx: RunContext, params: dict[str, Any]) -> StepResult:
        now = datetime.now(UTC)
        labels = {
            "alertname": params["alertname"],
            "severity": params["severity"],
            "runbook": ctx.runbook,
            "source_alertname": ctx.alert.name,
            "source_fingerprint": ctx.alert.fingerprint,
        }
        if ctx.run_id is not None:  # each run its own page (Alertmanager merges equal labels)
            labels["run"] = str(ctx.run_id)
        alert = {
            "labels": labels,
            "annotations": {"summary": params["summary"]},
            "startsAt": now.isoformat(),
            "endsAt": (now + timedelta(hours=params["hours"])).isoformat(),
        }
        url = ctx.profile.alertmanager_url
        with ctx.record(self.name, {**params, "alertmanager": url}) as counts:
            counts.update(alert=alert)
            if ctx.dry_run:
                return StepResult("ok", f"would page: {params['summary']}")
            if not url:
                return StepResult(
                    "ok", f"no alertmanager_url in the profile; recorded only: {params['summary']}"
                )
            status = alertmanager.post_alert(url, alert)
            if status >= 300:
                counts.update(error=f"Alertmanager answered {status}")
                return StepResult("failed", f"Alertmanager answered {status}")
        return StepResult("ok", f"paged through {url}: {params['summary']}")


def builtin() -> dict[str, Step]:
    steps: list[Step] = [
        FindOffenders(),
        BlockBots(),
        TakersStep("pause"),
        TakersStep("resume"),
        Shovel(),
        Purge(),
        VerifyForecast(),
        Escalate(),
    ]
    return {s.name: s for s in steps}
