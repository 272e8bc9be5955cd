"""When the webhook starts, before it accepts an alert: finish what a crash interrupted.

A run whose ledger row is not finished and whose owning process is gone (kill -9, a crash,
the machine rebooted) is marked `interrupted`, in the ledger and on its audit rows left
`running`. Steps it finished are not run again; its `always` steps from where it stopped
are, with the state it had saved (so `takers resume` resumes exactly the takers it paused),
then it escalates naming the run and its last finished step. A run interrupted before it
acted (queued, or planning in approve mode) only escalates.
"""

from __future__ import annotations

import logging
from typing import Any

from likkerctl.core.store import approvals, audit
from likkerctl.runbooks import approval as approval_rules
from likkerctl.runbooks import engine
from likkerctl.webhook import ledger as ledger_mod
from likkerctl.webhook.remediator import Remediator, alert_info

log = logging.getLogger("likkerctl.webhook")

INTERRUPTED = "interrupted"


def recover(remediator: Remediator) -> list[dict[str, Any]]:
    """Recover every interrupted run; what was done for each (for the log and tests)."""
    ledger = remediator.ledger
    url = remediator.profile.audit_url
    done = []
    for row in ledger.unfinished():
        detail = row["detail"] or {}
        if ledger_mod.owner_alive(detail.get("owner")):
            continue  # a live webhook (on this database) is running it
        if row["outcome"] == ledger_mod.PENDING and approvals.of_runs(url, [row["id"]]):
            continue  # waiting for a decision: Remediator.adopt waits again
        done.append(_recover(remediator, row, detail))
    return done


def _recover(remediator: Remediator, row: dict[str, Any], detail: dict[str, Any]) -> dict[str, Any]:
    run_id, key = row["id"], row["alert"]
    owner = detail.get("owner") or {}
    reason = (
        f"the webhook (pid {owner.get('pid', '?')}) died during this run; marked interrupted "
        f"by the webhook started next (pid {remediator.owner['pid']})"
    )
    marked = audit.mark_interrupted(remediator.profile.audit_url, key, reason)
    name = row["runbook"] or "?"
    target = detail.get("target", "")
    runbook = remediator.runbooks.runbooks.get(name) or approval_rules.stand_in(name, target)
    phase = "queued" if row["outcome"] == ledger_mod.QUEUED else detail.get("phase", "run")
    if phase == "pending":  # pending without its approval row: died before asking anyone
        phase = "plan"
    stopped = approval_rules.stopped_at({**detail, "phase": phase})
    escalation = approval_rules.interruption(run_id, runbook, stopped)
    data = detail.get("alert") or {
        "name": row["alertname"],
        "key": key,
        "fingerprint": key.partition(":")[0],
        "labels": row["labels"],
        "annotations": {},
    }
    ctx = remediator.context(
        run_id,
        alert_info(data),
        runbook,
        row["mode"] or "observe",
        decided_by=detail.get("approved_by"),
    )
    acted = phase == "run"
    if acted:
        ctx.state.update(detail.get("state") or {})
    log.warning("run %d (%s) interrupted: %s", run_id, key, escalation)
    report = engine.run(
        approval_rules.with_notices(runbook, remediator.steps),
        ctx,
        remediator.steps,
        phase="recover" if acted else "refused",
        escalation=escalation,
        start=stopped.start if acted else 0,
    )
    remediator.metrics.runs.labels(name, INTERRUPTED).inc()
    result = {
        **detail,
        "interrupted": {
            "reason": reason,
            "where": stopped.describe(runbook),
            "audit_rows": marked,
        },
        "recovery": report.as_json(),
    }
    remediator.ledger.finish(run_id, INTERRUPTED, result)
    return {**result, "run": run_id, "key": key}
