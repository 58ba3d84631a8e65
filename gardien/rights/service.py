"""Data-subject requests: lifecycle, deadlines, identity checks, restriction and objection blocks.

Every change is a piece of work run inside the ledger's transaction (`Ledger.transact`): the
request row, its history entry, its blocks and the audit event commit together or not at all.
On PostgreSQL the request row is locked for the step; on SQLite the write lock is taken first.

`can_process` answers from a per-process cache keyed by (organisation, subject). A block changed
through this process drops the organisation's entries at once; entries also age out after
`rights_cache_seconds`, so a change made through another replica is seen after that long.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

import httpx
import orjson
from sqlalchemy import Connection, Row, Table, bindparam, delete, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import SYSTEM_ACTOR, Ledger, capability_event
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.errors import Conflict, InvalidInput, NotFound, Problem
from gardien.core.ids import new_id
from gardien.core.keyring import HmacKey
from gardien.core.models import Organisation
from gardien.core.runtime import Runtime
from gardien.rights import deadlines, texts
from gardien.rights.anonymise import is_anonymised
from gardien.rights.execution import Executor
from gardien.rights.mail import Mailer, MailUnavailable
from gardien.rights.models import BLOCKS, CODES, EXECUTIONS, HISTORY, REQUESTS, SETTINGS
from gardien.rights.personal import (
    Identities,
    email_ref,
    mask_email,
    refs_of,
    seal,
    subject_id_ref,
    unseal,
)
from gardien.rights.schemas import (
    REQUEST_ID,
    BlockOut,
    BlocksOut,
    CanProcessOut,
    CodeSent,
    DueOut,
    ExecutionOut,
    ExecutionState,
    HistoryEntry,
    HistoryOut,
    HoldNotice,
    Outcome,
    PackageOut,
    Recipient,
    RejectionCode,
    ReminderOut,
    RequestIn,
    RequestOut,
    RequestPage,
    RequestType,
    SettingsIn,
    SettingsOut,
    Status,
)

log = logging.getLogger(__name__)

MODULE = "rights"
TARGET = "data_subject_request"
OPEN = frozenset({Status.RECEIVED, Status.IDENTITY_PENDING, Status.IN_PROGRESS})
FINAL = frozenset({Status.COMPLETED, Status.REJECTED, Status.CANCELLED})
# Which status may follow which; identity checks and the engine take the same paths.
ALLOWED: dict[Status, frozenset[Status]] = {
    Status.RECEIVED: frozenset({Status.IDENTITY_PENDING, Status.IN_PROGRESS, Status.REJECTED, Status.CANCELLED}),
    Status.IDENTITY_PENDING: frozenset({Status.IN_PROGRESS, Status.REJECTED, Status.CANCELLED}),
    Status.IN_PROGRESS: frozenset({Status.COMPLETED, Status.REJECTED, Status.CANCELLED}),
}
DIRECT_MARKETING = "direct_marketing"
ALL_PURPOSES = "*"
MAX_CODE_SENDS = 5
MAX_PAGE = 200
MAX_DUE = 500
# How far back a request may say it was received: older ones are typed in by mistake.
MAX_BACKDATE = timedelta(days=366)
MAX_CACHED_SUBJECTS = 200_000
Events = list[PreparedEvent]


@dataclass(frozen=True)
class Org:
    id: str
    name: str
    country: str
    pause_for_identity: bool
    pause_set: bool | None
    due_soon_days: int
    reminder_webhook: str | None
    reminder_emails: tuple[str, ...]
    datamap_key: str | None
    settings_updated_at: datetime | None


@dataclass(frozen=True)
class PublicOrg:
    """What the privacy center shows of an organisation found by its slug."""

    id: str
    slug: str
    name: str
    country: str


@dataclass(frozen=True)
class Step:
    """One change of a request, as recorded in its history and the ledger."""

    action: str
    to: Status
    reason: str | None
    actor: Mapping[str, Any]
    details: dict[str, Any] | None = None


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [{"field": field, "message": message, "type": "rights"}])


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        last_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error) as exc:
        raise _field_error("cursor", "not a cursor this API returned") from exc
    if not re.match(REQUEST_ID, last_id):
        raise _field_error("cursor", "not a cursor this API returned")
    return last_id


class RightsService:
    def __init__(
        self,
        runtime: Runtime,
        ledger: Ledger,
        *,
        clock: Callable[[], datetime] | None = None,
        mailer: Mailer | None = None,
        executor: Executor | None = None,
    ) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow
        self._time: Callable[[], float] = time.time if clock is None else lambda: self.clock().timestamp()
        self.mailer = mailer or Mailer(runtime.settings)
        self.executor = executor
        self._sqlite = is_sqlite(runtime.engine)
        self._pseudonym_key: HmacKey | None = None
        # org -> subject -> (valid until, kinds of block per purpose)
        self._blocks: dict[str, dict[str, tuple[float, dict[str, tuple[str, ...]]]]] = {}
        self._epoch = 0

    def _key(self) -> HmacKey:
        if self._pseudonym_key is None:
            self._pseudonym_key = next(iter(self.runtime.keyring.hmac_keys().values()))
        return self._pseudonym_key

    # Organisation and settings ---------------------------------------------------------------

    def _org(self, conn: Connection, org_id: str) -> Org:
        row = conn.execute(SELECT_ORG, {"org": org_id}).one()
        pause_set = row.pause_for_identity
        return Org(
            id=org_id,
            name=row.name,
            country=row.country,
            pause_for_identity=pause_set if pause_set is not None else row.country in deadlines.PAUSES_FOR_IDENTITY,
            pause_set=pause_set,
            due_soon_days=row.due_soon_days if row.due_soon_days is not None else 7,
            reminder_webhook=row.reminder_webhook,
            reminder_emails=tuple(orjson.loads(row.reminder_emails)) if row.reminder_emails else (),
            datamap_key=row.datamap_key,
            settings_updated_at=row.updated_at,
        )

    def public_org(self, slug: str) -> PublicOrg | None:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(
                select(ORGANISATIONS.c.id, ORGANISATIONS.c.slug, ORGANISATIONS.c.name, ORGANISATIONS.c.country).where(
                    ORGANISATIONS.c.slug == slug
                )
            ).first()
        return PublicOrg(row.id, row.slug, row.name, row.country) if row is not None else None

    def status_token(self, org_id: str, request_id: str) -> str:
        """The secret part of a request's page in the privacy center: whoever holds it may follow the request."""
        return self._key().digest(b"rights-status\0" + org_id.encode() + b"\0" + request_id.encode()).hex()[:32]

    def status_token_valid(self, org_id: str, request_id: str, token: str) -> bool:
        return hmac.compare_digest(self.status_token(org_id, request_id).encode(), token.encode())

    def open_requests_of(self, org_id: str, email: str) -> int:
        """How many requests of this address are still open (the privacy center caps them)."""
        with self.runtime.engine.connect() as conn:
            count = conn.execute(
                select(func.count())
                .select_from(REQUESTS)
                .where(
                    REQUESTS.c.org_id == org_id,
                    REQUESTS.c.subject_ref == email_ref(self._key(), email),
                    REQUESTS.c.status.in_([s.value for s in OPEN]),
                )
            ).scalar_one()
        return int(count)

    def settings(self, org_id: str) -> SettingsOut:
        with self.runtime.engine.connect() as conn:
            return _settings_out(self._org(conn, org_id))

    def put_settings(self, org_id: str, body: SettingsIn, actor: Mapping[str, Any]) -> SettingsOut:
        def work(conn: Connection) -> tuple[None, Events]:
            now = self.clock()
            values = {
                "pause_for_identity": body.pause_for_identity,
                "due_soon_days": body.due_soon_days,
                "reminder_webhook": body.reminder_webhook,
                "reminder_emails": orjson.dumps(list(body.reminder_emails)).decode(),
                "datamap_key": body.datamap_key,
                "updated_at": now,
            }
            stmt = self._insert(SETTINGS).values(org_id=org_id, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=[SETTINGS.c.org_id], set_=values))
            event = _audit(
                "rights.settings.updated",
                "update",
                actor,
                ("rights_settings", org_id),
                fields={
                    "pause_for_identity": body.pause_for_identity,
                    "due_soon_days": body.due_soon_days,
                    "reminder_webhook": body.reminder_webhook is not None,
                    "reminder_emails": len(body.reminder_emails),
                    "datamap_key": body.datamap_key,
                },
            )
            return None, [self.ledger.prepare(event)]

        self.ledger.transact(org_id, work)
        return self.settings(org_id)

    def _insert(self, table: Any) -> Any:
        return (sqlite if self._sqlite else postgresql).insert(table)

    # Creating --------------------------------------------------------------------------------

    def create(self, org_id: str, body: RequestIn, actor: Mapping[str, Any], source: str) -> RequestOut:
        now = self.clock()
        received_at = body.received_at or now
        if received_at > now + timedelta(minutes=5):
            raise _field_error("received_at", "must not be in the future")
        if received_at < now - MAX_BACKDATE:
            raise _field_error("received_at", "must be within the last year")
        purposes = list(dict.fromkeys(body.purposes))
        if body.direct_marketing and body.type is not RequestType.OBJECTION:
            raise _field_error("direct_marketing", "only an objection can be to direct marketing")
        if body.type is RequestType.OBJECTION and not body.direct_marketing and not purposes:
            raise _field_error("purposes", "an objection names the purposes it objects to, or is to direct marketing")
        if purposes and body.type not in (RequestType.OBJECTION, RequestType.RESTRICTION):
            raise _field_error("purposes", "only restriction and objection requests name purposes")
        if body.type is RequestType.RESTRICTION and not purposes:
            purposes = [ALL_PURPOSES]
        if body.direct_marketing and DIRECT_MARKETING not in purposes:
            purposes.insert(0, DIRECT_MARKETING)
        if body.changes and body.type is not RequestType.RECTIFICATION:
            raise _field_error("changes", "only a rectification request carries changes")
        if body.type is RequestType.RECTIFICATION and not body.changes:
            raise _field_error("changes", "a rectification request names the fields to correct")
        if self.executor is not None:
            self.executor.check(org_id, body)
        request_id = new_id()
        identities = Identities(
            email=str(body.email),
            subject_id=body.subject_id,
            others=dict(body.identities),
            changes=dict(body.changes),
            note=body.note,
        )
        sealed, enc_kid = seal(self.runtime.keyring, org_id, request_id, identities)
        key = self._key()
        scope = {"purposes": purposes, "direct_marketing": body.direct_marketing, "ground": body.ground}
        refs = (email_ref(key, identities.email), subject_id_ref(key, body.subject_id) if body.subject_id else None)

        def work(conn: Connection) -> tuple[RequestOut, Events]:
            org = self._org(conn, org_id)
            received_on = deadlines.receipt_day(received_at, org.country)
            first_due = deadlines.due_on(received_on, org.country)
            row = {
                "id": request_id,
                "org_id": org_id,
                "type": body.type.value,
                "status": Status.RECEIVED.value,
                "extended": False,
                "extension_reason": None,
                "subject_ref": refs[0],
                "host_ref": refs[1],
                "hmac_kid": key.kid,
                "sealed": sealed,
                "enc_kid": enc_kid,
                "scope": orjson.dumps(scope).decode(),
                "locale": body.locale,
                "source": source,
                "received_at": received_at,
                "received_on": received_on,
                "first_due_on": first_due,
                "due_on": first_due,
                "paused_days": 0,
                "paused_since": None,
                "identity_method": None,
                "identity_verified_at": None,
                "outcome": None,
                "closed_at": None,
                "updated_at": now,
            }
            conn.execute(insert(REQUESTS).values(row))
            step = Step("created", Status.RECEIVED, None, actor, {"type": body.type.value, "source": source})
            events = [self._history(conn, org_id, request_id, None, step, now, due_on=first_due)]
            if body.direct_marketing:
                # Art. 21(3): absolute, and stopping marketing cannot hurt the person: from receipt.
                self._block(conn, org_id, request_id, refs, purposes, DIRECT_MARKETING, now)
            stored = conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).one()
            return self._out(stored, org, identities, reveal=True), events

        out: RequestOut = self.ledger.transact(org_id, work)[0]
        if body.direct_marketing:
            self._forget(org_id)
        return out

    # Reading ---------------------------------------------------------------------------------

    def get(self, org_id: str, request_id: str, *, reveal: bool) -> RequestOut:
        with self.runtime.engine.connect() as conn:
            row = conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).first()
            if row is None:
                raise NotFound(f"request {request_id}")
            return self._out(row, self._org(conn, org_id), None, reveal=reveal, conn=conn)

    def identities(self, org_id: str, request_id: str) -> Identities:
        """The person's identifiers in clear, for the execution engine."""
        with self.runtime.engine.connect() as conn:
            row = conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).first()
        if row is None:
            raise NotFound(f"request {request_id}")
        return self._unseal(row)

    def list_requests(
        self,
        org_id: str,
        *,
        status: Status | None = None,
        type: RequestType | None = None,
        extended: bool | None = None,
        overdue: bool | None = None,
        email: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
        reveal: bool = False,
    ) -> RequestPage:
        limit = max(1, min(limit, MAX_PAGE))
        stmt = select(REQUESTS).where(REQUESTS.c.org_id == org_id)
        if status is not None:
            stmt = stmt.where(REQUESTS.c.status == status.value)
        if type is not None:
            stmt = stmt.where(REQUESTS.c.type == type.value)
        if extended is not None:
            stmt = stmt.where(REQUESTS.c.extended == extended)
        if email is not None:
            stmt = stmt.where(REQUESTS.c.subject_ref == email_ref(self._key(), email))
        if cursor is not None:
            stmt = stmt.where(REQUESTS.c.id < decode_cursor(cursor))
        with self.runtime.engine.connect() as conn:
            org = self._org(conn, org_id)
            if overdue is not None:
                today = self._today(org)
                late = (
                    REQUESTS.c.status.in_([s.value for s in OPEN])
                    & REQUESTS.c.paused_since.is_(None)
                    & (REQUESTS.c.due_on < today)
                )
                stmt = stmt.where(late if overdue else ~late)
            rows = conn.execute(stmt.order_by(REQUESTS.c.id.desc()).limit(limit + 1)).all()
            runs = _executions(conn, [row.id for row in rows[:limit]])
            page = [self._out(row, org, None, reveal=reveal, execution=runs.get(row.id)) for row in rows[:limit]]
        return RequestPage(requests=page, next_cursor=encode_cursor(rows[limit - 1].id) if len(rows) > limit else None)

    def history(self, org_id: str, request_id: str) -> HistoryOut:
        with self.runtime.engine.connect() as conn:
            if conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).first() is None:
                raise NotFound(f"request {request_id}")
            rows = conn.execute(SELECT_HISTORY, {"org": org_id, "id": request_id}).all()
        return HistoryOut(
            request_id=request_id,
            history=[
                HistoryEntry(
                    at=row.at,
                    action=row.action,
                    from_status=Status(row.from_status) if row.from_status else None,
                    to_status=Status(row.to_status),
                    actor={
                        "type": row.actor_type,
                        "id": row.actor_id,
                        **({"display": row.actor_display} if row.actor_display else {}),
                    },
                    reason=row.reason,
                    details=orjson.loads(row.details) if row.details else None,
                )
                for row in rows
            ],
        )

    def due(self, org_id: str, within_days: int | None = None, *, reveal: bool = False) -> DueOut:
        with self.runtime.engine.connect() as conn:
            org = self._org(conn, org_id)
            days = org.due_soon_days if within_days is None else within_days
            today = self._today(org)
            rows = conn.execute(
                SELECT_DUE,
                {"org": org_id, "until": today + timedelta(days=days), "limit": MAX_DUE},
            ).all()
            runs = _executions(conn, [row.id for row in rows])
            out = [self._out(row, org, None, reveal=reveal, execution=runs.get(row.id)) for row in rows]
        return DueOut(
            today=today,
            within_days=days,
            overdue=[r for r in out if r.due_on < today],
            due_soon=[r for r in out if r.due_on >= today],
        )

    def _today(self, org: Org) -> date:
        return deadlines.receipt_day(self.clock(), org.country)

    def _unseal(self, row: Row[Any]) -> Identities:
        if is_anonymised(row.subject_ref):
            return Identities(email="")
        return unseal(self.runtime.keyring, row.org_id, row.id, row.sealed, row.enc_kid)

    def _out(
        self,
        row: Row[Any],
        org: Org,
        identities: Identities | None,
        *,
        reveal: bool,
        execution: ExecutionOut | None = None,
        conn: Connection | None = None,
    ) -> RequestOut:
        identities = identities or self._unseal(row)
        if execution is None and conn is not None:
            execution = _executions(conn, [row.id]).get(row.id)
        scope = orjson.loads(row.scope)
        status = Status(row.status)
        today = self._today(org)
        due = row.due_on
        paused = row.paused_since is not None
        if paused:
            # The deadline it would have if the identity arrived today.
            so_far = row.paused_days + deadlines.paused_days_between(row.paused_since, self.clock(), org.country)
            due = deadlines.due_on(row.received_on, org.country, paused_days=so_far, extended=row.extended)
        outcome = Outcome.model_validate_json(row.outcome) if row.outcome else None
        return RequestOut(
            id=row.id,
            type=RequestType(row.type),
            status=status,
            extended=row.extended,
            extension_reason=row.extension_reason,
            email=identities.email if reveal or not identities.email else mask_email(identities.email),
            anonymised=is_anonymised(row.subject_ref),
            locale=row.locale,
            source=row.source,
            received_at=row.received_at,
            received_on=row.received_on,
            first_due_on=row.first_due_on,
            due_on=due,
            clock_paused=paused,
            paused_days=row.paused_days,
            overdue=status in OPEN and not paused and due < today,
            purposes=scope["purposes"],
            direct_marketing=scope["direct_marketing"],
            ground=scope["ground"],
            identity_method=row.identity_method,
            identity_verified_at=row.identity_verified_at,
            outcome=outcome,
            execution=execution,
            closed_at=row.closed_at,
            updated_at=row.updated_at,
        )

    # Changing --------------------------------------------------------------------------------

    def _locked(self, conn: Connection, org_id: str, request_id: str) -> Row[Any]:
        stmt = SELECT_REQUEST if self._sqlite else SELECT_REQUEST.with_for_update()
        row = conn.execute(stmt, {"org": org_id, "id": request_id}).first()
        if row is None:
            raise NotFound(f"request {request_id}")
        return row

    def _history(
        self,
        conn: Connection,
        org_id: str,
        request_id: str,
        before: Status | None,
        step: Step,
        now: datetime,
        **fields: Any,
    ) -> PreparedEvent:
        actor = step.actor
        conn.execute(
            insert(HISTORY).values(
                id=new_id(),
                org_id=org_id,
                request_id=request_id,
                at=now,
                action=step.action,
                from_status=before.value if before else None,
                to_status=step.to.value,
                actor_type=str(actor.get("type", "")),
                actor_id=str(actor.get("id", "")),
                actor_display=actor.get("display"),
                reason=step.reason,
                details=orjson.dumps(step.details).decode() if step.details else None,
            )
        )
        event_fields: dict[str, Any] = {"from": before.value if before else None, "to": step.to.value}
        event_fields.update({k: v.isoformat() if isinstance(v, date) else v for k, v in fields.items()})
        if step.details:
            event_fields.update(step.details)
        event = _audit(
            f"rights.request.{step.action}",
            "create" if before is None else "update",
            actor,
            (TARGET, request_id),
            reason=step.reason,
            fields=event_fields,
        )
        return self.ledger.prepare(event)

    def _move(
        self,
        conn: Connection,
        org: Org,
        row: Row[Any],
        step: Step,
        now: datetime,
        **values: Any,
    ) -> tuple[dict[str, Any], Events]:
        """Apply `step` to the locked request `row`: status, clock, blocks, history and audit event."""
        before = Status(row.status)
        if step.to != before:
            if before in FINAL:
                raise Conflict(f"the request is {before.value}; it can no longer change")
            if step.to not in ALLOWED[before]:
                raise Conflict(f"a {before.value} request cannot become {step.to.value}")
        changes: dict[str, Any] = {"status": step.to.value, "updated_at": now, **values}
        paused_days = row.paused_days
        extended = changes.get("extended", row.extended)
        if row.paused_since is not None and step.to != Status.IDENTITY_PENDING:
            paused_days += deadlines.paused_days_between(row.paused_since, now, org.country)
            changes.update(paused_since=None, paused_days=paused_days)
        elif step.to == Status.IDENTITY_PENDING and before != step.to and org.pause_for_identity:
            changes["paused_since"] = now
        changes["first_due_on"] = deadlines.due_on(row.received_on, org.country, paused_days=paused_days)
        changes["due_on"] = deadlines.due_on(row.received_on, org.country, paused_days=paused_days, extended=extended)
        if step.to in FINAL and before != step.to:
            changes["closed_at"] = now
        conn.execute(update(REQUESTS).where(REQUESTS.c.id == row.id).values(changes))
        fields: dict[str, Any] = {"type": row.type, "due_on": changes["due_on"], "extended": extended}
        if "paused_since" in changes:
            fields["clock_paused"] = changes["paused_since"] is not None
        events = [self._history(conn, org.id, row.id, before, step, now, **fields)]
        scope = orjson.loads(row.scope)
        restricts = row.type in (RequestType.RESTRICTION.value, RequestType.OBJECTION.value)
        if restricts and step.to == Status.IN_PROGRESS and before != step.to and not scope["direct_marketing"]:
            self._block(conn, org.id, row.id, (row.subject_ref, row.host_ref), scope["purposes"], row.type, now)
        if restricts and step.to in (Status.REJECTED, Status.CANCELLED):
            conn.execute(
                update(BLOCKS)
                .where(BLOCKS.c.request_id == row.id, BLOCKS.c.active.is_(True))
                .values(active=False, lifted_at=now, lift_reason=f"request {step.to.value}: {step.reason}")
            )
        return changes, events

    def _block(
        self,
        conn: Connection,
        org_id: str,
        request_id: str,
        subject_refs: tuple[str, str | None],
        purposes: list[str],
        kind: str,
        now: datetime,
    ) -> None:
        refs = [r for r in subject_refs if r]
        conn.execute(
            insert(BLOCKS),
            [
                {
                    "id": new_id(),
                    "org_id": org_id,
                    "subject_ref": ref,
                    "purpose": purpose,
                    "kind": kind,
                    "request_id": request_id,
                    "active": True,
                    "since": now,
                    "lifted_at": None,
                    "lift_reason": None,
                }
                for ref in refs
                for purpose in purposes
            ],
        )

    def _change(
        self,
        org_id: str,
        request_id: str,
        decide: Callable[[Connection, Org, Row[Any], datetime], tuple[Step, dict[str, Any]]],
    ) -> RequestOut:
        """Lock the request, let `decide` check it and name the step, apply it; then tell the engine."""

        def work(conn: Connection) -> tuple[tuple[RequestOut, bool], Events]:
            now = self.clock()
            org = self._org(conn, org_id)
            row = self._locked(conn, org_id, request_id)
            step, values = decide(conn, org, row, now)
            _, events = self._move(conn, org, row, step, now, **values)
            stored = conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).one()
            started = step.to == Status.IN_PROGRESS and row.status != Status.IN_PROGRESS.value
            return (self._out(stored, org, None, reveal=True, conn=conn), started), events

        result: tuple[RequestOut, bool] = self.ledger.transact(org_id, work)[0]
        out, started = result
        if out.type in (RequestType.RESTRICTION, RequestType.OBJECTION):
            self._forget(org_id)
        if started and self.executor is not None:
            try:
                self.executor.started(org_id, out, self.identities(org_id, request_id))
            except Exception:
                # The request stays in progress, visible in the queue with its deadline.
                log.exception("the execution engine failed to start request %s", request_id)
        return out

    def transition(
        self,
        org_id: str,
        request_id: str,
        to: Status,
        reason: str,
        actor: Mapping[str, Any],
        reason_code: RejectionCode | None = None,
    ) -> RequestOut:
        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            values: dict[str, Any] = {}
            if to == Status(row.status):
                raise Conflict(f"the request is already {to.value}")
            if to == Status.IN_PROGRESS and row.identity_verified_at is None:
                raise Conflict("verify the requester's identity first (e-mail code or operator)")
            if to == Status.REJECTED:
                if reason_code is None:
                    raise _field_error("reason_code", "required to reject a request")
                if orjson.loads(row.scope)["direct_marketing"]:
                    raise Conflict("an objection to direct marketing is absolute (Art. 21(3)); it cannot be rejected")
                notice = texts.art12_4(org.country, row.locale, reason)
                values["outcome"] = Outcome(reason_code=reason_code, reason=reason, art12_4=notice).model_dump_json()
            details = {"reason_code": reason_code.value} if to == Status.REJECTED and reason_code else None
            return Step(to.value, to, reason, actor, details), values

        out = self._change(org_id, request_id, decide)
        if to == Status.REJECTED and out.outcome is not None and out.outcome.art12_4 is not None:
            notice = out.outcome.art12_4
            return self._tell_person(
                org_id, out, "rejection", lambda org: texts.rejection_email(out.locale, org, out.id, notice)
            )
        return out

    def complete(
        self,
        org_id: str,
        request_id: str,
        summary: Mapping[str, int],
        actor: Mapping[str, Any],
        reason: str,
        *,
        erased: Mapping[str, Mapping[str, int]] | None = None,
        holds: list[HoldNotice] | None = None,
        recipients: list[Recipient] | None = None,
        package: PackageOut | None = None,
    ) -> RequestOut:
        """The execution engine's report: per-table counts (never values) close the request."""
        outcome = Outcome(
            summary=dict(summary),
            erased={table: dict(counts) for table, counts in erased.items()} if erased is not None else None,
            holds=holds,
            recipients=recipients,
            package=package,
        )

        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            conn.execute(
                update(EXECUTIONS)
                .where(EXECUTIONS.c.request_id == request_id)
                .values(state=ExecutionState.DONE.value, error=None, finished_at=now)
            )
            details: dict[str, Any] = {"counts": sum(summary.values())}
            if holds:
                details["held_tables"] = len(holds)
            if package is not None:
                details["package"] = package.id
            return Step("completed", Status.COMPLETED, reason, actor, details), {"outcome": outcome.model_dump_json()}

        return self._change(org_id, request_id, decide)

    # Execution over the data map ---------------------------------------------------------------

    def begin_execution(
        self, org_id: str, request_id: str, map_key: str, actor: Mapping[str, Any], *, stale: timedelta
    ) -> str | None:
        """Claim the run of an in-progress request; the erasure run a retry resumes, if any.

        409 when the request is not in progress, or when another attempt is running and younger
        than `stale` (an attempt older than that is taken to have died with its process).
        """

        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            if Status(row.status) is not Status.IN_PROGRESS:
                raise Conflict(f"the request is {row.status}: only a request in progress is executed")
            current = conn.execute(select(EXECUTIONS).where(EXECUTIONS.c.request_id == request_id)).first()
            running = current is not None and current.state == ExecutionState.RUNNING.value
            if running and current is not None and current.started_at > now - stale:
                raise Conflict("the request is being executed; try again once this attempt has ended")
            if current is not None and current.state == ExecutionState.DONE.value:
                raise Conflict("the request was already executed")
            attempt = (current.attempts if current is not None else 0) + 1
            values = {
                "map_key": map_key,
                "state": ExecutionState.RUNNING.value,
                "attempts": attempt,
                "error": None,
                "started_at": now,
                "finished_at": None,
            }
            resumes[0] = current.erasure_run if current is not None else None
            stmt = self._insert(EXECUTIONS).values(request_id=request_id, org_id=org_id, erasure_run=None, **values)
            conn.execute(stmt.on_conflict_do_update(index_elements=[EXECUTIONS.c.request_id], set_=values))
            step = Step("execution_started", Status.IN_PROGRESS, None, actor, {"map": map_key, "attempt": attempt})
            return step, {}

        resumes: list[str | None] = [None]
        self._change(org_id, request_id, decide)
        return resumes[0]

    def execution_failed(
        self,
        org_id: str,
        request_id: str,
        error: str,
        actor: Mapping[str, Any],
        *,
        erasure_run: str | None = None,
    ) -> RequestOut:
        """Record a failed attempt: the request stays in progress, with the error, until a retry."""
        error = error[:2000] or "unknown error"

        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            values: dict[str, Any] = {"state": ExecutionState.FAILED.value, "error": error, "finished_at": now}
            if erasure_run is not None:
                values["erasure_run"] = erasure_run
            conn.execute(update(EXECUTIONS).where(EXECUTIONS.c.request_id == request_id).values(values))
            return Step("execution_failed", Status(row.status), error, actor), {}

        return self._change(org_id, request_id, decide)

    def execute(self, org_id: str, request_id: str, actor: Mapping[str, Any]) -> RequestOut:
        """Run (again) an in-progress request over the data map: after a failure, or one that was never run."""
        if self.executor is None:
            raise Conflict("no execution engine is configured: complete the request by hand")
        request = self.get(org_id, request_id, reveal=True)
        if request.status is not Status.IN_PROGRESS:
            raise Conflict(f"the request is {request.status.value}: only a request in progress is executed")
        self.executor.started(org_id, request, self.identities(org_id, request_id), actor=actor)
        after = self.get(org_id, request_id, reveal=True)
        if after.execution is None and after.status is Status.IN_PROGRESS:
            raise Conflict("the organisation has no data map to run this request over: complete it by hand")
        return after

    def extend(self, org_id: str, request_id: str, reason: str, actor: Mapping[str, Any]) -> RequestOut:
        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            status = Status(row.status)
            if status in FINAL:
                raise Conflict(f"the request is {status.value}; it can no longer change")
            if row.extended:
                raise Conflict("the request was already extended; Art. 12(3) allows two further months once")
            if not deadlines.can_extend(self._today(org), row.first_due_on):
                raise Conflict(
                    f"the first deadline ran out on {row.first_due_on.isoformat()}: Art. 12(3) requires the "
                    "extension within the first month"
                )
            return Step("extended", status, reason, actor), {"extended": True, "extension_reason": reason}

        out = self._change(org_id, request_id, decide)
        due = out.due_on.isoformat()
        return self._tell_person(
            org_id, out, "extension", lambda org: texts.extension_email(out.locale, org, out.id, due, reason)
        )

    def _tell_person(
        self, org_id: str, request: RequestOut, notice: str, write: Callable[[str], tuple[str, str]]
    ) -> RequestOut:
        """Art. 12(3)–(4): e-mail the person an extension or a rejection, and record that it left (or why not).

        The decision stands either way; without an SMTP server nothing is sent and the DPO tells the
        person another way.
        """
        if not self.mailer.configured:
            return request
        with self.runtime.engine.connect() as conn:
            org = self._org(conn, org_id)
        subject, body = write(org.name)
        details = {"notice": notice, "channel": "email"}
        try:
            self.mailer.send([self.identities(org_id, request.id).email], subject, body)
        except MailUnavailable as exc:
            step = Step("notification_failed", request.status, exc.detail, SYSTEM_ACTOR, details)
        else:
            step = Step("person_notified", request.status, None, SYSTEM_ACTOR, details)
        return self._change(org_id, request.id, lambda conn, org, row, now: (step, {}))

    def verify_by_operator(self, org_id: str, request_id: str, reason: str, actor: Mapping[str, Any]) -> RequestOut:
        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            _identity_awaited(row)
            conn.execute(delete(CODES).where(CODES.c.request_id == row.id))
            values = {"identity_method": "operator", "identity_verified_at": now}
            return Step("identity_verified", Status.IN_PROGRESS, reason, actor, {"method": "operator"}), values

        return self._change(org_id, request_id, decide)

    # Identity codes --------------------------------------------------------------------------

    def _code_mac(self, key: HmacKey, request_id: str, code: str) -> bytes:
        return key.digest(b"rights-code\0" + request_id.encode() + b"\0" + code.encode())

    def send_code(
        self, org_id: str, request_id: str, actor: Mapping[str, Any], *, follow_link: str | None = None
    ) -> CodeSent:
        settings = self.runtime.settings
        with self.runtime.engine.connect() as conn:
            org = self._org(conn, org_id)
            row = conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).first()
            if row is None:
                raise NotFound(f"request {request_id}")
            _identity_awaited(row)
            sends = conn.execute(select(CODES.c.sends).where(CODES.c.request_id == request_id)).scalar() or 0
        if sends >= MAX_CODE_SENDS:
            raise Conflict(f"{MAX_CODE_SENDS} codes were already sent for this request; verify by operator instead")
        identities = self._unseal(row)
        code = f"{secrets.randbelow(10**6):06d}"
        key = self.runtime.keyring.hmac_key()
        subject, body = texts.code_email(row.locale, org.name, code, settings.rights_code_minutes, follow_link)
        # Sent before anything is recorded, so the ledger never claims a code that did not leave.
        self.mailer.send([identities.email], subject, body)
        expires = self.clock() + timedelta(minutes=settings.rights_code_minutes)

        def decide(conn: Connection, org: Org, row: Row[Any], now: datetime) -> tuple[Step, dict[str, Any]]:
            _identity_awaited(row)
            values = {
                "code_mac": self._code_mac(key, request_id, code),
                "hmac_kid": key.kid,
                "attempts": 0,
                "sent_at": now,
                "expires_at": expires,
            }
            stmt = self._insert(CODES).values(request_id=request_id, org_id=org_id, sends=1, **values)
            again = {**values, "sends": CODES.c.sends + 1}
            conn.execute(stmt.on_conflict_do_update(index_elements=[CODES.c.request_id], set_=again))
            details = {"channel": "email", "expires_at": expires.isoformat()}
            return Step("identity_code_sent", Status.IDENTITY_PENDING, None, actor, details), {}

        self._change(org_id, request_id, decide)
        return CodeSent(
            request_id=request_id,
            expires_at=expires,
            attempts_allowed=settings.rights_code_attempts,
            sent_to=mask_email(identities.email),
        )

    def verify_code(self, org_id: str, request_id: str, code: str, actor: Mapping[str, Any]) -> RequestOut:
        limit = self.runtime.settings.rights_code_attempts

        def work(conn: Connection) -> tuple[tuple[RequestOut | None, Problem | None], Events]:
            now = self.clock()
            org = self._org(conn, org_id)
            row = self._locked(conn, org_id, request_id)
            _identity_awaited(row)
            stored = conn.execute(select(CODES).where(CODES.c.request_id == request_id)).first()
            if stored is None:
                raise Conflict("no code was sent for this request: send one first")
            if stored.attempts >= limit:
                raise Conflict("too many wrong codes: send a new one")
            if stored.expires_at <= now:
                raise Conflict("the code has expired: send a new one")
            expected = self._code_mac(self.runtime.keyring.hmac_key(stored.hmac_kid), request_id, code)
            status = Status(row.status)
            if not hmac.compare_digest(expected, stored.code_mac):
                attempts = stored.attempts + 1
                conn.execute(update(CODES).where(CODES.c.request_id == request_id).values(attempts=attempts))
                step = Step("identity_failed", status, "wrong code", actor, {"attempts": attempts})
                _, events = self._move(conn, org, row, step, now)
                left = limit - attempts
                # Committed with the failed attempt; the caller raises it afterwards.
                problem = _field_error("code", f"wrong code; {left} attempt{'s' if left != 1 else ''} left")
                return (None, problem), events
            conn.execute(delete(CODES).where(CODES.c.request_id == request_id))
            step = Step("identity_verified", Status.IN_PROGRESS, "e-mail code", actor, {"method": "email_code"})
            _, events = self._move(conn, org, row, step, now, identity_method="email_code", identity_verified_at=now)
            fresh = conn.execute(SELECT_REQUEST, {"org": org_id, "id": request_id}).one()
            return (self._out(fresh, org, None, reveal=True), None), events

        result: tuple[RequestOut | None, Problem | None] = self.ledger.transact(org_id, work)[0]
        out, problem = result
        if problem is not None:
            raise problem
        assert out is not None
        if out.type in (RequestType.RESTRICTION, RequestType.OBJECTION):
            self._forget(org_id)
        if self.executor is not None:
            try:
                self.executor.started(org_id, out, self.identities(org_id, request_id))
            except Exception:
                log.exception("the execution engine failed to start request %s", request_id)
        return out

    # Restriction and objection ---------------------------------------------------------------

    def blocks(self, org_id: str, subject: str) -> BlocksOut:
        refs = refs_of(self._key(), subject)
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(
                select(BLOCKS)
                .where(BLOCKS.c.org_id == org_id, BLOCKS.c.subject_ref.in_(refs))
                .order_by(BLOCKS.c.since, BLOCKS.c.id)
                .limit(1000)
            ).all()
        return BlocksOut(blocks=[BlockOut.model_validate(row, from_attributes=True) for row in rows])

    def lift(self, org_id: str, block_id: str, reason: str, actor: Mapping[str, Any]) -> BlockOut:
        def work(conn: Connection) -> tuple[BlockOut, Events]:
            row = conn.execute(select(BLOCKS).where(BLOCKS.c.org_id == org_id, BLOCKS.c.id == block_id)).first()
            if row is None:
                raise NotFound(f"block {block_id}")
            if not row.active:
                raise Conflict("the block was already lifted")
            if row.kind == DIRECT_MARKETING:
                raise Conflict("an objection to direct marketing is absolute (Art. 21(3)): only its requester ends it")
            now = self.clock()
            lifted = {"active": False, "lifted_at": now, "lift_reason": reason}
            conn.execute(update(BLOCKS).where(BLOCKS.c.id == block_id).values(lifted))
            event = _audit(
                "rights.block.lifted",
                "update",
                actor,
                ("processing_block", block_id),
                reason=reason,
                fields={"request_id": row.request_id, "purpose": row.purpose, "kind": row.kind},
            )
            fresh = conn.execute(select(BLOCKS).where(BLOCKS.c.id == block_id)).one()
            return BlockOut.model_validate(fresh, from_attributes=True), [self.ledger.prepare(event)]

        out: BlockOut = self.ledger.transact(org_id, work)[0]
        self._forget(org_id)
        return out

    def can_process(self, org_id: str, subject: str, purpose: str) -> bool:
        """False when a restriction or objection of `subject` covers `purpose` (or all processing).

        A cache hit is two dict lookups and a comparison; a miss reads the subject's active blocks.
        """
        return not self._blocking(org_id, subject, purpose)

    def check(self, org_id: str, subject: str, purpose: str) -> CanProcessOut:
        kinds = self._blocking(org_id, subject, purpose)
        return CanProcessOut(subject=subject, purpose=purpose, allowed=not kinds, blocked_by=list(kinds))

    def _blocking(self, org_id: str, subject: str, purpose: str) -> tuple[str, ...]:
        subjects = self._blocks.get(org_id)
        entry = subjects.get(subject) if subjects is not None else None
        if entry is None or entry[0] <= self._time():
            entry = self._load_blocks(org_id, subject)
        found = entry[1]
        if not found:
            return ()
        return tuple(sorted(set(found.get(purpose, ()) + found.get(ALL_PURPOSES, ()))))

    def _load_blocks(self, org_id: str, subject: str) -> tuple[float, dict[str, tuple[str, ...]]]:
        epoch = self._epoch
        refs = refs_of(self._key(), subject)
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(SELECT_ACTIVE_BLOCKS, {"org": org_id, "refs": list(refs)}).all()
        found: dict[str, tuple[str, ...]] = {}
        for row in rows:
            if row.kind not in found.get(row.purpose, ()):
                found[row.purpose] = (*found.get(row.purpose, ()), row.kind)
        entry = (self._time() + self.runtime.settings.rights_cache_seconds, found)
        if epoch == self._epoch:
            subjects = self._blocks.setdefault(org_id, {})
            if len(subjects) >= MAX_CACHED_SUBJECTS:
                subjects.clear()
            subjects[subject] = entry
        return entry

    def _forget(self, org_id: str) -> None:
        self._epoch += 1
        self._blocks.pop(org_id, None)

    # Reminders -------------------------------------------------------------------------------

    def remind(self, org_id: str, actor: Mapping[str, Any]) -> ReminderOut:
        """Post the due-soon and overdue requests to the webhook and e-mail them; no personal data in either."""
        with self.runtime.engine.connect() as conn:
            org = self._org(conn, org_id)
        due = self.due(org_id)
        if not due.due_soon and not due.overdue:
            return ReminderOut(due_soon=0, overdue=0, webhook=False, emails=0)

        def brief(items: list[RequestOut]) -> list[dict[str, str]]:
            return [
                {"id": r.id, "type": r.type.value, "status": r.status.value, "due_on": r.due_on.isoformat()}
                for r in items
            ]

        payload = {
            "organisation": org_id,
            "today": due.today.isoformat(),
            "overdue": brief(due.overdue),
            "due_soon": brief(due.due_soon),
        }
        if org.reminder_webhook:
            try:
                httpx.post(org.reminder_webhook, json=payload, timeout=10).raise_for_status()
            except httpx.HTTPError as exc:
                raise Problem(502, "webhook-failed", "Reminder webhook failed", str(exc)) from exc
        if org.reminder_emails:
            lines = [f"Data-subject requests of {org.name} on {due.today.isoformat()}:", ""]
            for title, items in (("Overdue", due.overdue), (f"Due within {due.within_days} days", due.due_soon)):
                lines.append(f"{title}: {len(items)}")
                lines += [f"  {r.due_on.isoformat()}  {r.type.value:<13} {r.status.value:<16} {r.id}" for r in items]
                lines.append("")
            subject = f"[Gardien] {len(due.overdue)} overdue, {len(due.due_soon)} due soon"
            self.mailer.send(list(org.reminder_emails), subject, "\n".join(lines))
        self.ledger.record(
            org_id,
            _audit(
                "rights.reminders.sent",
                "execute",
                actor,
                ("rights_settings", org_id),
                fields={
                    "overdue": len(due.overdue),
                    "due_soon": len(due.due_soon),
                    "webhook": bool(org.reminder_webhook),
                    "emails": len(org.reminder_emails),
                },
            ),
        )
        return ReminderOut(
            due_soon=len(due.due_soon),
            overdue=len(due.overdue),
            webhook=bool(org.reminder_webhook),
            emails=len(org.reminder_emails),
        )


def _identity_awaited(row: Row[Any]) -> None:
    status = Status(row.status)
    if status not in (Status.RECEIVED, Status.IDENTITY_PENDING):
        raise Conflict(f"the request is {status.value}: its identity is no longer awaited")


def _audit(action: str, crud: str, actor: Mapping[str, Any], target: tuple[str, str], **extra: Any) -> dict[str, Any]:
    return capability_event(MODULE, action, crud, actor, target, **extra)


def _executions(conn: Connection, request_ids: list[str]) -> dict[str, ExecutionOut]:
    if not request_ids:
        return {}
    rows = conn.execute(select(EXECUTIONS).where(EXECUTIONS.c.request_id.in_(request_ids))).all()
    return {row.request_id: ExecutionOut.model_validate(row, from_attributes=True) for row in rows}


def _settings_out(org: Org) -> SettingsOut:
    return SettingsOut(
        pause_for_identity=org.pause_for_identity,
        pause_for_identity_set=org.pause_set,
        due_soon_days=org.due_soon_days,
        reminder_webhook=org.reminder_webhook,
        reminder_emails=list(org.reminder_emails),
        datamap_key=org.datamap_key,
        updated_at=org.settings_updated_at,
    )


ORGANISATIONS = cast(Table, Organisation.__table__)
SELECT_ORG = (
    select(
        ORGANISATIONS.c.name,
        ORGANISATIONS.c.country,
        SETTINGS.c.pause_for_identity,
        SETTINGS.c.due_soon_days,
        SETTINGS.c.reminder_webhook,
        SETTINGS.c.reminder_emails,
        SETTINGS.c.datamap_key,
        SETTINGS.c.updated_at,
    )
    .select_from(ORGANISATIONS.outerjoin(SETTINGS, SETTINGS.c.org_id == ORGANISATIONS.c.id))
    .where(ORGANISATIONS.c.id == bindparam("org"))
)
SELECT_REQUEST = select(REQUESTS).where(REQUESTS.c.org_id == bindparam("org"), REQUESTS.c.id == bindparam("id"))
SELECT_HISTORY = (
    select(HISTORY)
    .where(HISTORY.c.org_id == bindparam("org"), HISTORY.c.request_id == bindparam("id"))
    .order_by(HISTORY.c.at, HISTORY.c.id)
)
SELECT_DUE = (
    select(REQUESTS)
    .where(
        REQUESTS.c.org_id == bindparam("org"),
        REQUESTS.c.status.in_([s.value for s in OPEN]),
        REQUESTS.c.paused_since.is_(None),
        REQUESTS.c.due_on <= bindparam("until"),
    )
    .order_by(REQUESTS.c.due_on, REQUESTS.c.id)
    .limit(bindparam("limit"))
)
SELECT_ACTIVE_BLOCKS = select(BLOCKS.c.purpose, BLOCKS.c.kind).where(
    BLOCKS.c.org_id == bindparam("org"),
    BLOCKS.c.subject_ref.in_(bindparam("refs", expanding=True)),
    BLOCKS.c.active.is_(True),
)
