"""Routes of consent management. Parse, authorise, call the ConsentService, shape the answer.

Two surfaces: the authenticated API under /api/v1/consent, and the banner's public one under
/api/v1/consent/public/{site_key}, which needs no key and answers CORS for the allowed origins.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Coroutine
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Scope

from gardien.consent.schemas import (
    BulkCheckIn,
    BulkCheckOut,
    CheckOut,
    ChoiceIn,
    NoticeIn,
    NoticeList,
    NoticeOut,
    ProofFormat,
    PublicChoiceIn,
    PublicNoticeOut,
    SettingsIn,
    SettingsOut,
    StateOut,
    StatsOut,
    UserStatesOut,
    WithdrawIn,
)
from gardien.consent.service import ClientContext, ConsentService, Site
from gardien.core.auth import require
from gardien.core.errors import NotFound
from gardien.core.fastlane import FastRoute, model_route
from gardien.core.roles import Role
from gardien.core.schemas import NO_NUL
from gardien.core.service import Principal

ADMIN, DPO, AUDITOR, OPERATOR, SERVICE = Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR, Role.SERVICE
# Who reads the configuration, the notices and the statistics.
CONFIG_READERS = frozenset({ADMIN, DPO, OPERATOR, AUDITOR})
# Who writes the settings and the notice versions.
CONFIG_WRITERS = frozenset({ADMIN, DPO})
# Applications that record choices and check them.
RECORDERS = frozenset({SERVICE, OPERATOR, ADMIN})
STATE_READERS = frozenset({SERVICE, OPERATOR, ADMIN, DPO, AUDITOR})
WITHDRAWERS = frozenset({SERVICE, OPERATOR, ADMIN, DPO})
PROOF_READERS = frozenset({ADMIN, DPO, AUDITOR})

ConsentId = Annotated[UUID, PathParam(description="The banner's consent id (a UUID).")]
SiteKey = Annotated[str, PathParam(pattern=r"^gdn_site_[A-Za-z0-9_-]{1,64}$", description="The public site key.")]
UserId = Annotated[str, PathParam(min_length=1, max_length=256, pattern=NO_NUL)]
Version = Annotated[int, PathParam(ge=1, le=2**31 - 1)]
PurposeQuery = Annotated[str, Query(pattern=r"^[a-z][a-z0-9_-]{0,39}$")]
PREFLIGHT_HEADERS = {
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "600",
}


def service_of(request: Request) -> ConsentService:
    service: ConsentService = request.app.state.consent
    return service


def _requires(roles: frozenset[Role]) -> Any:
    return Depends(require(roles))


class PublicRoute(APIRoute):
    """A banner route: its answers, errors included, carry CORS headers for the site's allowed origins.

    The application's error handlers render the errors here rather than outside the route, so that a
    banner on another origin can read why its call failed. No credentials are ever allowed.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handler(request)
            except Exception as exc:
                render = _error_handler(request, exc)
                if render is None:
                    raise
                rendered = render(request, exc)
                response = await rendered if inspect.isawaitable(rendered) else rendered
            await _allow_origin(request, response)
            return response

        return with_cors


def _error_handler(request: Request, exc: Exception) -> Callable[..., Any] | None:
    """The application's handler for this error; the catch-all one is left to the server's own stack."""
    handlers = request.app.exception_handlers
    for kind in type(exc).__mro__:
        if kind in (Exception, BaseException):
            return None
        if kind in handlers:
            found: Callable[..., Any] = handlers[kind]
            return found
    return None


async def _allow_origin(request: Request, response: Response) -> None:
    origin = request.headers.get("origin")
    site_key = request.path_params.get("site_key")
    if origin is None or not isinstance(site_key, str):
        return
    response.headers.append("Vary", "Origin")
    try:
        site = await service_of(request).site_by_key_async(site_key)
    except NotFound:
        return
    if site.allowed_origins and origin not in site.allowed_origins:
        return
    response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        response.headers.update(PREFLIGHT_HEADERS)


def client_context(request: Request) -> ClientContext:
    return context_of_scope(request.scope)


def context_of_scope(scope: Scope) -> ClientContext:
    client = scope.get("client")
    headers = Headers(scope=scope)
    return ClientContext(
        ip=client[0] if client else None,
        user_agent=headers.get("user-agent"),
        gpc=headers.get("sec-gpc") == "1",
    )


router = APIRouter(prefix="/api/v1/consent", tags=["consent"])
public = APIRouter(prefix="/public/{site_key}", tags=["consent banner"], route_class=PublicRoute)


# The banner's public surface --------------------------------------------------------------------


async def _site(request: Request, site_key: str) -> Site:
    return await service_of(request).site_by_key_async(site_key)


@public.get("/notice", response_model=PublicNoticeOut, summary="The current notice version, for the banner")
async def public_notice(site_key: SiteKey, request: Request) -> PublicNoticeOut:
    return service_of(request).public_notice(await _site(request, site_key))


@public.post(
    "/choices",
    status_code=201,
    response_model=StateOut,
    summary="Record the person's choice from the banner (Sec-GPC: 1 is required for the gpc method)",
)
async def public_choice(site_key: SiteKey, body: PublicChoiceIn, request: Request) -> StateOut:
    site = await _site(request, site_key)
    actor = {"type": "banner", "id": site_key, "display": "cookie banner"}
    return await service_of(request).record_async(site.org_id, body, actor, client_context(request))


@public.get("/choices/{consent_id}", response_model=StateOut, summary="The current state of a consent id")
async def public_state(site_key: SiteKey, consent_id: ConsentId, request: Request) -> StateOut:
    site = await _site(request, site_key)
    return await run_in_threadpool(service_of(request).state, site.org_id, str(consent_id))


@public.options("/notice", include_in_schema=False)
@public.options("/choices", include_in_schema=False)
@public.options("/choices/{consent_id}", include_in_schema=False)
async def preflight(site_key: str) -> Response:
    return Response(status_code=204)


router.include_router(public)


# Settings and notices ----------------------------------------------------------------------------


@router.get("/settings", response_model=SettingsOut, summary="Validity, allowed origins and the site key")
def get_settings(request: Request, principal: Principal = _requires(CONFIG_READERS)) -> SettingsOut:
    return service_of(request).get_settings(principal.org_id, principal.as_actor())


@router.put("/settings", response_model=SettingsOut, summary="Replace the consent settings")
async def put_settings(
    body: SettingsIn, request: Request, principal: Principal = _requires(CONFIG_WRITERS)
) -> SettingsOut:
    return await service_of(request).put_settings_async(principal.org_id, body, principal.as_actor())


@router.post(
    "/notices", status_code=201, response_model=NoticeOut, summary="Create a notice version; it becomes current"
)
async def create_notice(
    body: NoticeIn, request: Request, principal: Principal = _requires(CONFIG_WRITERS)
) -> NoticeOut:
    return await service_of(request).create_notice_async(principal.org_id, body, principal.as_actor())


@router.get("/notices", response_model=NoticeList, summary="Every notice version, oldest first")
def list_notices(request: Request, principal: Principal = _requires(CONFIG_READERS)) -> NoticeList:
    return service_of(request).notices(principal.org_id)


@router.get("/notices/{version}", response_model=NoticeOut, summary="One notice version, with its hash")
def get_notice(version: Version, request: Request, principal: Principal = _requires(CONFIG_READERS)) -> NoticeOut:
    return service_of(request).notice(principal.org_id, version)


# Choices and states ------------------------------------------------------------------------------


@router.post("/records", status_code=201, response_model=StateOut, summary="Record a choice")
async def record(body: ChoiceIn, request: Request, principal: Principal = _requires(RECORDERS)) -> StateOut:
    return await service_of(request).record_async(principal.org_id, body, principal.as_actor(), client_context(request))


def record_route(service: ConsentService) -> FastRoute:
    """The fast lane's handler of ``POST /records``: same parsing, same answer, without FastAPI's stack."""

    async def run(principal: Principal, choice: ChoiceIn, scope: Scope) -> StateOut:
        return await service.record_async(principal.org_id, choice, principal.as_actor(), context_of_scope(scope))

    return model_route(f"{router.prefix}/records", RECORDERS, ChoiceIn, 201, run)


@router.get("/subjects/{consent_id}", response_model=StateOut, summary="The current state of a consent id")
def get_subject(consent_id: ConsentId, request: Request, principal: Principal = _requires(STATE_READERS)) -> StateOut:
    return service_of(request).state(principal.org_id, str(consent_id))


@router.get("/users/{user_id}", response_model=UserStatesOut, summary="The states of the consent ids of a user")
def get_user(user_id: UserId, request: Request, principal: Principal = _requires(STATE_READERS)) -> UserStatesOut:
    return service_of(request).user_states(principal.org_id, user_id)


@router.post(
    "/subjects/{consent_id}/withdraw",
    status_code=201,
    response_model=StateOut,
    summary="Withdraw consent: the purposes named, or every non-essential one",
)
async def withdraw(
    consent_id: ConsentId,
    request: Request,
    body: WithdrawIn | None = None,
    principal: Principal = _requires(WITHDRAWERS),
) -> StateOut:
    return await service_of(request).withdraw_async(
        principal.org_id, str(consent_id), body or WithdrawIn(), principal.as_actor()
    )


@router.get(
    "/subjects/{consent_id}/proof",
    summary="Every event of a consent id with the notice versions they refer to",
    responses={200: {"content": {"application/json": {}, "application/ld+json": {}}}},
)
def proof(
    consent_id: ConsentId,
    request: Request,
    format: ProofFormat = "json",
    principal: Principal = _requires(PROOF_READERS),
) -> JSONResponse:
    document = service_of(request).proof(principal.org_id, str(consent_id), format)
    media_type = "application/ld+json" if format == "iso27560" else "application/json"
    return JSONResponse(document, media_type=media_type)


# Checks and statistics ---------------------------------------------------------------------------


@router.get("/check", response_model=CheckOut, summary="May this purpose run for this consent id?")
def check(
    subject: UUID, purpose: PurposeQuery, request: Request, principal: Principal = _requires(RECORDERS)
) -> CheckOut:
    return service_of(request).check(principal.org_id, str(subject), purpose)


@router.post("/check", response_model=BulkCheckOut, summary="Up to 1,000 checks at once")
def bulk_check(body: BulkCheckIn, request: Request, principal: Principal = _requires(RECORDERS)) -> BulkCheckOut:
    service = service_of(request)
    return BulkCheckOut(
        results=[
            service.check(principal.org_id, str(item.subject), item.purpose, f"checks.{index}.purpose")
            for index, item in enumerate(body.checks)
        ]
    )


@router.get("/stats", response_model=StatsOut, summary="Choices per purpose per day, and those expiring soon")
def stats(
    request: Request,
    since: date | None = None,
    until: Annotated[date | None, Query(description="inclusive; default today")] = None,
    principal: Principal = _requires(CONFIG_READERS),
) -> StatsOut:
    return service_of(request).stats(principal.org_id, since, until)
