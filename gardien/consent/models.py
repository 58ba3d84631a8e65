"""Tables of consent management: settings, notice versions, choice events, current states, daily counts.

Events are append-only; `consent_states` holds the last event of each consent id and
`consent_daily` the per-day, per-purpose counts for statistics. Both are written in the same
transaction as the event and its audit event, so they never disagree with the events.
User ids are stored only as keyed pseudonyms (HMAC-SHA256), IP addresses only truncated.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime


class ConsentSettings(Base):
    __tablename__ = "consent_settings"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    site_key: Mapped[str] = mapped_column(String(64), unique=True)
    validity_months: Mapped[int] = mapped_column(Integer)
    # JSON list of origins ("https://shop.example"); empty: any origin.
    allowed_origins: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ConsentNotice(Base):
    """One immutable notice version: what a person is shown, as RFC 8785 canonical JSON."""

    __tablename__ = "consent_notices"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(256))

    __table_args__ = (Index("ix_consent_notices_org_sha256", "org_id", "sha256", unique=True),)


class ConsentEvent(Base):
    """One choice (or withdrawal, or expiry) of one consent id; never updated."""

    __tablename__ = "consent_events"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    consent_id: Mapped[str] = mapped_column(String(36))
    user_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hmac_kid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # JSON object: purpose key -> granted | denied | not_presented.
    states: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))
    surface: Mapped[str] = mapped_column(String(16))
    notice_version: Mapped[int] = mapped_column(Integer)
    notice_sha256: Mapped[str] = mapped_column(String(64))
    locale: Mapped[str | None] = mapped_column(String(16), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ip_truncated: Mapped[str | None] = mapped_column(String(64), nullable=True)
    ua_class: Mapped[str | None] = mapped_column(String(16), nullable=True)

    __table_args__ = (
        Index("ix_consent_events_org_subject", "org_id", "consent_id", "occurred_at"),
        Index("ix_consent_events_org_occurred", "org_id", "occurred_at"),
    )


class ConsentState(Base):
    """The last event of a consent id: what `is_allowed` and the banner read."""

    __tablename__ = "consent_states"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    consent_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    states: Mapped[str] = mapped_column(Text)
    method: Mapped[str] = mapped_column(String(16))
    notice_version: Mapped[int] = mapped_column(Integer)
    given_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_event_id: Mapped[str] = mapped_column(String(36))

    __table_args__ = (
        Index("ix_consent_states_org_user", "org_id", "user_ref"),
        Index("ix_consent_states_org_expires", "org_id", "expires_at"),
    )


class ConsentDaily(Base):
    """Choices per organisation, day (UTC) and non-essential purpose: statistics without scanning events."""

    __tablename__ = "consent_daily"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    purpose: Mapped[str] = mapped_column(String(40), primary_key=True)
    granted: Mapped[int] = mapped_column(Integer, default=0)
    denied: Mapped[int] = mapped_column(Integer, default=0)


# Typed handles on the tables, for the Core statements of the recording path.
SETTINGS = cast(Table, ConsentSettings.__table__)
NOTICES = cast(Table, ConsentNotice.__table__)
EVENTS = cast(Table, ConsentEvent.__table__)
STATES = cast(Table, ConsentState.__table__)
DAILY = cast(Table, ConsentDaily.__table__)
