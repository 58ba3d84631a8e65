"""Routes of data-subject requests. Parse, authorise, call the RightsService, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam

from gardien.core.auth import Forbidden, require
from gardien.core.roles import Role
from gardien.core.schemas import NO_NUL
from gardien.core.service import Principal
from gardien.rights.packages import PackageStore
from gardien.rights.schemas import (
    REQUEST_ID,
    BlockOut,
    BlocksOut,
    CanProcessOut,
    CodeIn,
    CodeSent,
    DueOut,
    HistoryOut,
    PackageLink,
    ReasonIn,
    RequestIn,
    RequestOut,
    RequestPage,
    RequestType,
    SettingsIn,
    SettingsOut,
    Status,
    TransitionIn,
)
from gardien.rights.service import RightsService

ADMIN, DPO, AUDITOR, OPERATOR, SERVICE = Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR, Role.SERVICE
# Who runs the queue: decides, extends, verifies by hand, lifts blocks, sets reminders.
MANAGERS = frozenset({ADMIN, DPO})
READERS = frozenset({ADMIN, DPO, OPERATOR, AUDITOR})
# A host application files requests on the person's behalf, relays the e-mailed code, reads the status.
CREATORS = frozenset({ADMIN, DPO, SERVICE})
STATUS_READERS = READERS | {SERVICE}
CHECKERS = frozenset({ADMIN, DPO, OPERATOR, SERVICE})

RequestId = Annotated[str, PathParam(pattern=REQUEST_ID, description="The request's id (a UUID).")]
BlockId = Annotated[str, PathParam(pattern=REQUEST_ID, description="The block's id (a UUID).")]
Subject = Annotated[
    str,
    Query(min_length=1, max_length=256, pattern=NO_NUL, description="The host subject id or the e-mail address."),
]

router = APIRouter(prefix="/api/v1", tags=["data-subject requests"])


def service_of(request: Request) -> RightsService:
    service: RightsService = request.app.state.rights
    return service


def packages_of(request: Request) -> PackageStore:
    packages: PackageStore = request.app.state.packages
    return packages


def _requires(roles: frozenset[Role]) -> Any:
    return Depends(require(roles))


def _reveals(principal: Principal) -> bool:
    """Only the people who answer the person see the address in clear."""
    return principal.role in MANAGERS


@router.post("/requests", status_code=201, response_model=RequestOut, summary="File a data-subject request")
def create_request(body: RequestIn, request: Request, principal: Principal = _requires(CREATORS)) -> RequestOut:
    source = "service" if principal.role is SERVICE else "operator"
    return service_of(request).create(principal.org_id, body, principal.as_actor(), source)


@router.get("/requests", response_model=RequestPage, summary="Requests, newest first")
def list_requests(
    request: Request,
    principal: Principal = _requires(READERS),
    status: Status | None = None,
    type: RequestType | None = None,
    extended: bool | None = None,
    overdue: bool | None = None,
    email: Annotated[str | None, Query(min_length=3, max_length=320, pattern=NO_NUL)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> RequestPage:
    return service_of(request).list_requests(
        principal.org_id,
        status=status,
        type=type,
        extended=extended,
        overdue=overdue,
        email=email,
        cursor=cursor,
        limit=limit,
        reveal=_reveals(principal),
    )


@router.get("/requests/due", response_model=DueOut, summary="Open requests overdue or due soon")
def due_requests(
    request: Request,
    principal: Principal = _requires(READERS),
    within_days: Annotated[int | None, Query(ge=0, le=90, description="default: the settings' due_soon_days")] = None,
) -> DueOut:
    return service_of(request).due(principal.org_id, within_days, reveal=_reveals(principal))


@router.get("/requests/settings", response_model=SettingsOut, summary="Clock pause, due-soon window, reminders")
def get_settings(request: Request, principal: Principal = _requires(READERS)) -> SettingsOut:
    return service_of(request).settings(principal.org_id)


@router.put("/requests/settings", response_model=SettingsOut, summary="Replace the request settings")
def put_settings(body: SettingsIn, request: Request, principal: Principal = _requires(MANAGERS)) -> SettingsOut:
    return service_of(request).put_settings(principal.org_id, body, principal.as_actor())


@router.get("/requests/{request_id}", response_model=RequestOut, summary="One request")
def get_request(
    request_id: RequestId, request: Request, principal: Principal = _requires(STATUS_READERS)
) -> RequestOut:
    return service_of(request).get(principal.org_id, request_id, reveal=_reveals(principal))


@router.get("/requests/{request_id}/history", response_model=HistoryOut, summary="Every step of a request")
def request_history(request_id: RequestId, request: Request, principal: Principal = _requires(READERS)) -> HistoryOut:
    return service_of(request).history(principal.org_id, request_id)


@router.post("/requests/{request_id}/transitions", response_model=RequestOut, summary="Move a request on")
def transition(
    request_id: RequestId, body: TransitionIn, request: Request, principal: Principal = _requires(CREATORS)
) -> RequestOut:
    if principal.role is SERVICE and body.to is not Status.CANCELLED:
        raise Forbidden(principal.role)  # a host application may only withdraw a request for the person
    return service_of(request).transition(
        principal.org_id, request_id, body.to, body.reason, principal.as_actor(), body.reason_code
    )


@router.post(
    "/requests/{request_id}/execute",
    response_model=RequestOut,
    summary="Run an in-progress request over the data map (again, after a failure)",
)
def execute(request_id: RequestId, request: Request, principal: Principal = _requires(MANAGERS)) -> RequestOut:
    return service_of(request).execute(principal.org_id, request_id, principal.as_actor())


@router.post(
    "/requests/{request_id}/package/link",
    response_model=PackageLink,
    summary="A signed, expiring download link to the request's access or portability package",
)
def package_link(request_id: RequestId, request: Request, principal: Principal = _requires(CREATORS)) -> PackageLink:
    service_of(request).get(principal.org_id, request_id, reveal=False)  # 404 for another organisation's
    return packages_of(request).link(principal.org_id, request_id)


@router.post("/requests/{request_id}/extend", response_model=RequestOut, summary="Extend by two further months")
def extend(
    request_id: RequestId, body: ReasonIn, request: Request, principal: Principal = _requires(MANAGERS)
) -> RequestOut:
    return service_of(request).extend(principal.org_id, request_id, body.reason, principal.as_actor())


@router.post("/requests/{request_id}/identity/code", response_model=CodeSent, summary="E-mail a one-time code")
def send_code(request_id: RequestId, request: Request, principal: Principal = _requires(CREATORS)) -> CodeSent:
    return service_of(request).send_code(principal.org_id, request_id, principal.as_actor())


@router.post("/requests/{request_id}/identity/verify", response_model=RequestOut, summary="Check the e-mailed code")
def verify_code(
    request_id: RequestId, body: CodeIn, request: Request, principal: Principal = _requires(CREATORS)
) -> RequestOut:
    return service_of(request).verify_code(principal.org_id, request_id, body.code, principal.as_actor())


@router.post(
    "/requests/{request_id}/identity/operator", response_model=RequestOut, summary="Identity verified by a person"
)
def verify_by_operator(
    request_id: RequestId, body: ReasonIn, request: Request, principal: Principal = _requires(MANAGERS)
) -> RequestOut:
    return service_of(request).verify_by_operator(principal.org_id, request_id, body.reason, principal.as_actor())


@router.get("/restrictions", response_model=BlocksOut, summary="Restrictions and objections of a subject")
def restrictions(subject: Subject, request: Request, principal: Principal = _requires(READERS)) -> BlocksOut:
    return service_of(request).blocks(principal.org_id, subject)


@router.post("/restrictions/{block_id}/lift", response_model=BlockOut, summary="Lift a restriction (Art. 18(3))")
def lift(block_id: BlockId, body: ReasonIn, request: Request, principal: Principal = _requires(MANAGERS)) -> BlockOut:
    return service_of(request).lift(principal.org_id, block_id, body.reason, principal.as_actor())


@router.get("/can-process", response_model=CanProcessOut, summary="May this purpose run for this subject?")
def can_process(
    subject: Subject,
    purpose: Annotated[str, Query(pattern=r"^[a-z][a-z0-9_-]{0,63}$")],
    request: Request,
    principal: Principal = _requires(CHECKERS),
) -> CanProcessOut:
    return service_of(request).check(principal.org_id, subject, purpose)
