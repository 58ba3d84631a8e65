"""Routes for the current organisation and its API keys."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam

from gardien.core import service
from gardien.core.auth import require, runtime_of
from gardien.core.roles import ALL_ROLES, KEY_MANAGERS
from gardien.core.schemas import NO_NUL, ApiKeyCreate, ApiKeyCreated, ApiKeyOut, OrganisationOut, WhoAmI
from gardien.core.service import Principal

router = APIRouter(prefix="/api/v1", tags=["organisation"])


@router.get("/me", response_model=WhoAmI, summary="The organisation and role of the calling key")
def whoami(request: Request, principal: Principal = Depends(require(ALL_ROLES))) -> WhoAmI:
    with runtime_of(request).sessions() as session:
        org = service.get_org(session, principal.org_id)
        return WhoAmI(
            organisation=OrganisationOut.model_validate(org, from_attributes=True),
            key_id=principal.key_id,
            key_name=principal.key_name,
            role=principal.role,
        )


@router.get("/keys", response_model=list[ApiKeyOut], summary="API keys of the organisation")
def list_keys(request: Request, principal: Principal = Depends(require(KEY_MANAGERS))) -> list[ApiKeyOut]:
    with runtime_of(request).sessions() as session:
        return [ApiKeyOut.model_validate(k, from_attributes=True) for k in service.list_keys(session, principal.org_id)]


@router.post("/keys", response_model=ApiKeyCreated, status_code=201, summary="Create an API key")
def create_key(
    body: ApiKeyCreate, request: Request, principal: Principal = Depends(require(KEY_MANAGERS))
) -> ApiKeyCreated:
    runtime = runtime_of(request)
    with runtime.writes.begin() as session:
        key, token = service.create_key(session, org_id=principal.org_id, name=body.name, role=body.role)
        created = ApiKeyCreated(**ApiKeyOut.model_validate(key, from_attributes=True).model_dump(), token=token)
    runtime.record(principal.org_id, service.key_created_event(key, principal.as_actor()))
    return created


@router.delete("/keys/{key_id}", response_model=ApiKeyOut, summary="Revoke an API key")
def revoke_key(
    key_id: Annotated[str, PathParam(max_length=64, pattern=NO_NUL)],
    request: Request,
    principal: Principal = Depends(require(KEY_MANAGERS)),
) -> ApiKeyOut:
    runtime = runtime_of(request)
    with runtime.writes.begin() as session:
        key = service.revoke_key(session, runtime, org_id=principal.org_id, key_id=key_id)
        out = ApiKeyOut.model_validate(key, from_attributes=True)
    runtime.record(
        principal.org_id,
        {
            "module": "core",
            "action": "api_key.revoke",
            "crud": "update",
            "actor": principal.as_actor(),
            "target": {"type": "api_key", "id": key.id, "display": key.name},
        },
    )
    return out
