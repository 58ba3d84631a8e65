"""Shapes of the ledger's API: the v1 event as sent by applications, and what comes back."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from typing import Annotated, Any, Literal, NotRequired

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter, with_config
from typing_extensions import TypedDict

from gardien.core.clock import utcnow
from gardien.core.schemas import NO_NUL

# Dotted-quad IPv4 without leading zeros is already canonical; ipaddress costs 6 µs an event.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}\Z")
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
MAX_CLOCK_AHEAD = timedelta(hours=24)
MODULE_PATTERN = r"^[a-z0-9_.\-]{1,64}$"
ACTION_PATTERN = r"^[a-z0-9_\-]+(\.[a-z0-9_\-]+)*$"
TYPE_PATTERN = r"^[A-Za-z0-9_.:\-]{1,64}$"
CATEGORY_PATTERN = r"^[a-z0-9_]+(\.[a-z0-9_]+)*$"

Crud = Literal["create", "read", "update", "delete", "execute"]
Outcome = Literal["success", "failure"]
ExportFormat = Literal["json", "jsonl", "csv"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _canonical_ip(value: str) -> str:
    if _CANONICAL_IPV4.match(value):
        return value
    try:
        return str(ip_address(value))
    except ValueError as exc:
        raise ValueError("not an IPv4 or IPv6 address") from exc


def _plausible_time(value: datetime) -> datetime:
    if value < EARLIEST or value > utcnow() + MAX_CLOCK_AHEAD:
        raise ValueError("must be between 1970-01-01 and 24 hours from now")
    return value


# Each member of the v1 event is typed once, here. The model below (the API's body and its
# OpenAPI description) and the TypedDicts after it (events handed over as dicts from Python)
# are built from these, so both validate alike; tests/test_schemas.py checks that they agree.
PartyType = Annotated[str, Field(pattern=TYPE_PATTERN)]
PartyId = Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]
Display = Annotated[str, Field(max_length=256)]
IpAddress = Annotated[str, Field(max_length=45), AfterValidator(_canonical_ip)]
UserAgent = Annotated[str, Field(max_length=512)]
OccurredAt = Annotated[AwareDatetime, AfterValidator(_plausible_time)]
Module = Annotated[str, Field(pattern=MODULE_PATTERN)]
Action = Annotated[str, Field(max_length=128, pattern=ACTION_PATTERN)]
Reason = Annotated[str, Field(max_length=2000)]
RequestId = Annotated[str, Field(min_length=1, max_length=128)]
Categories = Annotated[list[Annotated[str, Field(pattern=CATEGORY_PATTERN, max_length=128)]], Field(max_length=64)]
LegalBasis = Annotated[str, Field(pattern=r"^[a-z_]{1,64}$")]


class Party(_Strict):
    type: PartyType = Field(examples=["user"])
    id: PartyId = Field(examples=["u-42"])
    display: Display | None = None


class Source(_Strict):
    ip: IpAddress | None = Field(default=None, description="IPv4 or IPv6 address")
    user_agent: UserAgent | None = None


# The free-form members hold any JSON. Typed Any rather than pydantic's JsonValue, whose
# validator dispatches per nested value in Python (a quarter of an event's preparation); values
# that are not JSON are refused when the event is prepared (gardien.audit.sealing.prepare).
class Changes(_Strict):
    before: Any = None
    after: Any = None


class EventIn(_Strict):
    """An audit event as the application sends it (schema v1, see docs/ledger-format.md)."""

    occurred_at: OccurredAt | None = Field(
        default=None, description="When it happened; defaults to the time Gardien records it."
    )
    module: Module = Field(examples=["bookings"])
    action: Action = Field(examples=["artist.update"])
    crud: Crud
    outcome: Outcome = "success"
    reason: Reason | None = None
    actor: Party
    target: Party | None = None
    source: Source | None = None
    request_id: RequestId | None = None
    changes: Changes | None = None
    data_categories: Categories = Field(default_factory=list)
    legal_basis: LegalBasis | None = Field(default=None, examples=["contract"])
    fields: dict[str, Any] | None = None


# The same event as plain dicts: validating into dicts skips building models and dumping them
# again, about 7 of the 16 µs an event of `Ledger.append_batch` took to prepare. Members left out
# stay out; `event_doc` then gives the dict that EventIn's dump would have given.
_FORBID = ConfigDict(extra="forbid")


@with_config(_FORBID)
class PartyDict(TypedDict):
    type: PartyType
    id: PartyId
    display: NotRequired[Display | None]


@with_config(_FORBID)
class SourceDict(TypedDict):
    ip: NotRequired[IpAddress | None]
    user_agent: NotRequired[UserAgent | None]


@with_config(_FORBID)
class ChangesDict(TypedDict):
    before: NotRequired[Any]
    after: NotRequired[Any]


@with_config(_FORBID)
class EventDict(TypedDict):
    occurred_at: NotRequired[OccurredAt | None]
    module: Module
    action: Action
    crud: Crud
    outcome: NotRequired[Outcome]
    reason: NotRequired[Reason | None]
    actor: PartyDict
    target: NotRequired[PartyDict | None]
    source: NotRequired[SourceDict | None]
    request_id: NotRequired[RequestId | None]
    changes: NotRequired[ChangesDict | None]
    data_categories: NotRequired[Categories]
    legal_basis: NotRequired[LegalBasis | None]
    fields: NotRequired[dict[str, Any] | None]


EVENT_DICT: TypeAdapter[Any] = TypeAdapter(EventDict)
_PARTIES = ("actor", "target", "source")


def event_doc(event: Mapping[str, Any]) -> tuple[dict[str, Any], datetime | None]:
    """`event` validated as EventIn validates it, in the form of `EventIn.model_dump(exclude_none=
    True)` without `occurred_at`, and `occurred_at` apart. Raises pydantic's ValidationError."""
    valid: dict[str, Any] = EVENT_DICT.validate_python(event)  # a new dict, and new dicts inside
    occurred_at = valid.pop("occurred_at", None)
    # Validated members are strings, dicts and lists: `in` compares them with None safely.
    if None in valid.values():
        for key in [key for key, value in valid.items() if value is None]:
            del valid[key]
    for key in _PARTIES:
        part = valid.get(key)
        if part is not None and None in part.values():
            valid[key] = {k: v for k, v in part.items() if v is not None}
    changes = valid.get("changes")
    # Any value may be in there: tested by identity, never compared.
    if changes is not None and (changes.get("before", 0) is None or changes.get("after", 0) is None):
        valid["changes"] = {k: v for k, v in changes.items() if v is not None}
    valid.setdefault("outcome", "success")
    valid.setdefault("data_categories", [])
    return valid, occurred_at


class EventBatchIn(_Strict):
    events: list[EventIn] = Field(min_length=1, description="At most GARDIEN_AUDIT_MAX_BATCH events.")


class Receipt(BaseModel):
    """What an application keeps to prove later that Gardien accepted its event."""

    id: str
    seq: int
    recorded_at: datetime
    leaf_hash: str = Field(description="hex SHA-256(0x00 ‖ canonical bytes)")


class BatchReceipt(BaseModel):
    receipts: list[Receipt]


class EventOut(BaseModel):
    """An event as stored: its canonical JSON, parsed."""

    model_config = ConfigDict(extra="allow")

    schema_: str = Field(alias="schema")
    id: str
    org: str
    seq: int
    occurred_at: str
    recorded_at: str
    module: str
    action: str
    crud: str
    outcome: str
    actor: dict[str, Any]


class EventPage(BaseModel):
    events: list[dict[str, Any]]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null at the end.")


class EventFilter(_Strict):
    """Filters shared by the event list and exports. All given members must match."""

    since: AwareDatetime | None = Field(default=None, description="occurred_at ≥ since")
    until: AwareDatetime | None = Field(default=None, description="occurred_at < until")
    module: str | None = Field(default=None, pattern=MODULE_PATTERN)
    action: str | None = Field(default=None, max_length=128, pattern=ACTION_PATTERN)
    actor: str | None = Field(default=None, min_length=1, max_length=256, pattern=NO_NUL, description="actor id")
    target: str | None = Field(default=None, min_length=1, max_length=256, pattern=NO_NUL, description="target id")
    target_type: str | None = Field(default=None, pattern=TYPE_PATTERN)
    outcome: Outcome | None = None

    def as_manifest(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class ExportRequest(_Strict):
    format: ExportFormat = "jsonl"
    filter: EventFilter = Field(default_factory=EventFilter)


class CheckpointOut(BaseModel):
    size: int
    root: str = Field(description="base64 root hash")
    note: str = Field(description="the C2SP signed note")
    created_at: datetime


class InclusionProofOut(BaseModel):
    seq: int
    leaf_hash: str = Field(description="base64")
    tree_size: int
    hashes: list[str] = Field(description="RFC 9162 inclusion path, base64, leaf side first")
    checkpoint: CheckpointOut


class ConsistencyProofOut(BaseModel):
    old_size: int
    new_size: int
    hashes: list[str] = Field(description="RFC 9162 consistency path, base64")
    old_checkpoint: CheckpointOut
    new_checkpoint: CheckpointOut


class PublicKeyOut(BaseModel):
    kid: str
    vkey: str = Field(description="C2SP verifier key: name+hexkeyid+base64(0x01‖key)")
    created_at: str
    retired_at: str | None


class Finding(BaseModel):
    seq: int | None
    kind: str
    detail: str


class VerifyReport(BaseModel):
    org: str
    status: Literal["ok", "tampered", "unverifiable"]
    events_checked: int
    checkpoints_checked: int
    first_seq: int
    size: int
    first_broken_seq: int | None
    findings: list[Finding] = Field(description="Tampering first, then what could not be verified")
    unsealed_tail: int = Field(description="Events after the last checkpoint (protected by the MAC chain only)")
    purged_before: int = Field(description="Events below this sequence were purged per manifest")
    purge_bundle: str | None = Field(
        default=None, description="The archive bundle that holds the purged events (its payload file name)"
    )
    seconds: float
