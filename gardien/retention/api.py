"""Routes of retention: policies, legal holds, runs, defaults and quotas. Parse, authorise, call, shape."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from gardien.core.auth import require
from gardien.core.roles import Role
from gardien.core.service import Principal
from gardien.retention.quotas import QuotaService
from gardien.retention.schemas import (
    DefaultList,
    HoldIn,
    HoldList,
    HoldOut,
    PolicyIn,
    PolicyList,
    PolicyOut,
    QuotaIn,
    QuotaOut,
    RunList,
    RunOut,
)
from gardien.retention.service import RetentionService

ADMIN, DPO, AUDITOR, OPERATOR = Role.ADMIN, Role.DPO, Role.AUDITOR, Role.OPERATOR
# Deciding how long data is kept, and suspending that, is the DPO's call (or the admin's).
WRITERS = frozenset({ADMIN, DPO})
# Operators run the jobs and read their outcome; auditors check that the policies are applied.
READERS = frozenset({ADMIN, DPO, AUDITOR, OPERATOR})
# Storage is the operator's concern.
QUOTA_WRITERS = frozenset({ADMIN, OPERATOR})

EntryId = Annotated[str, PathParam(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$")]

router = APIRouter(prefix="/api/v1/retention", tags=["retention"])


def service_of(request: Request) -> RetentionService:
    service: RetentionService = request.app.state.retention
    return service


@router.get("/defaults", response_model=DefaultList, summary="Default retention periods, with their sources")
def defaults(request: Request, principal: Principal = Depends(require(READERS))) -> DefaultList:
    return DefaultList(items=service_of(request).defaults())


@router.get("/policies", response_model=PolicyList, summary="The organisation's retention policies")
async def list_policies(request: Request, principal: Principal = Depends(require(READERS))) -> PolicyList:
    return PolicyList(items=await run_in_threadpool(service_of(request).list_policies, principal.org_id))


@router.post("/policies", response_model=PolicyOut, status_code=201, summary="Create a retention policy")
async def create_policy(
    body: PolicyIn, request: Request, principal: Principal = Depends(require(WRITERS))
) -> PolicyOut:
    return await run_in_threadpool(service_of(request).create_policy, principal.org_id, body, principal.as_actor())


@router.get("/policies/{policy_id}", response_model=PolicyOut, summary="One retention policy")
async def get_policy(
    policy_id: EntryId, request: Request, principal: Principal = Depends(require(READERS))
) -> PolicyOut:
    return await run_in_threadpool(service_of(request).get_policy, principal.org_id, policy_id)


@router.put("/policies/{policy_id}", response_model=PolicyOut, summary="Replace a retention policy (new version)")
async def replace_policy(
    policy_id: EntryId, body: PolicyIn, request: Request, principal: Principal = Depends(require(WRITERS))
) -> PolicyOut:
    return await run_in_threadpool(
        service_of(request).replace_policy, principal.org_id, policy_id, body, principal.as_actor()
    )


@router.delete("/policies/{policy_id}", status_code=204, summary="Delete a retention policy")
async def delete_policy(
    policy_id: EntryId, request: Request, principal: Principal = Depends(require(WRITERS))
) -> Response:
    await run_in_threadpool(service_of(request).delete_policy, principal.org_id, policy_id, principal.as_actor())
    return Response(status_code=204)


@router.get("/holds", response_model=HoldList, summary="Legal holds (active and released)")
async def list_holds(
    request: Request,
    active: Annotated[bool, Query(description="only holds not yet released")] = False,
    principal: Principal = Depends(require(READERS)),
) -> HoldList:
    items = await run_in_threadpool(service_of(request).list_holds, principal.org_id, active_only=active)
    return HoldList(items=items)


@router.post("/holds", response_model=HoldOut, status_code=201, summary="Place a legal hold")
async def create_hold(body: HoldIn, request: Request, principal: Principal = Depends(require(WRITERS))) -> HoldOut:
    return await run_in_threadpool(service_of(request).create_hold, principal.org_id, body, principal.as_actor())


@router.get("/holds/{hold_id}", response_model=HoldOut, summary="One legal hold")
async def get_hold(hold_id: EntryId, request: Request, principal: Principal = Depends(require(READERS))) -> HoldOut:
    return await run_in_threadpool(service_of(request).get_hold, principal.org_id, hold_id)


@router.post("/holds/{hold_id}/release", response_model=HoldOut, summary="Release a legal hold")
async def release_hold(hold_id: EntryId, request: Request, principal: Principal = Depends(require(WRITERS))) -> HoldOut:
    return await run_in_threadpool(service_of(request).release_hold, principal.org_id, hold_id, principal.as_actor())


@router.get("/runs", response_model=RunList, summary="Retention runs and dry runs, newest first")
async def list_runs(
    request: Request,
    policy_id: Annotated[str | None, Query(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$")] = None,
    cursor: Annotated[str | None, Query(min_length=1, max_length=36, pattern=r"^[0-9A-Za-z-]+$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    principal: Principal = Depends(require(READERS)),
) -> RunList:
    return await run_in_threadpool(
        service_of(request).list_runs, principal.org_id, policy_id=policy_id, cursor=cursor, limit=limit
    )


@router.get("/runs/{run_id}", response_model=RunOut, summary="One retention run: counts, samples, errors")
async def get_run(run_id: EntryId, request: Request, principal: Principal = Depends(require(READERS))) -> RunOut:
    return await run_in_threadpool(service_of(request).get_run, principal.org_id, run_id)


def quotas_of(request: Request) -> QuotaService:
    service: QuotaService = request.app.state.quotas
    return service


@router.get("/quota", response_model=QuotaOut, summary="The organisation's storage quota and usage")
async def get_quota(request: Request, principal: Principal = Depends(require(READERS))) -> QuotaOut:
    return await run_in_threadpool(quotas_of(request).get, principal.org_id)


@router.put("/quota", response_model=QuotaOut, summary="Set the organisation's storage quota")
async def put_quota(
    body: QuotaIn, request: Request, principal: Principal = Depends(require(QUOTA_WRITERS))
) -> QuotaOut:
    return await run_in_threadpool(quotas_of(request).put, principal.org_id, body, principal.as_actor())
