"""Routes of the privacy operators. Parse, authorise, call the PrivacyService, shape the answer."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from gardien.core.auth import require
from gardien.core.roles import Role
from gardien.core.service import Principal
from gardien.privacy.schemas import (
    PseudonymizeIn,
    PseudonymizeOut,
    RedactIn,
    RedactOut,
    ReidentifyIn,
    ReidentifyOut,
)
from gardien.privacy.service import PrivacyService

# Applications and the people running Gardien pseudonymise and redact; only the DPO re-identifies.
USERS = frozenset({Role.SERVICE, Role.OPERATOR, Role.ADMIN, Role.DPO})
REIDENTIFIERS = frozenset({Role.DPO})

router = APIRouter(prefix="/api/v1/privacy", tags=["privacy"])


def service_of(request: Request) -> PrivacyService:
    service: PrivacyService = request.app.state.privacy
    return service


@router.post("/pseudonyms", summary="Pseudonymise values with the organisation's keys")
def pseudonymize(
    body: PseudonymizeIn,
    principal: Principal = Depends(require(USERS)),
    service: PrivacyService = Depends(service_of),
) -> PseudonymizeOut:
    """`hmac`: `<key id>:<hex>`, stable and irreversible. `encrypt`: `<key id>:<token>`, AES-SIV, reversible
    through `/reidentify` by the DPO. Both are scoped to the organisation and to `domain`."""
    return PseudonymizeOut(pseudonyms=service.pseudonymize(principal.org_id, body))


@router.post(
    "/reidentify",
    summary="Reverse a reversible pseudonym (dpo role; audited)",
    responses={422: {"description": "not a token of this organisation and domain"}},
)
async def reidentify(
    body: ReidentifyIn,
    principal: Principal = Depends(require(REIDENTIFIERS)),
    service: PrivacyService = Depends(service_of),
) -> ReidentifyOut:
    """Answers the value only after an audit event (`privacy` / `pseudonym.reidentify`, with the token,
    the domain, the reason and the DPO's key) is durable in the ledger."""
    return await service.reidentify(principal.org_id, body, principal.as_actor())


@router.post("/redact", summary="Redact personal data from a text")
def redact(
    body: RedactIn,
    principal: Principal = Depends(require(USERS)),
    service: PrivacyService = Depends(service_of),
) -> RedactOut:
    return service.redact(body.text, body.style)
