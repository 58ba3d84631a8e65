"""Routes of the audit ledger. Parse, authorise, call the Ledger, shape the answer."""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field, field_validator

from gardien.audit.checkpoint import Checkpoint, Note, NoteError
from gardien.audit.schemas import (
    BatchReceipt,
    CheckpointOut,
    ConsistencyProofOut,
    EventBatchIn,
    EventFilter,
    EventIn,
    EventPage,
    ExportRequest,
    InclusionProofOut,
    PublicKeyOut,
    Receipt,
    VerifyReport,
)
from gardien.audit.sealing import Sealed
from gardien.audit.service import Ledger
from gardien.core.auth import require
from gardien.core.clock import rfc3339
from gardien.core.errors import Problem
from gardien.core.roles import LEDGER_READERS, LEDGER_VERIFIERS, LEDGER_WRITERS
from gardien.core.schemas import NO_NUL
from gardien.core.service import Principal

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


def ledger_of(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


def _receipt(sealed: Sealed) -> dict[str, Any]:
    return {
        "id": sealed.id,
        "seq": sealed.seq,
        "recorded_at": rfc3339(sealed.recorded_at),
        "leaf_hash": sealed.leaf_hash.hex(),
    }


def _json(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type="application/json")


def _requires(roles: frozenset[Any]) -> Any:
    return Depends(require(roles))


@router.post("/events", status_code=201, response_model=Receipt, summary="Append one event")
async def append_event(event: EventIn, request: Request, principal: Principal = _requires(LEDGER_WRITERS)) -> Response:
    ledger = ledger_of(request)
    sealed = await ledger.append_async(principal.org_id, [ledger.prepare(event)])
    return _json(_receipt(sealed[0]), 201)


@router.post(
    "/events/batch",
    status_code=201,
    response_model=BatchReceipt,
    summary="Append a batch of events, all or none",
)
async def append_batch(
    batch: EventBatchIn, request: Request, principal: Principal = _requires(LEDGER_WRITERS)
) -> Response:
    ledger = ledger_of(request)
    prepared = ledger.prepare_batch(batch.events)
    sealed = await ledger.append_async(principal.org_id, prepared)
    return _json({"receipts": [_receipt(s) for s in sealed]}, 201)


class EventListQuery(EventFilter):
    """The filter plus paging. One model, because a query model that forbids extra members would
    refuse `cursor` and `limit` if they were separate parameters."""

    cursor: str | None = Field(default=None, max_length=200, description="`next_cursor` of the last page")
    limit: int = Field(default=100, ge=1, le=1000)

    def as_filter(self) -> EventFilter:
        return EventFilter.model_validate(self.model_dump(exclude={"cursor", "limit"}, exclude_none=True))


@router.get("/events", response_model=EventPage, summary="List events in sequence order")
def list_events(
    request: Request,
    query: Annotated[EventListQuery, Query()],
    principal: Principal = _requires(LEDGER_READERS),
) -> EventPage:
    return ledger_of(request).list_events(
        principal.org_id, query.as_filter(), cursor=query.cursor, limit=query.limit, actor=principal.as_actor()
    )


@router.get("/events/{event_id}", summary="One event, as sealed")
def get_event(
    event_id: Annotated[str, PathParam(max_length=64, pattern=NO_NUL)],
    request: Request,
    principal: Principal = _requires(LEDGER_READERS),
) -> dict[str, Any]:
    return ledger_of(request).get_event(principal.org_id, event_id, actor=principal.as_actor())


@router.get(
    "/events/{event_id}/proof",
    response_model=InclusionProofOut,
    summary="Inclusion proof of one event",
)
def event_proof(
    event_id: Annotated[str, PathParam(max_length=64, pattern=NO_NUL)],
    request: Request,
    size: Annotated[int | None, Query(ge=1, description="checkpoint size; default the latest")] = None,
    principal: Principal = _requires(LEDGER_VERIFIERS),
) -> InclusionProofOut:
    ledger = ledger_of(request)
    return ledger.inclusion_proof(principal.org_id, ledger.seq_of(principal.org_id, event_id), size)


@router.get(
    "/proofs/inclusion",
    response_model=InclusionProofOut,
    summary="Inclusion proof by sequence number",
)
def inclusion_proof(
    request: Request,
    seq: Annotated[int, Query(ge=0, le=2**62)],
    size: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    principal: Principal = _requires(LEDGER_VERIFIERS),
) -> InclusionProofOut:
    return ledger_of(request).inclusion_proof(principal.org_id, seq, size)


@router.get(
    "/proofs/consistency",
    response_model=ConsistencyProofOut,
    summary="Consistency proof between checkpoints",
)
def consistency_proof(
    request: Request,
    old: Annotated[int, Query(ge=1, le=2**62, description="size of the older checkpoint")],
    new: Annotated[int, Query(ge=1, le=2**62, description="size of the newer checkpoint")],
    principal: Principal = _requires(LEDGER_VERIFIERS),
) -> ConsistencyProofOut:
    return ledger_of(request).consistency_proof(principal.org_id, old, new)


@router.get("/checkpoints/latest", response_model=CheckpointOut, summary="The latest signed checkpoint")
def latest_checkpoint(request: Request, principal: Principal = _requires(LEDGER_VERIFIERS)) -> CheckpointOut:
    return ledger_of(request).checkpoint(principal.org_id)


@router.get("/checkpoints/{size}", response_model=CheckpointOut, summary="The signed checkpoint of a size")
def checkpoint(
    size: Annotated[int, PathParam(ge=1, le=2**62)],
    request: Request,
    principal: Principal = _requires(LEDGER_VERIFIERS),
) -> CheckpointOut:
    return ledger_of(request).checkpoint(principal.org_id, size)


@router.get(
    "/keys",
    response_model=list[PublicKeyOut],
    summary="Public keys that sign checkpoints and exports",
)
def public_keys(request: Request) -> list[PublicKeyOut]:
    return ledger_of(request).public_keys()


class VerifyRequest(BaseModel):
    trusted_checkpoint: str | None = Field(
        default=None,
        max_length=10_000,
        description="A checkpoint note you kept; the ledger must still contain the tree it signs.",
    )

    @field_validator("trusted_checkpoint")
    @classmethod
    def _a_checkpoint(cls, value: str | None) -> str | None:
        # A note that does not even parse is the caller's mistake, not evidence that the ledger
        # was tampered with: refuse it here instead of reporting the ledger as "tampered".
        if value is not None:
            try:
                Checkpoint.parse(Note.parse(value).body)
            except NoteError as exc:
                raise ValueError(f"not a signed checkpoint note: {exc}") from exc
        return value


@router.post("/verify", response_model=VerifyReport, summary="Recompute and check the whole ledger")
def verify(
    request: Request,
    body: VerifyRequest | None = None,
    principal: Principal = _requires(LEDGER_VERIFIERS),
) -> VerifyReport:
    trusted = body.trusted_checkpoint if body else None
    return ledger_of(request).verify(principal.org_id, trusted_checkpoint=trusted, actor=principal.as_actor())


class ExportCreated(BaseModel):
    id: str
    manifest: dict[str, Any]
    payload_url: str
    manifest_url: str


@router.post(
    "/exports",
    status_code=201,
    response_model=ExportCreated,
    summary="Export events with a signed manifest",
)
def create_export(
    body: ExportRequest, request: Request, principal: Principal = _requires(LEDGER_READERS)
) -> ExportCreated:
    result = ledger_of(request).export(principal.org_id, body.format, body.filter, actor=principal.as_actor())
    export_id = result.manifest["export_id"]
    return ExportCreated(
        id=export_id,
        manifest=result.manifest,
        payload_url=f"/api/v1/audit/exports/{export_id}/payload",
        manifest_url=f"/api/v1/audit/exports/{export_id}",
    )


@router.get("/exports/{export_id}", summary="The signed manifest of an export")
def get_export(
    export_id: Annotated[str, PathParam(max_length=64, pattern=NO_NUL)],
    request: Request,
    principal: Principal = _requires(LEDGER_READERS),
) -> dict[str, Any]:
    manifest, _path = ledger_of(request).get_export(principal.org_id, export_id)
    return manifest


@router.get(
    "/exports/{export_id}/payload",
    summary="Download an export's payload",
    response_class=FileResponse,
)
def export_payload(
    export_id: Annotated[str, PathParam(max_length=64, pattern=NO_NUL)],
    request: Request,
    principal: Principal = _requires(LEDGER_READERS),
) -> FileResponse:
    ledger = ledger_of(request)
    manifest, path = ledger.get_export(principal.org_id, export_id)
    if not path.is_file():
        raise Problem(410, "gone", "Gone", f"the payload of export {export_id} is no longer on this server")
    ledger.record_download(principal.org_id, export_id, principal.as_actor())
    media = {"csv": "text/csv", "json": "application/json", "jsonl": "application/x-ndjson"}[manifest["format"]]
    return FileResponse(path, media_type=media, filename=path.name)
