"""Routes of the registers. Parse, authorise, call the RegistersService, shape the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse

from gardien.core.auth import require
from gardien.core.roles import Role
from gardien.core.service import Principal
from gardien.registers import documents, exports, pia, report
from gardien.registers.evidence import Evidence, compliance
from gardien.registers.notices import NoticeService, notice_out, notice_page
from gardien.registers.schemas import (
    ActivityIn,
    ActivityOut,
    AlertList,
    BreachIn,
    BreachOut,
    ComplianceOut,
    DpiaEventSummary,
    DpiaIn,
    DpiaOut,
    Moment,
    NoticeOut,
    NoticeVersionList,
    NoticeVersionSummary,
    NotificationIn,
    Page,
    ProcessorIn,
    ProcessorOut,
    PublicationOut,
    ReportDay,
    ReportOut,
    SettingsIn,
    SettingsOut,
)
from gardien.registers.service import KIND_ACTIVITY, KIND_DPIA, KIND_PROCESSOR, RegistersService, field_error

ADMIN, DPO, AUDITOR, OPERATOR = Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR
WRITERS = frozenset({ADMIN, DPO})
# Operators run the systems the registers describe and are often the ones who detect a breach.
READERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
# DPIAs and the exported register are compliance documents, not operational ones.
COMPLIANCE_READERS = frozenset({ADMIN, DPO, AUDITOR})
MAX_SPAN = {"day": timedelta(days=366), "month": timedelta(days=3660), "all": timedelta(days=3660)}

EntryId = Annotated[str, PathParam(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$")]
Cursor = Annotated[
    str | None,
    Query(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$", description="next_cursor of the previous page"),
]
Limit = Annotated[int, Query(ge=1, le=200)]

Language = Literal["fr", "nl", "en", "de"]
# A public page's organisation: its slug, or the consent banner's public site key.
PublicRef = Annotated[str, PathParam(min_length=1, max_length=80, pattern=r"^[0-9A-Za-z_-]+$")]
NoticeVersionNumber = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
# The public page is a document, not an application: nothing but its own inline style may load.
PUBLIC_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "public, max-age=300",
}

router = APIRouter(prefix="/api/v1/registers", tags=["registers"])
public_router = APIRouter(tags=["public pages"])


def service_of(request: Request) -> RegistersService:
    service: RegistersService = request.app.state.registers
    return service


def notices_of(request: Request) -> NoticeService:
    service: NoticeService = request.app.state.notices
    return service


def evidence_of(request: Request) -> Evidence:
    service: Evidence = request.app.state.evidence
    return service


def _requires(roles: frozenset[Role]) -> Any:
    return Depends(require(roles))


# Header ------------------------------------------------------------------------------------------


@router.get("/settings", response_model=SettingsOut, summary="The register's header: controller, DPO, authority")
def get_settings(request: Request, principal: Principal = _requires(READERS)) -> SettingsOut:
    return service_of(request).settings(principal.org_id)


@router.put("/settings", response_model=SettingsOut, summary="Replace the register's header")
async def put_settings(body: SettingsIn, request: Request, principal: Principal = _requires(WRITERS)) -> SettingsOut:
    return await service_of(request).put_settings(principal.org_id, body, principal.as_actor())


# Processing activities ---------------------------------------------------------------------------


@router.get("/activities", response_model=Page[ActivityOut], summary="Processing activities (Art. 30)")
def list_activities(
    request: Request,
    cursor: Cursor = None,
    limit: Limit = 50,
    role: Literal["controller", "processor"] | None = None,
    principal: Principal = _requires(READERS),
) -> Page[ActivityOut]:
    return service_of(request).activities(principal.org_id, cursor, limit, role)


@router.post("/activities", status_code=201, response_model=ActivityOut, summary="Record a processing activity")
async def create_activity(
    request: Request, body: Annotated[ActivityIn, Body()], principal: Principal = _requires(WRITERS)
) -> ActivityOut:
    return await service_of(request).create(principal.org_id, KIND_ACTIVITY, body, principal.as_actor())


@router.get(
    "/activities/export",
    summary="The record of processing activities: JSON, CSV, XLSX (CNIL template columns) or printable HTML",
    responses={200: {"content": {media: {} for media in exports.MEDIA_TYPES.values()}}},
)
def export_activities(
    request: Request,
    format: exports.ExportFormat = "xlsx",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> Response:
    service = service_of(request)
    now = datetime.now(UTC)
    content = exports.export(
        service.all_activities(principal.org_id), service.settings_or_none(principal.org_id), format, now
    )
    filename = f"registre-{now:%Y%m%d}.{format}"
    disposition = "inline" if format == "html" else f'attachment; filename="{filename}"'
    return Response(content, media_type=exports.MEDIA_TYPES[format], headers={"Content-Disposition": disposition})


@router.get("/activities/{entry_id}", response_model=ActivityOut, summary="One processing activity")
def get_activity(entry_id: EntryId, request: Request, principal: Principal = _requires(READERS)) -> ActivityOut:
    return service_of(request).get(principal.org_id, KIND_ACTIVITY, entry_id)


@router.put("/activities/{entry_id}", response_model=ActivityOut, summary="Replace a processing activity")
async def put_activity(
    entry_id: EntryId, request: Request, body: Annotated[ActivityIn, Body()], principal: Principal = _requires(WRITERS)
) -> ActivityOut:
    return await service_of(request).replace(principal.org_id, KIND_ACTIVITY, entry_id, body, principal.as_actor())


@router.delete("/activities/{entry_id}", status_code=204, summary="Delete a processing activity")
async def delete_activity(entry_id: EntryId, request: Request, principal: Principal = _requires(WRITERS)) -> Response:
    await service_of(request).delete(principal.org_id, KIND_ACTIVITY, entry_id, principal.as_actor())
    return Response(status_code=204)


# Processors --------------------------------------------------------------------------------------


@router.get("/processors", response_model=Page[ProcessorOut], summary="Processors and their DPAs (Art. 28)")
def list_processors(
    request: Request, cursor: Cursor = None, limit: Limit = 50, principal: Principal = _requires(READERS)
) -> Page[ProcessorOut]:
    return service_of(request).processors(principal.org_id, cursor, limit)


@router.get("/processors/alerts", response_model=AlertList, summary="Missing or expired DPAs, missing clauses")
def processor_alerts(request: Request, principal: Principal = _requires(READERS)) -> AlertList:
    return service_of(request).alerts(principal.org_id)


@router.post("/processors", status_code=201, response_model=ProcessorOut, summary="Record a processor")
async def create_processor(
    body: ProcessorIn, request: Request, principal: Principal = _requires(WRITERS)
) -> ProcessorOut:
    return await service_of(request).create(principal.org_id, KIND_PROCESSOR, body, principal.as_actor())


@router.get("/processors/{entry_id}", response_model=ProcessorOut, summary="One processor")
def get_processor(entry_id: EntryId, request: Request, principal: Principal = _requires(READERS)) -> ProcessorOut:
    return service_of(request).get(principal.org_id, KIND_PROCESSOR, entry_id)


@router.put("/processors/{entry_id}", response_model=ProcessorOut, summary="Replace a processor")
async def put_processor(
    entry_id: EntryId, body: ProcessorIn, request: Request, principal: Principal = _requires(WRITERS)
) -> ProcessorOut:
    return await service_of(request).replace(principal.org_id, KIND_PROCESSOR, entry_id, body, principal.as_actor())


@router.delete("/processors/{entry_id}", status_code=204, summary="Delete a processor")
async def delete_processor(entry_id: EntryId, request: Request, principal: Principal = _requires(WRITERS)) -> Response:
    await service_of(request).delete(principal.org_id, KIND_PROCESSOR, entry_id, principal.as_actor())
    return Response(status_code=204)


# Breaches ----------------------------------------------------------------------------------------


@router.get("/breaches", response_model=Page[BreachOut], summary="Every breach, notified or not (Art. 33(5))")
def list_breaches(
    request: Request,
    cursor: Cursor = None,
    limit: Limit = 50,
    status: Literal["open", "closed"] | None = None,
    principal: Principal = _requires(READERS),
) -> Page[BreachOut]:
    return service_of(request).breaches(principal.org_id, cursor, limit, status)


@router.post("/breaches", status_code=201, response_model=BreachOut, summary="Record a breach; its clock starts")
async def create_breach(body: BreachIn, request: Request, principal: Principal = _requires(WRITERS)) -> BreachOut:
    return await service_of(request).create_breach(principal.org_id, body, principal.as_actor())


@router.get("/breaches/{entry_id}", response_model=BreachOut, summary="One breach with its 72-hour clock")
def get_breach(entry_id: EntryId, request: Request, principal: Principal = _requires(READERS)) -> BreachOut:
    return service_of(request).breach(principal.org_id, entry_id)


@router.put("/breaches/{entry_id}", response_model=BreachOut, summary="Replace a breach's record")
async def put_breach(
    entry_id: EntryId, body: BreachIn, request: Request, principal: Principal = _requires(WRITERS)
) -> BreachOut:
    return await service_of(request).replace_breach(principal.org_id, entry_id, body, principal.as_actor())


@router.post(
    "/breaches/{entry_id}/notifications",
    status_code=201,
    response_model=BreachOut,
    summary="Record a notification to the authority: initial, then complementary (Art. 33(4))",
)
async def notify_breach(
    entry_id: EntryId, body: NotificationIn, request: Request, principal: Principal = _requires(WRITERS)
) -> BreachOut:
    return await service_of(request).notify_breach(principal.org_id, entry_id, body, principal.as_actor())


@router.get(
    "/breaches/{entry_id}/notification-form",
    summary="The notification pre-filled for the authority's form (CNIL, APD-GBA, AP)",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def notification_form(
    entry_id: EntryId,
    request: Request,
    authority: Literal["cnil", "apd", "ap"] | None = None,
    lang: Literal["fr", "nl", "en", "de"] | None = None,
    kind: Literal["initial", "complementary"] = "initial",
    format: Literal["json", "html"] = "json",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> Response:
    service = service_of(request)
    breach = service.breach(principal.org_id, entry_id)
    header = service.settings_or_none(principal.org_id)
    chosen = authority or (header.authority.value if header is not None else "cnil")
    document = documents.notification_form(breach, header, chosen, documents.authority_language(chosen, lang), kind)
    if format == "html":
        return HTMLResponse(documents.render("notification.html", document))
    return JSONResponse(document)


@router.get(
    "/breaches/{entry_id}/communication",
    summary="The Art. 34 communication to the people concerned (fr, nl, en, de); 409 unless the risk is high",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def communication(
    entry_id: EntryId,
    request: Request,
    lang: Literal["fr", "nl", "en", "de"] = "fr",
    format: Literal["json", "html"] = "json",
    principal: Principal = _requires(WRITERS),
) -> Response:
    service = service_of(request)
    breach = service.breach(principal.org_id, entry_id)
    document = documents.communication(breach, service.settings_or_none(principal.org_id), lang)
    if format == "html":
        return HTMLResponse(documents.render("communication.html", document))
    return JSONResponse(document)


# DPIAs -------------------------------------------------------------------------------------------


@router.get("/dpias", response_model=Page[DpiaOut], summary="Impact assessments (Art. 35)")
def list_dpias(
    request: Request, cursor: Cursor = None, limit: Limit = 50, principal: Principal = _requires(COMPLIANCE_READERS)
) -> Page[DpiaOut]:
    return service_of(request).dpias(principal.org_id, cursor, limit)


@router.post("/dpias", status_code=201, response_model=DpiaOut, summary="Record an impact assessment")
async def create_dpia(body: DpiaIn, request: Request, principal: Principal = _requires(WRITERS)) -> DpiaOut:
    return await service_of(request).create_dpia(principal.org_id, body, principal.as_actor())


@router.post(
    "/dpias/import-pia",
    status_code=201,
    response_model=DpiaOut,
    summary="Create an impact assessment from a CNIL PIA tool JSON export",
)
async def import_pia(
    body: Annotated[dict[str, Any], Body(description="The PIA tool's export: {pia, answers, measures, evaluations}")],
    request: Request,
    principal: Principal = _requires(WRITERS),
) -> DpiaOut:
    record = pia.import_(body)
    return await service_of(request).create_dpia(principal.org_id, record, principal.as_actor(), verb="imported")


@router.get("/dpias/{entry_id}/pia", summary="The impact assessment as a CNIL PIA tool JSON export")
def export_pia(
    entry_id: EntryId, request: Request, principal: Principal = _requires(COMPLIANCE_READERS)
) -> JSONResponse:
    entry = service_of(request).dpia(principal.org_id, entry_id)
    return JSONResponse(
        pia.export(entry.record, entry.id),
        headers={"Content-Disposition": f'attachment; filename="pia-{entry.id}.json"'},
    )


@router.get("/dpias/{entry_id}", response_model=DpiaOut, summary="One impact assessment")
def get_dpia(entry_id: EntryId, request: Request, principal: Principal = _requires(COMPLIANCE_READERS)) -> DpiaOut:
    return service_of(request).dpia(principal.org_id, entry_id)


@router.put("/dpias/{entry_id}", response_model=DpiaOut, summary="Replace an impact assessment")
async def put_dpia(
    entry_id: EntryId, body: DpiaIn, request: Request, principal: Principal = _requires(WRITERS)
) -> DpiaOut:
    return await service_of(request).replace_dpia(principal.org_id, entry_id, body, principal.as_actor())


@router.delete("/dpias/{entry_id}", status_code=204, summary="Delete an impact assessment")
async def delete_dpia(entry_id: EntryId, request: Request, principal: Principal = _requires(WRITERS)) -> Response:
    await service_of(request).delete(principal.org_id, KIND_DPIA, entry_id, principal.as_actor())
    return Response(status_code=204)


@router.get(
    "/dpia-events",
    response_model=DpiaEventSummary,
    summary="The DPIA event log: counts and last occurrence per event type and period, from the ledger",
)
def dpia_events(
    request: Request,
    since: Moment | None = None,
    until: Annotated[Moment | None, Query(description="exclusive; default now")] = None,
    period: Literal["day", "month", "all"] = "month",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> DpiaEventSummary:
    end = until or datetime.now(UTC)
    start = since or end - timedelta(days=365)
    if start >= end:
        raise field_error("since", "must be before until")
    if end - start > MAX_SPAN[period]:
        raise field_error("since", f"at most {MAX_SPAN[period].days} days for period={period}")
    return service_of(request).dpia_events(principal.org_id, start, end, period)


# Privacy notice (Art. 13/14) -----------------------------------------------------------------------


@router.get("/notices", response_model=NoticeVersionList, summary="Every published version of the privacy notice")
def list_notices(request: Request, principal: Principal = _requires(COMPLIANCE_READERS)) -> NoticeVersionList:
    return NoticeVersionList(
        versions=[
            NoticeVersionSummary(
                version=v.version, sha256=v.sha256, published_at=v.published_at, published_by=v.published_by
            )
            for v in notices_of(request).versions(principal.org_id)
        ]
    )


@router.post(
    "/notices",
    status_code=201,
    response_model=PublicationOut,
    summary="Publish the privacy notice generated from the register: a new version only if its content changed",
    responses={200: {"model": PublicationOut, "description": "Unchanged: the latest version stands"}},
)
async def publish_notice(
    request: Request, response: Response, principal: Principal = _requires(WRITERS)
) -> PublicationOut:
    published = await notices_of(request).publish(principal.org_id, principal.as_actor())
    if not published.created:
        response.status_code = 200
    v = published.version
    return PublicationOut(
        version=v.version,
        sha256=v.sha256,
        published_at=v.published_at,
        published_by=v.published_by,
        created=published.created,
    )


@router.get(
    "/notices/draft",
    response_model=NoticeOut,
    summary="The privacy notice as it would be published now, and whether it differs from the latest version",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def draft_notice(
    request: Request,
    lang: Language = "fr",
    format: Literal["json", "html"] = "json",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> Response:
    document, sha256, latest = notices_of(request).draft(principal.org_id)
    if format == "html":
        return HTMLResponse(notice_page(document, lang, None))
    return JSONResponse(notice_out(document, sha256, lang, latest, draft=True).model_dump(mode="json"))


@router.get(
    "/notices/{version}",
    response_model=NoticeOut,
    summary="One published version of the privacy notice, in one language",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def get_notice(
    version: NoticeVersionNumber,
    request: Request,
    lang: Language = "fr",
    format: Literal["json", "html"] = "json",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> Response:
    found = notices_of(request).version(principal.org_id, version)
    if format == "html":
        return HTMLResponse(notice_page(found.document, lang, found))
    return JSONResponse(notice_out(found.document, found.sha256, lang, found, draft=False).model_dump(mode="json"))


@public_router.get(
    "/privacy-notice/{ref}",
    summary="The published privacy notice, public: by organisation slug or consent site key (HTML or JSON)",
    responses={200: {"content": {"text/html": {}, "application/json": {}}}},
)
def public_notice(
    ref: PublicRef,
    request: Request,
    lang: Language | None = None,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1, description="default: the latest")] = None,
    format: Literal["html", "json"] = "html",
    accept_language: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    service = notices_of(request)
    found = service.version(service.org_of_public_ref(ref), version)
    chosen = service.language(found.document, lang, accept_language)
    if format == "json":
        answer = notice_out(found.document, found.sha256, chosen, found, draft=False).model_dump(mode="json")
        return JSONResponse(answer, headers=PUBLIC_HEADERS)
    pinned = f"&version={version}" if version is not None else ""
    links = [(code, f"?lang={code}{pinned}") for code in found.document["texts"]]
    return HTMLResponse(notice_page(found.document, chosen, found, links), headers=PUBLIC_HEADERS)


# Compliance matrix -------------------------------------------------------------------------------


@router.get(
    "/compliance",
    response_model=ComplianceOut,
    summary="The compliance matrix, computed now: CONFORME / PARTIEL / ABSENT per article, with evidence",
    responses={200: {"content": {"application/json": {}, "text/html": {}}}},
)
def compliance_matrix(
    request: Request,
    lang: Literal["en", "fr"] = "en",
    format: Literal["json", "html"] = "json",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> Response:
    answer = compliance(evidence_of(request), principal.org_id, lang)
    if format == "html":
        return HTMLResponse(documents.render("compliance.html", answer.model_dump(mode="json")))
    return JSONResponse(answer.model_dump(mode="json"))


# Period report -----------------------------------------------------------------------------------


@router.get(
    "/report",
    response_model=ReportOut,
    summary="The period report: consents, requests, erasures, exports, breaches, retention runs, ledger check",
    responses={200: {"content": {"application/json": {}, "text/html": {}, "application/pdf": {}}}},
)
def period_report(
    request: Request,
    since: Annotated[ReportDay | None, Query(description="first day (UTC); default a year before until")] = None,
    until: Annotated[ReportDay | None, Query(description="last day (UTC), inclusive; default today")] = None,
    lang: Literal["en", "fr"] = "en",
    format: Literal["json", "html", "pdf"] = "json",
    principal: Principal = _requires(COMPLIANCE_READERS),
) -> Response:
    evidence = evidence_of(request)
    first, last = report.period_bounds(since, until, evidence.now().date())
    answer = report.build(evidence, principal.org_id, first, last, lang, principal.as_actor())
    report.record_generation(evidence, principal.org_id, answer, format, principal.as_actor())
    if format == "pdf":
        filename = f"report-{first}-{last}.pdf"
        return Response(
            report.pdf(answer),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )
    if format == "html":
        return HTMLResponse(report.html(answer))
    return JSONResponse(answer.model_dump(mode="json"))
