"""data maps and erasure runs

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04 18:40:28.158699
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "datamap_erasures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("map_key", sa.String(length=64), nullable=False),
        sa.Column("map_version", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("plan", sa.Text(), nullable=False),
        sa.Column("done", sa.Text(), nullable=False),
        sa.Column("counts", sa.Text(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_datamap_erasures_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_datamap_erasures")),
    )
    with op.batch_alter_table("datamap_erasures", schema=None) as batch_op:
        batch_op.create_index("ix_datamap_erasures_org_request", ["org_id", "request_id"], unique=False)

    op.create_table(
        "datamaps",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_datamaps_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "key", "version", name=op.f("pk_datamaps")),
    )


def downgrade() -> None:
    op.drop_table("datamaps")
    with op.batch_alter_table("datamap_erasures", schema=None) as batch_op:
        batch_op.drop_index("ix_datamap_erasures_org_request")

    op.drop_table("datamap_erasures")
