"""The registers: records of processing, processors, breaches and DPIAs, each change audited.

Every write is work run inside the ledger's transaction (`Ledger.transact_async`): the register row
and the audit event that records its change commit together or not at all. Reads of other
capabilities go through their services: the DPIA event log reads the ledger's tags through
`Ledger.tagged`, never its tables.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
import rfc8785
from pydantic import BaseModel, TypeAdapter
from sqlalchemy import Connection, Row, Table, delete, insert, select, update

from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import Ledger
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.errors import Conflict, InvalidInput, NotFound
from gardien.core.ids import new_id
from gardien.core.runtime import Runtime
from gardien.registers import alerts as processor_alerts
from gardien.registers.clock import breach_clock
from gardien.registers.models import ACTIVITIES, BREACHES, DPIAS, PROCESSORS, SETTINGS
from gardien.registers.schemas import (
    ActivityIn,
    ActivityOut,
    AlertList,
    BreachIn,
    BreachOut,
    ClockOut,
    ControllerActivity,
    DpiaEvent,
    DpiaEventSummary,
    DpiaIn,
    DpiaOut,
    EventCount,
    Notification,
    NotificationIn,
    Page,
    PeriodSummary,
    ProcessorIn,
    ProcessorOut,
    Risk,
    SettingsIn,
    SettingsOut,
    dump,
)

MODULE = "registers"
MAX_LIMIT = 200
# How far the notification time may lie ahead of Gardien's clock: clocks of the DPO's machine drift.
SENT_AT_SLACK = timedelta(minutes=5)
Events = list[PreparedEvent]
Shape = TypeVar("Shape", bound=BaseModel)

ACTIVITY = TypeAdapter[ActivityIn](ActivityIn)


@dataclass(frozen=True)
class Kind(Generic[Shape]):
    """One register: its table, its audit names, the columns it derives from a record, its answer's type."""

    table: Table
    noun: str  # in audit actions: registers.<noun>.created
    target: str  # the audit event's target type
    columns: Callable[[Any], dict[str, Any]]
    out: type[Shape]
    dpia_event: DpiaEvent | None = None


KIND_ACTIVITY = Kind(
    ACTIVITIES, "activity", "register_activity", lambda r: {"role": r.role, "name": r.name}, ActivityOut
)
KIND_PROCESSOR = Kind(
    PROCESSORS,
    "processor",
    "register_processor",
    lambda r: {"name": r.name, "dpa_signed_on": r.dpa.signed_on, "dpa_review_on": r.dpa.review_on},
    ProcessorOut,
)
KIND_BREACH = Kind(
    BREACHES,
    "breach",
    "register_breach",
    lambda r: {"title": r.title, "aware_at": r.aware_at, "risk": r.risk.value, "status": r.status},
    BreachOut,
)
KIND_DPIA = Kind(
    DPIAS,
    "dpia",
    "register_dpia",
    lambda r: {"name": r.name, "status": r.validation.status},
    DpiaOut,
    dpia_event=DpiaEvent.RISK_ASSESSMENT,
)


def canonical(record: BaseModel) -> str:
    return bytes(rfc8785.dumps(dump(record))).decode()


def _changed(before: str | None, after: str) -> list[str]:
    old: dict[str, Any] = orjson.loads(before) if before is not None else {}
    new: dict[str, Any] = orjson.loads(after)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [{"field": field, "message": message, "type": "registers"}])


class RegistersService:
    def __init__(self, runtime: Runtime, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow
        self._sqlite = is_sqlite(runtime.engine)
        self._shapers: dict[str, Callable[[Row[Any]], Any]] = {
            KIND_ACTIVITY.noun: self._activity_out,
            KIND_PROCESSOR.noun: self._processor_out,
            KIND_BREACH.noun: self._breach_out,
            KIND_DPIA.noun: self._dpia_out,
        }

    # Writing -------------------------------------------------------------------------------------

    def _audit(
        self,
        kind: Kind[Any],
        verb: str,
        crud: str,
        actor: Mapping[str, Any],
        entry_id: str,
        display: str,
        fields: dict[str, Any],
    ) -> PreparedEvent:
        if kind.dpia_event is not None:
            fields["dpia_event"] = kind.dpia_event.value
        return self.ledger.prepare(
            {
                "module": MODULE,
                "action": f"{MODULE}.{kind.noun}.{verb}",
                "crud": crud,
                "actor": dict(actor),
                "target": {"type": kind.target, "id": entry_id, "display": display},
                "fields": fields,
            }
        )

    def _locked(self, conn: Connection, kind: Kind[Any], org_id: str, entry_id: str) -> Row[Any]:
        stmt = select(kind.table).where(kind.table.c.org_id == org_id, kind.table.c.id == entry_id)
        row = conn.execute(stmt if self._sqlite else stmt.with_for_update()).first()
        if row is None:
            raise NotFound(f"{kind.noun} {entry_id!r}")
        return row

    async def _create(
        self,
        org_id: str,
        kind: Kind[Any],
        record: BaseModel,
        actor: Mapping[str, Any],
        verb: str = "created",
        **extra: Any,
    ) -> str:
        entry_id = new_id()
        document = canonical(record)
        who = str(actor.get("id", ""))

        def work(conn: Connection) -> tuple[str, Events]:
            now = self.clock()
            conn.execute(
                insert(kind.table).values(
                    id=entry_id,
                    org_id=org_id,
                    **_first_version(document, who, now),
                    **kind.columns(record),
                    **extra,
                )
            )
            fields = {"version": 1, "sha256": _sha256(document), "changed": _changed(None, document)}
            return entry_id, [self._audit(kind, verb, "create", actor, entry_id, _display(kind, record), fields)]

        result: str = (await self.ledger.transact_async(org_id, work))[0]
        return result

    async def _replace(
        self,
        org_id: str,
        kind: Kind[Any],
        entry_id: str,
        record: BaseModel,
        actor: Mapping[str, Any],
        verb: str = "updated",
        check: Callable[[Row[Any]], dict[str, Any]] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """Replace the record; `check` may refuse (raise) or add columns from the row as stored."""
        document = canonical(record)
        who = str(actor.get("id", ""))

        def work(conn: Connection) -> tuple[None, Events]:
            row = self._locked(conn, kind, org_id, entry_id)
            more = check(row) if check is not None else {}
            version = row.version + 1
            conn.execute(
                update(kind.table)
                .where(kind.table.c.org_id == org_id, kind.table.c.id == entry_id)
                .values(
                    version=version,
                    record=document,
                    updated_at=self.clock(),
                    updated_by=who,
                    **kind.columns(record),
                    **(extra or {}),
                    **more,
                )
            )
            fields = {"version": version, "sha256": _sha256(document), "changed": _changed(row.record, document)}
            return None, [self._audit(kind, verb, "update", actor, entry_id, _display(kind, record), fields)]

        await self.ledger.transact_async(org_id, work)

    async def _delete(self, org_id: str, kind: Kind[Any], entry_id: str, actor: Mapping[str, Any]) -> None:
        def work(conn: Connection) -> tuple[None, Events]:
            row = self._locked(conn, kind, org_id, entry_id)
            conn.execute(delete(kind.table).where(kind.table.c.org_id == org_id, kind.table.c.id == entry_id))
            fields = {"version": row.version, "sha256": _sha256(row.record)}
            display = str(getattr(row, "name", entry_id))
            return None, [self._audit(kind, "deleted", "delete", actor, entry_id, display, fields)]

        await self.ledger.transact_async(org_id, work)

    # Reading -------------------------------------------------------------------------------------

    def _row(self, kind: Kind[Any], org_id: str, entry_id: str) -> Row[Any]:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(kind.table).where(kind.table.c.org_id == org_id, kind.table.c.id == entry_id)
            ).first()
        if row is None:
            raise NotFound(f"{kind.noun} {entry_id!r}")
        return row

    def _rows(
        self, kind: Kind[Any], org_id: str, cursor: str | None, limit: int, *where: Any
    ) -> tuple[list[Row[Any]], bool]:
        limit = max(1, min(limit, MAX_LIMIT))
        stmt = select(kind.table).where(kind.table.c.org_id == org_id, *where)
        if cursor is not None:
            stmt = stmt.where(kind.table.c.id > cursor)
        with self.runtime.engine.connect() as conn:
            rows = list(conn.execute(stmt.order_by(kind.table.c.id).limit(limit + 1)))
        return rows[:limit], len(rows) > limit

    @staticmethod
    def _envelope(row: Row[Any], record: Any) -> dict[str, Any]:
        return {
            "id": getattr(row, "id", None) or row.org_id,
            "version": row.version,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "created_by": row.created_by,
            "updated_by": row.updated_by,
            "record": record,
        }

    @staticmethod
    def _next(rows: list[Row[Any]], more: bool) -> str | None:
        return str(rows[-1].id) if more and rows else None

    def get(self, org_id: str, kind: Kind[Shape], entry_id: str) -> Shape:
        """One entry of a register, shaped as its API answer."""
        shaped = self._shapers[kind.noun](self._row(kind, org_id, entry_id))
        assert isinstance(shaped, kind.out)
        return shaped

    async def create(self, org_id: str, kind: Kind[Shape], body: BaseModel, actor: Mapping[str, Any]) -> Shape:
        return self.get(org_id, kind, await self._create(org_id, kind, body, actor))

    async def replace(
        self, org_id: str, kind: Kind[Shape], entry_id: str, body: BaseModel, actor: Mapping[str, Any]
    ) -> Shape:
        await self._replace(org_id, kind, entry_id, body, actor)
        return self.get(org_id, kind, entry_id)

    async def delete(self, org_id: str, kind: Kind[Any], entry_id: str, actor: Mapping[str, Any]) -> None:
        await self._delete(org_id, kind, entry_id, actor)

    # Header --------------------------------------------------------------------------------------

    def settings(self, org_id: str) -> SettingsOut:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(select(SETTINGS).where(SETTINGS.c.org_id == org_id)).first()
        if row is None:
            raise NotFound("register settings (PUT /api/v1/registers/settings first)")
        return SettingsOut(**self._envelope(row, SettingsIn.model_validate_json(row.record)))

    def settings_or_none(self, org_id: str) -> SettingsIn | None:
        try:
            return self.settings(org_id).record
        except NotFound:
            return None

    async def put_settings(self, org_id: str, body: SettingsIn, actor: Mapping[str, Any]) -> SettingsOut:
        document = canonical(body)
        who = str(actor.get("id", ""))
        kind = Kind(SETTINGS, "settings", "register_settings", lambda r: {}, SettingsOut)

        def work(conn: Connection) -> tuple[None, Events]:
            stmt = select(SETTINGS).where(SETTINGS.c.org_id == org_id)
            row = conn.execute(stmt if self._sqlite else stmt.with_for_update()).first()
            now = self.clock()
            if row is None:
                version = 1
                conn.execute(insert(SETTINGS).values(org_id=org_id, **_first_version(document, who, now)))
            else:
                version = row.version + 1
                conn.execute(
                    update(SETTINGS)
                    .where(SETTINGS.c.org_id == org_id)
                    .values(version=version, record=document, updated_at=now, updated_by=who)
                )
            fields = {
                "version": version,
                "sha256": _sha256(document),
                "changed": _changed(row.record if row is not None else None, document),
            }
            return None, [self._audit(kind, "updated", "update", actor, org_id, body.controller.name, fields)]

        await self.ledger.transact_async(org_id, work)
        return self.settings(org_id)

    # Processing activities -----------------------------------------------------------------------

    def _activity_out(self, row: Row[Any]) -> ActivityOut:
        record = ACTIVITY.validate_json(row.record)
        sensitive = isinstance(record, ControllerActivity) and bool(record.special_categories or record.nir)
        return ActivityOut(
            **self._envelope(row, record),
            sensitive=sensitive,
            transfers_outside_eea=len(record.transfers),
        )

    def activities(self, org_id: str, cursor: str | None, limit: int, role: str | None = None) -> Page[ActivityOut]:
        where = [ACTIVITIES.c.role == role] if role is not None else []
        rows, more = self._rows(KIND_ACTIVITY, org_id, cursor, limit, *where)
        return Page[ActivityOut](items=[self._activity_out(row) for row in rows], next_cursor=self._next(rows, more))

    def all_of(self, org_id: str, kind: Kind[Shape]) -> list[Shape]:
        """Every entry of one register, for exports and the documents generated from them."""
        shape = self._shapers[kind.noun]
        with self.runtime.engine.connect() as conn:
            rows = list(conn.execute(select(kind.table).where(kind.table.c.org_id == org_id).order_by(kind.table.c.id)))
        return [shape(row) for row in rows]

    def all_activities(self, org_id: str) -> list[ActivityOut]:
        return self.all_of(org_id, KIND_ACTIVITY)

    def all_processors(self, org_id: str) -> list[ProcessorOut]:
        return self.all_of(org_id, KIND_PROCESSOR)

    # Processors ----------------------------------------------------------------------------------

    def _processor_out(self, row: Row[Any]) -> ProcessorOut:
        record = ProcessorIn.model_validate_json(row.record)
        found = processor_alerts.of_processor(record, self.clock().date())
        return ProcessorOut(**self._envelope(row, record), alerts=[kind for kind, _ in found])

    def processors(self, org_id: str, cursor: str | None, limit: int) -> Page[ProcessorOut]:
        rows, more = self._rows(KIND_PROCESSOR, org_id, cursor, limit)
        return Page[ProcessorOut](items=[self._processor_out(row) for row in rows], next_cursor=self._next(rows, more))

    def alerts(self, org_id: str) -> AlertList:
        today = self.clock().date()
        with self.runtime.engine.connect() as conn:
            rows = list(
                conn.execute(
                    select(PROCESSORS.c.id, PROCESSORS.c.record)
                    .where(PROCESSORS.c.org_id == org_id)
                    .order_by(PROCESSORS.c.id)
                )
            )
        return AlertList(
            alerts=[
                alert
                for row in rows
                for alert in processor_alerts.alerts(row.id, ProcessorIn.model_validate_json(row.record), today)
            ]
        )

    # Breaches ------------------------------------------------------------------------------------

    def _breach_out(self, row: Row[Any]) -> BreachOut:
        record = BreachIn.model_validate_json(row.record)
        notifications = [Notification.model_validate(n) for n in orjson.loads(row.notifications)]
        required = record.risk is not Risk.NONE
        clock = breach_clock(record.aware_at, row.initial_notified_at, now=self.clock(), notification_required=required)
        return BreachOut(
            **self._envelope(row, record),
            notifications=notifications,
            clock=ClockOut(
                deadline=clock.deadline,
                state=clock.state.value,
                hours_elapsed=round(clock.hours_elapsed, 2),
                hours_remaining=round(clock.hours_remaining, 2),
            ),
            notification_required=required,
            communication_required=record.risk is Risk.HIGH and record.art34_exemption is None,
        )

    def breach(self, org_id: str, entry_id: str) -> BreachOut:
        return self.get(org_id, KIND_BREACH, entry_id)

    def breaches(self, org_id: str, cursor: str | None, limit: int, status: str | None = None) -> Page[BreachOut]:
        where = [BREACHES.c.status == status] if status is not None else []
        rows, more = self._rows(KIND_BREACH, org_id, cursor, limit, *where)
        return Page[BreachOut](items=[self._breach_out(row) for row in rows], next_cursor=self._next(rows, more))

    def _check_times(self, body: BreachIn) -> None:
        latest = self.clock() + SENT_AT_SLACK
        if body.aware_at > latest:
            raise field_error("aware_at", "in the future")

    async def create_breach(self, org_id: str, body: BreachIn, actor: Mapping[str, Any]) -> BreachOut:
        self._check_times(body)
        entry_id = await self._create(org_id, KIND_BREACH, body, actor, notifications="[]")
        return self.breach(org_id, entry_id)

    async def replace_breach(self, org_id: str, entry_id: str, body: BreachIn, actor: Mapping[str, Any]) -> BreachOut:
        self._check_times(body)

        def check(row: Row[Any]) -> dict[str, Any]:
            first = row.initial_notified_at
            if first is not None and body.aware_at > first:
                raise field_error("aware_at", "after the initial notification already recorded")
            return {}

        await self._replace(org_id, KIND_BREACH, entry_id, body, actor, check=check)
        return self.breach(org_id, entry_id)

    async def notify_breach(
        self, org_id: str, entry_id: str, body: NotificationIn, actor: Mapping[str, Any]
    ) -> BreachOut:
        if body.sent_at > self.clock() + SENT_AT_SLACK:
            raise field_error("sent_at", "in the future")
        who = str(actor.get("id", ""))

        def work(conn: Connection) -> tuple[None, Events]:
            row = self._locked(conn, KIND_BREACH, org_id, entry_id)
            record = BreachIn.model_validate_json(row.record)
            listed: list[dict[str, Any]] = orjson.loads(row.notifications)
            values = _notification_rules(row, record, listed, body)
            if body.late_reasons:
                record = record.model_copy(update={"late_reasons": body.late_reasons})
            document = canonical(record)
            listed.append(dump(Notification(**body.model_dump(exclude={"late_reasons"}))))
            version = row.version + 1
            conn.execute(
                update(BREACHES)
                .where(BREACHES.c.org_id == org_id, BREACHES.c.id == entry_id)
                .values(
                    version=version,
                    record=document,
                    notifications=orjson.dumps(listed).decode(),
                    updated_at=self.clock(),
                    updated_by=who,
                    **values,
                )
            )
            fields = {
                "version": version,
                "sha256": _sha256(document),
                "changed": _changed(row.record, document),
                "notification": {"kind": body.kind, "authority": body.authority.value, "sent_at": _iso(body.sent_at)},
            }
            event = self._audit(KIND_BREACH, "notified", "update", actor, entry_id, record.title, fields)
            return None, [event]

        await self.ledger.transact_async(org_id, work)
        return self.breach(org_id, entry_id)

    # DPIAs ---------------------------------------------------------------------------------------

    def _dpia_out(self, row: Row[Any]) -> DpiaOut:
        record = DpiaIn.model_validate_json(row.record)
        return DpiaOut(**self._envelope(row, record), prior_consultation=prior_consultation(record))

    def dpia(self, org_id: str, entry_id: str) -> DpiaOut:
        return self.get(org_id, KIND_DPIA, entry_id)

    def dpias(self, org_id: str, cursor: str | None, limit: int) -> Page[DpiaOut]:
        rows, more = self._rows(KIND_DPIA, org_id, cursor, limit)
        return Page[DpiaOut](items=[self._dpia_out(row) for row in rows], next_cursor=self._next(rows, more))

    def _check_activity(self, org_id: str, body: DpiaIn) -> None:
        if body.activity_id is None:
            return
        try:
            self._row(KIND_ACTIVITY, org_id, body.activity_id)
        except NotFound as exc:
            raise field_error("activity_id", "no such processing activity") from exc

    async def create_dpia(self, org_id: str, body: DpiaIn, actor: Mapping[str, Any], verb: str = "created") -> DpiaOut:
        self._check_activity(org_id, body)
        return self.dpia(org_id, await self._create(org_id, KIND_DPIA, body, actor, verb))

    async def replace_dpia(self, org_id: str, entry_id: str, body: DpiaIn, actor: Mapping[str, Any]) -> DpiaOut:
        self._check_activity(org_id, body)
        await self._replace(org_id, KIND_DPIA, entry_id, body, actor)
        return self.dpia(org_id, entry_id)

    # The DPIA event log ----------------------------------------------------------------------------

    def dpia_events(self, org_id: str, since: datetime, until: datetime, period: str) -> DpiaEventSummary:
        known = {event.value for event in DpiaEvent}
        counts: dict[str, dict[str, list[Any]]] = {}
        for value, occurred_at in self.ledger.tagged(org_id, "dpia_event", since, until):
            if value not in known:
                continue
            bucket = counts.setdefault(_period_of(occurred_at, period), {})
            seen = bucket.setdefault(value, [0, occurred_at])
            seen[0] += 1
            seen[1] = max(seen[1], occurred_at)
        periods = [
            PeriodSummary(
                period=key,
                events=[
                    EventCount(event=event, count=bucket.get(event.value, [0])[0], last_at=_last(bucket, event))
                    for event in DpiaEvent
                ],
            )
            for key, bucket in sorted(counts.items())
        ]
        return DpiaEventSummary(since=since, until=until, periods=periods)


def _last(bucket: dict[str, list[Any]], event: DpiaEvent) -> datetime | None:
    seen = bucket.get(event.value)
    return seen[1] if seen is not None else None


def _period_of(moment: datetime, period: str) -> str:
    if period == "day":
        return moment.date().isoformat()
    if period == "month":
        return f"{moment.year:04d}-{moment.month:02d}"
    return "all"


def _notification_rules(
    row: Row[Any], record: BreachIn, listed: Sequence[dict[str, Any]], body: NotificationIn
) -> dict[str, Any]:
    """Check a notification against those already recorded; the columns it changes."""
    if body.sent_at < record.aware_at:
        raise field_error("sent_at", "before aware_at: a notification follows awareness")
    initial = row.initial_notified_at
    if body.kind == "initial":
        if initial is not None:
            raise Conflict("an initial notification is already recorded; record a complementary one (Art. 33(4))")
        deadline = breach_clock(record.aware_at, None, now=body.sent_at, notification_required=True).deadline
        if body.sent_at > deadline and not (body.late_reasons or record.late_reasons):
            raise field_error(
                "late_reasons", "sent more than 72 hours after awareness: Art. 33(1) requires the reasons for the delay"
            )
        return {"initial_notified_at": body.sent_at}
    if initial is None:
        raise Conflict("no initial notification yet: the first one is initial")
    if body.sent_at < initial:
        raise field_error("sent_at", "before the initial notification")
    return {}


def prior_consultation(record: DpiaIn) -> bool:
    risks = (record.risks.illegitimate_access, record.risks.unwanted_modification, record.risks.data_disappearance)
    return any((r.severity or 0) >= 3 and (r.likelihood or 0) >= 3 for r in risks)


def _first_version(document: str, who: str, now: datetime) -> dict[str, Any]:
    return {
        "version": 1,
        "record": document,
        "created_at": now,
        "updated_at": now,
        "created_by": who,
        "updated_by": who,
    }


def _display(kind: Kind[Any], record: Any) -> str:
    return str(getattr(record, "name", None) or getattr(record, "title", kind.noun))


def _sha256(document: str) -> str:
    return hashlib.sha256(document.encode()).hexdigest()


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()
