"""The request queue and a request's page, with its transitions through the RightsService."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field, ValidationError

from gardien.core.errors import NotFound, Problem
from gardien.core.schemas import NO_NUL
from gardien.rights.schemas import REQUEST_ID, ReasonIn, RejectionCode, RequestType, Status, TransitionIn
from gardien.rights.service import ALLOWED, OPEN
from gardien.web.console.base import (
    Form,
    Viewer,
    field_errors,
    language_of,
    page,
    posted,
    redirect,
    services_of,
    url,
    viewer,
)
from gardien.web.console.pages import REQUEST_DECIDERS, REQUEST_MANAGERS, REQUEST_READERS

router = APIRouter(prefix="/requests")
PAGE_SIZE = 50


class QueueFilter(BaseModel):
    # The requester's whole address, as the API's filter takes it: requests are found by a keyed
    # hash of the address, so a part of one finds nothing.
    email: str | None = Field(default=None, min_length=3, max_length=320, pattern=NO_NUL)
    status: Status | None = None
    type: RequestType | None = None
    overdue: bool | None = None
    extended: bool | None = None
    cursor: str | None = None


def _filter(request: Request) -> tuple[QueueFilter, dict[str, str]]:
    raw = {k: v for k, v in request.query_params.items() if k in QueueFilter.model_fields and v}
    try:
        return QueueFilter.model_validate(raw), {}
    except ValidationError as exc:
        return QueueFilter(), field_errors(exc, language_of(request))


@router.get("", response_class=HTMLResponse)
def queue(request: Request, seen: Viewer = Depends(viewer(REQUEST_READERS))) -> HTMLResponse:
    chosen, errors = _filter(request)
    services = services_of(request)
    try:
        found = services.rights.list_requests(
            seen.principal.org_id,
            status=chosen.status,
            type=chosen.type,
            email=chosen.email,
            overdue=chosen.overdue,
            extended=chosen.extended,
            cursor=chosen.cursor,
            limit=PAGE_SIZE,
            reveal=seen.may(REQUEST_MANAGERS),
        )
    except Problem as exc:
        errors.update(field_errors(exc, seen.lang))
        found = services.rights.list_requests(seen.principal.org_id, limit=PAGE_SIZE, reveal=seen.may(REQUEST_MANAGERS))
    query = chosen.model_dump(mode="json", exclude={"cursor"}, exclude_none=True)
    return page(
        request,
        "requests.html",
        {
            "requests": found.requests,
            "next_page": url("/requests", **query, cursor=found.next_cursor) if found.next_cursor else None,
            "chosen": chosen,
            "errors": errors,
            "statuses": list(Status),
            "types": list(RequestType),
        },
    )


def _request_id(request_id: str) -> str:
    if not re.match(REQUEST_ID, request_id):
        raise NotFound(f"request {request_id!r}")
    return request_id


def _detail(
    request: Request,
    seen: Viewer,
    request_id: str,
    *,
    errors: dict[str, dict[str, str]] | None = None,
    values: dict[str, str] | None = None,
    status: int = 200,
) -> HTMLResponse:
    services = services_of(request)
    org = seen.principal.org_id
    item = services.rights.get(org, request_id, reveal=seen.may(REQUEST_MANAGERS))
    history = services.rights.history(org, request_id).history
    current = Status(item.status)
    return page(
        request,
        "request.html",
        {
            "item": item,
            "history": history,
            "is_open": current in OPEN,
            "may_manage": seen.may(REQUEST_MANAGERS),
            "may_decide": seen.may(REQUEST_DECIDERS),
            # In the order of the lifecycle; waiting for the identity is the e-mail code's doing.
            "next_statuses": [s for s in Status if s in ALLOWED.get(current, frozenset()) - {Status.IDENTITY_PENDING}],
            "rejection_codes": list(RejectionCode),
            "errors": errors or {},
            "values": values or {},
            "done": request.query_params.get("done", ""),
        },
        status=status,
    )


@router.get("/{request_id}", response_class=HTMLResponse)
def detail(request_id: str, request: Request, seen: Viewer = Depends(viewer(REQUEST_READERS))) -> HTMLResponse:
    return _detail(request, seen, _request_id(request_id))


def _act(request: Request, form: Form, request_id: str, action: str, run: Any) -> Response:
    """Run one transition; on refusal, the page again with the error beside the form, nothing changed."""
    try:
        run()
    except ValidationError as exc:
        errors = field_errors(exc, form.viewer.lang)
        return _detail(request, form.viewer, request_id, errors={action: errors}, values=_kept(form), status=422)
    except Problem as exc:
        if exc.status == 404:
            raise
        errors = field_errors(exc, form.viewer.lang)
        return _detail(request, form.viewer, request_id, errors={action: errors}, values=_kept(form), status=exc.status)
    return redirect(request, url(f"/requests/{request_id}", done=action))


def _kept(form: Form) -> dict[str, str]:
    return {name: form.get(name) for name in ("reason", "to", "reason_code")}


@router.post("/{request_id}/code")
def send_code(request_id: str, request: Request, form: Form = Depends(posted(REQUEST_DECIDERS))) -> Response:
    request_id = _request_id(request_id)
    rights, seen = services_of(request).rights, form.viewer
    org = seen.principal.org_id
    return _act(request, form, request_id, "code", lambda: rights.send_code(org, request_id, seen.actor()))


@router.post("/{request_id}/transition")
def transition(request_id: str, request: Request, form: Form = Depends(posted(REQUEST_DECIDERS))) -> Response:
    request_id = _request_id(request_id)
    rights, seen = services_of(request).rights, form.viewer

    def run() -> None:
        body = TransitionIn.model_validate(
            {"to": form.get("to"), "reason": form.get("reason").strip(), "reason_code": form.get("reason_code") or None}
        )
        rights.transition(seen.principal.org_id, request_id, body.to, body.reason, seen.actor(), body.reason_code)

    return _act(request, form, request_id, "transition", run)


# Actions that take only a reason: the form's name -> the RightsService method it calls. Last, so
# that the routes above with fixed names come first.
REASONED = {"extend": "extend", "identity": "verify_by_operator"}


@router.post("/{request_id}/{action}")
def act_with_reason(
    request_id: str, action: str, request: Request, form: Form = Depends(posted(REQUEST_MANAGERS))
) -> Response:
    request_id = _request_id(request_id)
    if action not in REASONED:
        raise NotFound(f"action {action!r}")
    method = getattr(services_of(request).rights, REASONED[action])
    seen = form.viewer

    def run() -> None:
        body = ReasonIn(reason=form.get("reason").strip())
        method(seen.principal.org_id, request_id, body.reason, seen.actor())

    return _act(request, form, request_id, action, run)
