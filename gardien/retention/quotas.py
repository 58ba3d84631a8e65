"""Storage quotas per organisation: what Gardien keeps for it, against limits, with alert events.

Measured through the ledger's service (`Ledger.storage`): events and their bytes, and the bytes of
the export files on disk. Crossing the warning ratio or the limit writes one audit event
(`retention.quota.warning`, `retention.quota.exceeded`); falling back under it writes
`retention.quota.cleared`. The worker checks every tick; `GET /api/v1/retention/quota` shows usage.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, insert, select, update

from gardien.audit.service import Ledger, capability_event
from gardien.core.clock import utcnow
from gardien.core.runtime import Runtime
from gardien.retention.models import QUOTAS
from gardien.retention.schemas import QuotaIn, QuotaOut, UsageItem

MODULE = "retention"
MEASURES = {
    "ledger_events": "max_ledger_events",
    "ledger_bytes": "max_ledger_bytes",
    "export_bytes": "max_export_bytes",
}
ALERT = {"warn": "retention.quota.warning", "over": "retention.quota.exceeded", "ok": "retention.quota.cleared"}
Level = Literal["ok", "warn", "over"]


def level(used: int, limit: int | None, warn_ratio: int) -> Level:
    if limit is None:
        return "ok"
    if used > limit:
        return "over"
    return "warn" if used * 100 >= limit * warn_ratio else "ok"


class QuotaService:
    def __init__(self, runtime: Runtime, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow

    def _row(self, conn: Connection, org_id: str) -> dict[str, Any] | None:
        row = conn.execute(select(QUOTAS).where(QUOTAS.c.org_id == org_id)).first()
        return dict(row._mapping) if row is not None else None

    @staticmethod
    def _quota(row: Mapping[str, Any] | None) -> QuotaIn:
        if row is None:
            return QuotaIn()
        return QuotaIn(**{name: row[name] for name in (*MEASURES.values(), "warn_ratio")})

    def usage(self, org_id: str, quota: QuotaIn) -> list[UsageItem]:
        used = self.ledger.storage(org_id)
        items = []
        for measure, limit_name in MEASURES.items():
            limit = getattr(quota, limit_name)
            items.append(
                UsageItem(
                    measure=measure,
                    used=used[measure],
                    limit=limit,
                    level=level(used[measure], limit, quota.warn_ratio),
                )
            )
        return items

    def get(self, org_id: str) -> QuotaOut:
        with self.runtime.engine.connect() as conn:
            quota = self._quota(self._row(conn, org_id))
        return QuotaOut(quota=quota, usage=self.usage(org_id, quota))

    def put(self, org_id: str, quota: QuotaIn, actor: Mapping[str, Any]) -> QuotaOut:
        values = {**quota.model_dump(), "updated_at": self.clock()}

        def work(conn: Connection) -> tuple[None, list[Any]]:
            before = self._row(conn, org_id)
            if before is None:
                conn.execute(insert(QUOTAS).values(org_id=org_id, alerted="{}", **values))
            else:
                conn.execute(update(QUOTAS).where(QUOTAS.c.org_id == org_id).values(values))
            event = capability_event(
                MODULE,
                "retention.quota.updated",
                "update" if before else "create",
                actor,
                ("retention_quota", org_id),
                fields={"before": self._quota(before).model_dump(), "after": quota.model_dump()},
            )
            return None, [self.ledger.prepare(event)]

        self.ledger.transact(org_id, work)
        return self.check(org_id, actor)

    def check(self, org_id: str, actor: Mapping[str, Any]) -> QuotaOut:
        """Measure; write an alert event for each measure whose level changed since the last alert."""
        with self.runtime.engine.connect() as conn:
            row = self._row(conn, org_id)
        quota = self._quota(row)
        usage = self.usage(org_id, quota)
        if row is None:
            return QuotaOut(quota=quota, usage=usage)
        alerted: dict[str, str] = orjson.loads(row["alerted"])
        changed = [u for u in usage if alerted.get(u.measure, "ok") != u.level]
        if not changed:
            return QuotaOut(quota=quota, usage=usage)

        def work(conn: Connection) -> tuple[None, list[Any]]:
            now_alerted = {**alerted, **{u.measure: u.level for u in changed}}
            conn.execute(
                update(QUOTAS).where(QUOTAS.c.org_id == org_id).values(alerted=orjson.dumps(now_alerted).decode())
            )
            events = [
                capability_event(
                    MODULE,
                    ALERT[u.level],
                    "execute",
                    actor,
                    ("retention_quota", org_id),
                    outcome="failure" if u.level == "over" else "success",
                    fields={"measure": u.measure, "used": u.used, "limit": u.limit, "level": u.level},
                )
                for u in changed
            ]
            return None, [self.ledger.prepare(e) for e in events]

        self.ledger.transact(org_id, work)
        return QuotaOut(quota=quota, usage=usage)
