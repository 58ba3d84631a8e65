"""Reports: the documents the registers already produce, for download from the console."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from gardien.core.errors import NotFound
from gardien.registers import exports
from gardien.registers.exports import ExportFormat
from gardien.web.console.base import DOCUMENT_POLICY, Viewer, page, services_of, viewer
from gardien.web.console.pages import COMPLIANCE_READERS

router = APIRouter()
MAX_LISTED = 200
# The DPIA event log's window on this page: the last year, as one total.
LOG_SPAN = timedelta(days=365)
FORMATS: dict[str, ExportFormat] = {
    "ods": "ods",
    "xlsx": "xlsx",
    "csv": "csv",
    "json": "json",
    "pdf": "pdf",
    "html": "html",
}


@router.get("/reports", response_class=HTMLResponse)
def reports(request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> HTMLResponse:
    registers = services_of(request).registers
    org = seen.principal.org_id
    now = datetime.now(UTC)
    breaches = [b for b in registers.breaches(org, None, MAX_LISTED).items if b.notification_required]
    return page(
        request,
        "reports.html",
        {
            "formats": list(FORMATS),
            "activities": len(registers.all_activities(org)),
            "breaches": breaches,
            "dpias": registers.dpias(org, None, MAX_LISTED).items,
            "log": registers.dpia_events(org, now - LOG_SPAN, now, "all"),
        },
    )


@router.get("/reports/register.{fmt}")
def register_export(fmt: str, request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> Response:
    """The record of processing activities, as GET /api/v1/registers/activities/export gives it."""
    chosen = FORMATS.get(fmt)
    if chosen is None:
        raise NotFound(f"format {fmt!r}")
    registers = services_of(request).registers
    org = seen.principal.org_id
    now = datetime.now(UTC)
    content = exports.export(registers.all_activities(org), registers.settings_or_none(org), chosen, now)
    filename = f"registre-{now:%Y%m%d}.{fmt}"
    disposition = "inline" if fmt == "html" else f'attachment; filename="{filename}"'
    headers = {"Content-Disposition": disposition}
    if fmt == "html":
        headers["Content-Security-Policy"] = DOCUMENT_POLICY
    return Response(content, media_type=exports.MEDIA_TYPES[fmt], headers=headers)
