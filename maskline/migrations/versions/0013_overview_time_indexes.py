"""Time indexes the console's overview counts over (issue 20).

* ``ix_bindings_created_at``: binds per hour, over 24 hours and 7 days;
* ``ix_interactions_started_at``: calls and texts per hour.

Each chart is then a range scan of the window it shows, however long the
tables grow.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08 03:40:00
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_bindings_created_at", "bindings", ["created_at"])
    op.create_index("ix_interactions_started_at", "interactions", ["started_at"])


def downgrade() -> None:
    op.drop_index("ix_interactions_started_at", table_name="interactions")
    op.drop_index("ix_bindings_created_at", table_name="bindings")
