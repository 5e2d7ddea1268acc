"""Alibaba Dyplsapi face: PoolKeys with their own numbers, and one-way call restrictions (issue 8).

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliyun_pool_numbers",
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("pool_key", sa.String(length=64), nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["e164"], ["relay_numbers.e164"], name=op.f("fk_aliyun_pool_numbers_e164_relay_numbers")
        ),
        sa.PrimaryKeyConstraint("owner", "pool_key", "e164", name=op.f("pk_aliyun_pool_numbers")),
    )
    with op.batch_alter_table("aliyun_pool_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aliyun_pool_numbers_e164"), ["e164"], unique=False)
    with op.batch_alter_table("aliyun_subscriptions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("call_restrict", sa.String(length=24), nullable=True))
        batch_op.add_column(
            sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True)
        )
        batch_op.create_index(batch_op.f("ix_aliyun_subscriptions_group_id"), ["group_id"], unique=False)
        # "Does any subscription restrict calls?" is asked by every web process every few seconds.
        batch_op.create_index(
            batch_op.f("ix_aliyun_subscriptions_call_restrict"), ["call_restrict"], unique=False
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_aliyun_subscriptions_group_id_aliyun_axg_groups"),
            "aliyun_axg_groups",
            ["group_id"],
            ["id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("aliyun_subscriptions", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_aliyun_subscriptions_group_id_aliyun_axg_groups"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_aliyun_subscriptions_call_restrict"))
        batch_op.drop_index(batch_op.f("ix_aliyun_subscriptions_group_id"))
        batch_op.drop_column("group_id")
        batch_op.drop_column("call_restrict")
    with op.batch_alter_table("aliyun_pool_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aliyun_pool_numbers_e164"))
    op.drop_table("aliyun_pool_numbers")
