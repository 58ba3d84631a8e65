"""rights executions and packages

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-05 07:00:20.493791
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0007"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rights_executions",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("map_key", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("erasure_run", sa.String(length=36), nullable=True),
        sa.Column("started_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("finished_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_rights_executions_org_id_organisations")
        ),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_rights_executions_request_id_rights_requests")
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_rights_executions")),
    )
    op.create_table(
        "rights_packages",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("enc_kid", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("downloads", sa.Integer(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("expires_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("deleted_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_rights_packages_org_id_organisations")),
        sa.ForeignKeyConstraint(
            ["request_id"], ["rights_requests.id"], name=op.f("fk_rights_packages_request_id_rights_requests")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rights_packages")),
    )
    with op.batch_alter_table("rights_packages", schema=None) as batch_op:
        batch_op.create_index("ix_rights_packages_expiry", ["deleted_at", "expires_at"], unique=False)
        batch_op.create_index("ix_rights_packages_request", ["request_id"], unique=False)

    with op.batch_alter_table("rights_settings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("datamap_key", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("rights_settings", schema=None) as batch_op:
        batch_op.drop_column("datamap_key")

    with op.batch_alter_table("rights_packages", schema=None) as batch_op:
        batch_op.drop_index("ix_rights_packages_request")
        batch_op.drop_index("ix_rights_packages_expiry")

    op.drop_table("rights_packages")
    op.drop_table("rights_executions")
