"""The audit log: search (the filters of GET /api/v1/audit/events), signed exports, and verification."""

from __future__ import annotations

import re
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from pydantic import ValidationError

from gardien.audit.api import VerifyRequest
from gardien.audit.schemas import EventFilter, ExportRequest
from gardien.core.errors import NotFound, Problem
from gardien.web.console.base import (
    Form,
    Viewer,
    field_errors,
    moment,
    page,
    posted,
    redirect,
    services_of,
    url,
    viewer,
)
from gardien.web.console.pages import AUDIT_READERS, AUDIT_VERIFIERS

router = APIRouter(prefix="/audit")
PAGE_SIZE = 50
FILTER_FIELDS = ("since", "until", "module", "action", "actor", "target", "target_type", "outcome")
EXPORT_ID = re.compile(r"^[0-9a-f-]{1,64}$")
FORMATS = ("jsonl", "json", "csv")
MEDIA = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}


def _filter_of(values: dict[str, str], lang: str) -> tuple[EventFilter, dict[str, str]]:
    """The filter typed in the form; the times are `datetime-local` values read as UTC."""
    raw: dict[str, Any] = {name: values.get(name, "").strip() for name in FILTER_FIELDS}
    raw["since"], raw["until"] = moment(raw["since"]), moment(raw["until"])
    try:
        return EventFilter.model_validate({k: v for k, v in raw.items() if v}), {}
    except ValidationError as exc:
        return EventFilter(), field_errors(exc, lang)


@router.get("", response_class=HTMLResponse)
def search(request: Request, seen: Viewer = Depends(viewer(AUDIT_READERS))) -> HTMLResponse:
    typed = {name: request.query_params.get(name, "") for name in FILTER_FIELDS}
    flt, errors = _filter_of(typed, seen.lang)
    cursor = request.query_params.get("cursor") or None
    events: list[dict[str, Any]] = []
    next_page = None
    if not errors:
        try:
            found = services_of(request).ledger.list_events(
                seen.principal.org_id, flt, cursor=cursor, limit=PAGE_SIZE, actor=seen.actor()
            )
        except Problem as exc:
            errors = field_errors(exc, seen.lang)
        else:
            events = found.events
            if found.next_cursor:
                next_page = url("/audit", **typed, cursor=found.next_cursor)
    return page(
        request,
        "audit.html",
        {
            "typed": typed,
            "errors": errors,
            "events": events,
            "pretty": lambda event: orjson.dumps(event, option=orjson.OPT_INDENT_2).decode(),
            "next_page": next_page,
            "formats": FORMATS,
        },
        status=422 if errors else 200,
    )


@router.post("/export")
def export(request: Request, form: Form = Depends(posted(AUDIT_READERS))) -> Response:
    typed = {name: form.get(name) for name in FILTER_FIELDS}
    flt, errors = _filter_of(typed, form.viewer.lang)
    if not errors:
        try:
            body = ExportRequest.model_validate({"format": form.get("format"), "filter": flt.model_dump()})
        except ValidationError as exc:
            errors = field_errors(exc, form.viewer.lang)
    if errors:
        context: dict[str, Any] = {"typed": typed, "errors": errors, "events": [], "next_page": None}
        return page(request, "audit.html", {**context, "formats": FORMATS}, status=422)
    seen = form.viewer
    result = services_of(request).ledger.export(seen.principal.org_id, body.format, body.filter, actor=seen.actor())
    return redirect(request, url(f"/audit/exports/{result.manifest['export_id']}"))


def _export_id(export_id: str) -> str:
    if not EXPORT_ID.match(export_id):
        raise NotFound(f"export {export_id!r}")
    return export_id


@router.get("/exports/{export_id}", response_class=HTMLResponse)
def export_page(export_id: str, request: Request, seen: Viewer = Depends(viewer(AUDIT_READERS))) -> HTMLResponse:
    ledger = services_of(request).ledger
    manifest, path = ledger.get_export(seen.principal.org_id, _export_id(export_id))
    context = {"manifest": manifest, "available": path.is_file(), "payload": path.name, "keys": ledger.public_keys()}
    return page(request, "export.html", context)


@router.get("/exports/{export_id}/manifest")
def export_manifest(export_id: str, request: Request, seen: Viewer = Depends(viewer(AUDIT_READERS))) -> Response:
    manifest, path = services_of(request).ledger.get_export(seen.principal.org_id, _export_id(export_id))
    # Named as `gardien audit verify-export PAYLOAD` looks for it beside the payload.
    return Response(
        orjson.dumps(manifest, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{path.name}.manifest.json"'},
    )


@router.get("/exports/{export_id}/payload")
def export_payload(export_id: str, request: Request, seen: Viewer = Depends(viewer(AUDIT_READERS))) -> Response:
    ledger = services_of(request).ledger
    manifest, path = ledger.get_export(seen.principal.org_id, _export_id(export_id))
    if not path.is_file():
        raise Problem(410, "gone", "Gone", f"the payload of export {export_id} is no longer on this server")
    ledger.record_download(seen.principal.org_id, export_id, seen.actor())
    return FileResponse(path, media_type=MEDIA[manifest["format"]], filename=path.name)


def _integrity(request: Request, seen: Viewer) -> dict[str, Any]:
    ledger = services_of(request).ledger
    org = seen.principal.org_id
    try:
        checkpoint = ledger.checkpoint(org)
    except NotFound:
        checkpoint = None
    return {
        "checkpoint": checkpoint,
        "head_size": ledger.head_size(org),
        "verification": ledger.last_verification(org),
        "keys": ledger.public_keys(),
    }


@router.get("/verify", response_class=HTMLResponse)
def verify_page(request: Request, seen: Viewer = Depends(viewer(AUDIT_VERIFIERS))) -> HTMLResponse:
    return page(request, "verify.html", {**_integrity(request, seen), "report": None, "errors": {}, "trusted": ""})


@router.post("/verify", response_class=HTMLResponse)
def verify(request: Request, form: Form = Depends(posted(AUDIT_VERIFIERS))) -> HTMLResponse:
    seen = form.viewer
    trusted = form.get("trusted_checkpoint").strip()
    try:
        body = VerifyRequest(trusted_checkpoint=trusted or None)
    except ValidationError as exc:
        context = {
            **_integrity(request, seen),
            "report": None,
            "errors": field_errors(exc, seen.lang),
            "trusted": trusted,
        }
        return page(request, "verify.html", context, status=422)
    report = services_of(request).ledger.verify(
        seen.principal.org_id, trusted_checkpoint=body.trusted_checkpoint, actor=seen.actor()
    )
    return page(request, "verify.html", {**_integrity(request, seen), "report": report, "errors": {}, "trusted": ""})
