"""Owner limits and per-binding language (issues 17 and 18).

* ``owners.max_live_bindings``: the owner's own cap on live bindings (0: none);
  NULL follows MASKLINE_OWNER_MAX_LIVE_BINDINGS;
* ``bindings.language``: ``en-US`` or ``zh-CN``, the language of the answers
  on this binding (prompts, SMS auto-replies); NULL follows the deployment's.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 03:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("max_live_bindings", sa.Integer(), nullable=True))
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bindings", schema=None) as batch_op:
        batch_op.drop_column("language")
    with op.batch_alter_table("owners", schema=None) as batch_op:
        batch_op.drop_column("max_live_bindings")
