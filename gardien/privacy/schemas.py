"""Shapes of the privacy API: pseudonyms, re-identification, redaction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from gardien.core.schemas import NO_NUL
from gardien.privacy.operators import DOMAIN_PATTERN

MAX_VALUES = 1_000
MAX_TEXT = 100_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PseudonymizeIn(_Strict):
    operator: Literal["hmac", "encrypt"] = Field(
        default="hmac", description="hmac: keyed and irreversible; encrypt: AES-SIV, reversible by the DPO"
    )
    domain: str = Field(default="default", pattern=DOMAIN_PATTERN, examples=["users.email"])
    normalize: Literal["none", "casefold"] = Field(default="none", description="hmac only")
    values: list[str] = Field(min_length=1, max_length=MAX_VALUES)


class PseudonymizeOut(BaseModel):
    pseudonyms: list[str]


class ReidentifyIn(_Strict):
    token: str = Field(min_length=3, max_length=8_192, pattern=NO_NUL)
    domain: str = Field(default="default", pattern=DOMAIN_PATTERN)
    reason: str = Field(
        min_length=1,
        max_length=2_000,
        pattern=NO_NUL,
        description="Why the person is re-identified (e.g. the request it serves); kept in the ledger.",
    )


class ReidentifyOut(BaseModel):
    value: str
    audit_event_id: str


class RedactIn(_Strict):
    text: str = Field(max_length=MAX_TEXT)
    style: Literal["tag", "mask"] = "tag"


class FindingOut(BaseModel):
    start: int
    end: int
    entity: str


class RedactOut(BaseModel):
    text: str
    findings: list[FindingOut]
