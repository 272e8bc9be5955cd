"""likkerctl's own disk sampler: the broker's disk figures kept in the state database.

Used by `forecast` when there is no Prometheus; the dashboard and the webhook poll it
continuously, `likkerctl forecast --watch` does too.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from likkerctl.core.clients import rabbit
from likkerctl.core.disk.figures import Sample
from likkerctl.core.profile import Profile
from likkerctl.core.store.engine import engine_for
from likkerctl.core.store.models import DiskSample

RETENTION_S = 24 * 3600


class Sampler:
    """Polls the broker's disk figures and keeps them (per management URL and node)."""

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.mgmt = rabbit.Management(profile, timeout=3)
        self.engine = engine_for(profile.audit_url)
        self._last_prune = 0.0

    def poll(self) -> list[dict[str, Any]]:
        """One sample per node, stored; returns the nodes as the management API gave them."""
        nodes = self.mgmt.nodes()
        now = time.time()
        with Session(self.engine) as session, session.begin():
            for n in nodes:
                if "disk_free" not in n:  # a node that is down reports no figures
                    continue
                session.add(
                    DiskSample(
                        mgmt_url=self.profile.mgmt_url,
                        node=n["name"],
                        t=now,
                        free=float(n["disk_free"]),
                        limit=float(n["disk_free_limit"]),
                        alarm=bool(n.get("disk_free_alarm")),
                    )
                )
            if now - self._last_prune > 600:
                self._last_prune = now
                session.execute(delete(DiskSample).where(DiskSample.t < now - RETENTION_S))
        return nodes

    def series(self, window_s: float) -> dict[str, list[Sample]]:
        since = time.time() - window_s
        out: dict[str, list[Sample]] = {}
        with Session(self.engine) as session:
            rows = session.scalars(
                select(DiskSample)
                .where(DiskSample.mgmt_url == self.profile.mgmt_url, DiskSample.t >= since)
                .order_by(DiskSample.t)
            )
            for r in rows:
                out.setdefault(r.node, []).append(Sample(r.t, r.free, r.limit))
        return out
