"""Gathers what the generated documents state, from each capability's service — never its tables.

The registers' own entries come from `RegistersService`; consent from `ConsentService` (settings,
notice versions, daily statistics); requests from `RightsService`; consent and DPIA-tagged events
from the ledger (`Ledger.tagged` through the DPIA event log); retention, when it is plugged in,
through the `RetentionFacts` protocol (see `sources.py`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from gardien.consent.service import ConsentService
from gardien.core.service import get_org
from gardien.registers.compliance import LOOKBACK, ConsentFacts, Facts, NoticeFacts, RightsFacts, matrix
from gardien.registers.compliance import Status as StatusValue
from gardien.registers.notices import NoticeService
from gardien.registers.schemas import ComplianceOut, ComplianceRow, DpiaEvent
from gardien.registers.service import KIND_BREACH, KIND_DPIA, RegistersService
from gardien.registers.sources import RetentionFacts
from gardien.rights import deadlines
from gardien.rights.schemas import RequestOut, Status
from gardien.rights.service import RightsService

ANSWERED = frozenset({Status.COMPLETED, Status.REJECTED})
PAGE = 200


class Evidence:
    def __init__(
        self,
        registers: RegistersService,
        notices: NoticeService,
        consent: ConsentService,
        rights: RightsService,
        retention: Callable[[], RetentionFacts | None] = lambda: None,
    ) -> None:
        self.registers = registers
        self.notices = notices
        self.consent = consent
        self.rights = rights
        # Resolved at each use: the retention capability may be plugged in after the registers start.
        self.retention = retention

    def now(self) -> datetime:
        return self.registers.clock()

    def organisation(self, org_id: str) -> tuple[str, str]:
        """The organisation's name and country."""
        with Session(self.registers.runtime.engine) as session:
            org = get_org(session, org_id)
            return org.name, org.country

    # Consent ------------------------------------------------------------------------------------

    def tag_counts(self, org_id: str, since: datetime, until: datetime) -> dict[str, int]:
        """Events tagged for the DPIA log (consent given or withdrawn, exports, deletions…) in [since, until)."""
        counts = {event.value: 0 for event in DpiaEvent}
        for period in self.registers.dpia_events(org_id, since, until, "all").periods:
            for count in period.events:
                counts[count.event.value] += count.count
        return counts

    def choices(self, org_id: str, since: date, until: date) -> tuple[int, int]:
        """Choices granted and denied per non-essential purpose, days `since` to `until` inclusive."""
        granted = denied = 0
        day = since
        while day <= until:
            # The consent statistics answer at most a year at once.
            end = min(until, day + timedelta(days=365))
            for stat in self.consent.stats(org_id, day, end).days:
                granted += stat.granted
                denied += stat.denied
            day = end + timedelta(days=1)
        return granted, denied

    def consent_facts(self, org_id: str) -> ConsentFacts:
        now = self.now()
        site = self.consent.site(org_id)
        versions = self.consent.notices(org_id).notices
        notice = site.notice
        non_essential = tuple(p for p in notice.purposes if p not in notice.essential) if notice else ()
        bare = (
            tuple(p["key"] for p in notice.document["purposes"] if p["key"] in non_essential and not p.get("services"))
            if notice
            else ()
        )
        granted, denied = self.choices(org_id, (now - LOOKBACK).date(), now.date())
        tags = self.tag_counts(org_id, now - LOOKBACK, now)
        return ConsentFacts(
            notice_versions=len(versions),
            current_version=notice.version if notice else None,
            current_sha256=notice.sha256 if notice else None,
            non_essential_purposes=non_essential,
            purposes_without_services=bare,
            site_key=site.site_key is not None,
            validity_months=site.validity_months,
            allowed_origins=len(site.allowed_origins),
            granted=granted,
            denied=denied,
            given_events=tags[DpiaEvent.CONSENT_GRANTED.value],
            withdrawn_events=tags[DpiaEvent.CONSENT_REVOKED.value],
        )

    # Requests -----------------------------------------------------------------------------------

    def requests(self, org_id: str) -> Iterator[RequestOut]:
        """Every request of the organisation, newest first, identities masked."""
        cursor: str | None = None
        while True:
            page = self.rights.list_requests(org_id, cursor=cursor, limit=PAGE)
            yield from page.requests
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @staticmethod
    def in_time(request: RequestOut, country: str) -> bool:
        """Answered on or before its due day, counted in the organisation's calendar (Art. 12(3))."""
        assert request.closed_at is not None
        return deadlines.receipt_day(request.closed_at, country) <= request.due_on

    def rights_facts(self, org_id: str, requests: Sequence[RequestOut], country: str) -> RightsFacts:
        since = self.now() - LOOKBACK
        answered = [r for r in requests if r.status in ANSWERED and r.closed_at and r.closed_at >= since]
        return RightsFacts(
            received=sum(r.received_at >= since for r in requests),
            answered_in_time=sum(self.in_time(r, country) for r in answered),
            answered_late=tuple(r.id for r in answered if not self.in_time(r, country)),
            overdue=tuple(r.id for r in requests if r.overdue),
        )

    # The whole picture --------------------------------------------------------------------------

    def facts(self, org_id: str) -> Facts:
        _, country = self.organisation(org_id)
        latest = self.notices.latest(org_id)
        retention = self.retention()
        return Facts(
            now=self.now(),
            header=self.registers.settings_or_none(org_id) is not None,
            activities=self.registers.all_activities(org_id),
            processors=self.registers.all_processors(org_id),
            breaches=self.registers.all_of(org_id, KIND_BREACH),
            dpias=self.registers.all_of(org_id, KIND_DPIA),
            consent=self.consent_facts(org_id),
            rights=self.rights_facts(org_id, list(self.requests(org_id)), country),
            notice=NoticeFacts(latest.version, latest.sha256, latest.published_at) if latest else None,
            retention=list(retention.retention_policies(org_id)) if retention is not None else None,
        )


def compliance(evidence: Evidence, org_id: str, lang: str) -> ComplianceOut:
    """The compliance matrix of an organisation, computed now."""
    facts = evidence.facts(org_id)
    rows = [ComplianceRow.model_validate(row) for row in matrix(facts, lang)]
    return ComplianceOut(
        organisation=evidence.organisation(org_id)[0],
        generated_at=facts.now,
        language="fr" if lang == "fr" else "en",
        summary={status.value: sum(row.status == status.value for row in rows) for status in StatusValue},
        rows=rows,
    )
