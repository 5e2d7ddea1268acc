"""Interactions: relayed calls and messages by role, never a number.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 17:47:49.232271
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interactions",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("binding_id", sa.String(length=24), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=4), nullable=False),
        sa.Column("from_role", sa.String(length=32), nullable=False),
        sa.Column("to_role", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_interactions")),
    )
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_interactions_binding_id"), ["binding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_interactions_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("interactions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_interactions_owner"))
        batch_op.drop_index(batch_op.f("ix_interactions_binding_id"))

    op.drop_table("interactions")
