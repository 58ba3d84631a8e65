"""Retention policies, legal holds, runs and quotas of an organisation; every change audited.

Each write runs inside the ledger's transaction (`Ledger.transact`): the row and the audit event
that records its change commit together or not at all. Running a policy is `jobs.Runner`'s work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
import rfc8785
from croniter import croniter
from sqlalchemy import Connection, func, insert, select, update

from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import Ledger, capability_event
from gardien.core.clock import utcnow
from gardien.core.errors import InvalidInput, NotFound
from gardien.core.ids import new_id
from gardien.core.runtime import Runtime
from gardien.retention.defaults import DEFAULTS
from gardien.retention.models import HOLDS, POLICIES, RUNS
from gardien.retention.schemas import (
    DefaultOut,
    HoldIn,
    HoldOut,
    IdentityIn,
    PolicyIn,
    PolicyOut,
    RunList,
    RunOut,
)

MODULE = "retention"
Events = list[PreparedEvent]


def next_run(schedule: str | None, since: datetime) -> datetime | None:
    """The first time the cron schedule fires after `since` (UTC)."""
    if schedule is None:
        return None
    following: datetime = croniter(schedule, since.astimezone(UTC)).get_next(datetime)
    return following.astimezone(UTC)


def _document(policy: PolicyIn) -> str:
    return bytes(rfc8785.dumps(policy.model_dump(mode="json"))).decode()


class RetentionService:
    def __init__(self, runtime: Runtime, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow

    def _event(
        self, action: str, crud: str, actor: Mapping[str, Any], subject: tuple[str, str], **fields: Any
    ) -> PreparedEvent:
        return self.ledger.prepare(capability_event(MODULE, action, crud, actor, subject, fields=fields))

    # --- defaults -----------------------------------------------------------------------------------

    @staticmethod
    def defaults() -> list[DefaultOut]:
        return [DefaultOut(**d.__dict__) for d in DEFAULTS]

    # --- policies -----------------------------------------------------------------------------------

    def policy_out(self, row: Mapping[str, Any]) -> PolicyOut:
        policy = PolicyIn.model_validate_json(row["document"])
        since = row["last_scheduled_at"] or row["created_at"]
        return PolicyOut(
            id=row["id"],
            version=row["version"],
            policy=policy,
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            last_scheduled_at=row["last_scheduled_at"],
            next_run_at=next_run(policy.schedule, since) if policy.enabled else None,
        )

    def create_policy(self, org_id: str, policy: PolicyIn, actor: Mapping[str, Any]) -> PolicyOut:
        policy_id = new_id()
        now = self.clock()
        document = _document(policy)
        row = {
            "id": policy_id,
            "org_id": org_id,
            "name": policy.name,
            "version": 1,
            "document": document,
            "enabled": policy.enabled,
            "schedule": policy.schedule,
            "state": "{}",
            "last_scheduled_at": None,
            "created_at": now,
            "updated_at": now,
            "deleted_at": None,
        }

        def work(conn: Connection) -> tuple[None, Events]:
            conn.execute(insert(POLICIES).values(row))
            return None, [
                self._event(
                    "retention.policy.created",
                    "create",
                    actor,
                    ("retention_policy", policy_id),
                    version=1,
                    policy=orjson.loads(document),
                )
            ]

        self.ledger.transact(org_id, work)
        return self.policy_out(row)

    def _policy_row(self, conn: Connection, org_id: str, policy_id: str) -> Mapping[str, Any]:
        row = conn.execute(
            select(POLICIES).where(
                POLICIES.c.org_id == org_id, POLICIES.c.id == policy_id, POLICIES.c.deleted_at.is_(None)
            )
        ).first()
        if row is None:
            raise NotFound(f"retention policy {policy_id!r}")
        return dict(row._mapping)

    def policy_row(self, org_id: str, policy_id: str) -> Mapping[str, Any]:
        with self.runtime.engine.connect() as conn:
            return self._policy_row(conn, org_id, policy_id)

    def get_policy(self, org_id: str, policy_id: str) -> PolicyOut:
        return self.policy_out(self.policy_row(org_id, policy_id))

    def policy_rows(self, org_id: str) -> list[Mapping[str, Any]]:
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(
                select(POLICIES)
                .where(POLICIES.c.org_id == org_id, POLICIES.c.deleted_at.is_(None))
                .order_by(POLICIES.c.name, POLICIES.c.id)
            )
            return [dict(r._mapping) for r in rows]

    def list_policies(self, org_id: str) -> list[PolicyOut]:
        return [self.policy_out(r) for r in self.policy_rows(org_id)]

    def replace_policy(self, org_id: str, policy_id: str, policy: PolicyIn, actor: Mapping[str, Any]) -> PolicyOut:
        document = _document(policy)

        def work(conn: Connection) -> tuple[Mapping[str, Any], Events]:
            row = dict(self._policy_row(conn, org_id, policy_id))
            if row["document"] == document:
                return row, []
            before = PolicyIn.model_validate_json(row["document"])
            changes = {
                "name": policy.name,
                "version": row["version"] + 1,
                "document": document,
                "enabled": policy.enabled,
                "schedule": policy.schedule,
                "updated_at": self.clock(),
            }
            # A new target or period starts the anonymisation windows afresh.
            if before.target != policy.target or before.reference != policy.reference:
                changes["state"] = "{}"
            conn.execute(update(POLICIES).where(POLICIES.c.id == policy_id).values(changes))
            row.update(changes)
            event = self._event(
                "retention.policy.updated",
                "update",
                actor,
                ("retention_policy", policy_id),
                version=row["version"],
                before=orjson.loads(before.model_dump_json()),
                after=orjson.loads(document),
            )
            return row, [event]

        row, _ = self.ledger.transact(org_id, work)
        return self.policy_out(row)

    def delete_policy(self, org_id: str, policy_id: str, actor: Mapping[str, Any]) -> None:
        def work(conn: Connection) -> tuple[None, Events]:
            row = self._policy_row(conn, org_id, policy_id)
            conn.execute(update(POLICIES).where(POLICIES.c.id == policy_id).values(deleted_at=self.clock()))
            return None, [
                self._event(
                    "retention.policy.deleted",
                    "delete",
                    actor,
                    ("retention_policy", policy_id),
                    version=row["version"],
                    name=row["name"],
                )
            ]

        self.ledger.transact(org_id, work)

    def mark_scheduled(self, org_id: str, policy_id: str, at: datetime) -> None:
        with self.runtime.engine.begin() as conn:
            conn.execute(
                update(POLICIES)
                .where(POLICIES.c.org_id == org_id, POLICIES.c.id == policy_id)
                .values(last_scheduled_at=at)
            )

    # --- legal holds --------------------------------------------------------------------------------

    @staticmethod
    def hold_out(row: Mapping[str, Any]) -> HoldOut:
        identity = IdentityIn(type=row["identity_type"], value=row["identity_value"]) if row["identity_type"] else None
        return HoldOut(
            id=row["id"],
            scope=row["scope"],
            target=row["target"],
            identity=identity,
            reason=row["reason"],
            owner=row["owner"],
            created_at=row["created_at"],
            created_by=row["created_by"],
            released_at=row["released_at"],
            released_by=row["released_by"],
        )

    def create_hold(self, org_id: str, hold: HoldIn, actor: Mapping[str, Any]) -> HoldOut:
        hold_id = new_id()
        row = {
            "id": hold_id,
            "org_id": org_id,
            "scope": hold.scope,
            "target": hold.target,
            "identity_type": hold.identity.type if hold.identity else None,
            "identity_value": hold.identity.value if hold.identity else None,
            "reason": hold.reason,
            "owner": hold.owner,
            "created_at": self.clock(),
            "created_by": str(actor.get("id", "unknown"))[:256],
            "released_at": None,
            "released_by": None,
        }

        def work(conn: Connection) -> tuple[None, Events]:
            conn.execute(insert(HOLDS).values(row))
            # The identity stays out of the ledger: its type says enough about what is held.
            return None, [
                self._event(
                    "retention.hold.created",
                    "create",
                    actor,
                    ("retention_hold", hold_id),
                    scope=hold.scope,
                    target=hold.target,
                    identity_type=hold.identity.type if hold.identity else None,
                    reason=hold.reason,
                    owner=hold.owner,
                )
            ]

        self.ledger.transact(org_id, work)
        return self.hold_out(row)

    def list_holds(self, org_id: str, *, active_only: bool = False) -> list[HoldOut]:
        stmt = select(HOLDS).where(HOLDS.c.org_id == org_id)
        if active_only:
            stmt = stmt.where(HOLDS.c.released_at.is_(None))
        with self.runtime.engine.connect() as conn:
            return [self.hold_out(dict(r._mapping)) for r in conn.execute(stmt.order_by(HOLDS.c.id))]

    def get_hold(self, org_id: str, hold_id: str) -> HoldOut:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(HOLDS).where(HOLDS.c.org_id == org_id, HOLDS.c.id == hold_id)).first()
        if row is None:
            raise NotFound(f"legal hold {hold_id!r}")
        return self.hold_out(dict(row._mapping))

    def release_hold(self, org_id: str, hold_id: str, actor: Mapping[str, Any]) -> HoldOut:
        def work(conn: Connection) -> tuple[Mapping[str, Any], Events]:
            found = conn.execute(select(HOLDS).where(HOLDS.c.org_id == org_id, HOLDS.c.id == hold_id)).first()
            if found is None:
                raise NotFound(f"legal hold {hold_id!r}")
            row = dict(found._mapping)
            if row["released_at"] is not None:
                return row, []
            row.update(released_at=self.clock(), released_by=str(actor.get("id", "unknown"))[:256])
            conn.execute(
                update(HOLDS)
                .where(HOLDS.c.id == hold_id)
                .values(released_at=row["released_at"], released_by=row["released_by"])
            )
            return row, [
                self._event("retention.hold.released", "update", actor, ("retention_hold", hold_id), scope=row["scope"])
            ]

        row, _ = self.ledger.transact(org_id, work)
        return self.hold_out(row)

    # --- runs ---------------------------------------------------------------------------------------

    @staticmethod
    def run_out(row: Mapping[str, Any]) -> RunOut:
        return RunOut(
            id=row["id"],
            policy_id=row["policy_id"],
            policy_version=row["policy_version"],
            dry_run=row["dry_run"],
            trigger=row["trigger"],
            status=row["status"],
            cutoff=row["cutoff"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            counts=orjson.loads(row["counts"]),
            samples=orjson.loads(row["samples"]),
            errors=orjson.loads(row["errors"]),
            batches=row["batches"],
        )

    def list_runs(
        self, org_id: str, *, policy_id: str | None = None, cursor: str | None = None, limit: int = 50
    ) -> RunList:
        stmt = select(RUNS).where(RUNS.c.org_id == org_id)
        if policy_id is not None:
            stmt = stmt.where(RUNS.c.policy_id == policy_id)
        if cursor is not None:
            stmt = stmt.where(RUNS.c.id < cursor)
        with self.runtime.engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(stmt.order_by(RUNS.c.id.desc()).limit(limit + 1))]
        more = len(rows) > limit
        rows = rows[:limit]
        return RunList(items=[self.run_out(r) for r in rows], next_cursor=rows[-1]["id"] if more else None)

    def get_run(self, org_id: str, run_id: str) -> RunOut:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(RUNS).where(RUNS.c.org_id == org_id, RUNS.c.id == run_id)).first()
        if row is None:
            raise NotFound(f"retention run {run_id!r}")
        return self.run_out(dict(row._mapping))

    def count_runs(self, org_id: str) -> int:
        with self.runtime.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(RUNS).where(RUNS.c.org_id == org_id)).scalar_one())


def field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [{"field": field, "message": message, "type": "retention"}])
