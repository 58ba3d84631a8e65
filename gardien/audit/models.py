"""Ledger tables. Events, checkpoints, tree nodes and purge manifests are write-once (WORM triggers)."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime

WORM_TABLES = ("audit_events", "audit_checkpoints", "audit_tree_nodes", "audit_purges")


class AuditEvent(Base):
    __tablename__ = "audit_events"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[str] = mapped_column(String(36), unique=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime())
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())
    module: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(128))
    crud: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(8))
    actor_type: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str] = mapped_column(String(256))
    target_type: Mapped[str | None] = mapped_column(String(64), nullable=True)
    target_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    # The event itself, as RFC 8785 bytes: the only source of truth. The columns above are copies
    # for filtering, and the verifier checks that they agree with these bytes.
    canonical: Mapped[bytes] = mapped_column(LargeBinary)
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    hmac_kid: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_org_occurred", "org_id", "occurred_at"),
        Index("ix_audit_events_org_actor", "org_id", "actor_id"),
        Index("ix_audit_events_org_target", "org_id", "target_id"),
    )


class LedgerHead(Base):
    """Where each organisation's ledger stands. Mutable, but only a cache: verify recomputes it."""

    __tablename__ = "audit_heads"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    min_seq: Mapped[int] = mapped_column(BigInteger)
    mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    checkpoint_size: Mapped[int] = mapped_column(BigInteger)
    checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class LedgerCheckpoint(Base):
    __tablename__ = "audit_checkpoints"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class TreeNode(Base):
    """Perfect subtree hashes at every STRIDE-th level, so proofs need few hashes from storage."""

    __tablename__ = "audit_tree_nodes"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    level: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary(32))


class PurgeManifest(Base):
    """Written by retention's archive-then-purge: what a verifier needs in place of a purged prefix."""

    __tablename__ = "audit_purges"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    to_seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    from_seq: Mapped[int] = mapped_column(BigInteger)
    anchor_mac: Mapped[bytes] = mapped_column(LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(LargeBinary)
    manifest: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class LedgerExport(Base):
    __tablename__ = "audit_exports"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    format: Mapped[str] = mapped_column(String(8))
    count: Mapped[int] = mapped_column(BigInteger)
    manifest: Mapped[str] = mapped_column(Text)
    payload_path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str] = mapped_column(String(64))


# Typed handles on the tables for Core queries on the hot paths.
EVENTS = cast(Table, AuditEvent.__table__)
HEADS = cast(Table, LedgerHead.__table__)
CHECKPOINTS = cast(Table, LedgerCheckpoint.__table__)
NODES = cast(Table, TreeNode.__table__)
PURGES = cast(Table, PurgeManifest.__table__)
EXPORTS = cast(Table, LedgerExport.__table__)
