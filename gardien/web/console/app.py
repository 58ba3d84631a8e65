"""The admin console: a sub-application mounted at /console, server-rendered with Jinja2.

Pages call the capabilities' services, never the database. Who may open a page is decided by the
same role sets the API uses (see `pages.py`); the session names an API key or a console user,
re-read on every page.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from gardien.core.errors import Problem
from gardien.core.users import PasswordSignIn
from gardien.web.console import audit, dashboard, documents, registers, reports, requests, settings, signin
from gardien.web.console.base import (
    STATIC,
    Refused,
    Services,
    SignInRequired,
    render_error,
    sign_in_redirect,
)
from gardien.web.console.session import PATH, SessionCodec

log = logging.getLogger(__name__)

# No inline script or style anywhere in the console: the policy can forbid both.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
}


def create_console(services: Services) -> FastAPI:
    settings_ = services.runtime.settings
    console = FastAPI(openapi_url=None, docs_url=None, redoc_url=None, title="Gardien console")
    console.state.services = services
    console.state.passwords = PasswordSignIn(services.runtime)
    console.state.codec = SessionCodec(
        services.runtime.keyring,
        idle=timedelta(minutes=settings_.console_idle_minutes),
        lifetime=timedelta(hours=settings_.console_session_hours),
    )
    for module in (signin, dashboard, requests, audit, registers, documents, reports, settings):
        console.include_router(module.router)
    console.mount("/static", StaticFiles(directory=STATIC), name="static")

    @console.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith(f"{PATH}/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @console.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request)

    @console.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return render_error(request, 403, exc.reason)

    @console.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> Response:
        if exc.status == 401:
            return sign_in_redirect(request)
        return render_error(request, exc.status, exc.detail or exc.title)

    @console.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        # Path and query values the console's own links never produce: a page that does not exist.
        return render_error(request, 404, "")

    @console.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        return render_error(request, exc.status_code, "")

    @console.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("console page %s failed", request.url.path)
        return render_error(request, 500, "")

    return console
