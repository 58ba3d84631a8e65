"""What every console page shares: the services, who is looking, forms, and rendering."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape
from pydantic import ValidationError

from gardien.audit.service import Ledger
from gardien.consent.service import ConsentService
from gardien.core import service as core
from gardien.core import users
from gardien.core.errors import Problem
from gardien.core.roles import Role
from gardien.core.runtime import Runtime
from gardien.core.service import Principal, Unauthorized
from gardien.registers.evidence import Evidence
from gardien.registers.notices import NoticeService
from gardien.registers.service import RegistersService
from gardien.retention.service import RetentionService
from gardien.rights.service import RightsService
from gardien.web.console import i18n
from gardien.web.console.pages import PAGES, allowed_pages
from gardien.web.console.session import COOKIE, PATH, Session, SessionCodec

STATIC = Path(__file__).parent / "static"
MAX_FORM_BYTES = 256 * 1024
MAX_FORM_FIELDS = 1000
# The printable documents (register, notification, notice, report) carry their own stylesheet
# inline, and inline SVG charts; none has a script.
DOCUMENT_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"
)
# Where a sign-in may send the browser back to: a console page, never another site.
LOCAL_PATH = re.compile(r"^/console/[A-Za-z0-9/_\-]*$")

templates = Environment(
    loader=PackageLoader("gardien.web.console", "templates"),
    autoescape=select_autoescape(default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass(frozen=True)
class Services:
    runtime: Runtime
    ledger: Ledger
    rights: RightsService
    registers: RegistersService
    consent: ConsentService
    retention: RetentionService
    # The generated documents: the privacy notice's versions, and the figures of the compliance
    # matrix and the period report.
    notices: NoticeService
    evidence: Evidence


@dataclass
class Viewer:
    """Who is looking at a page: the key's (or user's) principal, its organisation, the session and language."""

    principal: Principal
    org_name: str
    org_slug: str
    org_country: str
    session: Session
    lang: str
    csrf: str

    @property
    def role(self) -> Role:
        return self.principal.role

    def may(self, roles: Iterable[Role]) -> bool:
        return self.principal.role in frozenset(roles)

    def actor(self) -> dict[str, str]:
        return self.principal.as_actor()


class SignInRequired(Exception):
    """No valid session: the browser goes to the sign-in page."""


class Refused(Exception):
    """A signed-in key whose role may not open the page or send the form."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def codec_of(request: Request) -> SessionCodec:
    codec: SessionCodec = request.app.state.codec
    return codec


def now_of(request: Request) -> datetime:
    """The console's clock; tests replace `app.state.clock` to age sessions."""
    clock: Callable[[], datetime] | None = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else datetime.now(UTC)


def language_of(request: Request) -> str:
    return i18n.negotiate(request.cookies.get(i18n.COOKIE), request.headers.get("accept-language"))


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def _viewer(request: Request) -> Viewer:
    codec = codec_of(request)
    session = codec.decode(request.cookies.get(COOKIE), now_of(request))
    if session is None:
        raise SignInRequired
    services = services_of(request)
    try:
        if session.kind == "user":
            principal = users.principal_of_user(services.runtime, session.key_id)
        else:
            principal = core.principal_of_key(services.runtime, session.key_id)
    except Unauthorized as exc:
        raise SignInRequired from exc
    if principal.org_id != session.org_id or principal.role.value != session.role:
        raise SignInRequired
    with services.runtime.sessions() as db:
        org = core.get_org(db, principal.org_id)
        names = (org.name, org.slug, org.country)
    return Viewer(principal, *names, session, language_of(request), codec.csrf_token(session.sid))


def viewer(roles: Iterable[Role]) -> Callable[[Request], Viewer]:
    """Dependency: the signed-in viewer, refused (403 page) unless its role is among `roles`."""
    allowed = frozenset(roles)

    def dependency(request: Request) -> Viewer:
        seen = _viewer(request)
        request.state.viewer = seen
        if seen.role not in allowed:
            raise Refused(i18n.text(seen.lang, "refused_role", role=seen.role.value))
        return seen

    return dependency


@dataclass
class Form:
    """A posted form: its fields (repeated names keep every value) and its viewer."""

    viewer: Viewer
    values: dict[str, list[str]] = field(default_factory=dict)

    def get(self, name: str) -> str:
        found = self.values.get(name)
        return found[0] if found else ""

    def all(self, name: str) -> list[str]:
        return self.values.get(name, [])

    def has(self, name: str) -> bool:
        return name in self.values


async def read_form(request: Request) -> dict[str, list[str]]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Problem(413, "too-large", "Payload too large", "the form is too large")
    try:
        pairs = parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise Problem(400, "bad-form", "Bad form", "the form could not be read") from exc
    values: dict[str, list[str]] = {}
    for name, value in pairs:
        values.setdefault(name, []).append(value.replace("\r\n", "\n"))
    return values


def posted(roles: Iterable[Role]) -> Callable[[Request], Awaitable[Form]]:
    """Dependency: a form sent by a signed-in viewer of an allowed role, with a valid CSRF token."""
    check = viewer(roles)

    async def dependency(request: Request) -> Form:
        seen = check(request)
        values = await read_form(request)
        token = values.get("csrf", [""])[0]
        if not codec_of(request).csrf_valid(seen.session.sid, token):
            raise Refused(i18n.text(seen.lang, "csrf_refused"))
        return Form(seen, values)

    return dependency


# Rendering -------------------------------------------------------------------------------------


def _when(value: datetime | None) -> str:
    if value is None:
        return "—"
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _day(value: date | None) -> str:
    return value.isoformat() if value is not None else "—"


templates.filters["when"] = _when
# A choice's value with its label in the page's language: ("health", "health data").
templates.filters["pair"] = lambda value, prefix, t: (value, t(prefix + value))
templates.filters["day"] = _day


def url(path: str, **query: Any) -> str:
    """A console URL; query members that are None or empty are left out."""
    kept = {k: v for k, v in query.items() if v not in (None, "")}
    return f"{PATH}{path}" + (f"?{urlencode(kept)}" if kept else "")


templates.globals["url"] = url


def _set_session_cookie(request: Request, response: Response, seen: Viewer) -> None:
    codec = codec_of(request)
    refreshed = replace(seen.session, seen=now_of(request))
    set_cookie(request, response, COOKIE, codec.encode(refreshed))


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response, name: str) -> None:
    response.delete_cookie(name, path=PATH, httponly=True, samesite="strict", secure=is_https(request))


def page(
    request: Request,
    template: str,
    context: Mapping[str, Any] | None = None,
    *,
    status: int = 200,
    lang: str | None = None,
) -> HTMLResponse:
    """Render a page; a signed-in viewer's session slides forward with every page it sees."""
    seen: Viewer | None = getattr(request.state, "viewer", None)
    language = seen.lang if seen is not None else (lang or language_of(request))
    values: dict[str, Any] = {
        "viewer": seen,
        "lang": language,
        "t": i18n.translator(language),
        "nav": allowed_pages(seen.role) if seen is not None else [],
        "current": request.url.path,
        "pages": PAGES,
        "here": request.url.path + (f"?{request.url.query}" if request.url.query else ""),
    }
    values.update(context or {})
    response = HTMLResponse(templates.get_template(template).render(values), status_code=status)
    if seen is not None:
        _set_session_cookie(request, response, seen)
    return response


def redirect(request: Request, target: str) -> RedirectResponse:
    """After a form that changed something: see the result with a GET (303)."""
    response = RedirectResponse(target, status_code=303)
    seen: Viewer | None = getattr(request.state, "viewer", None)
    if seen is not None:
        _set_session_cookie(request, response, seen)
    return response


def sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    query = {"next": target} if LOCAL_PATH.match(target) and target != f"{PATH}/sign-in" else {}
    response = RedirectResponse(url("/sign-in", **query), status_code=303)
    if request.cookies.get(COOKIE):
        clear_cookie(request, response, COOKIE)
    return response


ERROR_TITLES = {403: "error_403", 404: "error_404", 409: "error_409", 413: "error_413", 500: "error_500"}


def render_error(request: Request, status: int, detail: str) -> HTMLResponse:
    key = ERROR_TITLES.get(status, "error_other")
    if getattr(request.state, "viewer", None) is None:
        # A page the router does not know: still show the signed-in viewer their menu.
        try:
            request.state.viewer = _viewer(request)
        except (SignInRequired, Problem):
            request.state.viewer = None
    return page(request, "error.html", {"status": status, "title_key": key, "detail": detail}, status=status)


# Forms and their errors --------------------------------------------------------------------------


def field_errors(exc: ValidationError | Problem, lang: str) -> dict[str, str]:
    """Errors by dotted field path, as form fields are named; '' for those of no field.

    The schemas' own checks speak for themselves; pydantic's generic ones are said in the page's
    language.
    """
    found: dict[str, str] = {}
    if isinstance(exc, ValidationError):
        for error in exc.errors():
            path = ".".join(str(part) for part in error.get("loc", ()))
            message = _message(error, lang)
            named, _, rest = message.partition(": ")
            # Model-level checks name the member they are about: "legitimate_interest: name …".
            if rest and re.fullmatch(r"[a-z_0-9]+", named):
                path = f"{path}.{named}" if path else named
                message = rest
            found.setdefault(path, message)
        return found
    listed = exc.extra.get("errors") or []
    for error in listed:
        found.setdefault(str(error.get("field", "")), str(error.get("message", "")))
    if not listed:
        found[""] = exc.detail or exc.title
    return found


# pydantic's error types -> the console's words for them.
GENERIC_ERRORS = {
    "missing": "err_required",
    "int_parsing": "err_integer",
    "int_from_float": "err_integer",
    "int_type": "err_integer",
    "greater_than_equal": "err_at_least",
    "less_than_equal": "err_at_most",
    "enum": "err_choice",
    "literal_error": "err_choice",
    "datetime_parsing": "err_datetime",
    "datetime_from_date_parsing": "err_datetime",
    "datetime_type": "err_datetime",
    "date_parsing": "err_date",
    "date_from_datetime_parsing": "err_date",
    "string_pattern_mismatch": "err_pattern",
    "string_too_long": "err_too_long",
}


def _message(error: Any, lang: str) -> str:
    kind, context = str(error.get("type", "")), error.get("ctx") or {}
    if kind in ("string_too_short", "too_short"):
        key = "err_required" if context.get("min_length") == 1 else "err_too_short"
        return i18n.text(lang, key, n=context.get("min_length", ""))
    if kind in GENERIC_ERRORS:
        limit = context.get("ge", context.get("le", context.get("max_length", "")))
        return i18n.text(lang, GENERIC_ERRORS[kind], n=limit)
    return str(error.get("msg", "")).removeprefix("Value error, ")


def lines(text: str) -> list[str]:
    """A textarea with one item per line, blank lines left out."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def optional(text: str) -> str | None:
    text = text.strip()
    return text or None


DATETIME_LOCAL = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")


def moment(text: str) -> str | None:
    """A `datetime-local` value, read as UTC; anything else goes to validation as typed."""
    text = text.strip()
    if not text:
        return None
    return f"{text}Z" if DATETIME_LOCAL.match(text) else text


def local_input(value: datetime | None) -> str:
    """A UTC time as a `datetime-local` field's value."""
    if value is None:
        return ""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


templates.filters["local_input"] = local_input
