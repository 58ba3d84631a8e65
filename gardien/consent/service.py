"""Consent records, notice versions and the fast consent check.

Every write is a piece of work run inside the ledger's transaction (`Ledger.transact`): the consent
event, the `consent_states` row of its consent id, the day's counters and the audit event commit
together or not at all. Each write comes twice, a plain method for in-process callers and an
`_async` one for the API, which awaits the ledger's group commit.

`is_allowed` answers from a per-process cache keyed by (organisation, consent id). Recording for a
subject through this process drops its entry at once. Changes made through other replicas (or the
CLI) are followed through the ledger: at most every `consent_cache_seconds`, one query reads the
targets of the consent events sealed since the last look and drops just those entries (a notice
or settings change drops the organisation's). An entry otherwise lives until its choice expires,
so a busy process re-reads only what changed, not every subject it knows.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast

import orjson
import rfc8785
from sqlalchemy import Connection, Row, Table, bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from starlette.concurrency import run_in_threadpool

from gardien.audit.sealing import PreparedEvent
from gardien.audit.service import SYSTEM_ACTOR, Ledger, capability_event
from gardien.audit.writer import BatchWork, Work
from gardien.consent import proof, rules
from gardien.consent.models import DAILY, EVENTS, NOTICES, SETTINGS, STATES
from gardien.consent.purge import user_ref
from gardien.consent.rules import GRANTED, NOT_GIVEN, Method, Status
from gardien.consent.schemas import (
    CheckOut,
    CheckState,
    ChoiceBase,
    ChoiceIn,
    DayStat,
    NoticeIn,
    NoticeList,
    NoticeOut,
    NoticeSummary,
    PublicNoticeOut,
    SettingsIn,
    SettingsOut,
    StateOut,
    StatsOut,
    UserStatesOut,
    WithdrawIn,
)
from gardien.consent.useragent import ua_class
from gardien.core.clock import utcnow
from gardien.core.db import is_sqlite
from gardien.core.errors import Conflict, InvalidInput, NotFound
from gardien.core.ids import new_id
from gardien.core.keyring import HmacKey
from gardien.core.models import Organisation
from gardien.core.runtime import Runtime

MODULE = "consent"
SITE_KEY_PREFIX = "gdn_site_"
EXPIRING_WINDOW = timedelta(days=30)
MAX_STATS_DAYS = 366
# Entries of the check cache before it starts over: about 100 MB at the most.
MAX_CACHED_SUBJECTS = 500_000
# The audit target of every change to a subject's consent: how other replicas' caches learn of it.
SUBJECT_TARGET = "consent_subject"
Events = list[PreparedEvent]
# A cached check: (valid until, on the service's time scale; purpose -> state; expiry of the choice).
CheckEntry = tuple[float, dict[str, str], datetime | None]


@dataclass(frozen=True)
class ClientContext:
    """What the HTTP request tells about the person's browser; nothing of it is kept in full."""

    ip: str | None = None
    user_agent: str | None = None
    gpc: bool = False


@dataclass(frozen=True)
class Notice:
    version: int
    sha256: str
    document: dict[str, Any]
    purposes: tuple[str, ...]
    essential: frozenset[str]
    # Google Consent Mode signal -> the purpose that grants it.
    consent_mode: dict[str, str]
    created_at: datetime
    created_by: str

    @classmethod
    def from_row(cls, row: Row[Any]) -> Notice:
        document: dict[str, Any] = orjson.loads(row.document)
        purposes = document["purposes"]
        return cls(
            version=row.version,
            sha256=row.sha256,
            document=document,
            purposes=tuple(p["key"] for p in purposes),
            essential=frozenset(p["key"] for p in purposes if p["essential"]),
            consent_mode={signal: p["key"] for p in purposes for signal in p["google_consent_mode"]},
            created_at=row.created_at,
            created_by=row.created_by,
        )


@dataclass(frozen=True)
class Site:
    """An organisation's consent settings and current notice, as this process last read them."""

    org_id: str
    site_key: str | None
    validity_months: int
    allowed_origins: tuple[str, ...]
    updated_at: datetime | None
    notice: Notice | None
    fresh_until: float

    def current_notice(self) -> Notice:
        if self.notice is None:
            raise Conflict("no notice version yet: create one with POST /api/v1/consent/notices")
        return self.notice


@dataclass(frozen=True)
class _Before:
    """What a choice is applied on: the subject's state as stored, or as an earlier choice of the group left it."""

    method: str
    notice_version: int
    expires_at: datetime
    states: str
    user_ref: str | None


@dataclass(frozen=True)
class _Applied:
    event_row: dict[str, Any]
    state_row: dict[str, Any]
    counted: dict[str, str]
    out: StateOut
    audit: dict[str, Any]
    after: _Before


@dataclass(frozen=True)
class Plan:
    """A choice checked against the notice, ready to be written."""

    consent_id: str
    method: Method
    surface: str
    notice: Notice
    current_version: int
    # None for a withdrawal: computed in the transaction from the choice it changes.
    states: dict[str, str] | None
    withdrawn: tuple[str, ...] | None
    user_id: str | None
    locale: str | None
    context: ClientContext
    actor: dict[str, Any]
    validity_months: int


@dataclass(frozen=True)
class _Pending:
    """A choice waiting for the writer's next group."""

    org_id: str
    plan: Plan


def audit_event(
    action: str, crud: str, actor: Mapping[str, Any], target: tuple[str, str], **extra: Any
) -> dict[str, Any]:
    return capability_event(MODULE, action, crud, actor, target, **extra)


def unknown_purpose(purpose: str, field: str = "purpose") -> InvalidInput:
    message = f"unknown purpose {purpose!r}: not in the current notice"
    return InvalidInput(f"{field}: {message}", [{"field": field, "message": message, "type": "consent"}])


def new_site_key() -> str:
    return SITE_KEY_PREFIX + secrets.token_urlsafe(18)


class ConsentService:
    def __init__(self, runtime: Runtime, ledger: Ledger, clock: Callable[[], datetime] | None = None) -> None:
        self.runtime = runtime
        self.ledger = ledger
        self.clock = clock or utcnow
        # The cache's time scale: seconds of the injected clock, so that tests moving it age entries too.
        self._time: Callable[[], float] = time.time if clock is None else lambda: self.clock().timestamp()
        self.cache_seconds = runtime.settings.consent_cache_seconds
        self._sqlite = is_sqlite(runtime.engine)
        self._pseudonym_key: HmacKey | None = None
        self._sites: dict[str, Site] = {}
        self._site_keys: dict[str, str] = {}
        self._notices: dict[tuple[str, int], Notice] = {}
        self._checks: dict[tuple[str, str], CheckEntry] = {}
        self._answers: dict[tuple[Any, ...], dict[str, str]] = {}
        # Bumped on every invalidation: a check that read the database before it does not cache.
        self._epoch = 0
        # Per organisation: until when the cache is known current, and the ledger size it was read at.
        self._followed_until: dict[str, float] = {}
        self._followed_size: dict[str, int] = {}
        upsert_state = self._insert(STATES).values({column.name: bindparam(f"s_{column.name}") for column in STATES.c})
        changed = ("user_ref", "states", "method", "notice_version", "given_at", "expires_at", "last_event_id")
        self._upsert_state = upsert_state.on_conflict_do_update(
            index_elements=[STATES.c.org_id, STATES.c.consent_id],
            set_={
                name: func.coalesce(upsert_state.excluded.user_ref, STATES.c.user_ref)
                if name == "user_ref"
                else upsert_state.excluded[name]
                for name in changed
            },
        )
        count = self._insert(DAILY).values(
            org_id=bindparam("org"),
            day=bindparam("day"),
            purpose=bindparam("purpose"),
            granted=bindparam("granted"),
            denied=bindparam("denied"),
        )
        self._count = count.on_conflict_do_update(
            index_elements=[DAILY.c.org_id, DAILY.c.day, DAILY.c.purpose],
            set_={
                "granted": DAILY.c.granted + count.excluded.granted,
                "denied": DAILY.c.denied + count.excluded.denied,
            },
        )

    def _insert(self, table: Table) -> Any:
        return (sqlite if self._sqlite else postgresql).insert(table)

    def _key(self) -> HmacKey:
        if self._pseudonym_key is None:
            self._pseudonym_key = next(iter(self.runtime.keyring.hmac_keys().values()))
        return self._pseudonym_key

    def pseudonym(self, user_id: str) -> tuple[str, str]:
        """(keyed pseudonym of an application's user id, id of the key).

        The keyring's oldest HMAC key, which rotation retires but never removes: a user's consent
        ids stay findable after a rotation.
        """
        key = self._key()
        return user_ref(key, user_id), key.kid

    # Settings and notices, cached ------------------------------------------------------------

    def _notice(self, conn: Connection, org_id: str, version: int) -> Notice | None:
        """A notice version; they never change, so once read they are kept."""
        notice = self._notices.get((org_id, version))
        if notice is None:
            row = conn.execute(SELECT_NOTICE, {"org": org_id, "version": version}).first()
            if row is None:
                return None
            notice = self._notices[(org_id, version)] = Notice.from_row(row)
        return notice

    def _read_site(self, conn: Connection, org_id: str) -> Site:
        settings = conn.execute(SELECT_SETTINGS, {"org": org_id}).first()
        version = conn.execute(CURRENT_VERSION, {"org": org_id}).scalar()
        site = Site(
            org_id=org_id,
            site_key=settings.site_key if settings is not None else None,
            validity_months=settings.validity_months if settings is not None else rules.DEFAULT_VALIDITY_MONTHS,
            allowed_origins=tuple(orjson.loads(settings.allowed_origins)) if settings is not None else (),
            updated_at=settings.updated_at if settings is not None else None,
            notice=self._notice(conn, org_id, version) if version is not None else None,
            fresh_until=self._time() + self.cache_seconds,
        )
        self._sites[org_id] = site
        if site.site_key is not None:
            self._site_keys[site.site_key] = org_id
        return site

    def _cached_site(self, org_id: str) -> Site | None:
        site = self._sites.get(org_id)
        return site if site is not None and site.fresh_until > self._time() else None

    def site(self, org_id: str) -> Site:
        site = self._cached_site(org_id)
        if site is None:
            with self.runtime.engine.connect() as conn:
                site = self._read_site(conn, org_id)
        return site

    async def site_async(self, org_id: str) -> Site:
        site = self._cached_site(org_id)
        return site if site is not None else await run_in_threadpool(self.site, org_id)

    def site_by_key(self, site_key: str) -> Site:
        """The organisation behind a banner's public site key; 404 when there is none."""
        org_id = self._site_keys.get(site_key)
        if org_id is not None:
            site = self.site(org_id)
            if site.site_key == site_key:
                return site
        with self.runtime.engine.connect() as conn:
            org_id = conn.execute(ORG_OF_SITE_KEY, {"key": site_key}).scalar()
            if org_id is None:
                raise NotFound("site key")
            return self._read_site(conn, org_id)

    async def site_by_key_async(self, site_key: str) -> Site:
        org_id = self._site_keys.get(site_key)
        if org_id is not None:
            site = self._cached_site(org_id)
            if site is not None and site.site_key == site_key:
                return site
        return await run_in_threadpool(self.site_by_key, site_key)

    def _forget_site(self, org_id: str) -> None:
        site = self._sites.pop(org_id, None)
        if site is not None and site.site_key is not None:
            self._site_keys.pop(site.site_key, None)
        self._forget_checks()

    def _forget_checks(self) -> None:
        self._epoch += 1
        self._checks.clear()

    def _settings_out(self, site: Site) -> SettingsOut:
        assert site.site_key is not None and site.updated_at is not None
        return SettingsOut(
            site_key=site.site_key,
            validity_months=site.validity_months,
            allowed_origins=list(site.allowed_origins),
            updated_at=site.updated_at,
        )

    def _write_settings(self, org_id: str, body: SettingsIn | None, actor: Mapping[str, Any]) -> Work:
        """Create the settings (body None: the defaults, only if there are none yet) or replace them."""

        def work(conn: Connection) -> tuple[None, Events]:
            stmt = select(SETTINGS).where(SETTINGS.c.org_id == org_id)
            before = conn.execute(stmt if self._sqlite else stmt.with_for_update()).first()
            if before is not None and body is None:
                return None, []
            after = body or SettingsIn()
            values = {
                "validity_months": after.validity_months,
                "allowed_origins": orjson.dumps(after.allowed_origins).decode(),
                "updated_at": self.clock(),
            }
            if before is None:
                site_key = new_site_key()
                conn.execute(insert(SETTINGS).values(org_id=org_id, site_key=site_key, **values))
            else:
                site_key = before.site_key
                conn.execute(update(SETTINGS).where(SETTINGS.c.org_id == org_id).values(values))
            old = (
                {"validity_months": before.validity_months, "allowed_origins": orjson.loads(before.allowed_origins)}
                if before is not None
                else None
            )
            event = audit_event(
                "consent.settings.updated",
                "create" if before is None else "update",
                actor,
                ("consent_settings", org_id),
                changes={"before": old, "after": after.model_dump(mode="json")},
                fields={"site_key": site_key},
            )
            return None, [self.ledger.prepare(event)]

        return work

    def get_settings(self, org_id: str, actor: Mapping[str, Any] = SYSTEM_ACTOR) -> SettingsOut:
        """The settings; the first read creates them with the defaults and a new site key."""
        site = self.site(org_id)
        if site.site_key is None:
            self._run_sync(org_id, self._write_settings(org_id, None, actor))
            self._forget_site(org_id)
            site = self.site(org_id)
        return self._settings_out(site)

    def put_settings(self, org_id: str, body: SettingsIn, actor: Mapping[str, Any]) -> SettingsOut:
        self._run_sync(org_id, self._write_settings(org_id, body, actor))
        self._forget_site(org_id)
        return self._settings_out(self.site(org_id))

    async def put_settings_async(self, org_id: str, body: SettingsIn, actor: Mapping[str, Any]) -> SettingsOut:
        await self._run(org_id, self._write_settings(org_id, body, actor))
        self._forget_site(org_id)
        return self._settings_out(await run_in_threadpool(self.site, org_id))

    def _create_notice(self, org_id: str, body: NoticeIn, actor: Mapping[str, Any]) -> Work:
        document = body.model_dump(mode="json")
        canonical: bytes = rfc8785.dumps(document)
        digest = hashlib.sha256(canonical).hexdigest()

        def work(conn: Connection) -> tuple[int, Events]:
            same = conn.execute(VERSION_OF_SHA, {"org": org_id, "sha": digest}).scalar()
            if same is not None:
                raise Conflict(f"this notice is already version {same}; a new version must differ")
            version = (conn.execute(CURRENT_VERSION, {"org": org_id}).scalar() or 0) + 1
            conn.execute(
                insert(NOTICES).values(
                    org_id=org_id,
                    version=version,
                    sha256=digest,
                    document=canonical.decode(),
                    created_at=self.clock(),
                    created_by=str(actor.get("id", "")),
                )
            )
            event = audit_event(
                "consent.notice.created",
                "create",
                actor,
                ("consent_notice", str(version)),
                fields={"version": version, "sha256": digest, "purposes": [p.key for p in body.purposes]},
            )
            return version, [self.ledger.prepare(event)]

        return work

    def create_notice(self, org_id: str, body: NoticeIn, actor: Mapping[str, Any]) -> NoticeOut:
        version: int = self._run_sync(org_id, self._create_notice(org_id, body, actor))
        self._forget_site(org_id)
        return self.notice(org_id, version)

    async def create_notice_async(self, org_id: str, body: NoticeIn, actor: Mapping[str, Any]) -> NoticeOut:
        version: int = await self._run(org_id, self._create_notice(org_id, body, actor))
        self._forget_site(org_id)
        return await run_in_threadpool(self.notice, org_id, version)

    def notice(self, org_id: str, version: int) -> NoticeOut:
        with self.runtime.engine.connect() as conn:
            notice = self._notice(conn, org_id, version)
        if notice is None:
            raise NotFound(f"notice version {version}")
        return NoticeOut(
            **self._summary(notice, self.site(org_id)).model_dump(), notice=NoticeIn.model_validate(notice.document)
        )

    @staticmethod
    def _summary(notice: Notice, site: Site) -> NoticeSummary:
        current = site.notice is not None and site.notice.version == notice.version
        return NoticeSummary(
            version=notice.version,
            sha256=notice.sha256,
            created_at=notice.created_at,
            created_by=notice.created_by,
            current=current,
        )

    def notices(self, org_id: str) -> NoticeList:
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(
                select(NOTICES.c.version).where(NOTICES.c.org_id == org_id).order_by(NOTICES.c.version)
            ).scalars()
            notices = [self._notice(conn, org_id, version) for version in rows]
        site = self.site(org_id)
        return NoticeList(notices=[self._summary(n, site) for n in notices if n is not None])

    def public_notice(self, site: Site) -> PublicNoticeOut:
        if site.notice is None:
            raise NotFound("a published notice")
        return PublicNoticeOut(
            version=site.notice.version,
            sha256=site.notice.sha256,
            validity_months=site.validity_months,
            notice=NoticeIn.model_validate(site.notice.document),
        )

    # Recording -------------------------------------------------------------------------------

    def _plan(self, site: Site, body: ChoiceBase, actor: Mapping[str, Any], context: ClientContext) -> Plan:
        """Check a choice against the notice it was made under; nothing is written yet."""
        current = site.current_notice()
        notice = current
        if isinstance(body, ChoiceIn) and body.notice_version is not None:
            notice = self._notice_for(site, body.notice_version, "notice_version")
        sha = getattr(body, "notice_sha256", None)
        if sha is not None and sha != notice.sha256:
            notice = self._notice_for(site, sha, "notice_sha256")
            if isinstance(body, ChoiceIn) and body.notice_version is not None:
                raise _field_error("notice_sha256", "does not match notice_version")
        if notice.version != current.version:
            raise Conflict(
                f"notice version {notice.version} is no longer the current one ({current.version}): "
                "show the current notice and ask again"
            )
        method = Method(body.method)
        if method is Method.GPC and not context.gpc:
            raise _field_error("method", "gpc needs the browser's Sec-GPC: 1 header")
        states = rules.choose(method, notice.purposes, notice.essential, body.states)
        consent_id = str(body.consent_id) if body.consent_id is not None else str(uuid.uuid4())
        return Plan(
            consent_id=consent_id,
            method=method,
            surface=body.surface,
            notice=notice,
            current_version=current.version,
            states=states,
            withdrawn=None,
            user_id=body.user_id if isinstance(body, ChoiceIn) else None,
            locale=body.locale,
            context=context,
            actor=dict(actor),
            validity_months=site.validity_months,
        )

    def _notice_for(self, site: Site, ref: int | str, field: str) -> Notice:
        """The notice a choice names by version or hash; 422 when the organisation has no such notice."""
        with self.runtime.engine.connect() as conn:
            if isinstance(ref, str):
                version = conn.execute(VERSION_OF_SHA, {"org": site.org_id, "sha": ref}).scalar()
                notice = self._notice(conn, site.org_id, version) if version is not None else None
            else:
                notice = self._notice(conn, site.org_id, ref)
            if notice is not None and (site.notice is None or notice.version > site.notice.version):
                site = self._read_site(conn, site.org_id)  # created through another replica
        if notice is None:
            raise _field_error(field, "no notice version of this organisation has it")
        return notice

    def _record(self, org_id: str, plan: Plan) -> BatchWork:
        """The choice as ledger work, which the writer batches with its neighbours."""
        return BatchWork(self._record_many, _Pending(org_id, plan))

    def _record_many(self, conn: Connection, items: list[_Pending]) -> list[tuple[StateOut, list[PreparedEvent]]]:
        """Choices of a whole writer group, in arrival order: event, state, counters and audit event each.

        One read of the group's current states (locked on PostgreSQL), the choices applied in order
        on what was read, so that a subject's second choice in the group sees its first, then one
        multi-row insert of the events, one upsert of the last state of each consent id and one of
        the day's counters.
        """
        now = self.clock()
        current = self._locked_states(conn, items)
        events: list[dict[str, Any]] = []
        states: dict[tuple[str, str], dict[str, Any]] = {}
        daily: dict[tuple[str, date, str], list[int]] = {}
        answers: list[tuple[StateOut, list[PreparedEvent]]] = []
        day = now.astimezone(UTC).date()
        for item in items:
            key = (item.org_id, item.plan.consent_id)
            applied = self._apply(item.org_id, item.plan, current.get(key), now)
            current[key] = applied.after
            events.append(applied.event_row)
            states[key] = applied.state_row
            for purpose, state in applied.counted.items():
                totals = daily.setdefault((item.org_id, day, purpose), [0, 0])
                totals[0] += state == GRANTED
                totals[1] += state == rules.DENIED
            answers.append((applied.out, [self.ledger.prepare(applied.audit)]))
        conn.execute(INSERT_EVENT, events)
        conn.execute(self._upsert_state, list(states.values()))
        if daily:
            rows = [
                {"org": org, "day": when, "purpose": purpose, "granted": granted, "denied": denied}
                for (org, when, purpose), (granted, denied) in daily.items()
            ]
            conn.execute(self._count, rows)
        return answers

    def _locked_states(self, conn: Connection, items: list[_Pending]) -> dict[tuple[str, str], _Before]:
        """The current states of the group's consent ids, rows locked in id order on PostgreSQL."""
        by_org: dict[str, set[str]] = {}
        for item in items:
            by_org.setdefault(item.org_id, set()).add(item.plan.consent_id)
        found: dict[tuple[str, str], _Before] = {}
        stmt = SELECT_GROUP_STATES if self._sqlite else SELECT_GROUP_STATES_FOR_UPDATE
        for org_id, ids in by_org.items():
            for row in conn.execute(stmt, {"org": org_id, "cids": sorted(ids)}):
                found[(org_id, row.consent_id)] = _Before(
                    row.method, row.notice_version, row.expires_at, row.states, row.user_ref
                )
        return found

    def _apply(self, org_id: str, plan: Plan, before: _Before | None, now: datetime) -> _Applied:
        """One choice on the subject's state before it: the rows to write, the answer and the audit event."""
        if before is None and plan.method is Method.WITHDRAW:
            raise NotFound(f"consent id {plan.consent_id}")
        previous = None
        if before is not None:
            status = rules.status_of(before.method, before.notice_version, before.expires_at, plan.current_version, now)
            previous = orjson.loads(before.states) if status is Status.VALID else None
        notice = plan.notice
        if plan.states is not None:
            states = plan.states
            granted = rules.granted_non_essential(states, notice.essential)
            counted = {k: s for k, s in states.items() if k not in notice.essential and s != rules.NOT_PRESENTED}
        else:
            states = rules.withdraw(notice.purposes, notice.essential, previous, plan.withdrawn)
            granted = []
            named = plan.withdrawn or [k for k in notice.purposes if k not in notice.essential]
            counted = {k: rules.DENIED for k in named}
        revoked = rules.revoked(states, previous)
        user_ref, kid = self.pseudonym(plan.user_id) if plan.user_id is not None else (None, None)
        if user_ref is None and before is not None and before.user_ref is not None:
            user_ref, kid = before.user_ref, self._key().kid
        event_id = new_id()
        expires_at = rules.expiry_of(now, plan.validity_months)
        states_json = orjson.dumps(states).decode()
        event_row = {
            "e_id": event_id,
            "e_org_id": org_id,
            "e_consent_id": plan.consent_id,
            "e_user_ref": user_ref,
            "e_hmac_kid": kid,
            "e_states": states_json,
            "e_method": plan.method.value,
            "e_surface": plan.surface,
            "e_notice_version": notice.version,
            "e_notice_sha256": notice.sha256,
            "e_locale": plan.locale,
            "e_occurred_at": now,
            "e_expires_at": expires_at,
            "e_ip_truncated": rules.truncate_ip(plan.context.ip),
            "e_ua_class": ua_class(plan.context.user_agent) if plan.context.user_agent is not None else None,
        }
        state_row = {
            "s_org_id": org_id,
            "s_consent_id": plan.consent_id,
            "s_user_ref": user_ref,
            "s_states": states_json,
            "s_method": plan.method.value,
            "s_notice_version": notice.version,
            "s_given_at": now,
            "s_expires_at": expires_at,
            "s_last_event_id": event_id,
        }
        fields: dict[str, Any] = {
            "consent_event_id": event_id,
            "method": plan.method.value,
            "surface": plan.surface,
            "states": states,
            "notice_version": notice.version,
            "notice_sha256": notice.sha256,
            "expires_at": expires_at.isoformat(),
        }
        if user_ref is not None:
            fields["user_ref"] = user_ref
        if revoked:
            fields["revoked"] = revoked
        dpia = rules.dpia_event(granted, revoked)
        if dpia is not None:
            fields["dpia_event"] = dpia
        action = "consent.withdrawn" if plan.method is Method.WITHDRAW else "consent.recorded"
        audit = audit_event(
            action, "create", plan.actor, (SUBJECT_TARGET, plan.consent_id), legal_basis="consent", fields=fields
        )
        out = StateOut(
            consent_id=plan.consent_id,
            status=Status.VALID,
            method=plan.method.value,
            surface=plan.surface,
            states=states,
            consent_mode=consent_mode(notice, states, valid=True),
            given_at=now,
            expires_at=expires_at,
            notice_version=notice.version,
            notice_sha256=notice.sha256,
            last_event_id=event_id,
        )
        after = _Before(plan.method.value, notice.version, expires_at, states_json, user_ref)
        return _Applied(event_row, state_row, counted, out, audit, after)

    def record(
        self,
        org_id: str,
        body: ChoiceBase,
        actor: Mapping[str, Any],
        context: ClientContext | None = None,
    ) -> StateOut:
        """Record a choice (ChoiceIn from a server, PublicChoiceIn from the banner) and return the state."""
        plan = self._plan(self.site(org_id), body, actor, context or ClientContext())
        out: StateOut = self._run_sync(org_id, self._record(org_id, plan))
        self._forget(org_id, plan.consent_id)
        return out

    async def record_async(
        self,
        org_id: str,
        body: ChoiceBase,
        actor: Mapping[str, Any],
        context: ClientContext | None = None,
    ) -> StateOut:
        site = await self.site_async(org_id)
        context = context or ClientContext()
        if _names_a_notice(body, site):
            plan = self._plan(site, body, actor, context)
        else:
            plan = await run_in_threadpool(self._plan, site, body, actor, context)
        out: StateOut = await self._run(org_id, self._record(org_id, plan))
        self._forget(org_id, plan.consent_id)
        return out

    def _withdrawal(self, org_id: str, consent_id: str, body: WithdrawIn, actor: Mapping[str, Any]) -> Plan:
        site = self.site(org_id)
        notice = site.current_notice()
        named = tuple(body.purposes) if body.purposes is not None else None
        rules.withdraw(notice.purposes, notice.essential, None, named)  # 422 before any transaction
        return Plan(
            consent_id=consent_id,
            method=Method.WITHDRAW,
            surface="api",
            notice=notice,
            current_version=notice.version,
            states=None,
            withdrawn=named,
            user_id=None,
            locale=None,
            context=ClientContext(),
            actor=dict(actor),
            validity_months=site.validity_months,
        )

    def withdraw(self, org_id: str, consent_id: str, body: WithdrawIn, actor: Mapping[str, Any]) -> StateOut:
        plan = self._withdrawal(org_id, consent_id, body, actor)
        out: StateOut = self._run_sync(org_id, self._record(org_id, plan))
        self._forget(org_id, consent_id)
        return out

    async def withdraw_async(
        self, org_id: str, consent_id: str, body: WithdrawIn, actor: Mapping[str, Any]
    ) -> StateOut:
        plan = await run_in_threadpool(self._withdrawal, org_id, consent_id, body, actor)
        out: StateOut = await self._run(org_id, self._record(org_id, plan))
        self._forget(org_id, consent_id)
        return out

    def _expire_batch(self, org_id: str, limit: int, actor: Mapping[str, Any]) -> Work:
        def work(conn: Connection) -> tuple[int, Events]:
            now = self.clock()
            stmt = (
                select(STATES)
                .where(STATES.c.org_id == org_id, STATES.c.expires_at <= now, STATES.c.method != Method.EXPIRY.value)
                .order_by(STATES.c.expires_at)
                .limit(limit)
            )
            rows = conn.execute(stmt if self._sqlite else stmt.with_for_update(skip_locked=True)).all()
            events: list[PreparedEvent] = []
            for row in rows:
                notice = self._notice(conn, org_id, row.notice_version)
                assert notice is not None  # a state always names a notice version that exists
                event_id = new_id()
                params: dict[str, Any] = {f"e_{c.name}": None for c in EVENTS.c}
                params.update(
                    e_id=event_id,
                    e_org_id=org_id,
                    e_consent_id=row.consent_id,
                    e_user_ref=row.user_ref,
                    e_hmac_kid=self._key().kid if row.user_ref is not None else None,
                    e_states=row.states,
                    e_method=Method.EXPIRY.value,
                    e_surface="api",
                    e_notice_version=row.notice_version,
                    e_notice_sha256=notice.sha256,
                    e_occurred_at=now,
                    e_expires_at=row.expires_at,
                )
                conn.execute(INSERT_EVENT, params)
                conn.execute(
                    update(STATES)
                    .where(STATES.c.org_id == org_id, STATES.c.consent_id == row.consent_id)
                    .values(method=Method.EXPIRY.value, last_event_id=event_id)
                )
                events.append(
                    self.ledger.prepare(
                        audit_event(
                            "consent.expired",
                            "update",
                            actor,
                            (SUBJECT_TARGET, row.consent_id),
                            legal_basis="consent",
                            fields={
                                "consent_event_id": event_id,
                                "method": Method.EXPIRY.value,
                                "expired_at": row.expires_at.isoformat(),
                                "notice_version": row.notice_version,
                            },
                        )
                    )
                )
            return len(rows), events

        return work

    def expire(self, org_id: str, *, batch: int = 500, actor: Mapping[str, Any] = SYSTEM_ACTOR) -> int:
        """Record an expiry event for every choice whose time has passed; running it again finds none."""
        total = 0
        while True:
            done: int = self._run_sync(org_id, self._expire_batch(org_id, batch, actor))
            total += done
            if done < batch:
                break
        if total:
            self._forget_checks()
        return total

    # Reading states --------------------------------------------------------------------------

    def _state_out(self, conn: Connection, site: Site, row: Row[Any]) -> StateOut:
        now = self.clock()
        current = site.notice.version if site.notice is not None else 0
        status = rules.status_of(row.method, row.notice_version, row.expires_at, current, now)
        notice = self._notice(conn, site.org_id, row.notice_version)
        assert notice is not None
        states = orjson.loads(row.states)
        return StateOut(
            consent_id=row.consent_id,
            status=status,
            method=row.method,
            surface=row.surface,
            states=states,
            consent_mode=consent_mode(site.notice or notice, states, valid=status is Status.VALID),
            given_at=row.given_at,
            expires_at=row.expires_at,
            notice_version=row.notice_version,
            notice_sha256=notice.sha256,
            last_event_id=row.last_event_id,
        )

    def state(self, org_id: str, consent_id: str) -> StateOut:
        site = self.site(org_id)
        with self.runtime.engine.connect() as conn:
            row = conn.execute(SELECT_STATE_OUT, {"org": org_id, "cid": consent_id}).first()
            if row is None:
                raise NotFound(f"consent id {consent_id}")
            return self._state_out(conn, site, row)

    def user_states(self, org_id: str, user_id: str) -> UserStatesOut:
        site = self.site(org_id)
        user_ref = self.pseudonym(user_id)[0]
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(SELECT_USER_STATES, {"org": org_id, "user_ref": user_ref}).all()
            if not rows:
                raise NotFound("consent ids of that user")
            return UserStatesOut(consent_ids=[self._state_out(conn, site, row) for row in rows])

    # The fast check --------------------------------------------------------------------------

    def is_allowed(self, org_id: str, subject: str, purpose: str) -> bool:
        """Whether `purpose` may run for consent id `subject` now. Unknown purpose: 422 (InvalidInput).

        A cache hit is two dict lookups and three comparisons; a miss reads one row.
        """
        moment = self._time()
        if self._followed_until.get(org_id, 0.0) <= moment:
            self._follow(org_id)
        entry = self._checks.get((org_id, subject))
        if entry is None or entry[0] <= moment:
            entry = self._load_check(org_id, subject)
        state = entry[1].get(purpose)
        if state is None:
            raise unknown_purpose(purpose)
        return state == GRANTED

    def check(self, org_id: str, subject: str, purpose: str, field: str = "purpose") -> CheckOut:
        """is_allowed with the purpose's state and the choice's expiry, from the same cache."""
        moment = self._time()
        if self._followed_until.get(org_id, 0.0) <= moment:
            self._follow(org_id)
        entry = self._checks.get((org_id, subject))
        if entry is None or entry[0] <= moment:
            entry = self._load_check(org_id, subject)
        state = entry[1].get(purpose)
        if state is None:
            raise unknown_purpose(purpose, field)
        return CheckOut(
            subject=subject,
            purpose=purpose,
            allowed=state == GRANTED,
            state=cast(CheckState, state),
            expires_at=entry[2],
        )

    def _load_check(self, org_id: str, subject: str) -> CheckEntry:
        epoch = self._epoch
        with self.runtime.engine.connect() as conn:
            row = conn.execute(SELECT_CHECK, {"org": org_id, "cid": subject}).first()
            site = self._cached_site(org_id)
            if site is None or (row is not None and (site.notice is None or site.notice.version != row.current)):
                site = self._read_site(conn, org_id)
        now = self.clock()
        moment = self._time()
        purposes = site.notice.purposes if site.notice is not None else ()
        valid_until = math.inf  # until the choice expires; changes elsewhere arrive through _follow
        expires_at = None
        states: Mapping[str, str] | None = None
        if row is not None and site.notice is not None:
            status = rules.status_of(row.method, row.notice_version, row.expires_at, site.notice.version, now)
            if status is Status.VALID:
                states = orjson.loads(row.states)
                expires_at = row.expires_at
                valid_until = min(valid_until, moment + (row.expires_at - now).total_seconds())
        key = (org_id, site.notice.version if site.notice else 0, *((states or {}).items() or ()))
        answers = self._answers.get(key)
        if answers is None:
            answers = {p: (states.get(p, rules.NOT_PRESENTED) if states is not None else NOT_GIVEN) for p in purposes}
            if len(self._answers) > 10_000:
                self._answers.clear()
            self._answers[key] = answers
        entry: CheckEntry = (valid_until, answers, expires_at)
        if epoch == self._epoch:
            if len(self._checks) >= MAX_CACHED_SUBJECTS:
                self._checks.clear()
            self._checks[(org_id, subject)] = entry
        return entry

    def _follow(self, org_id: str) -> None:
        """Drop the entries that changes sealed since the last look made stale; look again later."""
        size, targets = self.ledger.changes_since(org_id, self._followed_size.get(org_id), "consent")
        if targets:
            self._epoch += 1
            if any(target_type != SUBJECT_TARGET for target_type, _ in targets):
                self._forget_site(org_id)  # a notice version or the settings changed elsewhere
            else:
                for _, subject in targets:
                    self._checks.pop((org_id, subject), None)
        self._followed_size[org_id] = size
        self._followed_until[org_id] = self._time() + self.cache_seconds

    def _forget(self, org_id: str, consent_id: str) -> None:
        self._epoch += 1
        self._checks.pop((org_id, consent_id), None)

    # Proof and statistics --------------------------------------------------------------------

    def proof(self, org_id: str, consent_id: str, fmt: str) -> dict[str, Any]:
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(SELECT_EVENTS_OF, {"org": org_id, "cid": consent_id}).all()
            if not rows:
                raise NotFound(f"consent id {consent_id}")
            notices = {}
            for version in sorted({row.notice_version for row in rows}):
                notice = self._notice(conn, org_id, version)
                assert notice is not None
                notices[version] = notice
            organisation = conn.execute(ORG_NAME, {"org": org_id}).one()
        site = self.site(org_id)
        state = self.state(org_id, consent_id)
        events = [proof.event_of(row) for row in rows]
        record = proof.Record(
            org_id=org_id,
            organisation=organisation.name,
            country=organisation.country,
            consent_id=consent_id,
            generated_at=self.clock(),
            validity_months=site.validity_months,
            state=state.model_dump(mode="json"),
            events=events,
            notices={v: proof.NoticeDoc(n.version, n.sha256, n.created_at, n.document) for v, n in notices.items()},
        )
        return proof.FORMATS[fmt](record)

    def stats(self, org_id: str, since: date | None, until: date | None) -> StatsOut:
        now = self.clock()
        until = until or now.date()
        # The 30 days up to `until`, clipped at the first representable day.
        since = since or max(until, date.min + timedelta(days=29)) - timedelta(days=29)
        if since > until:
            raise _field_error("since", "must not be after until")
        if (until - since).days >= MAX_STATS_DAYS:
            raise _field_error("since", f"at most {MAX_STATS_DAYS} days at once")
        site = self.site(org_id)
        with self.runtime.engine.connect() as conn:
            rows = conn.execute(SELECT_DAILY, {"org": org_id, "since": since, "until": until}).all()
            expiring = conn.execute(
                COUNT_EXPIRING,
                {
                    "org": org_id,
                    "now": now,
                    "end": now + EXPIRING_WINDOW,
                    "version": site.notice.version if site.notice is not None else 0,
                },
            ).scalar_one()
        return StatsOut(
            since=since,
            until=until,
            days=[
                DayStat(
                    day=row.day,
                    purpose=row.purpose,
                    granted=row.granted,
                    denied=row.denied,
                    rate=round(row.granted / (row.granted + row.denied), 4) if row.granted + row.denied else 0.0,
                )
                for row in rows
            ],
            expiring_next_30_days=int(expiring),
        )

    # Running the work: in-process (sync) and for the API (async) -----------------------------

    def _run_sync(self, org_id: str, work: Work) -> Any:
        return self.ledger.transact(org_id, work)[0]

    async def _run(self, org_id: str, work: Work) -> Any:
        return (await self.ledger.transact_async(org_id, work))[0]


def consent_mode(notice: Notice, states: Mapping[str, str], *, valid: bool) -> dict[str, str]:
    """Google Consent Mode v2 signals: granted where the purpose mapped to it is granted and the choice counts."""
    return {
        signal: "granted" if valid and states.get(purpose) == GRANTED else "denied"
        for signal, purpose in sorted(notice.consent_mode.items())
    }


def _names_a_notice(body: ChoiceBase, site: Site) -> bool:
    """Whether the choice can be checked from the cached notice alone, without reading the database."""
    if site.notice is None:
        return True  # the answer is a 409, no read needed
    if isinstance(body, ChoiceIn) and body.notice_version is not None and body.notice_version != site.notice.version:
        return False
    sha = getattr(body, "notice_sha256", None)
    return sha is None or sha == site.notice.sha256


def _field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", [{"field": field, "message": message, "type": "consent"}])


ORGANISATIONS = cast(Table, Organisation.__table__)
SELECT_SETTINGS = select(SETTINGS).where(SETTINGS.c.org_id == bindparam("org"))
ORG_OF_SITE_KEY = select(SETTINGS.c.org_id).where(SETTINGS.c.site_key == bindparam("key"))
CURRENT_VERSION = select(func.max(NOTICES.c.version)).where(NOTICES.c.org_id == bindparam("org"))
SELECT_NOTICE = select(NOTICES).where(NOTICES.c.org_id == bindparam("org"), NOTICES.c.version == bindparam("version"))
VERSION_OF_SHA = select(NOTICES.c.version).where(
    NOTICES.c.org_id == bindparam("org"), NOTICES.c.sha256 == bindparam("sha")
)
SELECT_GROUP_STATES = (
    select(STATES)
    .where(STATES.c.org_id == bindparam("org"), STATES.c.consent_id.in_(bindparam("cids", expanding=True)))
    .order_by(STATES.c.consent_id)
)
SELECT_GROUP_STATES_FOR_UPDATE = SELECT_GROUP_STATES.with_for_update()
SELECT_CHECK = select(
    STATES.c.states,
    STATES.c.method,
    STATES.c.notice_version,
    STATES.c.expires_at,
    CURRENT_VERSION.scalar_subquery().label("current"),
).where(STATES.c.org_id == bindparam("org"), STATES.c.consent_id == bindparam("cid"))
# A state with the surface of its last event, which the state table does not repeat.
_STATE_COLUMNS = (*STATES.c, EVENTS.c.surface)
SELECT_STATE_OUT = (
    select(*_STATE_COLUMNS)
    .join_from(STATES, EVENTS, EVENTS.c.id == STATES.c.last_event_id)
    .where(STATES.c.org_id == bindparam("org"), STATES.c.consent_id == bindparam("cid"))
)
SELECT_USER_STATES = (
    select(*_STATE_COLUMNS)
    .join_from(STATES, EVENTS, EVENTS.c.id == STATES.c.last_event_id)
    .where(STATES.c.org_id == bindparam("org"), STATES.c.user_ref == bindparam("user_ref"))
    .order_by(STATES.c.given_at)
)
INSERT_EVENT = insert(EVENTS).values({column.name: bindparam(f"e_{column.name}") for column in EVENTS.c})
SELECT_EVENTS_OF = (
    select(EVENTS)
    .where(EVENTS.c.org_id == bindparam("org"), EVENTS.c.consent_id == bindparam("cid"))
    .order_by(EVENTS.c.occurred_at, EVENTS.c.id)
)
SELECT_DAILY = (
    select(DAILY.c.day, DAILY.c.purpose, DAILY.c.granted, DAILY.c.denied)
    .where(DAILY.c.org_id == bindparam("org"), DAILY.c.day >= bindparam("since"), DAILY.c.day <= bindparam("until"))
    .order_by(DAILY.c.day, DAILY.c.purpose)
)
COUNT_EXPIRING = select(func.count()).where(
    STATES.c.org_id == bindparam("org"),
    STATES.c.expires_at > bindparam("now"),
    STATES.c.expires_at <= bindparam("end"),
    STATES.c.method != Method.EXPIRY.value,
    STATES.c.notice_version == bindparam("version"),
)

ORG_NAME = select(ORGANISATIONS.c.name, ORGANISATIONS.c.country).where(ORGANISATIONS.c.id == bindparam("org"))
