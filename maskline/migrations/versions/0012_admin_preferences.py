"""Console preferences of each admin (issue 18): language and display time zone.

* ``admin_users.language``: ``en`` or ``zh-CN``; NULL follows the browser's
  Accept-Language, then MASKLINE_CONSOLE_LANGUAGE;
* ``admin_users.timezone``: an IANA zone; NULL follows MASKLINE_DISPLAY_TIMEZONE.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-08 00:30:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("language", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("admin_users", schema=None) as batch_op:
        batch_op.drop_column("timezone")
        batch_op.drop_column("language")
