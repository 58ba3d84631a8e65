"""The generated documents: the compliance matrix, the privacy notice's versions and the period
report. The registers compute them (`gardien.registers`); these pages show them, publish a notice
and hand out the files, with the roles of the registers' API."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal, get_args

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import TypeAdapter, ValidationError

from gardien.core.errors import NotFound, Problem
from gardien.registers import report
from gardien.registers.evidence import compliance
from gardien.registers.notices import notice_page
from gardien.registers.schemas import ReportDay
from gardien.web.console.base import (
    DOCUMENT_POLICY,
    Form,
    Viewer,
    field_errors,
    page,
    posted,
    redirect,
    services_of,
    url,
    viewer,
)
from gardien.web.console.pages import COMPLIANCE_READERS, REGISTER_WRITERS

router = APIRouter()
NoticeLanguage = Literal["fr", "nl", "en", "de"]
NOTICE_LANGUAGES: tuple[str, ...] = get_args(NoticeLanguage)
REPORT_FORMATS = ("html", "pdf", "json")
DAY = TypeAdapter(ReportDay)


def _document(html: str) -> HTMLResponse:
    return HTMLResponse(html, headers={"Content-Security-Policy": DOCUMENT_POLICY})


# Compliance matrix -------------------------------------------------------------------------------


@router.get("/reports/compliance", response_class=HTMLResponse)
def compliance_matrix(request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> HTMLResponse:
    matrix = compliance(services_of(request).evidence, seen.principal.org_id, seen.lang)
    context = {"matrix": matrix.model_dump(mode="json"), "generated_at": matrix.generated_at}
    return page(request, "compliance.html", context)


@router.get("/reports/compliance.json")
def compliance_json(request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> JSONResponse:
    matrix = compliance(services_of(request).evidence, seen.principal.org_id, seen.lang)
    filename = f"compliance-{matrix.generated_at:%Y%m%d}.json"
    return JSONResponse(
        matrix.model_dump(mode="json"), headers={"Content-Disposition": f'attachment; filename="{filename}"'}
    )


# Privacy notice ----------------------------------------------------------------------------------


def _notice_page(request: Request, seen: Viewer, *, error: str = "", status: int = 200) -> HTMLResponse:
    notices = services_of(request).notices
    org = seen.principal.org_id
    versions = notices.versions(org)
    latest = versions[-1] if versions else None
    draft: dict[str, Any] | None = None
    missing = ""
    try:
        document, sha256, _ = notices.draft(org)
        draft = {
            "sha256": sha256,
            "languages": list(document["texts"]),
            "changed": latest is None or sha256 != latest.sha256,
        }
    except Problem as exc:
        # The register lacks its header or a purpose: there is nothing to publish yet.
        missing = exc.detail or exc.title
    context = {
        "versions": list(reversed(versions)),
        "latest": latest,
        "draft": draft,
        "missing": missing,
        "error": error,
        "may_publish": seen.may(REGISTER_WRITERS),
        "public_path": f"/privacy-notice/{seen.org_slug}",
        "done": request.query_params.get("done", ""),
    }
    return page(request, "notice.html", context, status=status)


@router.get("/reports/notice", response_class=HTMLResponse)
def notice(request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> HTMLResponse:
    return _notice_page(request, seen)


@router.post("/reports/notice/publish")
async def publish_notice(request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    seen = form.viewer
    try:
        published = await services_of(request).notices.publish(seen.principal.org_id, seen.actor())
    except Problem as exc:
        if exc.status >= 500:
            raise
        return _notice_page(request, seen, error=exc.detail or exc.title, status=exc.status)
    return redirect(request, url("/reports/notice", done="published" if published.created else "unchanged"))


@router.get("/reports/notice/draft", response_class=HTMLResponse)
def notice_draft(
    request: Request, lang: NoticeLanguage = "fr", seen: Viewer = Depends(viewer(COMPLIANCE_READERS))
) -> HTMLResponse:
    """The notice as it would be published now, in one language."""
    document, _, _ = services_of(request).notices.draft(seen.principal.org_id)
    return _document(notice_page(document, lang, None))


@router.get("/reports/notice/{version}", response_class=HTMLResponse)
def notice_version(
    version: int, request: Request, lang: NoticeLanguage = "fr", seen: Viewer = Depends(viewer(COMPLIANCE_READERS))
) -> HTMLResponse:
    if not 1 <= version < 2**31:
        raise NotFound("privacy notice version")
    found = services_of(request).notices.version(seen.principal.org_id, version)
    return _document(notice_page(found.document, lang, found))


# Period report -----------------------------------------------------------------------------------


def _period(request: Request, today: date, lang: str) -> tuple[date, date]:
    """The period the query asks for; a 422 Problem naming the field otherwise."""
    days: dict[str, date | None] = {}
    errors: list[dict[str, str]] = []
    for name in ("since", "until"):
        typed = request.query_params.get(name, "").strip()
        try:
            days[name] = DAY.validate_python(typed) if typed else None
        except ValidationError as exc:
            message = field_errors(exc, lang).get("", "")
            errors.append({"field": name, "message": message})
    if errors:
        raise Problem(422, "validation", "Invalid input", "; ".join(e["message"] for e in errors), errors=errors)
    return report.period_bounds(days["since"], days["until"], today)


@router.get("/reports/period", response_class=HTMLResponse)
def period(request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> HTMLResponse:
    today = services_of(request).evidence.now().date()
    typed = {name: request.query_params.get(name, "") for name in ("since", "until")}
    try:
        first, last = _period(request, today, seen.lang)
    except Problem as exc:
        errors = {k: v for k, v in field_errors(exc, seen.lang).items() if k}
        context = {"typed": typed, "errors": errors, "formats": REPORT_FORMATS, "chosen": None}
        return page(request, "period.html", context, status=422)
    chosen = {"since": first.isoformat(), "until": last.isoformat()}
    asked = any(typed.values())
    context = {
        "typed": chosen if not asked else typed,
        "errors": {},
        "formats": REPORT_FORMATS,
        "chosen": chosen,
    }
    return page(request, "period.html", context)


@router.get("/reports/period.{fmt}")
def period_file(fmt: str, request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> Response:
    """The period report, as GET /api/v1/registers/report gives it; each one recorded in the ledger."""
    if fmt not in REPORT_FORMATS:
        raise NotFound(f"format {fmt!r}")
    evidence = services_of(request).evidence
    org = seen.principal.org_id
    first, last = _period(request, evidence.now().date(), seen.lang)
    answer = report.build(evidence, org, first, last, seen.lang, seen.actor())
    report.record_generation(evidence, org, answer, fmt, seen.actor())
    name = f"report-{first}-{last}.{fmt}"
    if fmt == "pdf":
        return Response(
            report.pdf(answer),
            media_type="application/pdf",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    if fmt == "json":
        return JSONResponse(
            answer.model_dump(mode="json"), headers={"Content-Disposition": f'attachment; filename="{name}"'}
        )
    return _document(report.html(answer))
