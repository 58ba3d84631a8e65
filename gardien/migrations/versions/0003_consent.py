"""consent records, notice versions, states and daily counts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 08:00:53.226879
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "consent_daily",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("purpose", sa.String(length=40), nullable=False),
        sa.Column("granted", sa.Integer(), nullable=False),
        sa.Column("denied", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_consent_daily_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "day", "purpose", name=op.f("pk_consent_daily")),
    )
    op.create_table(
        "consent_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.Column("user_ref", sa.String(length=64), nullable=True),
        sa.Column("hmac_kid", sa.String(length=64), nullable=True),
        sa.Column("states", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("surface", sa.String(length=16), nullable=False),
        sa.Column("notice_version", sa.Integer(), nullable=False),
        sa.Column("notice_sha256", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=16), nullable=True),
        sa.Column("occurred_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("ip_truncated", sa.String(length=64), nullable=True),
        sa.Column("ua_class", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_consent_events_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_events")),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index("ix_consent_events_org_occurred", ["org_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_consent_events_org_subject", ["org_id", "consent_id", "occurred_at"], unique=False)

    op.create_table(
        "consent_notices",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_consent_notices_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "version", name=op.f("pk_consent_notices")),
    )
    with op.batch_alter_table("consent_notices", schema=None) as batch_op:
        batch_op.create_index("ix_consent_notices_org_sha256", ["org_id", "sha256"], unique=True)

    op.create_table(
        "consent_settings",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("site_key", sa.String(length=64), nullable=False),
        sa.Column("validity_months", sa.Integer(), nullable=False),
        sa.Column("allowed_origins", sa.Text(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_consent_settings_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_consent_settings")),
        sa.UniqueConstraint("site_key", name=op.f("uq_consent_settings_site_key")),
    )
    op.create_table(
        "consent_states",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("consent_id", sa.String(length=36), nullable=False),
        sa.Column("user_ref", sa.String(length=64), nullable=True),
        sa.Column("states", sa.Text(), nullable=False),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("notice_version", sa.Integer(), nullable=False),
        sa.Column("given_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("last_event_id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_consent_states_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "consent_id", name=op.f("pk_consent_states")),
    )
    with op.batch_alter_table("consent_states", schema=None) as batch_op:
        batch_op.create_index("ix_consent_states_org_expires", ["org_id", "expires_at"], unique=False)
        batch_op.create_index("ix_consent_states_org_user", ["org_id", "user_ref"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("consent_states", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_states_org_user")
        batch_op.drop_index("ix_consent_states_org_expires")

    op.drop_table("consent_states")
    op.drop_table("consent_settings")
    with op.batch_alter_table("consent_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_notices_org_sha256")

    op.drop_table("consent_notices")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_events_org_subject")
        batch_op.drop_index("ix_consent_events_org_occurred")

    op.drop_table("consent_events")
    op.drop_table("consent_daily")
