"""Vault entries, key-version registry and the hash-chained audit log.

Revision ID: 0001
Revises:
Create Date: 2026-11-24 16:05:29.483545
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "audit_log",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_log")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_log_hash")),
    )
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_log_action"), ["action"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_log_subject"), ["subject"], unique=False)

    op.create_table(
        "key_versions",
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=32), nullable=False),
        sa.Column("registered_at", sa.DateTime(), nullable=False),
        sa.Column("retired_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("kind", "version", name=op.f("pk_key_versions")),
    )
    op.create_table(
        "vault_entries",
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("blind_index", sa.LargeBinary(length=32), nullable=True),
        sa.Column("index_version", sa.Integer(), nullable=True),
        sa.Column("kek_version", sa.Integer(), nullable=True),
        sa.Column("wrapped_key", sa.LargeBinary(), nullable=True),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("erased_at", sa.DateTime(), nullable=True),
        sa.Column("erased_by", sa.String(length=120), nullable=True),
        sa.Column("erase_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_vault_entries")),
        sa.UniqueConstraint("blind_index", name=op.f("uq_vault_entries_blind_index")),
    )
    with op.batch_alter_table("vault_entries", schema=None) as batch_op:
        batch_op.create_index("ix_vault_entries_index_version", ["index_version"], unique=False)
        batch_op.create_index("ix_vault_entries_kek_version", ["kek_version"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("vault_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_vault_entries_kek_version")
        batch_op.drop_index("ix_vault_entries_index_version")

    op.drop_table("vault_entries")
    op.drop_table("key_versions")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_log_subject"))
        batch_op.drop_index(batch_op.f("ix_audit_log_action"))

    op.drop_table("audit_log")
