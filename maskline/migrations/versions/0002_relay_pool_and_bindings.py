"""Relay-number pool, bindings and binding members (parties and allowed callers).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 16:13:24.563498
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "relay_numbers",
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("voice", sa.Boolean(), nullable=False),
        sa.Column("sms", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("e164", name=op.f("pk_relay_numbers")),
    )
    with op.batch_alter_table("relay_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_relay_numbers_area"), ["area"], unique=False)
        batch_op.create_index(batch_op.f("ix_relay_numbers_country"), ["country"], unique=False)
        batch_op.create_index(batch_op.f("ix_relay_numbers_status"), ["status"], unique=False)

    op.create_table(
        "bindings",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("mode", sa.String(length=4), nullable=False),
        sa.Column("relay_number", sa.String(length=20), nullable=False),
        sa.Column("extension", sa.String(length=8), nullable=True),
        sa.Column("allow_any", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("purged_at", sa.DateTime(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["relay_number"], ["relay_numbers.e164"], name=op.f("fk_bindings_relay_number_relay_numbers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bindings")),
    )
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.create_index("ix_bindings_owner_order", ["owner", "order_id"], unique=False)
        batch_op.create_index("ix_bindings_relay_status", ["relay_number", "status"], unique=False)
        batch_op.create_index("ix_bindings_status_expires", ["status", "expires_at"], unique=False)

    op.create_table(
        "binding_members",
        sa.Column("binding_id", sa.String(length=24), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.ForeignKeyConstraint(
            ["binding_id"],
            ["bindings.id"],
            name=op.f("fk_binding_members_binding_id_bindings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["token"], ["vault_entries.token"], name=op.f("fk_binding_members_token_vault_entries")
        ),
        sa.PrimaryKeyConstraint("binding_id", "position", name=op.f("pk_binding_members")),
    )
    with op.batch_alter_table("binding_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_binding_members_token"), ["token"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("binding_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_binding_members_token"))

    op.drop_table("binding_members")
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.drop_index("ix_bindings_status_expires")
        batch_op.drop_index("ix_bindings_relay_status")
        batch_op.drop_index("ix_bindings_owner_order")

    op.drop_table("bindings")
    with op.batch_alter_table("relay_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relay_numbers_status"))
        batch_op.drop_index(batch_op.f("ix_relay_numbers_country"))
        batch_op.drop_index(batch_op.f("ix_relay_numbers_area"))

    op.drop_table("relay_numbers")
