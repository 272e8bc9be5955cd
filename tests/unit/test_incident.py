"""One incident, one run: the disk alert fires once per node of a cluster (`instance`), and
the webhook runs the runbook for the first and records the others as the same incident."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from likkerctl.core.profile import Profile
from likkerctl.runbooks import spec
from likkerctl.webhook.ledger import SAME_INCIDENT, Ledger
from likkerctl.webhook.metrics import Metrics
from likkerctl.webhook.payload import parse
from likkerctl.webhook.remediator import Remediator
from tests.alertmanager_payload import alert, body
from tests.unit.test_runbooks import Scripted

DISK = "LikkerBrokerDiskFullWithinOneHour"
BOOK = f"[runbooks.disk-full]\nalerts = ['{DISK}']\n[[runbooks.disk-full.steps]]\nstep = 'note'\n"


def per_node(*instances: str) -> list[dict[str, object]]:
    return [alert(DISK, labels={"instance": i}) for i in instances]


def test_the_disk_alert_of_three_nodes_is_one_run(tmp_path: Path) -> None:
    step = Scripted("note")
    book = spec.parse(BOOK, "rb.toml", {"note": step})
    profile = Profile(amqp_url="amqp://x", mgmt_url="http://x", state_dir=str(tmp_path))
    remediator = Remediator(profile, book, {"note": step}, "enforce", Metrics())
    try:
        first = remediator.receive(parse(body(*per_node("n1:15692", "n2:15693"))))
        # A node's alert that starts firing later, in another notification of the group.
        later = remediator.receive(parse(body(*per_node("n3:15694"))))
        deadline = time.monotonic() + 10
        while not step.seen and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        remediator.pool.shutdown(wait=True)
    actions = [a["action"] for a in first + later]
    assert actions == ["queued", SAME_INCIDENT, SAME_INCIDENT]
    assert len(step.seen) == 1  # the runbook ran once
    ledger = Ledger(profile.audit_url)
    run = first[0]["run"]
    for answer in first[1:] + later:
        row = ledger.get(answer["run"])
        assert row is not None and row["detail"]["incident_run"] == run


def test_after_the_incident_resolved_a_new_firing_is_a_new_incident(tmp_path: Path) -> None:
    ledger = Ledger(f"sqlite:///{tmp_path / 'l.db'}")
    now = datetime.now(UTC)
    (firing,) = parse(body(alert(DISK, fingerprint="aa01", labels={"instance": "n1"}))).alerts
    group = parse(body(alert(DISK))).group_key
    run = ledger.claim(firing, group, "disk-full", "enforce", "ok", now)
    hour_ago = now - timedelta(hours=1)
    n2 = {**firing.labels, "instance": "n2"}
    assert ledger.open_incident(group, "disk-full", n2, hour_ago) == run
    # The same node again is not another node of this incident; a different alert neither.
    assert ledger.open_incident(group, "disk-full", dict(firing.labels), hour_ago) is None
    assert ledger.open_incident(group, "disk-full", {**n2, "severity": "x"}, hour_ago) is None
    assert ledger.open_incident(group, "disk-full", {"alertname": DISK}, hour_ago) is None
    assert ledger.open_incident('{}:{alertname="Other"}', "disk-full", n2, hour_ago) is None
    too_late = now + timedelta(seconds=1)  # the run was received before: not in the window
    assert ledger.open_incident(group, "disk-full", n2, too_late) is None
    resolved = alert(
        DISK,
        status="resolved",
        fingerprint="aa01",
        starts_at=firing.starts_at.isoformat(),
        labels={"instance": "n1"},
    )
    (done,) = parse(body(resolved)).alerts
    ledger.claim(done, group, None, None, "recorded", now)
    assert ledger.open_incident(group, "disk-full", n2, hour_ago) is None
