"""core and audit ledger

Revision ID: 0001
Revises:
Create Date: 2026-11-22 02:31:09.545595
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import gardien.core.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisations")),
        sa.UniqueConstraint("slug", name=op.f("uq_organisations_slug")),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=16), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("secret_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_api_keys_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_org_id"), ["org_id"], unique=False)

    op.create_table(
        "audit_checkpoints",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_audit_checkpoints_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "size", name=op.f("pk_audit_checkpoints")),
    )
    op.create_table(
        "audit_events",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("occurred_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("recorded_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("module", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=128), nullable=False),
        sa.Column("crud", sa.String(length=8), nullable=False),
        sa.Column("outcome", sa.String(length=8), nullable=False),
        sa.Column("actor_type", sa.String(length=64), nullable=False),
        sa.Column("actor_id", sa.String(length=256), nullable=False),
        sa.Column("target_type", sa.String(length=64), nullable=True),
        sa.Column("target_id", sa.String(length=256), nullable=True),
        sa.Column("canonical", sa.LargeBinary(), nullable=False),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("hmac_kid", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_audit_events_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "seq", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("id", name=op.f("uq_audit_events_id")),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_org_actor", ["org_id", "actor_id"], unique=False)
        batch_op.create_index("ix_audit_events_org_occurred", ["org_id", "occurred_at"], unique=False)
        batch_op.create_index("ix_audit_events_org_target", ["org_id", "target_id"], unique=False)

    op.create_table(
        "audit_exports",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("format", sa.String(length=8), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("payload_path", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_audit_exports_org_id_organisations")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_exports")),
    )
    with op.batch_alter_table("audit_exports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_exports_org_id"), ["org_id"], unique=False)

    op.create_table(
        "audit_heads",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("min_seq", sa.BigInteger(), nullable=False),
        sa.Column("mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("checkpoint_size", sa.BigInteger(), nullable=False),
        sa.Column("checkpoint_at", gardien.core.db.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_audit_heads_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", name=op.f("pk_audit_heads")),
    )
    op.create_table(
        "audit_purges",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("to_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("from_seq", sa.BigInteger(), nullable=False),
        sa.Column("anchor_mac", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("manifest", sa.Text(), nullable=False),
        sa.Column("created_at", gardien.core.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["org_id"], ["organisations.id"], name=op.f("fk_audit_purges_org_id_organisations")),
        sa.PrimaryKeyConstraint("org_id", "to_seq", name=op.f("pk_audit_purges")),
    )
    op.create_table(
        "audit_tree_nodes",
        sa.Column("org_id", sa.String(length=36), nullable=False),
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organisations.id"], name=op.f("fk_audit_tree_nodes_org_id_organisations")
        ),
        sa.PrimaryKeyConstraint("org_id", "level", "idx", name=op.f("pk_audit_tree_nodes")),
    )

    create_worm_triggers()


WORM_TABLES = ("audit_events", "audit_checkpoints", "audit_tree_nodes", "audit_purges")


def create_worm_triggers() -> None:
    """Refuse UPDATE, DELETE and TRUNCATE on the ledger's write-once tables.

    Triggers stop the application and careless hands; the database owner can still drop them,
    which is why verification never relies on them (docs/operator.md gives the role setup).
    """
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            CREATE OR REPLACE FUNCTION gardien_worm_refuse() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                RAISE EXCEPTION 'gardien: % on % refused: the audit ledger is append-only',
                    TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
            END;
            $$
            """
        )
        for table in WORM_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_worm BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION gardien_worm_refuse()"
            )
            op.execute(
                f"CREATE TRIGGER {table}_worm_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION gardien_worm_refuse()"
            )
        return
    for table in WORM_TABLES:
        for operation in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {table}_worm_{operation.lower()} BEFORE {operation} ON {table} "
                f"BEGIN SELECT RAISE(ABORT, 'gardien: {operation} on {table} refused: "
                "the audit ledger is append-only'); END"
            )


def drop_worm_triggers() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WORM_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_worm ON {table}")
            op.execute(f"DROP TRIGGER IF EXISTS {table}_worm_truncate ON {table}")
        op.execute("DROP FUNCTION IF EXISTS gardien_worm_refuse()")
        return
    for table in WORM_TABLES:
        for operation in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_worm_{operation}")


def downgrade() -> None:
    drop_worm_triggers()
    op.drop_table("audit_tree_nodes")
    op.drop_table("audit_purges")
    op.drop_table("audit_heads")
    with op.batch_alter_table("audit_exports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_exports_org_id"))

    op.drop_table("audit_exports")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_org_target")
        batch_op.drop_index("ix_audit_events_org_occurred")
        batch_op.drop_index("ix_audit_events_org_actor")

    op.drop_table("audit_events")
    op.drop_table("audit_checkpoints")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_org_id"))

    op.drop_table("api_keys")
    op.drop_table("organisations")
