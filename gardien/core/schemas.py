"""Shapes of the core's API."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from gardien.core.roles import Role

# Text that reaches an indexed column: PostgreSQL text cannot hold NUL (SQLite can), so refuse it
# up front on both engines rather than fail in the database.
NO_NUL = r"^[^\x00]*$"


class OrganisationOut(BaseModel):
    id: str
    slug: str
    name: str
    country: str
    created_at: datetime


class ApiKeyCreate(BaseModel):
    name: str = Field(min_length=1, max_length=200, pattern=NO_NUL)
    role: Role


class ApiKeyOut(BaseModel):
    id: str
    name: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyOut):
    token: str = Field(description="The key itself. Shown once; Gardien keeps only its hash.")


class WhoAmI(BaseModel):
    organisation: OrganisationOut
    key_id: str
    key_name: str
    role: Role
