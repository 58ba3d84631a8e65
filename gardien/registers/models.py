"""Tables of the registers: one validated JSON record per entry, plus the columns lists and alerts read.

A record is replaced whole on each change and `version` counts the changes; the audit event of
each change is committed in the same transaction (see `service.py`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import cast

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime


class _Tracked:
    """What every register row carries besides its own columns."""

    version: Mapped[int] = mapped_column(Integer)
    # The record as RFC 8785 canonical JSON.
    record: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(256))
    updated_by: Mapped[str] = mapped_column(String(256))


class RegisterSettings(_Tracked, Base):
    """The register's header: controller, representative, DPO, supervisory authority."""

    __tablename__ = "register_settings"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)


class RegisterActivity(_Tracked, Base):
    __tablename__ = "register_activities"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    role: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))

    __table_args__ = (Index("ix_register_activities_org_id", "org_id", "id"),)


class RegisterProcessor(_Tracked, Base):
    __tablename__ = "register_processors"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    dpa_signed_on: Mapped[date | None] = mapped_column(Date, nullable=True)
    dpa_review_on: Mapped[date | None] = mapped_column(Date, nullable=True)

    __table_args__ = (Index("ix_register_processors_org_id", "org_id", "id"),)


class RegisterBreach(_Tracked, Base):
    __tablename__ = "register_breaches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    title: Mapped[str] = mapped_column(String(200))
    aware_at: Mapped[datetime] = mapped_column(UTCDateTime())
    initial_notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    risk: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(8))
    # JSON list of the notifications to the authority, initial first, in the order recorded.
    notifications: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index("ix_register_breaches_org_id", "org_id", "id"),)


class RegisterDpia(_Tracked, Base):
    __tablename__ = "register_dpias"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))

    __table_args__ = (Index("ix_register_dpias_org_id", "org_id", "id"),)


class RegisterNotice(Base):
    """One published version of the privacy notice (Art. 13/14), immutable once written.

    `document` is the RFC 8785 canonical JSON of what was published: the facts taken from the
    register and the texts rendered in each language, so a version reads the same forever even
    when Gardien's wording changes later.
    """

    __tablename__ = "register_notices"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UTCDateTime())
    published_by: Mapped[str] = mapped_column(String(256))


SETTINGS = cast(Table, RegisterSettings.__table__)
ACTIVITIES = cast(Table, RegisterActivity.__table__)
PROCESSORS = cast(Table, RegisterProcessor.__table__)
BREACHES = cast(Table, RegisterBreach.__table__)
DPIAS = cast(Table, RegisterDpia.__table__)
NOTICES = cast(Table, RegisterNotice.__table__)
