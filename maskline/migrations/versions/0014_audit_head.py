"""The audit chain's head row (issue 15): appends take their ``seq`` and the
hash to chain onto from it, in their own transaction, instead of reading the
end of ``audit_log`` under a lock held through the whole transaction.

Seeded from the existing chain's last record, so an upgraded deployment goes
on where its chain ends.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 03:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_head")),
    )
    op.execute(
        "INSERT INTO audit_head (id, seq, prev_hash, hash) "
        "SELECT 1, seq, prev_hash, hash FROM audit_log ORDER BY seq DESC LIMIT 1"
    )


def downgrade() -> None:
    op.drop_table("audit_head")
