"""Per-binding recording and SMS policy; recordings listed by Twilio sid and URL.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 07:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("record", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("sms_redact", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("sms_media", sa.String(length=8), nullable=True))
    op.create_table(
        "recordings",
        sa.Column("sid", sa.String(length=64), nullable=False),
        sa.Column("call_sid", sa.String(length=64), nullable=False),
        sa.Column("binding_id", sa.String(length=24), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("url", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("duration", sa.Integer(), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_recordings")),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recordings_binding_id"), ["binding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_recordings_owner"), ["owner"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recordings_owner"))
        batch_op.drop_index(batch_op.f("ix_recordings_binding_id"))
    op.drop_table("recordings")
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.drop_column("sms_media")
        batch_op.drop_column("sms_redact")
        batch_op.drop_column("record")
