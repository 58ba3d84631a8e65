"""registers: processing activities, processors, breaches, DPIAs

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04 18:41:26.936548
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "register_activities",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_register_activities_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_activities")),
    )
    with op.batch_alter_table("register_activities", schema=None) as batch_op:
        batch_op.create_index("ix_register_activities_org_id", ["org_id", "id"], unique=False)

    op.create_table(
        "register_breaches",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("aware_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("initial_notified_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.Column("risk", sa.String(length=8), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("notifications", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_register_breaches_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_breaches")),
    )
    with op.batch_alter_table("register_breaches", schema=None) as batch_op:
        batch_op.create_index("ix_register_breaches_org_id", ["org_id", "id"], unique=False)

    op.create_table(
        "register_dpias",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_register_dpias_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_dpias")),
    )
    with op.batch_alter_table("register_dpias", schema=None) as batch_op:
        batch_op.create_index("ix_register_dpias_org_id", ["org_id", "id"], unique=False)

    op.create_table(
        "register_processors",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("dpa_signed_on", sa.Date(), nullable=True),
        sa.Column("dpa_review_on", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_register_processors_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_register_processors")),
    )
    with op.batch_alter_table("register_processors", schema=None) as batch_op:
        batch_op.create_index("ix_register_processors_org_id", ["org_id", "id"], unique=False)

    op.create_table(
        "register_settings",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("record", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("updated_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_register_settings_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_register_settings")),
    )


def downgrade() -> None:
    op.drop_table("register_settings")
    with op.batch_alter_table("register_processors", schema=None) as batch_op:
        batch_op.drop_index("ix_register_processors_org_id")

    op.drop_table("register_processors")
    with op.batch_alter_table("register_dpias", schema=None) as batch_op:
        batch_op.drop_index("ix_register_dpias_org_id")

    op.drop_table("register_dpias")
    with op.batch_alter_table("register_breaches", schema=None) as batch_op:
        batch_op.drop_index("ix_register_breaches_org_id")

    op.drop_table("register_breaches")
    with op.batch_alter_table("register_activities", schema=None) as batch_op:
        batch_op.drop_index("ix_register_activities_org_id")

    op.drop_table("register_activities")
