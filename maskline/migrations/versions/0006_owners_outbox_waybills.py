"""Owners (events URL and signing secret), the event outbox, waybills.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 07:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "owners",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("events_url", sa.String(length=500), nullable=True),
        sa.Column("events_secret", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_owners")),
    )
    op.create_table(
        "outbox_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_events_event_id")),
    )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_events_owner"), ["owner"], unique=False)
        batch_op.create_index("ix_outbox_events_status_next", ["status", "next_attempt_at"], unique=False)
    op.create_table(
        "waybills",
        sa.Column("carrier", sa.String(length=120), nullable=False),
        sa.Column("tracking_no", sa.String(length=64), nullable=False),
        sa.Column("binding_id", sa.String(length=24), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["binding_id"],
            ["bindings.id"],
            name=op.f("fk_waybills_binding_id_bindings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("carrier", "tracking_no", name=op.f("pk_waybills")),
    )
    with op.batch_alter_table("waybills", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_waybills_binding_id"), ["binding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_waybills_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("waybills", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_waybills_owner"))
        batch_op.drop_index(batch_op.f("ix_waybills_binding_id"))
    op.drop_table("waybills")
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_status_next")
        batch_op.drop_index(batch_op.f("ix_outbox_events_owner"))
    op.drop_table("outbox_events")
    op.drop_table("owners")
