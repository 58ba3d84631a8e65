"""The period report for an authority or an internal audit: real counts over a period, from each
capability's service, as JSON, HTML with inline SVG charts, or PDF (`pdf.py`).

The period is whole UTC days, `since` to `until` inclusive, at most a year and a day. Generating a
report runs a full verification of the ledger (itself recorded as `audit.verified`) and records
`registers.report.generated` with the SHA-256 of the figures handed out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import orjson
from markupsafe import Markup

from gardien.registers.charts import Series, bar_chart, share_bar
from gardien.registers.documents import render
from gardien.registers.evidence import ANSWERED, Evidence
from gardien.registers.pdf import Document
from gardien.registers.schemas import (
    ActionFigures,
    BreachFigures,
    ConsentFigures,
    DpiaEvent,
    LedgerFigures,
    MonthConsents,
    PurposeChoices,
    ReportOut,
    RequestFigures,
    RequestTypeFigures,
    RetentionFigures,
)
from gardien.registers.service import KIND_BREACH, MODULE, field_error
from gardien.rights.schemas import RequestOut, RequestType, Status

MAX_DAYS = 366
EXPORTING = frozenset({RequestType.ACCESS, RequestType.PORTABILITY})

LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Activity report",
        "colon": ": ",
        "period": "Period",
        "generated": "Generated",
        "consent": "Consent",
        "given": "Consents given",
        "withdrawn": "Consents withdrawn",
        "choices_granted": "Choices granted (per purpose)",
        "choices_denied": "Choices refused (per purpose)",
        "consent_chart": "Consents given and withdrawn per month",
        "purpose": "Purpose",
        "granted": "granted",
        "denied": "refused",
        "requests": "Data-subject requests",
        "type": "Type",
        "received": "Received",
        "answered": "Answered",
        "answered_in_time": "Answered in time",
        "share_in_time": "Share answered in time",
        "extended": "Extended",
        "overdue_now": "Overdue when the report was generated",
        "requests_chart": "Requests per type",
        "erasures": "Erasures",
        "exports": "Exports (access, portability)",
        "requests_completed": "Requests completed",
        "ledger_events": "Ledger events",
        "breaches": "Breaches",
        "recorded": "Recorded",
        "high_risk": "High risk",
        "notification_not_required": "Not requiring notification",
        "notified_in_time": "Notified within 72 hours",
        "notified_late": "Notified late",
        "not_notified_overdue": "Not notified, past 72 hours",
        "clock_running": "Clock running",
        "people_informed": "People informed (Art. 34)",
        "subjects_approx": "People concerned (approx.)",
        "retention": "Retention",
        "retention_absent": "No retention source: the retention capability is not installed or not plugged in.",
        "runs": "Runs",
        "succeeded": "Succeeded",
        "failed": "Failed",
        "records_affected": "Records purged or anonymised",
        "ledger": "Audit ledger",
        "status": "Verification",
        "size": "Events in the ledger",
        "events_checked": "Events checked",
        "checkpoints_checked": "Signed checkpoints checked",
        "first_broken_seq": "First broken sequence number",
        "dpia_events": "DPIA event log",
        "event": "Event",
        "count": "Count",
    },
    "fr": {
        "title": "Rapport d'activité",
        "colon": " : ",
        "period": "Période",
        "generated": "Édité le",
        "consent": "Consentement",
        "given": "Consentements donnés",
        "withdrawn": "Consentements retirés",
        "choices_granted": "Choix acceptés (par finalité)",
        "choices_denied": "Choix refusés (par finalité)",
        "consent_chart": "Consentements donnés et retirés par mois",
        "purpose": "Finalité",
        "granted": "acceptés",
        "denied": "refusés",
        "requests": "Demandes d'exercice des droits",
        "type": "Type",
        "received": "Reçues",
        "answered": "Traitées",
        "answered_in_time": "Traitées dans le délai",
        "share_in_time": "Part traitée dans le délai",
        "extended": "Prolongées",
        "overdue_now": "En retard à l'édition du rapport",
        "requests_chart": "Demandes par type",
        "erasures": "Effacements",
        "exports": "Exports (accès, portabilité)",
        "requests_completed": "Demandes exécutées",
        "ledger_events": "Événements du journal",
        "breaches": "Violations de données",
        "recorded": "Enregistrées",
        "high_risk": "Risque élevé",
        "notification_not_required": "Sans obligation de notification",
        "notified_in_time": "Notifiées sous 72 heures",
        "notified_late": "Notifiées en retard",
        "not_notified_overdue": "Non notifiées, au-delà de 72 heures",
        "clock_running": "Délai en cours",
        "people_informed": "Personnes informées (art. 34)",
        "subjects_approx": "Personnes concernées (environ)",
        "retention": "Conservation",
        "retention_absent": "Aucune source : la conservation n'est pas installée ou pas raccordée.",
        "runs": "Exécutions",
        "succeeded": "Réussies",
        "failed": "En échec",
        "records_affected": "Enregistrements purgés ou anonymisés",
        "ledger": "Journal d'audit",
        "status": "Vérification",
        "size": "Événements dans le journal",
        "events_checked": "Événements vérifiés",
        "checkpoints_checked": "Points de contrôle signés vérifiés",
        "first_broken_seq": "Premier numéro de séquence rompu",
        "dpia_events": "Journal des événements AIPD",
        "event": "Événement",
        "count": "Nombre",
    },
}


def period_bounds(since: date | None, until: date | None, today: date) -> tuple[date, date]:
    """The report's days, `since` to `until` inclusive; by default the year up to today."""
    last = until or today
    first = since or last - timedelta(days=MAX_DAYS - 2)
    if first > last:
        raise field_error("since", "must not be after until")
    if (last - first).days >= MAX_DAYS:
        raise field_error("since", f"at most {MAX_DAYS} days at once")
    return first, last


def _share(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _months(first: date, last: date) -> list[str]:
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _consent(
    evidence: Evidence, org_id: str, first: date, last: date, start: datetime, end: datetime
) -> ConsentFigures:
    per_purpose: dict[str, list[int]] = {}
    day = first
    while day <= last:
        stop = min(last, day + timedelta(days=MAX_DAYS - 1))
        for stat in evidence.consent.stats(org_id, day, stop).days:
            counts = per_purpose.setdefault(stat.purpose, [0, 0])
            counts[0] += stat.granted
            counts[1] += stat.denied
        day = stop + timedelta(days=1)
    monthly = {
        period.period: {c.event.value: c.count for c in period.events}
        for period in evidence.registers.dpia_events(org_id, start, end, "month").periods
    }
    by_month = [
        MonthConsents(
            month=month,
            given=monthly.get(month, {}).get(DpiaEvent.CONSENT_GRANTED.value, 0),
            withdrawn=monthly.get(month, {}).get(DpiaEvent.CONSENT_REVOKED.value, 0),
        )
        for month in _months(first, last)
    ]
    return ConsentFigures(
        given=sum(m.given for m in by_month),
        withdrawn=sum(m.withdrawn for m in by_month),
        choices_granted=sum(c[0] for c in per_purpose.values()),
        choices_denied=sum(c[1] for c in per_purpose.values()),
        by_purpose=[PurposeChoices(purpose=p, granted=c[0], denied=c[1]) for p, c in sorted(per_purpose.items())],
        by_month=by_month,
    )


def _requests(
    evidence: Evidence, requests: Sequence[RequestOut], country: str, start: datetime, end: datetime
) -> RequestFigures:
    received = [r for r in requests if start <= r.received_at < end]
    answered = [r for r in requests if r.status in ANSWERED and r.closed_at is not None and start <= r.closed_at < end]
    in_time = [r for r in answered if evidence.in_time(r, country)]
    by_type = []
    for kind in RequestType:
        done = [r for r in answered if r.type is kind]
        timely = [r for r in in_time if r.type is kind]
        by_type.append(
            RequestTypeFigures(
                type=kind.value,
                received=sum(r.type is kind for r in received),
                answered=len(done),
                answered_in_time=len(timely),
                share_in_time=_share(len(timely), len(done)),
            )
        )
    return RequestFigures(
        received=len(received),
        answered=len(answered),
        answered_in_time=len(in_time),
        share_in_time=_share(len(in_time), len(answered)),
        extended=sum(r.extended for r in received),
        overdue_now=sum(r.overdue for r in requests),
        by_type=by_type,
    )


def _completed(requests: Sequence[RequestOut], kinds: frozenset[RequestType], start: datetime, end: datetime) -> int:
    return sum(
        r.type in kinds and r.status is Status.COMPLETED and r.closed_at is not None and start <= r.closed_at < end
        for r in requests
    )


def _breaches(evidence: Evidence, org_id: str, start: datetime, end: datetime) -> BreachFigures:
    found = [b for b in evidence.registers.all_of(org_id, KIND_BREACH) if start <= b.record.aware_at < end]
    states = [b.clock.state for b in found]
    return BreachFigures(
        recorded=len(found),
        high_risk=sum(b.record.risk.value == "high" for b in found),
        notification_not_required=states.count("not_required"),
        notified_in_time=states.count("notified_in_time"),
        notified_late=states.count("notified_late"),
        not_notified_overdue=states.count("overdue"),
        clock_running=states.count("running"),
        people_informed=sum(b.record.subjects_informed_at is not None for b in found),
        subjects_approx=sum(b.record.subjects_approx or 0 for b in found),
    )


def _retention(evidence: Evidence, org_id: str, start: datetime, end: datetime) -> RetentionFigures:
    source = evidence.retention()
    if source is None:
        return RetentionFigures(available=False, runs=0, succeeded=0, failed=0, records_affected=0)
    runs = list(source.retention_runs(org_id, start, end))
    return RetentionFigures(
        available=True,
        runs=len(runs),
        succeeded=sum(r.succeeded for r in runs),
        failed=sum(not r.succeeded for r in runs),
        records_affected=sum(r.affected for r in runs),
    )


def build(evidence: Evidence, org_id: str, first: date, last: date, lang: str, actor: Mapping[str, Any]) -> ReportOut:
    """Count everything over the period, verify the ledger, and return the figures."""
    start = datetime.combine(first, time(), UTC)
    end = datetime.combine(last + timedelta(days=1), time(), UTC)
    name, country = evidence.organisation(org_id)
    requests = list(evidence.requests(org_id))
    tags = evidence.tag_counts(org_id, start, end)
    verified = evidence.registers.ledger.verify(org_id, actor=actor)
    return ReportOut(
        organisation=name,
        generated_at=evidence.now(),
        language="fr" if lang == "fr" else "en",
        since=first,
        until=last,
        consent=_consent(evidence, org_id, first, last, start, end),
        requests=_requests(evidence, requests, country, start, end),
        erasures=ActionFigures(
            requests_completed=_completed(requests, frozenset({RequestType.ERASURE}), start, end),
            ledger_events=tags[DpiaEvent.DATA_DELETION.value],
        ),
        exports=ActionFigures(
            requests_completed=_completed(requests, EXPORTING, start, end),
            ledger_events=tags[DpiaEvent.DATA_EXPORT.value],
        ),
        breaches=_breaches(evidence, org_id, start, end),
        retention=_retention(evidence, org_id, start, end),
        ledger=LedgerFigures(
            status=verified.status,
            verified_at=evidence.now(),
            size=verified.size,
            events_checked=verified.events_checked,
            checkpoints_checked=verified.checkpoints_checked,
            first_broken_seq=verified.first_broken_seq,
        ),
        dpia_events=tags,
    )


def record_generation(evidence: Evidence, org_id: str, report: ReportOut, fmt: str, actor: Mapping[str, Any]) -> None:
    """The report is evidence handed to a third party: the ledger keeps which figures went out, and when."""
    figures = orjson.dumps(report.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)
    evidence.registers.ledger.record(
        org_id,
        {
            "module": MODULE,
            "action": f"{MODULE}.report.generated",
            "crud": "read",
            "actor": dict(actor),
            "target": {"type": "register_report", "id": f"{report.since}/{report.until}"},
            "fields": {
                "since": report.since.isoformat(),
                "until": report.until.isoformat(),
                "format": fmt,
                "figures_sha256": hashlib.sha256(figures).hexdigest(),
            },
        },
    )


Chart = tuple[str, list[str], list[Series]]


def _bars(report: ReportOut) -> dict[str, Chart]:
    """The bar charts' data, drawn as SVG in the HTML and as rectangles in the PDF."""
    words = LABELS[report.language]
    requests = report.requests.by_type
    consent = report.consent.by_month
    return {
        "requests": (
            words["requests_chart"],
            [r.type for r in requests],
            [
                Series(words["received"], [r.received for r in requests], "#2b6cb0"),
                Series(words["answered_in_time"], [r.answered_in_time for r in requests], "#1f6f43"),
            ],
        ),
        "consent": (
            words["consent_chart"],
            [m.month for m in consent],
            [
                Series(words["given"], [m.given for m in consent], "#2b6cb0"),
                Series(words["withdrawn"], [m.withdrawn for m in consent], "#b7791f"),
            ],
        ),
    }


def _described(chart: Chart) -> str:
    _, categories, series = chart
    return "; ".join(
        f"{category}: " + ", ".join(f"{s.name} {s.values[i]}" for s in series) for i, category in enumerate(categories)
    )


def charts(report: ReportOut) -> dict[str, Markup]:
    """The report's charts as SVG, safe to place in the page as they are (every text is escaped)."""
    words = LABELS[report.language]
    svg = {key: Markup(bar_chart(*chart, _described(chart))) for key, chart in _bars(report).items()}
    svg["share"] = Markup(share_bar(words["share_in_time"], report.requests.share_in_time, words["answered_in_time"]))
    return svg


def html(report: ReportOut) -> str:
    return render(
        "report.html",
        {**report.model_dump(mode="json"), "words": LABELS[report.language], "charts": charts(report)},
    )


def _percent(share: float | None) -> str:
    return "—" if share is None else f"{share * 100:.1f} %"


def pdf(report: ReportOut) -> bytes:
    """The report as an A4 PDF: the same figures and bar charts as the HTML."""
    w = LABELS[report.language]
    doc = Document(
        f"{w['title']} — {report.organisation}",
        f"{w['period']}{w['colon']}{report.since} — {report.until} (UTC) · {w['generated']}{w['colon']}"
        f"{report.generated_at:%Y-%m-%d %H:%M} UTC",
    )
    bars = _bars(report)
    r = report.requests
    doc.heading(w["requests"])
    doc.pairs(
        [
            (w["received"], r.received),
            (w["answered"], r.answered),
            (w["answered_in_time"], r.answered_in_time),
            (w["share_in_time"], _percent(r.share_in_time)),
            (w["extended"], r.extended),
            (w["overdue_now"], r.overdue_now),
        ]
    )
    doc.grid(
        [w["type"], w["received"], w["answered"], w["answered_in_time"], w["share_in_time"]],
        [[t.type, t.received, t.answered, t.answered_in_time, _percent(t.share_in_time)] for t in r.by_type],
        (42, 34, 34, 36, 36),
    )
    doc.bars(*bars["requests"])
    for key in ("erasures", "exports"):
        figures: ActionFigures = getattr(report, key)
        doc.heading(w[key])
        doc.pairs([(w["requests_completed"], figures.requests_completed), (w["ledger_events"], figures.ledger_events)])
    c = report.consent
    doc.heading(w["consent"])
    doc.pairs(
        [
            (w["given"], c.given),
            (w["withdrawn"], c.withdrawn),
            (w["choices_granted"], c.choices_granted),
            (w["choices_denied"], c.choices_denied),
        ]
    )
    if c.by_purpose:
        doc.grid(
            [w["purpose"], w["granted"], w["denied"]],
            [[p.purpose, p.granted, p.denied] for p in c.by_purpose],
            (62, 60, 60),
        )
    doc.bars(*bars["consent"])
    doc.heading(w["breaches"])
    doc.pairs([(w[key], value) for key, value in report.breaches.model_dump().items()])
    doc.heading(w["retention"])
    if report.retention.available:
        doc.pairs([(w[key], value) for key, value in report.retention.model_dump().items() if key != "available"])
    else:
        doc.paragraph(w["retention_absent"])
    doc.heading(w["ledger"])
    ledger = report.ledger
    doc.pairs(
        [
            (w["status"], ledger.status),
            (w["size"], ledger.size),
            (w["events_checked"], ledger.events_checked),
            (w["checkpoints_checked"], ledger.checkpoints_checked),
            (w["first_broken_seq"], ledger.first_broken_seq),
        ]
    )
    doc.heading(w["dpia_events"])
    doc.grid([w["event"], w["count"]], [[event, count] for event, count in report.dpia_events.items()], (100, 82))
    return doc.bytes()
