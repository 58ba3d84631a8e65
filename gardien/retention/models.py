"""Tables of retention: policies, legal holds, runs with their checkpoints, and storage quotas.

Host application data is never stored here. A run keeps only what it needs to resume: per table,
the primary key of the last row of the last committed batch, and the after-image digest of the
batch in flight (see jobs.py).
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime


class RetentionPolicy(Base):
    """How long one kind of data is kept, counted from which column, and what happens after."""

    __tablename__ = "retention_policies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    # The policy as given (PolicyIn, RFC 8785 JSON): target, period, reference, action, operators…
    document: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean)
    schedule: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # JSON, per table: {"through": ISO time anonymised up to, "deferred": [primary keys held back]}.
    state: Mapped[str] = mapped_column(Text)
    # When the worker last started it on its schedule (the next run is computed from here).
    last_scheduled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_retention_policies_org", "org_id", "name"),)


class LegalHold(Base):
    """Suspends every policy over its scope (an organisation, a table or store, or one person)."""

    __tablename__ = "retention_holds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    scope: Mapped[str] = mapped_column(String(16))  # organisation | table | subject
    # table: "dataset.table" of a data map, or one of Gardien's stores; subject: the map's key.
    target: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # subject holds: the identity type and value, as the data map knows them.
    identity_type: Mapped[str | None] = mapped_column(String(100), nullable=True)
    identity_value: Mapped[str | None] = mapped_column(String(500), nullable=True)
    reason: Mapped[str] = mapped_column(Text)
    owner: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(256))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    released_by: Mapped[str | None] = mapped_column(String(256), nullable=True)

    __table_args__ = (Index("ix_retention_holds_org", "org_id", "released_at"),)


class RetentionRun(Base):
    """One execution (or dry run) of one policy: what it did, and where it stands."""

    __tablename__ = "retention_runs"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    policy_id: Mapped[str] = mapped_column(String(36))
    policy_version: Mapped[int] = mapped_column(Integer)
    dry_run: Mapped[bool] = mapped_column(Boolean)
    trigger: Mapped[str] = mapped_column(String(16))  # cli | worker | api
    # running → completed | failed | suspended (a hold covers the whole target)
    status: Mapped[str] = mapped_column(String(16))
    cutoff: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # JSON, per table: {"matched", "deleted" | "anonymised" | "archived", "held"}.
    counts: Mapped[str] = mapped_column(Text)
    # JSON, per table: up to a few primary keys of affected rows (dry runs).
    samples: Mapped[str] = mapped_column(Text)
    # JSON, per table: {"after": last committed key, "pending": {"through", "digest"}, "done"}.
    checkpoint: Mapped[str] = mapped_column(Text)
    errors: Mapped[str] = mapped_column(Text)
    batches: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index("ix_retention_runs_org_policy", "org_id", "policy_id", "started_at"),)


class StorageQuota(Base):
    """Limits on what one organisation keeps in Gardien; crossing one writes an alert event."""

    __tablename__ = "retention_quotas"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    max_ledger_events: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_ledger_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    max_export_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    warn_ratio: Mapped[int] = mapped_column(Integer)  # per cent
    # JSON: measure → level last alerted ("warn" | "over"), so one crossing alerts once.
    alerted: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


POLICIES = cast(Table, RetentionPolicy.__table__)
HOLDS = cast(Table, LegalHold.__table__)
RUNS = cast(Table, RetentionRun.__table__)
QUOTAS = cast(Table, StorageQuota.__table__)
