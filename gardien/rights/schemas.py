"""Shapes of the data-subject request API. Every string, number and list is bounded."""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, field_validator

from gardien.core.schemas import NO_NUL


class RequestType(StrEnum):
    ACCESS = "access"
    RECTIFICATION = "rectification"
    ERASURE = "erasure"
    RESTRICTION = "restriction"
    PORTABILITY = "portability"
    OBJECTION = "objection"


class Status(StrEnum):
    RECEIVED = "received"
    IDENTITY_PENDING = "identity_pending"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    REJECTED = "rejected"
    CANCELLED = "cancelled"


class RejectionCode(StrEnum):
    MANIFESTLY_UNFOUNDED = "manifestly_unfounded"
    EXCESSIVE = "excessive"
    IDENTITY_NOT_ESTABLISHED = "identity_not_established"
    NOT_APPLICABLE = "not_applicable"
    OTHER = "other"


Locale = Literal["fr", "nl", "en"]
Reason = Annotated[str, Field(min_length=1, max_length=2000, pattern=NO_NUL)]
PurposeKey = Annotated[str, Field(pattern=r"^(\*|[a-z][a-z0-9_-]{0,63})$", examples=["direct_marketing"])]
IdentityKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$", examples=["customer_id"])]
IdentityValue = Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]
FieldValue = Annotated[str, Field(max_length=2000, pattern=NO_NUL)]
# A rectification names a field of the data map: its bare name (every rectifiable field so named) or
# its full path, dataset.table.field.
ChangeKey = Annotated[
    str,
    Field(pattern=r"^[A-Za-z_][A-Za-z0-9_$-]{0,127}(\.[A-Za-z_][A-Za-z0-9_$]{0,127}){0,2}$", examples=["name"]),
]
SubjectId = Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]
# The pseudonymous form a request id takes: a UUID (v7) in lower case.
REQUEST_ID = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RequestIn(_Strict):
    type: RequestType
    email: EmailStr = Field(description="Where to reach the person and send the identity code.")
    subject_id: SubjectId | None = Field(default=None, description="The host application's id of the person.")
    identities: dict[IdentityKey, IdentityValue] = Field(
        default_factory=dict, max_length=10, description="Other identifiers the data map knows the person by."
    )
    locale: Locale = "en"
    received_at: AwareDatetime | None = Field(
        default=None, description="When the request reached the organisation; default now. Not in the future."
    )
    purposes: list[PurposeKey] = Field(
        default_factory=list,
        max_length=50,
        description="restriction and objection: the purposes to stop ('*': all processing but storage).",
    )
    direct_marketing: bool = Field(
        default=False, description="objection: to direct marketing (Art. 21(2)), which is absolute."
    )
    ground: str | None = Field(
        default=None,
        max_length=200,
        pattern=NO_NUL,
        description="The article ground given, e.g. 17(1)(a), 18(1)(d).",
    )
    changes: dict[ChangeKey, FieldValue] = Field(
        default_factory=dict,
        max_length=50,
        description="rectification: field of the data map (name, or dataset.table.field) -> corrected value.",
    )
    note: str | None = Field(default=None, max_length=2000, pattern=NO_NUL, description="Free text, kept encrypted.")

    @field_validator("received_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        # Times at the ends of the calendar have no UTC form (year 1 at +01:00); refuse them here.
        try:
            return value.astimezone(UTC) if value is not None else None
        except OverflowError as exc:
            raise ValueError("out of range") from exc


class Art12_4(BaseModel):
    """What a person must be told when no action is taken on their request."""

    reasons: str
    authority: str
    authority_url: str
    complaint: str
    judicial_remedy: str


class HoldNotice(BaseModel):
    """A legal hold that kept some of the person's rows through an erasure (Art. 17(3)(b))."""

    table: str
    reason: str | dict[str, str]
    basis: str
    rows: int
    until: date | None


class Recipient(BaseModel):
    """Art. 19: a recipient told of the rectification, erasure or restriction."""

    name: str
    contact: str | None = None
    country: str | None = None


class PackageOut(BaseModel):
    id: str
    kind: str = Field(description="access or portability")
    size: int = Field(description="Bytes of the ZIP inside the encrypted file.")
    downloads: int
    created_at: datetime
    expires_at: datetime
    deleted_at: datetime | None


class PackageLink(BaseModel):
    package: PackageOut
    token: str
    path: str = Field(description="Where the link downloads from, relative to Gardien's base URL.")
    expires_at: datetime


class Outcome(BaseModel):
    reason_code: RejectionCode | None = None
    reason: str | None = None
    art12_4: Art12_4 | None = None
    summary: dict[str, int] | None = Field(default=None, description="Rows found or changed per table; no values.")
    erased: dict[str, dict[str, int]] | None = Field(
        default=None, description="Erasure: per table the rows deleted, updated (anonymised) and held."
    )
    holds: list[HoldNotice] | None = None
    recipients: list[Recipient] | None = None
    package: PackageOut | None = None


class ExecutionState(StrEnum):
    RUNNING = "running"
    FAILED = "failed"
    DONE = "done"


class ExecutionOut(BaseModel):
    """The run of the request over the data map: its state, and the error of a failed attempt."""

    map_key: str
    state: ExecutionState
    attempts: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None


class RequestOut(BaseModel):
    id: str
    type: RequestType
    status: Status
    extended: bool
    extension_reason: str | None
    email: str = Field(
        description="In clear for dpo and admin keys, masked for the others; empty once the request is anonymised."
    )
    anonymised: bool = Field(
        default=False,
        description="A retention policy removed the requester's contact data; the request's skeleton stays.",
    )
    locale: Locale
    source: str
    received_at: datetime
    received_on: date
    first_due_on: date
    due_on: date
    clock_paused: bool
    paused_days: int
    overdue: bool
    purposes: list[str]
    direct_marketing: bool
    ground: str | None
    identity_method: str | None
    identity_verified_at: datetime | None
    outcome: Outcome | None
    execution: ExecutionOut | None = None
    closed_at: datetime | None
    updated_at: datetime


class RequestPage(BaseModel):
    requests: list[RequestOut]
    next_cursor: str | None


class HistoryEntry(BaseModel):
    at: datetime
    action: str
    from_status: Status | None
    to_status: Status
    actor: dict[str, str]
    reason: str | None
    details: dict[str, str | int | bool | None] | None


class HistoryOut(BaseModel):
    request_id: str
    history: list[HistoryEntry]


class TransitionIn(_Strict):
    to: Status
    reason: Reason
    reason_code: RejectionCode | None = Field(default=None, description="Required when rejecting.")


class ReasonIn(_Strict):
    reason: Reason


class CodeIn(_Strict):
    code: str = Field(pattern=r"^[0-9]{6}$")


class CodeSent(BaseModel):
    request_id: str
    expires_at: datetime
    attempts_allowed: int
    sent_to: str


class DueOut(BaseModel):
    today: date
    within_days: int
    due_soon: list[RequestOut]
    overdue: list[RequestOut]


class SettingsIn(_Strict):
    pause_for_identity: bool | None = Field(
        default=None, description="Stop the clock while the identity is awaited; null: the country's default."
    )
    due_soon_days: int = Field(default=7, ge=0, le=90)
    reminder_webhook: str | None = Field(default=None, max_length=2000, pattern=r"^https?://[^\s\x00]+$")
    reminder_emails: list[EmailStr] = Field(default_factory=list, max_length=20)
    datamap_key: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$",
        description="The data map requests run over; null: the organisation's only map.",
    )


class SettingsOut(BaseModel):
    pause_for_identity: bool
    pause_for_identity_set: bool | None
    due_soon_days: int
    reminder_webhook: str | None
    reminder_emails: list[str]
    datamap_key: str | None = None
    updated_at: datetime | None


class BlockOut(BaseModel):
    id: str
    purpose: str
    kind: str
    request_id: str
    active: bool
    since: datetime
    lifted_at: datetime | None
    lift_reason: str | None


class BlocksOut(BaseModel):
    blocks: list[BlockOut]


class CanProcessOut(BaseModel):
    subject: str
    purpose: str
    allowed: bool
    blocked_by: list[str] = Field(description="Kinds of block that apply: restriction, objection, direct_marketing")


class ReminderOut(BaseModel):
    due_soon: int
    overdue: int
    webhook: bool
    emails: int
