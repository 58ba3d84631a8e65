"""Routes of the privacy center: parse the form, call the rights services, render the page.

A person reaches an organisation's center at `/privacy/<slug>`, files a request, and lands on the
request's page, whose address carries a secret (`k`, an HMAC of the request id): whoever holds the
link follows the request; the same link is in the e-mail with the code. Pages are plain HTML
forms, usable without JavaScript and with the keyboard alone. Every answer, error included, is a
page in the person's language; none is a 500.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Annotated, Any
from urllib.parse import parse_qs, urlencode

from fastapi import APIRouter, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import EmailStr, TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from gardien.core.errors import Conflict, InvalidInput, NotFound, Problem
from gardien.core.service import SLUG_PATTERN
from gardien.rights.execution import DatamapExecutor
from gardien.rights.mail import MailUnavailable
from gardien.rights.packages import LinkExpired, LinkInvalid, PackageCorrupt, PackageStore
from gardien.rights.schemas import REQUEST_ID, RequestIn, RequestOut, RequestType, Status
from gardien.rights.service import PublicOrg, RightsService
from gardien.web.privacy_center.texts import (
    LANGS,
    LANGUAGE_NAMES,
    STATUSES,
    TEXTS,
    TYPE_HINTS,
    TYPES,
    Lang,
    pick_language,
    size_text,
)

router = APIRouter(prefix="/privacy", include_in_schema=False)

MAX_FORM_BYTES = 32_768
MAX_OPEN_PER_ADDRESS = 5
SOURCE = "privacy_center"
HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
DONE_TEXT = {
    RequestType.ERASURE: "done_erasure",
    RequestType.RECTIFICATION: "done_rectification",
    RequestType.RESTRICTION: "done_restriction",
    RequestType.OBJECTION: "done_objection",
}

# Path parts are checked by the handlers, which answer a page in the person's language.
Slug = Annotated[str, PathParam()]
RequestId = Annotated[str, PathParam()]
Token = Annotated[str, PathParam(max_length=1000)]
LangParam = Annotated[str | None, Query(max_length=8)]
StatusKey = Annotated[str | None, Query(max_length=64)]

templates = Environment(
    loader=PackageLoader("gardien.web.privacy_center", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
)
EMAIL = TypeAdapter(EmailStr)


def _rights(request: Request) -> RightsService:
    rights: RightsService = request.app.state.rights
    return rights


def _packages(request: Request) -> PackageStore:
    packages: PackageStore = request.app.state.packages
    return packages


def _translator(lang: Lang) -> Callable[..., str]:
    def t(key: str, **values: Any) -> str:
        text = TEXTS[key][lang]
        return text.format(**values) if values else text

    return t


def _render(
    request: Request,
    template: str,
    lang: Lang,
    org: PublicOrg | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    def switch(code: str) -> str:
        query = {k: v for k, v in request.query_params.items() if k != "lang"}
        return f"{request.url.path}?{urlencode({**query, 'lang': code})}"

    html = templates.get_template(template).render(
        t=_translator(lang),
        lang=lang,
        org=org,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGS],
        switch=switch if request.method == "GET" else None,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def _message(request: Request, lang: Lang, org: PublicOrg | None, status: int, key: str) -> HTMLResponse:
    t = _translator(lang)
    return _render(request, "message.html", lang, org, status, heading=t("title"), message=t(key))


def _problem_page(request: Request, lang: Lang, org: PublicOrg | None, problem: Problem) -> HTMLResponse:
    key = {403: "bad_link", 404: "not_found", 410: "expired_link", 503: "unavailable"}.get(problem.status, "bad_link")
    return _message(request, lang, org, problem.status, key)


async def _form(request: Request) -> dict[str, str]:
    """The urlencoded body, first value of each field; an empty form for anything else."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Problem(413, "too-large", "Payload too large", "the form is too large")
    try:
        fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=40)
    except ValueError as exc:
        raise Problem(413, "too-large", "Payload too large", "the form has too many fields") from exc
    return {name: values[0].replace("\x00", "") for name, values in fields.items() if values}


def _org_or_none(request: Request, slug: str) -> PublicOrg | None:
    return _rights(request).public_org(slug) if SLUG_PATTERN.fullmatch(slug) else None


@cache
def _stylesheet() -> bytes:
    return resources.files("gardien.web.privacy_center").joinpath("static", "privacy.css").read_bytes()


@router.get("/static/privacy.css")
def stylesheet() -> Response:
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(_stylesheet(), media_type="text/css; charset=utf-8", headers=headers)


@router.get("/download/{token}", response_model=None)
def download(token: Token, request: Request) -> Response:
    try:
        package, body = _packages(request).open(token)
    except (LinkInvalid, LinkExpired, PackageCorrupt) as exc:
        if "text/html" in request.headers.get("accept", ""):
            lang = pick_language(request.query_params.get("lang"), request.headers.get("accept-language"))
            return _problem_page(request, lang, None, exc)
        raise
    name = f"{package.kind}-{package.created_at.date().isoformat()}.zip"
    headers = {
        "Content-Disposition": f'attachment; filename="{name}"',
        "Content-Length": str(package.size),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }
    return StreamingResponse(body, media_type="application/zip", headers=headers)


def _form_context(request: Request, org: PublicOrg, lang: Lang) -> dict[str, Any]:
    executor = _rights(request).executor
    rectifiable = executor.rectifiable_fields(org.id) if isinstance(executor, DatamapExecutor) else []
    t = _translator(lang)
    return {
        "labels": {"type": t("type_legend"), "email": t("email"), "changes": t("rectify_legend"), "note": t("note")},
        "types": [(key, names[lang]) for key, names in TYPES.items()],
        "hints": {key: hints[lang] for key, hints in TYPE_HINTS.items()},
        "rectifiable": rectifiable,
    }


@router.get("/{slug}", response_class=HTMLResponse)
def center(slug: Slug, request: Request, lang: LangParam = None) -> HTMLResponse:
    chosen = pick_language(lang, request.headers.get("accept-language"))
    org = _org_or_none(request, slug)
    if org is None:
        return _message(request, chosen, None, 404, "not_found")
    context = _form_context(request, org, chosen)
    return _render(request, "form.html", chosen, org, values={}, errors={}, **context)


def _check_form(values: dict[str, str], lang: Lang) -> tuple[dict[str, Any], dict[str, str]]:
    """The request's body from the form, and the errors by field id."""
    t = _translator(lang)
    errors: dict[str, str] = {}
    kind = values.get("type", "")
    if kind not in TYPES:
        errors["type"] = t("required")
    email = values.get("email", "").strip()
    if not email:
        errors["email"] = t("required")
    else:
        try:
            EMAIL.validate_python(email)
        except ValidationError:
            errors["email"] = t("bad_email")
    note = values.get("note", "").strip()
    if len(note) > 2000:
        errors["note"] = t("too_long")
    changes = {}
    for n in (1, 2, 3):
        name, value = values.get(f"field_{n}", "").strip(), values.get(f"value_{n}", "").strip()
        if name:
            changes[name] = value
    if kind == RequestType.RECTIFICATION.value and not changes:
        errors["changes"] = t("changes_needed")
    body: dict[str, Any] = {"type": kind, "email": email, "locale": lang, "note": note or None}
    if kind == RequestType.RECTIFICATION.value:
        body["changes"] = changes
    if kind == RequestType.OBJECTION.value:
        if values.get("direct_marketing") == "1":
            body["direct_marketing"] = True
        else:
            body["purposes"] = ["*"]
    return body, errors


def _field_of(location: str) -> str:
    head = location.split(".")[0]
    return {"type": "type", "email": "email", "note": "note"}.get(head, "changes")


def _status_path(org: PublicOrg, request_id: str, token: str, lang: Lang, **extra: str) -> str:
    return f"/privacy/{org.slug}/requests/{request_id}?{urlencode({'k': token, 'lang': lang, **extra})}"


@router.post("/{slug}", response_class=HTMLResponse)
async def submit(slug: Slug, request: Request) -> Response:
    values = await _form(request)
    lang = pick_language(values.get("lang"), request.headers.get("accept-language"))
    rights = _rights(request)
    org = await run_in_threadpool(_org_or_none, request, slug)
    if org is None:
        return _message(request, lang, None, 404, "not_found")
    body, errors = _check_form(values, lang)
    status = 422
    if not errors and await run_in_threadpool(rights.open_requests_of, org.id, body["email"]) >= MAX_OPEN_PER_ADDRESS:
        errors["email"], status = _translator(lang)("too_many"), 429
    filed: RequestOut | None = None
    if not errors:
        try:
            actor = {"type": "data_subject", "id": "privacy-center", "display": "privacy center"}
            filed = await run_in_threadpool(rights.create, org.id, RequestIn.model_validate(body), actor, SOURCE)
        except ValidationError as exc:
            for error in exc.errors():
                location = ".".join(str(part) for part in error["loc"])
                errors.setdefault(_field_of(location), f"{location}: {error['msg']}")
        except InvalidInput as exc:
            for error in exc.extra.get("errors", []):
                name = str(error["field"]).removeprefix("changes.")
                errors.setdefault(_field_of(str(error["field"])), f"{name}: {error['message']}")
    if filed is None:
        context = _form_context(request, org, lang)
        return _render(request, "form.html", lang, org, status, values=values, errors=errors, **context)
    token = rights.status_token(org.id, filed.id)
    page = _status_path(org, filed.id, token, lang)
    actor = {"type": "data_subject", "id": filed.id, "display": "privacy center"}
    try:
        link = str(request.base_url).rstrip("/") + page
        await run_in_threadpool(lambda: rights.send_code(org.id, filed.id, actor, follow_link=link))
    except MailUnavailable:
        page = _status_path(org, filed.id, token, lang, mail="failed")
    return RedirectResponse(page, status_code=303, headers=HEADERS)


def _follow(request: Request, slug: str, request_id: str, token: str | None) -> tuple[PublicOrg, RequestOut]:
    rights = _rights(request)
    org = _org_or_none(request, slug)
    if org is None or not re.fullmatch(REQUEST_ID, request_id):
        raise NotFound("request")
    if not token or not rights.status_token_valid(org.id, request_id, token):
        raise LinkInvalid()
    return org, rights.get(org.id, request_id, reveal=False)


def _status_page(
    request: Request, org: PublicOrg, found: RequestOut, token: str, lang: Lang, status: int = 200, **extra: Any
) -> HTMLResponse:
    t = _translator(lang)
    link = None
    package_gone = False
    outcome = found.outcome
    if found.status is Status.COMPLETED and outcome is not None and outcome.package is not None:
        try:
            link = _packages(request).link(org.id, found.id)
        except (LinkExpired, NotFound):
            package_gone = True
    holds = outcome.holds or [] if outcome is not None else []
    recipients = ", ".join(r.name for r in (outcome.recipients or [])) if outcome is not None else ""
    done = DONE_TEXT.get(found.type)
    base = f"/privacy/{org.slug}/requests/{found.id}"
    return _render(
        request,
        "status.html",
        lang,
        org,
        status,
        req=found,
        token=token,
        base=base,
        here=_status_path(org, found.id, token, lang),
        type_name=TYPES[found.type.value][lang],
        status_name=STATUSES[found.status.value][lang],
        awaiting_code=found.status in (Status.RECEIVED, Status.IDENTITY_PENDING),
        minutes=request.app.state.runtime.settings.rights_code_minutes,
        failed=found.execution is not None and found.execution.state.value == "failed",
        link=link,
        size=size_text(link.package.size) if link is not None else "",
        package_gone=package_gone,
        holds=[{"reason": _hold_reason(h.reason, lang), "until": h.until} for h in holds],
        recipients=recipients,
        done_text=t(done) if done is not None else None,
        **extra,
    )


def _hold_reason(reason: str | dict[str, str], lang: Lang) -> str:
    if isinstance(reason, str):
        return reason
    return reason.get(lang) or reason.get("en") or next(iter(reason.values()), "")


@router.get("/{slug}/requests/{request_id}", response_class=HTMLResponse)
def follow(
    slug: Slug,
    request_id: RequestId,
    request: Request,
    k: StatusKey = None,
    lang: LangParam = None,
    mail: Annotated[str | None, Query(max_length=10)] = None,
) -> HTMLResponse:
    chosen = pick_language(lang, request.headers.get("accept-language"))
    try:
        org, found = _follow(request, slug, request_id, k)
    except Problem as exc:
        return _problem_page(request, chosen, _org_or_none(request, slug), exc)
    error = _translator(chosen)("mail_down") if mail == "failed" else None
    return _status_page(request, org, found, k or "", chosen, error=error)


@router.post("/{slug}/requests/{request_id}/code", response_class=HTMLResponse)
async def enter_code(slug: Slug, request_id: RequestId, request: Request) -> Response:
    values = await _form(request)
    lang = pick_language(values.get("lang"), request.headers.get("accept-language"))
    token = values.get("k", "")
    try:
        org, found = await run_in_threadpool(_follow, request, slug, request_id, token)
    except Problem as exc:
        return _problem_page(request, lang, await run_in_threadpool(_org_or_none, request, slug), exc)
    t = _translator(lang)
    here = _status_path(org, request_id, token, lang)
    if found.status not in (Status.RECEIVED, Status.IDENTITY_PENDING):
        return RedirectResponse(here, status_code=303, headers=HEADERS)  # sent twice: the first one did it
    code = values.get("code", "").strip()
    if not re.fullmatch(r"[0-9]{6}", code):
        return _status_page(request, org, found, token, lang, 422, code_error=t("code_format"))
    actor = {"type": "data_subject", "id": request_id, "display": "privacy center"}
    try:
        await run_in_threadpool(_rights(request).verify_code, org.id, request_id, code, actor)
    except InvalidInput as exc:
        left = re.search(r"(\d+) attempt", exc.detail)
        message = TEXTS["wrong_code"][lang].format(left=left.group(1) if left else "0")
        fresh = await run_in_threadpool(_rights(request).get, org.id, request_id, reveal=False)
        return _status_page(request, org, fresh, token, lang, 422, code_error=message)
    except Conflict:
        return _status_page(request, org, found, token, lang, 409, code_error=t("code_spent"))
    return RedirectResponse(here, status_code=303, headers=HEADERS)


@router.post("/{slug}/requests/{request_id}/resend", response_class=HTMLResponse)
async def resend(slug: Slug, request_id: RequestId, request: Request) -> Response:
    values = await _form(request)
    lang = pick_language(values.get("lang"), request.headers.get("accept-language"))
    token = values.get("k", "")
    try:
        org, found = await run_in_threadpool(_follow, request, slug, request_id, token)
    except Problem as exc:
        return _problem_page(request, lang, await run_in_threadpool(_org_or_none, request, slug), exc)
    page = _status_path(org, request_id, token, lang)
    actor = {"type": "data_subject", "id": request_id, "display": "privacy center"}
    link = str(request.base_url).rstrip("/") + page
    try:
        await run_in_threadpool(lambda: _rights(request).send_code(org.id, request_id, actor, follow_link=link))
    except MailUnavailable:
        page = _status_path(org, request_id, token, lang, mail="failed")
    except Conflict:
        return _status_page(request, org, found, token, lang, 409, code_error=_translator(lang)("code_limit"))
    return RedirectResponse(page, status_code=303, headers=HEADERS)
