"""Shapes of consent management's API: settings, notice versions, choices, states, checks, statistics."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gardien.consent.rules import ESSENTIAL_PURPOSE, MAX_VALIDITY_MONTHS, Status
from gardien.core.schemas import NO_NUL

LOCALES = ("fr", "nl", "en", "de")
# The banner strings every notice carries in every locale; a notice may add others.
BANNER_TEXTS = ("title", "description", "accept_all", "reject_all", "customise", "save", "settings")
# Purposes that are never essential: they are what a consent banner asks about.
NEVER_ESSENTIAL = ("analytics", "marketing")

PurposeKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$", examples=["analytics"])]
TextKey = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]
ShortText = Annotated[str, Field(min_length=1, max_length=300, pattern=NO_NUL)]
LongText = Annotated[str, Field(min_length=1, max_length=5000, pattern=NO_NUL)]
Url = Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s\x00]+$", examples=["https://example.com/privacy"])]
Origin = Annotated[
    str, Field(max_length=300, pattern=r"^https?://[A-Za-z0-9.\-\[\]:]+$", examples=["https://shop.example"])
]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
LocaleTag = Annotated[str, Field(pattern=r"^(fr|nl|en|de)(-[A-Z]{2})?$", examples=["fr-BE"])]
UserId = Annotated[str, Field(min_length=1, max_length=256, pattern=NO_NUL)]
ConsentModeSignal = Literal[
    "ad_storage",
    "ad_user_data",
    "ad_personalization",
    "analytics_storage",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
]
ChoiceState = Literal["granted", "denied"]
RecordedState = Literal["granted", "denied", "not_presented"]
CheckState = Literal["granted", "denied", "not_presented", "not_given"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# Settings --------------------------------------------------------------------------------------


class SettingsIn(_Strict):
    validity_months: int = Field(
        default=6,
        ge=1,
        le=MAX_VALIDITY_MONTHS,
        description="How long a choice, consent or refusal, is kept: 6 by default (CNIL), 13 at most.",
    )
    allowed_origins: list[Origin] = Field(
        default_factory=list, max_length=100, description="Origins the banner may call from; empty: any."
    )


class SettingsOut(BaseModel):
    site_key: str = Field(description="Public key of the banner: `<script … data-site-key=…>`.")
    validity_months: int
    allowed_origins: list[str]
    updated_at: datetime


# Notice versions -------------------------------------------------------------------------------


class Localised(_Strict):
    """One text in every language the banner speaks."""

    fr: LongText
    nl: LongText
    en: LongText
    de: LongText


class ServiceIn(_Strict):
    key: PurposeKey
    name: ShortText
    provider: ShortText
    privacy_policy_url: Url | None = None
    cookies: list[Annotated[str, Field(min_length=1, max_length=200, pattern=NO_NUL)]] = Field(
        default_factory=list, max_length=100
    )


class PurposeIn(_Strict):
    key: PurposeKey
    essential: bool = Field(
        description="Always granted, cannot be refused; `functional` is, analytics and marketing never."
    )
    title: Localised
    description: Localised
    services: list[ServiceIn] = Field(default_factory=list, max_length=100)
    google_consent_mode: list[ConsentModeSignal] = Field(
        default_factory=list, max_length=7, description="Consent Mode v2 signals granted with this purpose."
    )

    @field_validator("services")
    @classmethod
    def _unique_services(cls, services: list[ServiceIn]) -> list[ServiceIn]:
        keys = [service.key for service in services]
        if len(set(keys)) != len(keys):
            raise ValueError("service keys must be unique within a purpose")
        return services


class ControllerIn(_Strict):
    name: ShortText
    contact: ShortText | None = Field(default=None, description="e-mail address or URL of the privacy contact")
    address: ShortText | None = None


class NoticeIn(_Strict):
    """A notice version: everything the banner shows, hashed (RFC 8785 JSON, SHA-256) and kept for proof."""

    purposes: list[PurposeIn] = Field(min_length=1, max_length=30)
    texts: dict[TextKey, Localised] = Field(
        max_length=60, description=f"Banner strings; at least {', '.join(BANNER_TEXTS)}."
    )
    controller: ControllerIn | None = None
    privacy_policy_url: Url | None = None

    @field_validator("purposes")
    @classmethod
    def _purposes_rules(cls, purposes: list[PurposeIn]) -> list[PurposeIn]:
        keys = [purpose.key for purpose in purposes]
        if len(set(keys)) != len(keys):
            raise ValueError("purpose keys must be unique")
        by_key = {purpose.key: purpose for purpose in purposes}
        functional = by_key.get(ESSENTIAL_PURPOSE)
        if functional is None or not functional.essential:
            raise ValueError(f"the {ESSENTIAL_PURPOSE!r} purpose must be listed, with essential: true")
        for key in NEVER_ESSENTIAL:
            if key in by_key and by_key[key].essential:
                raise ValueError(f"{key!r} cannot be essential: it needs consent")
        signals = [signal for purpose in purposes for signal in purpose.google_consent_mode]
        if len(set(signals)) != len(signals):
            raise ValueError("a Google Consent Mode signal may follow one purpose only")
        return purposes

    @field_validator("texts")
    @classmethod
    def _banner_texts(cls, texts: dict[str, Localised]) -> dict[str, Localised]:
        missing = [key for key in BANNER_TEXTS if key not in texts]
        if missing:
            raise ValueError(f"missing banner texts: {', '.join(missing)}")
        return texts


class NoticeSummary(BaseModel):
    version: int
    sha256: str = Field(description="hex SHA-256 of the notice's RFC 8785 canonical JSON")
    created_at: datetime
    created_by: str
    current: bool


class NoticeOut(NoticeSummary):
    notice: NoticeIn


class NoticeList(BaseModel):
    notices: list[NoticeSummary]


class PublicNoticeOut(BaseModel):
    version: int
    sha256: str
    validity_months: int
    notice: NoticeIn


# Choices and states ----------------------------------------------------------------------------


class ChoiceBase(_Strict):
    # Narrowed by each kind of caller below.
    method: str
    surface: str
    consent_id: UUID | None = Field(default=None, description="The banner's consent id; generated when absent.")
    states: dict[PurposeKey, ChoiceState] = Field(
        default_factory=dict, max_length=30, description="Only with the custom or api method."
    )
    locale: LocaleTag | None = None


class ChoiceIn(ChoiceBase):
    """A choice recorded by a server (API key)."""

    method: Literal["accept_all", "reject_all", "custom", "gpc", "api"]
    surface: Literal["first_layer", "preferences", "api"] = "api"
    user_id: UserId | None = Field(default=None, description="The application's user id; stored only pseudonymised.")
    notice_version: int | None = Field(default=None, ge=1, le=2**31 - 1, description="Default: the current one.")
    notice_sha256: Sha256Hex | None = Field(default=None, description="Default: the current notice's.")


class PublicChoiceIn(ChoiceBase):
    """A choice the banner sends: the person's, under the notice it showed."""

    method: Literal["accept_all", "reject_all", "custom", "gpc"]
    surface: Literal["first_layer", "preferences"] = "first_layer"
    notice_sha256: Sha256Hex


class WithdrawIn(_Strict):
    purposes: list[PurposeKey] | None = Field(
        default=None, max_length=30, description="Default: every non-essential purpose."
    )


class StateOut(BaseModel):
    """A consent id's last choice, and whether it still counts."""

    consent_id: str
    status: Status = Field(description="valid; expired (past expires_at, or closed by expiry); outdated notice")
    method: str
    surface: str
    states: dict[str, RecordedState]
    consent_mode: dict[str, ChoiceState] = Field(
        description="Google Consent Mode v2 signals of the notice, granted only while the choice is valid."
    )
    given_at: datetime
    expires_at: datetime
    notice_version: int
    notice_sha256: str
    last_event_id: str


class UserStatesOut(BaseModel):
    consent_ids: list[StateOut]


# Checks ----------------------------------------------------------------------------------------


class CheckOut(BaseModel):
    subject: str
    purpose: str
    allowed: bool
    state: CheckState = Field(description="not_given: no choice that still counts (unknown, expired, outdated)")
    expires_at: datetime | None


class CheckItem(_Strict):
    subject: UUID
    purpose: PurposeKey


class BulkCheckIn(_Strict):
    checks: list[CheckItem] = Field(min_length=1, max_length=1000)


class BulkCheckOut(BaseModel):
    results: list[CheckOut]


# Statistics ------------------------------------------------------------------------------------


class DayStat(BaseModel):
    day: date
    purpose: str
    granted: int
    denied: int
    rate: float = Field(description="granted / (granted + denied), four decimals")


class StatsOut(BaseModel):
    since: date
    until: date = Field(description="inclusive")
    days: list[DayStat]
    expiring_next_30_days: int = Field(description="valid choices whose expiry falls in the next 30 days")


ProofFormat = Literal["json", "iso27560", "kantara"]
