"""data-subject requests, history, identity codes, blocks, settings

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04 18:39:27.230201
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rights_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("extended", sa.Boolean(), nullable=False),
        sa.Column("extension_reason", sa.Text(), nullable=True),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("host_ref", sa.String(length=64), nullable=True),
        sa.Column("hmac_kid", sa.String(length=64), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("enc_kid", sa.String(length=64), nullable=False),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("received_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
        sa.Column("first_due_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=False),
        sa.Column("paused_days", sa.Integer(), nullable=False),
        sa.Column("paused_since", gardien.core.db.UTCDateTime(), nullable=True),
        sa.Column("identity_method", sa.String(length=16), nullable=True),
        sa.Column("identity_verified_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=True),
        sa.Column("closed_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_rights_requests_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_requests")),
    )
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.create_index("ix_rights_requests_org_status_due", ["org_id", "status", "due_on"], unique=False)
        batch_op.create_index("ix_rights_requests_org_subject", ["org_id", "subject_ref"], unique=False)

    op.create_table(
        "rights_settings",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("pause_for_identity", sa.Boolean(), nullable=True),
        sa.Column("due_soon_days", sa.Integer(), nullable=False),
        sa.Column("reminder_webhook", sa.String(length=2048), nullable=True),
        sa.Column("reminder_emails", sa.Text(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_rights_settings_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_rights_settings")),
    )
    op.create_table(
        "rights_blocks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("subject_ref", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("since", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("lifted_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_rights_blocks_org_id_organisations")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_rights_blocks_request_id_rights_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_blocks")),
    )
    with op.batch_alter_table("rights_blocks", schema=None) as batch_op:
        batch_op.create_index("ix_rights_blocks_org_subject", ["org_id", "subject_ref", "active"], unique=False)
        batch_op.create_index("ix_rights_blocks_request", ["request_id"], unique=False)

    op.create_table(
        "rights_identity_codes",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("code_mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hmac_kid", sa.String(length=64), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("sends", sa.Integer(), nullable=False),
        sa.Column("sent_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_rights_identity_codes_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_rights_identity_codes_request_id_rights_requests")
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_rights_identity_codes")),
    )
    op.create_table(
        "rights_request_history",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("from_status", sa.String(length=20), nullable=True),
        sa.Column("to_status", sa.String(length=20), nullable=False),
        sa.Column("actor_type", sa.String(length=32), nullable=False),
        sa.Column("actor_id", sa.String(length=128), nullable=False),
        sa.Column("actor_display", sa.String(length=256), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("details", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_rights_request_history_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_rights_request_history_request_id_rights_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_request_history")),
    )
    with op.batch_alter_table("rights_request_history", schema=None) as batch_op:
        batch_op.create_index("ix_rights_request_history_request", ["request_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rights_request_history", schema=None) as batch_op:
        batch_op.drop_index("ix_rights_request_history_request")

    op.drop_table("rights_request_history")
    op.drop_table("rights_identity_codes")
    with op.batch_alter_table("rights_blocks", schema=None) as batch_op:
        batch_op.drop_index("ix_rights_blocks_request")
        batch_op.drop_index("ix_rights_blocks_org_subject")

    op.drop_table("rights_blocks")
    op.drop_table("rights_settings")
    with op.batch_alter_table("rights_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_rights_requests_org_subject")
        batch_op.drop_index("ix_rights_requests_org_status_due")

    op.drop_table("rights_requests")
