"""psd2 sca advisor

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 05:06:46.073662
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sca_challenges",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("payer_key", sa.String(length=64), nullable=False),
        sa.Column("decision_id", sa.String(length=36), nullable=True),
        sa.Column("binding", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hmac_kid", sa.String(length=64), nullable=False),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("last_activity_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("completed_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_sca_challenges_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sca_challenges")),
    )
    with op.batch_alter_table("sca_challenges", schema=None) as batch_op:
        batch_op.create_index("ix_sca_challenges_org_payer", ["org_id", "payer_key"], unique=False)

    op.create_table(
        "sca_counters",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("payer_key", sa.String(length=64), nullable=False),
        sa.Column("contactless_count", sa.Integer(), nullable=False),
        sa.Column("contactless_micros", sa.BigInteger(), nullable=False),
        sa.Column("remote_count", sa.Integer(), nullable=False),
        sa.Column("remote_micros", sa.BigInteger(), nullable=False),
        sa.Column("last_sca_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_sca_counters_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "payer_key", name=op.f("pk_sca_counters")),
    )
    op.create_table(
        "sca_decisions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("decided_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("payer_key", sa.String(length=64), nullable=True),
        sa.Column("operation", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=32), nullable=True),
        sa.Column("instrument", sa.String(length=32), nullable=True),
        sa.Column("amount_micros", sa.BigInteger(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("exemption", sa.String(length=8), nullable=True),
        sa.Column("ruleset", sa.String(length=64), nullable=False),
        sa.Column("fraud_micros", sa.BigInteger(), nullable=True),
        sa.Column("fraud_reported_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_sca_decisions_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sca_decisions")),
    )
    with op.batch_alter_table("sca_decisions", schema=None) as batch_op:
        batch_op.create_index("ix_sca_decisions_org_decided", ["org_id", "decided_at"], unique=False)

    op.create_table(
        "sca_fraud_quarters",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("quarter", sa.String(length=7), nullable=False),
        sa.Column("instrument", sa.String(length=32), nullable=False),
        sa.Column("rate_percent", sa.String(length=32), nullable=False),
        sa.Column("resumption_notified", sa.Boolean(), nullable=False),
        sa.Column("recorded_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_sca_fraud_quarters_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "quarter", "instrument", name=op.f("pk_sca_fraud_quarters")),
    )
    op.create_table(
        "sca_policies",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_sca_policies_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_sca_policies")),
    )


def downgrade() -> None:
    op.drop_table("sca_policies")
    op.drop_table("sca_fraud_quarters")
    with op.batch_alter_table("sca_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_sca_decisions_org_decided")

    op.drop_table("sca_decisions")
    op.drop_table("sca_counters")
    with op.batch_alter_table("sca_challenges", schema=None) as batch_op:
        batch_op.drop_index("ix_sca_challenges_org_payer")

    op.drop_table("sca_challenges")
