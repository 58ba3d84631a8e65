"""Routes of the data map: register, read and validate an organisation's maps.

Running the engine for a person is not exposed here: it goes through the request workflow
(`gardien.rights`), which verifies identities and keeps the deadlines first.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from gardien.core.auth import require
from gardien.core.roles import Role
from gardien.core.service import Principal
from gardien.datamap.schemas import KEY_PATTERN, DatamapIn, DatamapList, DatamapOut, ValidationReport
from gardien.datamap.service import DatamapService

WRITERS = frozenset({Role.ADMIN, Role.DPO})
READERS = frozenset({Role.ADMIN, Role.DPO, Role.OPERATOR, Role.AUDITOR})
VALIDATORS = frozenset({Role.ADMIN, Role.DPO, Role.OPERATOR})

MapKey = Annotated[str, PathParam(pattern=KEY_PATTERN, description="The map's key, e.g. `shop`.")]

router = APIRouter(prefix="/api/v1/datamaps", tags=["datamap"])


def service_of(request: Request) -> DatamapService:
    service: DatamapService = request.app.state.datamaps
    return service


@router.put("/{key}", summary="Register a new version of a data map", response_model=DatamapOut)
async def register(
    key: MapKey,
    body: DatamapIn,
    request: Request,
    principal: Principal = Depends(require(WRITERS)),
) -> DatamapOut:
    return await run_in_threadpool(
        service_of(request).register, principal.org_id, key, body.document, principal.as_actor()
    )


@router.get("", summary="The organisation's data maps (latest versions)", response_model=DatamapList)
async def list_maps(request: Request, principal: Principal = Depends(require(READERS))) -> DatamapList:
    return DatamapList(maps=await run_in_threadpool(service_of(request).list_maps, principal.org_id))


@router.get("/{key}", summary="A data map with its YAML", response_model=DatamapOut)
async def get_map(
    key: MapKey,
    request: Request,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    principal: Principal = Depends(require(READERS)),
) -> DatamapOut:
    return await run_in_threadpool(service_of(request).get, principal.org_id, key, version)


@router.post(
    "/{key}/validate",
    summary="Check the latest version against the live host databases",
    response_model=ValidationReport,
)
async def validate(
    key: MapKey, request: Request, principal: Principal = Depends(require(VALIDATORS))
) -> ValidationReport:
    return await run_in_threadpool(service_of(request).validate, principal.org_id, key)
