"""The registers: processing activities, processors, breaches and DPIAs — lists, records, and the
forms that create and edit them through the RegistersService."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ValidationError

from gardien.core.errors import NotFound, Problem
from gardien.registers import documents, pia
from gardien.registers.schemas import (
    Art34Exemption,
    BreachIn,
    ControllerActivity,
    DataCategory,
    DpiaIn,
    DpiaOut,
    LegalBasis,
    NotificationIn,
    Opinion,
    ProcessorIn,
    RecipientKind,
    Risk,
    Safeguard,
    SecurityMeasure,
    SpecialCategory,
    TransferTool,
)
from gardien.registers.service import KIND_ACTIVITY, KIND_BREACH, KIND_DPIA, KIND_PROCESSOR, Kind, RegistersService
from gardien.web.console import forms, i18n
from gardien.web.console.base import (
    DOCUMENT_POLICY,
    Form,
    Viewer,
    field_errors,
    language_of,
    moment,
    page,
    posted,
    redirect,
    services_of,
    url,
    viewer,
)
from gardien.web.console.pages import COMPLIANCE_READERS, REGISTER_READERS, REGISTER_WRITERS

router = APIRouter(prefix="/registers")
PAGE_SIZE = 50
ENTRY_ID = re.compile(r"^[0-9A-Za-z-]{1,36}$")
CURSOR = re.compile(r"^[0-9A-Za-z-]{1,36}$")


def _entry(entry_id: str) -> str:
    if not ENTRY_ID.match(entry_id):
        raise NotFound(f"entry {entry_id!r}")
    return entry_id


def _cursor(request: Request) -> str | None:
    cursor = request.query_params.get("cursor")
    return cursor if cursor and CURSOR.match(cursor) else None


def _listing(request: Request, template: str, found: Any, path: str, **context: Any) -> HTMLResponse:
    next_page = url(path, cursor=found.next_cursor, **context.pop("query", {})) if found.next_cursor else None
    return page(request, template, {"items": found.items, "next_page": next_page, **context})


def _choices() -> dict[str, Any]:
    return {
        "legal_bases": [b.value for b in LegalBasis],
        "data_categories": [c.value for c in DataCategory],
        "special_categories": [c.value for c in SpecialCategory],
        "recipient_kinds": [k.value for k in RecipientKind],
        "safeguards": [s.value for s in Safeguard],
        "security_measures": [m.value for m in SecurityMeasure],
        "risks": [r.value for r in Risk],
        "exemptions": [e.value for e in Art34Exemption],
    }


async def _save(
    request: Request,
    template: str,
    context: dict[str, Any],
    validate: Callable[[], Any],
    place: Callable[[dict[str, str]], dict[str, str]],
    store: Callable[[Any], Awaitable[Any]],
    done: Callable[[Any], str],
) -> Response:
    """Validate and store; on any refusal, the form again with the errors beside the fields and
    nothing stored."""
    try:
        saved = await store(validate())
    except ValidationError as exc:
        errors = place(field_errors(exc, language_of(request)))
    except Problem as exc:
        if exc.status == 404:
            raise
        errors = place(field_errors(exc, language_of(request)))
    else:
        return redirect(request, done(saved))
    return page(request, template, {**context, "errors": errors, **_choices()}, status=422)


Create = Callable[[RegistersService, str, Any, dict[str, str]], Awaitable[Any]]
Replace = Callable[[RegistersService, str, str, Any, dict[str, str]], Awaitable[Any]]


@dataclass(frozen=True)
class EntryForm:
    """A register whose entries are created and edited from a console form."""

    kind: Kind[Any]
    listing: str  # its entries' pages: /registers/<listing>/<id>
    template: str
    schema: type[BaseModel]
    read: Callable[[Form], dict[str, Any]]  # the posted fields, as the form shows them again
    body: Callable[[dict[str, Any], dict[str, Any]], tuple[dict[str, Any], forms.Place]]
    kept: Callable[[Any], dict[str, Any]]  # what of the stored record the form does not show
    create: Create  # the service's create for this register (org, record, actor)
    replace: Replace  # and its replace (org, entry id, record, actor)
    choices: Callable[[Request, Viewer], dict[str, Any]] = lambda request, seen: {}


def _created_as(kind: Kind[Any]) -> Create:
    return lambda registers, org, record, actor: registers.create(org, kind, record, actor)


def _replaced_as(kind: Kind[Any]) -> Replace:
    return lambda registers, org, entry_id, record, actor: registers.replace(org, kind, entry_id, record, actor)


async def _store_entry(request: Request, form: Form, entry_id: str | None, spec: EntryForm) -> Response:
    """Create (no `entry_id`) or replace an entry from its posted form, then show it."""
    registers, seen = services_of(request).registers, form.viewer
    org = seen.principal.org_id
    entry = registers.get(org, spec.kind, entry_id) if entry_id is not None else None
    kept = spec.kept(entry.record) if entry is not None else {}
    state = spec.read(form)
    body, place = spec.body(state, kept)
    context = {"state": state, "entry": entry, **spec.choices(request, seen)}

    async def store(record: Any) -> Any:
        if entry_id is None:
            return await spec.create(registers, org, record, seen.actor())
        return await spec.replace(registers, org, entry_id, record, seen.actor())

    return await _save(
        request,
        spec.template,
        context,
        lambda: spec.schema.model_validate(body),
        place,
        store,
        lambda saved: url(f"/registers/{spec.listing}/{saved.id}", done="saved"),
    )


# Processing activities ---------------------------------------------------------------------------


@router.get("/activities", response_class=HTMLResponse)
def activities(request: Request, seen: Viewer = Depends(viewer(REGISTER_READERS))) -> HTMLResponse:
    found = services_of(request).registers.activities(seen.principal.org_id, _cursor(request), PAGE_SIZE)
    return _listing(request, "activities.html", found, "/registers/activities", may_write=seen.may(REGISTER_WRITERS))


@router.get("/activities/new", response_class=HTMLResponse)
def new_activity(request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    context = {"state": forms.activity_state(None), "errors": {}, "entry": None, **_choices()}
    return page(request, "activity_form.html", context)


@router.get("/activities/{entry_id}", response_class=HTMLResponse)
def activity(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_READERS))) -> HTMLResponse:
    entry = services_of(request).registers.get(seen.principal.org_id, KIND_ACTIVITY, _entry(entry_id))
    context = {"entry": entry, "may_write": seen.may(REGISTER_WRITERS), "done": request.query_params.get("done")}
    return page(request, "activity.html", context)


@router.get("/activities/{entry_id}/edit", response_class=HTMLResponse)
def edit_activity(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    entry = services_of(request).registers.get(seen.principal.org_id, KIND_ACTIVITY, _entry(entry_id))
    context = {
        "state": forms.activity_state(_controller_record(entry.record)),
        "errors": {},
        "entry": entry,
        **_choices(),
    }
    return page(request, "activity_form.html", context)


def _controller_record(record: Any) -> ControllerActivity:
    if not isinstance(record, ControllerActivity):
        raise Problem(409, "conflict", "Conflict", "a processor's record (Art. 30(2)) is edited through the API")
    return record


def _activity_kept(record: Any) -> dict[str, Any]:
    return {"joint_controllers": _controller_record(record).model_dump(mode="json")["joint_controllers"]}


ACTIVITY_FORM = EntryForm(
    KIND_ACTIVITY,
    "activities",
    "activity_form.html",
    ControllerActivity,
    forms.activity_from_form,
    forms.activity_body,
    _activity_kept,
    _created_as(KIND_ACTIVITY),
    _replaced_as(KIND_ACTIVITY),
)


@router.post("/activities/new")
async def create_activity(request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _store_entry(request, form, None, ACTIVITY_FORM)


@router.post("/activities/{entry_id}/edit")
async def update_activity(entry_id: str, request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _store_entry(request, form, _entry(entry_id), ACTIVITY_FORM)


# Processors --------------------------------------------------------------------------------------


@router.get("/processors", response_class=HTMLResponse)
def processors(request: Request, seen: Viewer = Depends(viewer(REGISTER_READERS))) -> HTMLResponse:
    found = services_of(request).registers.processors(seen.principal.org_id, _cursor(request), PAGE_SIZE)
    return _listing(request, "processors.html", found, "/registers/processors", may_write=seen.may(REGISTER_WRITERS))


def _processor_choices() -> dict[str, Any]:
    return {"transfer_tools": [tool.value for tool in TransferTool], "clause_names": list(forms.CLAUSES)}


@router.get("/processors/new", response_class=HTMLResponse)
def new_processor(request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    context = {"state": forms.processor_state(None), "errors": {}, "entry": None, **_processor_choices()}
    return page(request, "processor_form.html", context)


@router.get("/processors/{entry_id}", response_class=HTMLResponse)
def processor(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_READERS))) -> HTMLResponse:
    registers = services_of(request).registers
    org = seen.principal.org_id
    entry = registers.get(org, KIND_PROCESSOR, _entry(entry_id))
    alerts = [a for a in registers.alerts(org).alerts if a.processor_id == entry.id]
    context = {
        "entry": entry,
        "alerts": alerts,
        "may_write": seen.may(REGISTER_WRITERS),
        "done": request.query_params.get("done"),
    }
    return page(request, "processor.html", context)


@router.get("/processors/{entry_id}/edit", response_class=HTMLResponse)
def edit_processor(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    entry = services_of(request).registers.get(seen.principal.org_id, KIND_PROCESSOR, _entry(entry_id))
    context = {"state": forms.processor_state(entry.record), "errors": {}, "entry": entry, **_processor_choices()}
    return page(request, "processor_form.html", context)


def _processor_kept(record: Any) -> dict[str, Any]:
    """The stored contacts' postal addresses, which the form does not show."""
    stored = record.model_dump(mode="json")
    kept = {who: {"address": stored[who]["address"]} for who in forms.PROCESSOR_CONTACTS if stored.get(who)}
    return {who: {k: v for k, v in values.items() if v} for who, values in kept.items()}


PROCESSOR_FORM = EntryForm(
    KIND_PROCESSOR,
    "processors",
    "processor_form.html",
    ProcessorIn,
    forms.processor_from_form,
    forms.processor_body,
    _processor_kept,
    _created_as(KIND_PROCESSOR),
    _replaced_as(KIND_PROCESSOR),
    lambda request, seen: _processor_choices(),
)


@router.post("/processors/new")
async def create_processor(request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _store_entry(request, form, None, PROCESSOR_FORM)


@router.post("/processors/{entry_id}/edit")
async def update_processor(entry_id: str, request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _store_entry(request, form, _entry(entry_id), PROCESSOR_FORM)


# Breaches ----------------------------------------------------------------------------------------


@router.get("/breaches", response_class=HTMLResponse)
def breaches(request: Request, seen: Viewer = Depends(viewer(REGISTER_READERS))) -> HTMLResponse:
    status = request.query_params.get("status")
    status = status if status in ("open", "closed") else None
    found = services_of(request).registers.breaches(seen.principal.org_id, _cursor(request), PAGE_SIZE, status)
    return _listing(
        request,
        "breaches.html",
        found,
        "/registers/breaches",
        query={"status": status},
        status=status,
        may_write=seen.may(REGISTER_WRITERS),
    )


@router.get("/breaches/new", response_class=HTMLResponse)
def new_breach(request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    context = {"state": forms.breach_state(None), "errors": {}, "entry": None, **_choices()}
    return page(request, "breach_form.html", context)


def _breach_page(request: Request, seen: Viewer, entry_id: str, **extra: Any) -> HTMLResponse:
    registers = services_of(request).registers
    entry = registers.breach(seen.principal.org_id, entry_id)
    header = registers.settings_or_none(seen.principal.org_id)
    context = {
        "entry": entry,
        "may_write": seen.may(REGISTER_WRITERS),
        "may_documents": seen.may(COMPLIANCE_READERS),
        "authority": header.authority.value if header is not None else "cnil",
        "done": request.query_params.get("done"),
        "errors": {},
        "note": {},
        **extra,
    }
    return page(request, "breach.html", context, status=422 if extra.get("errors") else 200)


@router.get("/breaches/{entry_id}", response_class=HTMLResponse)
def breach(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_READERS))) -> HTMLResponse:
    return _breach_page(request, seen, _entry(entry_id))


@router.get("/breaches/{entry_id}/edit", response_class=HTMLResponse)
def edit_breach(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    entry = services_of(request).registers.breach(seen.principal.org_id, _entry(entry_id))
    context = {"state": forms.breach_state(entry.record), "errors": {}, "entry": entry, **_choices()}
    return page(request, "breach_form.html", context)


def _breach_kept(record: Any) -> dict[str, Any]:
    """The stored DPO contact's postal address, which the form does not show."""
    contact = record.dpo_contact
    return {"address": contact.address} if contact is not None and contact.address else {}


BREACH_FORM = EntryForm(
    KIND_BREACH,
    "breaches",
    "breach_form.html",
    BreachIn,
    forms.breach_from_form,
    forms.breach_body,
    _breach_kept,
    # The breach's own create and replace check its times and keep its notifications.
    RegistersService.create_breach,
    RegistersService.replace_breach,
)


@router.post("/breaches/new")
async def create_breach(request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _store_entry(request, form, None, BREACH_FORM)


@router.post("/breaches/{entry_id}/edit")
async def update_breach(entry_id: str, request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _store_entry(request, form, _entry(entry_id), BREACH_FORM)


@router.post("/breaches/{entry_id}/notifications")
async def notify(entry_id: str, request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    entry_id = _entry(entry_id)
    registers, seen = services_of(request).registers, form.viewer
    note = {name: form.get(name).strip() for name in ("kind", "sent_at", "authority", "reference", "late_reasons")}
    body: dict[str, str | None] = {k: v for k, v in note.items() if v}
    body["sent_at"] = moment(note["sent_at"])
    try:
        record = NotificationIn.model_validate({k: v for k, v in body.items() if v is not None})
        await registers.notify_breach(seen.principal.org_id, entry_id, record, seen.actor())
    except ValidationError as exc:
        return _breach_page(request, seen, entry_id, errors=field_errors(exc, seen.lang), note=note)
    except Problem as exc:
        if exc.status == 404:
            raise
        return _breach_page(request, seen, entry_id, errors=field_errors(exc, seen.lang), note=note)
    return redirect(request, url(f"/registers/breaches/{entry_id}", done="notified"))


@router.get("/breaches/{entry_id}/notification-form", response_class=HTMLResponse)
def notification_form(
    entry_id: str, request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))
) -> HTMLResponse:
    """The pre-filled notification, as the registers' API renders it (CNIL, APD-GBA or AP)."""
    registers = services_of(request).registers
    entry = registers.breach(seen.principal.org_id, _entry(entry_id))
    header = registers.settings_or_none(seen.principal.org_id)
    chosen = request.query_params.get("authority")
    authority = chosen if chosen in ("cnil", "apd", "ap") else (header.authority.value if header else "cnil")
    kind = "complementary" if request.query_params.get("kind") == "complementary" else "initial"
    document = documents.notification_form(
        entry, header, authority, documents.authority_language(authority, None), kind
    )
    return HTMLResponse(
        documents.render("notification.html", document), headers={"Content-Security-Policy": DOCUMENT_POLICY}
    )


# DPIAs -------------------------------------------------------------------------------------------


@router.get("/dpias", response_class=HTMLResponse)
def dpias(request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> HTMLResponse:
    found = services_of(request).registers.dpias(seen.principal.org_id, _cursor(request), PAGE_SIZE)
    return _listing(request, "dpias.html", found, "/registers/dpias", may_write=seen.may(REGISTER_WRITERS))


# The PIA tool's items an action answers (its evaluations' `reference_to`), in the tool's order.
PIA_ITEMS: tuple[tuple[str, str], ...] = (
    ("1.1", "pia_item_overview"),
    ("1.2", "pia_item_data"),
    *((f"2.{number // 10 % 10}.{number}", f"pr_{name}") for number, name in pia.PRINCIPLES.items()),
    ("3.1", "dpia_measures"),
    *((f"3.{number % 10}", f"risk_{name}") for number, name in pia.RISKS.items()),
)


def _dpia_choices(request: Request, seen: Viewer) -> dict[str, Any]:
    activities = services_of(request).registers.all_activities(seen.principal.org_id)
    return {
        "activities": sorted(((a.id, a.record.name) for a in activities), key=lambda pair: pair[1].casefold()),
        "pia_items": PIA_ITEMS,
        "opinions": [o.value for o in Opinion],
    }


DPIA_FORM = EntryForm(
    KIND_DPIA,
    "dpias",
    "dpia_form.html",
    DpiaIn,
    forms.dpia_from_form,
    forms.dpia_body,
    lambda record: {},
    # The DPIA's own create and replace check that the activity it names exists.
    RegistersService.create_dpia,
    RegistersService.replace_dpia,
    _dpia_choices,
)


def _dpia_form(request: Request, seen: Viewer, entry: DpiaOut | None, state: dict[str, Any]) -> HTMLResponse:
    context = {"state": state, "errors": {}, "entry": entry, **_dpia_choices(request, seen)}
    return page(request, "dpia_form.html", context)


@router.get("/dpias/new", response_class=HTMLResponse)
def new_dpia(request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    return _dpia_form(request, seen, None, forms.dpia_state(None))


@router.post("/dpias/new")
async def create_dpia(request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _post_dpia(request, form, None)


@router.post("/dpias/{entry_id}/edit")
async def update_dpia(entry_id: str, request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    return await _post_dpia(request, form, _entry(entry_id))


async def _post_dpia(request: Request, form: Form, entry_id: str | None) -> Response:
    """Save, or — the "add a row" buttons, which work without a script — show the form again with
    one more blank row, nothing stored."""
    member = form.get("add_row")
    if not member:
        return await _store_entry(request, form, entry_id, DPIA_FORM)
    seen = form.viewer
    entry = services_of(request).registers.dpia(seen.principal.org_id, entry_id) if entry_id is not None else None
    return _dpia_form(request, seen, entry, forms.dpia_add_row(forms.dpia_from_form(form), member))


def _import_page(request: Request, typed: str = "", errors: dict[str, str] | None = None) -> HTMLResponse:
    return page(request, "dpia_import.html", {"typed": typed, "errors": errors or {}}, status=422 if errors else 200)


@router.get("/dpias/import", response_class=HTMLResponse)
def import_form(request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    return _import_page(request)


@router.post("/dpias/import")
async def import_dpia(request: Request, form: Form = Depends(posted(REGISTER_WRITERS))) -> Response:
    """A CNIL PIA tool export, pasted: read as POST /api/v1/registers/dpias/import-pia reads it."""
    seen, typed = form.viewer, form.get("pia")
    try:
        document = orjson.loads(typed)
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        return _import_page(request, typed, {"pia": i18n.text(seen.lang, "pia_not_json")})
    try:
        record = pia.import_(document)
        entry = await services_of(request).registers.create_dpia(
            seen.principal.org_id, record, seen.actor(), verb="imported"
        )
    except (ValidationError, Problem) as exc:
        if isinstance(exc, Problem) and exc.status >= 500:
            raise
        found = field_errors(exc, seen.lang)
        # The members are the PIA file's, not fields of this form: listed beside the one field.
        listed = "; ".join(f"{path}: {message}" if path else message for path, message in found.items())
        return _import_page(request, typed, {"pia": i18n.text(seen.lang, "pia_not_fitting", errors=listed)})
    return redirect(request, url(f"/registers/dpias/{entry.id}", done="imported"))


@router.get("/dpias/{entry_id}", response_class=HTMLResponse)
def dpia(entry_id: str, request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> HTMLResponse:
    registers, org = services_of(request).registers, seen.principal.org_id
    entry = registers.dpia(org, _entry(entry_id))
    activity = None
    if entry.record.activity_id is not None:
        try:
            activity = registers.get(org, KIND_ACTIVITY, entry.record.activity_id)
        except NotFound:
            activity = None  # deleted since: the page says so rather than failing
    context = {
        "entry": entry,
        "activity": activity,
        "done": request.query_params.get("done", ""),
        "may_write": seen.may(REGISTER_WRITERS),
    }
    return page(request, "dpia.html", context)


@router.get("/dpias/{entry_id}/edit", response_class=HTMLResponse)
def edit_dpia(entry_id: str, request: Request, seen: Viewer = Depends(viewer(REGISTER_WRITERS))) -> HTMLResponse:
    entry = services_of(request).registers.dpia(seen.principal.org_id, _entry(entry_id))
    return _dpia_form(request, seen, entry, forms.dpia_state(entry.record))


@router.get("/dpias/{entry_id}/pia")
def pia_export(entry_id: str, request: Request, seen: Viewer = Depends(viewer(COMPLIANCE_READERS))) -> JSONResponse:
    """The DPIA as a CNIL PIA tool JSON export, as GET /api/v1/registers/dpias/{id}/pia gives it."""
    entry = services_of(request).registers.dpia(seen.principal.org_id, _entry(entry_id))
    return JSONResponse(
        pia.export(entry.record, entry.id),
        headers={"Content-Disposition": f'attachment; filename="pia-{entry.id}.json"'},
    )
