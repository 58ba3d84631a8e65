"""registers: published privacy notice versions

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-05 07:15:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0009"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "register_notices",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("published_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("published_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_register_notices_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "version", name=op.f("pk_register_notices")),
    )


def downgrade() -> None:
    op.drop_table("register_notices")
