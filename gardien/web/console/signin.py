"""Signing in with a password or an API key, signing out, and choosing the language."""

from __future__ import annotations

import logging
import re
import secrets
from typing import Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from gardien.core import service as core
from gardien.core.service import Principal, Unauthorized
from gardien.core.users import PasswordSignIn
from gardien.web.console import i18n
from gardien.web.console.base import (
    Form,
    Refused,
    SignInRequired,
    clear_cookie,
    codec_of,
    language_of,
    now_of,
    page,
    posted,
    read_form,
    services_of,
    set_cookie,
    url,
)
from gardien.web.console.base import _viewer as current_viewer
from gardien.web.console.pages import SETTINGS_READERS, home_of
from gardien.web.console.session import COOKIE, PATH, PRE_COOKIE

log = logging.getLogger(__name__)
router = APIRouter()
# A page of the console, with its query: where sign-in and the language switch send the browser.
LOCAL_TARGET = re.compile(r"^/console/[A-Za-z0-9/_\-.~%?=&+]*$")
LANG_MAX_AGE = 365 * 24 * 3600


def _target(candidate: str, fallback: str) -> str:
    safe = LOCAL_TARGET.match(candidate) and "//" not in candidate and "/.." not in candidate
    return candidate if safe else fallback


def _signed_in(request: Request) -> bool:
    try:
        current_viewer(request)
    except SignInRequired:
        return False
    return True


def _sign_in_page(
    request: Request,
    *,
    error: str = "",
    status: int = 200,
    next_: str = "",
    form: str = "key",
    email: str = "",
) -> Response:
    nonce = request.cookies.get(PRE_COOKIE) or ""
    if not re.fullmatch(r"[A-Za-z0-9_\-]{16,64}", nonce):
        nonce = secrets.token_urlsafe(18)
    context = {
        "csrf": codec_of(request).csrf_token(nonce),
        "error": error,
        "failed_form": form if error else "",
        "email": email,
        "next": next_,
        "signed_out": request.query_params.get("signed_out") == "1" and not error,
    }
    response = page(request, "sign_in.html", context, status=status)
    set_cookie(request, response, PRE_COOKIE, nonce)
    return response


@router.get("/sign-in")
def sign_in_form(request: Request, next: str = "") -> Response:
    if _signed_in(request):
        return RedirectResponse(_target(next, f"{PATH}/"), status_code=303)
    return _sign_in_page(request, next_=_target(next, ""))


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    values = await read_form(request)
    lang = language_of(request)
    token = values.get("csrf", [""])[0]
    next_ = _target(values.get("next", [""])[0], "")
    if not codec_of(request).csrf_valid(request.cookies.get(PRE_COOKIE), token):
        return _sign_in_page(request, error=i18n.text(lang, "csrf_refused"), status=403, next_=next_)
    key = values.get("key", [""])[0].strip()
    services = services_of(request)
    try:
        principal = core.authenticate(services.runtime, key)
    except Unauthorized:
        # Never echo the key back, not even in the field: the page is rendered without it.
        return _sign_in_page(request, error=i18n.text(lang, "sign_in_failed"), status=401, next_=next_)
    return _signed_in_response(request, principal, next_, "api_key")


@router.post("/sign-in/password")
async def sign_in_with_password(request: Request) -> Response:
    values = await read_form(request)
    lang = language_of(request)
    next_ = _target(values.get("next", [""])[0], "")
    email = values.get("email", [""])[0].strip()
    shown = email[:320]
    if not codec_of(request).csrf_valid(request.cookies.get(PRE_COOKIE), values.get("csrf", [""])[0]):
        error = i18n.text(lang, "csrf_refused")
        return _sign_in_page(request, error=error, status=403, next_=next_, form="password", email=shown)
    passwords: PasswordSignIn = request.app.state.passwords
    # argon2 takes tens of milliseconds of CPU: off the event loop.
    outcome = await run_in_threadpool(passwords.attempt, email, values.get("password", [""])[0], now_of(request))
    if outcome.principal is not None:
        return _signed_in_response(request, outcome.principal, next_, "password", rehashed=outcome.rehashed)
    _record_failure(request, outcome.user, locked=outcome.locked_until is not None)
    if outcome.locked_until is not None:
        until = outcome.locked_until.strftime("%H:%M UTC")
        error, status = i18n.text(lang, "sign_in_locked", until=until), 429
    else:
        error, status = i18n.text(lang, "sign_in_password_failed"), 401
    return _sign_in_page(request, error=error, status=status, next_=next_, form="password", email=shown)


def _record_failure(request: Request, user: Principal | None, *, locked: bool) -> None:
    """A failed password sign-in goes to the ledger of the address's organisation; an address
    that is nobody's has no organisation, so it is only logged (without the address)."""
    if user is None:
        log.warning("console: failed password sign-in, address of no user%s", " (locked)" if locked else "")
        return
    services_of(request).ledger.record(
        user.org_id,
        {
            "module": "console",
            "action": "console.sign_in",
            "crud": "execute",
            "outcome": "failure",
            "reason": "locked" if locked else "wrong password",
            "actor": {"type": "anonymous", "id": "console-sign-in", "display": "console sign-in form"},
            "target": user.as_actor(),
            "fields": {"method": "password"},
        },
    )


def _signed_in_response(
    request: Request, principal: Principal, next_: str, method: str, *, rehashed: bool = False
) -> Response:
    codec = codec_of(request)
    kind = "user" if principal.kind == "user" else "key"
    session = codec.new(principal.key_id, principal.org_id, principal.role.value, now_of(request), kind)
    fields: dict[str, Any] = {"method": method}
    if rehashed:
        fields["rehashed"] = True
    services_of(request).ledger.record(
        principal.org_id,
        {
            "module": "console",
            "action": "console.sign_in",
            "crud": "execute",
            "actor": principal.as_actor(),
            "fields": fields,
        },
    )
    response = RedirectResponse(_target(next_, f"{PATH}{home_of(principal.role)}"), status_code=303)
    set_cookie(request, response, COOKIE, codec.encode(session))
    clear_cookie(request, response, PRE_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, form: Form = Depends(posted(SETTINGS_READERS))) -> Response:
    services_of(request).ledger.record(
        form.viewer.principal.org_id,
        {"module": "console", "action": "console.sign_out", "crud": "execute", "actor": form.viewer.actor()},
    )
    response = RedirectResponse(url("/sign-in", signed_out="1"), status_code=303)
    clear_cookie(request, response, COOKIE)
    return response


@router.post("/language")
async def choose_language(request: Request) -> Response:
    values = await read_form(request)
    try:
        nonce = current_viewer(request).session.sid
    except SignInRequired:
        nonce = request.cookies.get(PRE_COOKIE) or ""
    if not codec_of(request).csrf_valid(nonce, values.get("csrf", [""])[0]):
        raise Refused(i18n.text(language_of(request), "csrf_refused"))
    chosen = values.get("lang", [""])[0]
    response = RedirectResponse(_target(values.get("next", [""])[0], f"{PATH}/"), status_code=303)
    if chosen in i18n.LANGUAGES:
        set_cookie(request, response, i18n.COOKIE, chosen, max_age=LANG_MAX_AGE)
    return response
