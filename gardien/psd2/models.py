"""Tables of the SCA advisor: the policy, counters since the last SCA, decisions, fraud figures, challenges.

Payers are never stored by the identifier the PSP uses: every table keys them by a keyed pseudonym
(HMAC-SHA256 with the organisation-wide HMAC key), enough to count and to reset, useless to read.
Amounts in euros are stored as integer micro-euros so that sums are exact on both engines.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from gardien.core.db import Base, UTCDateTime


class ScaPolicy(Base):
    __tablename__ = "sca_policies"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    # The policy as JSON (schemas.PolicyIn), and the PSP's current rolling 90-day fraud rates.
    document: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScaCounter(Base):
    """What a payer did without SCA since the last SCA (Art. 11 and 16)."""

    __tablename__ = "sca_counters"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    payer_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    contactless_count: Mapped[int] = mapped_column(Integer, default=0)
    contactless_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    remote_count: Mapped[int] = mapped_column(Integer, default=0)
    remote_micros: Mapped[int] = mapped_column(BigInteger, default=0)
    last_sca_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScaDecision(Base):
    """One recorded decision: the facts the Art. 21 report counts."""

    __tablename__ = "sca_decisions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime())
    payer_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    operation: Mapped[str] = mapped_column(String(32))
    role: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str | None] = mapped_column(String(32), nullable=True)
    instrument: Mapped[str | None] = mapped_column(String(32), nullable=True)
    amount_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    exemption: Mapped[str | None] = mapped_column(String(8), nullable=True)
    ruleset: Mapped[str] = mapped_column(String(64))
    fraud_micros: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    fraud_reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_sca_decisions_org_decided", "org_id", "decided_at"),)


class ScaFraudQuarter(Base):
    """A quarter's monitored fraud rate for one type of remote payment (Art. 19 and 20)."""

    __tablename__ = "sca_fraud_quarters"

    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), primary_key=True)
    quarter: Mapped[str] = mapped_column(String(7), primary_key=True)
    instrument: Mapped[str] = mapped_column(String(32), primary_key=True)
    rate_percent: Mapped[str] = mapped_column(String(32))
    resumption_notified: Mapped[bool] = mapped_column(Boolean, default=False)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ScaChallenge(Base):
    """An authentication code bound to an amount and payees (Art. 4 and 5)."""

    __tablename__ = "sca_challenges"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    payer_key: Mapped[str] = mapped_column(String(64))
    decision_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    # HMAC over the code, the amount, the currency and the payees: the code alone is not kept.
    binding: Mapped[bytes] = mapped_column(LargeBinary(32))
    hmac_kid: Mapped[str] = mapped_column(String(64))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    __table_args__ = (Index("ix_sca_challenges_org_payer", "org_id", "payer_key"),)


# Typed handles on the tables, for the Core statements of the decision path.
POLICIES = cast(Table, ScaPolicy.__table__)
COUNTERS = cast(Table, ScaCounter.__table__)
DECISIONS = cast(Table, ScaDecision.__table__)
FRAUD_QUARTERS = cast(Table, ScaFraudQuarter.__table__)
CHALLENGES = cast(Table, ScaChallenge.__table__)
