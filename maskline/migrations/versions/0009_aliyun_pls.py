"""Alibaba Dyplsapi face: AccessKeys (secrets sealed in the vault), AXG groups of vault tokens,
the subscriptions it made (for call receipts) (issue 8).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "aliyun_access_keys",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("api_key_id", sa.String(length=16), nullable=False),
        sa.Column("secret_token", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_aliyun_access_keys_api_key_id_api_keys")
        ),
        sa.ForeignKeyConstraint(
            ["secret_token"],
            ["vault_entries.token"],
            name=op.f("fk_aliyun_access_keys_secret_token_vault_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliyun_access_keys")),
    )
    with op.batch_alter_table("aliyun_access_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aliyun_access_keys_api_key_id"), ["api_key_id"], unique=False)
    op.create_table(
        "aliyun_axg_groups",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("pool_key", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("remark", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_aliyun_axg_groups")),
    )
    with op.batch_alter_table("aliyun_axg_groups", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aliyun_axg_groups_owner"), ["owner"], unique=False)
    op.create_table(
        "aliyun_axg_members",
        sa.Column("group_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["aliyun_axg_groups.id"],
            name=op.f("fk_aliyun_axg_members_group_id_aliyun_axg_groups"),
        ),
        sa.ForeignKeyConstraint(
            ["token"], ["vault_entries.token"], name=op.f("fk_aliyun_axg_members_token_vault_entries")
        ),
        sa.PrimaryKeyConstraint("group_id", "token", name=op.f("pk_aliyun_axg_members")),
    )
    with op.batch_alter_table("aliyun_axg_members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_aliyun_axg_members_token"), ["token"], unique=False)
    op.create_table(
        "aliyun_subscriptions",
        sa.Column("binding_id", sa.String(length=24), nullable=False),
        sa.Column("pool_key", sa.String(length=64), nullable=False),
        sa.Column("api_key_id", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["binding_id"],
            ["bindings.id"],
            name=op.f("fk_aliyun_subscriptions_binding_id_bindings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("binding_id", name=op.f("pk_aliyun_subscriptions")),
    )


def downgrade() -> None:
    op.drop_table("aliyun_subscriptions")
    with op.batch_alter_table("aliyun_axg_members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aliyun_axg_members_token"))
    op.drop_table("aliyun_axg_members")
    with op.batch_alter_table("aliyun_axg_groups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aliyun_axg_groups_owner"))
    op.drop_table("aliyun_axg_groups")
    with op.batch_alter_table("aliyun_access_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_aliyun_access_keys_api_key_id"))
    op.drop_table("aliyun_access_keys")
