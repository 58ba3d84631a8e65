"""Tables of the data map: registered map versions and erasure runs.

Host application data is never stored here. An erasure run keeps, until it completes, the primary
keys of the rows it must still change, so that it can resume after a failure even once the
identities that led to those rows are gone.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime


class DataMapVersion(Base):
    """One registered version of an organisation's map, as the YAML it was given."""

    __tablename__ = "datamaps"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(256))


class ErasureRun(Base):
    """One erasure of one person across a map's stores, committed store by store."""

    __tablename__ = "datamap_erasures"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    map_key: Mapped[str] = mapped_column(String(64))
    map_version: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # planned → partial (some stores done or one failed) → completed
    status: Mapped[str] = mapped_column(String(16))
    # JSON: store → table → list of primary keys (lists); emptied when the run completes.
    plan: Mapped[str] = mapped_column(Text)
    # JSON list of the stores committed.
    done: Mapped[str] = mapped_column(Text)
    # JSON: table → {deleted, updated, held}.
    counts: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())

    __table_args__ = (Index("ix_datamap_erasures_org_request", "org_id", "request_id"),)


MAPS = cast(Table, DataMapVersion.__table__)
ERASURES = cast(Table, ErasureRun.__table__)
