"""Console accounts (issue 20): one-time recovery codes of the second factor,
and account changes waiting for a second admin's approval.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "admin_recovery_codes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("used_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["admin_users.id"],
            name=op.f("fk_admin_recovery_codes_user_id_admin_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_recovery_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_admin_recovery_codes_code_hash")),
    )
    with op.batch_alter_table("admin_recovery_codes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_admin_recovery_codes_user_id"), ["user_id"], unique=False)
    op.create_table(
        "admin_account_changes",
        sa.Column("id", sa.String(length=24), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("target", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("requested_by", sa.Integer(), nullable=False),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["requested_by"],
            ["admin_users.id"],
            name=op.f("fk_admin_account_changes_requested_by_admin_users"),
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"],
            ["admin_users.id"],
            name=op.f("fk_admin_account_changes_decided_by_admin_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_admin_account_changes")),
    )
    with op.batch_alter_table("admin_account_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_admin_account_changes_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("admin_account_changes")
    op.drop_table("admin_recovery_codes")
