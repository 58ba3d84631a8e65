"""Tables of data-subject requests: the requests, their history, identity codes, blocks, settings.

Requester contact data is personal data inside Gardien: the e-mail address, host subject id, other
identities and rectification values live only in `sealed` (AES-SIV under the keyring's encryption
key); lookups go through keyed pseudonyms (`subject_ref`, `host_ref`, HMAC-SHA256).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, Date, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime


class RightsRequest(Base):
    __tablename__ = "rights_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    extended: Mapped[bool] = mapped_column(Boolean)
    extension_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject_ref: Mapped[str] = mapped_column(String(64))
    host_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hmac_kid: Mapped[str] = mapped_column(String(64))
    sealed: Mapped[bytes] = mapped_column(LargeBinary)
    enc_kid: Mapped[str] = mapped_column(String(64))
    # JSON: purposes, ground, direct_marketing. No personal data.
    scope: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_on: Mapped[date] = mapped_column(Date)
    first_due_on: Mapped[date] = mapped_column(Date)
    due_on: Mapped[date] = mapped_column(Date)
    paused_days: Mapped[int] = mapped_column(Integer)
    paused_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    identity_method: Mapped[str | None] = mapped_column(String(16), nullable=True)
    identity_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # JSON: rejection reason and Art. 12(4) information, or the completion summary.
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (
        Index("ix_rights_requests_org_status_due", "org_id", "status", "due_on"),
        Index("ix_rights_requests_org_subject", "org_id", "subject_ref"),
    )


class RightsRequestHistory(Base):
    """One step of a request; its twin in the ledger is the audit event of the same transaction."""

    __tablename__ = "rights_request_history"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    request_id: Mapped[str] = mapped_column(ForeignKey("rights_requests.id"))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    action: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_status: Mapped[str] = mapped_column(String(20))
    actor_type: Mapped[str] = mapped_column(String(32))
    actor_id: Mapped[str] = mapped_column(String(128))
    actor_display: Mapped[str | None] = mapped_column(String(256), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (Index("ix_rights_request_history_request", "request_id", "at"),)


class RightsIdentityCode(Base):
    """The current e-mail code of a request, kept only as an HMAC."""

    __tablename__ = "rights_identity_codes"

    request_id: Mapped[str] = mapped_column(ForeignKey("rights_requests.id"), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    code_mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    hmac_kid: Mapped[str] = mapped_column(String(64))
    attempts: Mapped[int] = mapped_column(Integer)
    sends: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RightsBlock(Base):
    """A restriction or objection: processing for `purpose` ("*": all of it) of a subject is blocked."""

    __tablename__ = "rights_blocks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    subject_ref: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    request_id: Mapped[str] = mapped_column(ForeignKey("rights_requests.id"))
    active: Mapped[bool] = mapped_column(Boolean)
    since: Mapped[datetime] = mapped_column(UTCDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    lift_reason: Mapped[str | None] = mapped_column(Text, nullable=True)

    __table_args__ = (
        Index("ix_rights_blocks_org_subject", "org_id", "subject_ref", "active"),
        Index("ix_rights_blocks_request", "request_id"),
    )


class RightsSettings(Base):
    __tablename__ = "rights_settings"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    # Null: the country's default (paused in France).
    pause_for_identity: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    due_soon_days: Mapped[int] = mapped_column(Integer)
    reminder_webhook: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    # JSON list of addresses.
    reminder_emails: Mapped[str] = mapped_column(Text)
    # The data map requests run over; null: the organisation's only map.
    datamap_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class RightsExecution(Base):
    """The run of a request over the data map: one row per request, kept for retries and for the record."""

    __tablename__ = "rights_executions"

    request_id: Mapped[str] = mapped_column(ForeignKey("rights_requests.id"), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    map_key: Mapped[str] = mapped_column(String(64))
    # running, failed or done
    state: Mapped[str] = mapped_column(String(12))
    attempts: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    # An erasure's run in the data map, resumed by a retry.
    erasure_run: Mapped[str | None] = mapped_column(String(36), nullable=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RightsPackage(Base):
    """An access or portability package: an encrypted file under the packages directory, until it expires."""

    __tablename__ = "rights_packages"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    request_id: Mapped[str] = mapped_column(ForeignKey("rights_requests.id"))
    kind: Mapped[str] = mapped_column(String(16))
    enc_kid: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    downloads: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (
        Index("ix_rights_packages_request", "request_id"),
        Index("ix_rights_packages_expiry", "deleted_at", "expires_at"),
    )


REQUESTS = cast(Table, RightsRequest.__table__)
HISTORY = cast(Table, RightsRequestHistory.__table__)
CODES = cast(Table, RightsIdentityCode.__table__)
BLOCKS = cast(Table, RightsBlock.__table__)
SETTINGS = cast(Table, RightsSettings.__table__)
EXECUTIONS = cast(Table, RightsExecution.__table__)
PACKAGES = cast(Table, RightsPackage.__table__)
