"""Shapes at the edges of the data map: the API's bodies and the engine's answers to the workflow."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from gardien.datamap.mapfile import MAX_MAP_BYTES

KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}$"


class DatamapIn(BaseModel):
    document: str = Field(
        min_length=1, max_length=MAX_MAP_BYTES, description="The map as YAML: fideslang `dataset:` plus `gardien:`."
    )


class DatamapOut(BaseModel):
    key: str
    version: int
    sha256: str
    created_at: datetime
    created_by: str
    stores: list[str]
    tables: list[str]
    identities: list[str]
    document: str | None = None


class DatamapList(BaseModel):
    maps: list[DatamapOut]


class IssueOut(BaseModel):
    field: str
    message: str


class ValidationReport(BaseModel):
    key: str
    version: int
    valid: bool
    issues: list[IssueOut]


class AccessSummary(BaseModel):
    """What an access package holds: rows per table (the package itself is the file written)."""

    counts: dict[str, int]
    statements: int
    bytes: int


class HoldOut(BaseModel):
    table: str
    reason: str | dict[str, str]
    basis: str
    years: int | None
    rows: int
    until: date | None = Field(description="The day the last held row may be erased; null: no end known.")


class CanEraseOut(BaseModel):
    erasable: bool = Field(description="True when no legal hold keeps any of the person's rows.")
    holds: list[HoldOut]
    rows: dict[str, int]


class ErasureOut(BaseModel):
    run_id: str
    status: str
    counts: dict[str, dict[str, int]]
    stores_done: list[str]
    holds: list[HoldOut]


class RectificationOut(BaseModel):
    tables: dict[str, dict[str, Any]]


class RecipientOut(BaseModel):
    name: str
    contact: str | None
    country: str | None
    categories: list[str]
