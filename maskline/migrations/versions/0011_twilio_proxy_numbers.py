"""Twilio Proxy face: what sticky number selection and out-of-session callbacks keep (issue 8).

* ``twilio_participants.proxy_e164``: the relay number (public) a participant
  asked for with ``ProxyIdentifier`` / ``ProxyIdentifierSid``, until the
  session binds;
* ``twilio_participants.token`` indexed: sticky selection finds a pair's
  earlier sessions by vault token (never by number);
* ``twilio_sessions.expiry_fixed``: the session's expiry is a ``DateExpiry``,
  so interactions do not move it (a ``ttl`` counts from the last one).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 16:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("twilio_participants", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proxy_e164", sa.String(length=20), nullable=True))
        batch_op.create_index(batch_op.f("ix_twilio_participants_token"), ["token"], unique=False)
    with op.batch_alter_table("twilio_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("expiry_fixed", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.create_index(batch_op.f("ix_twilio_sessions_mode"), ["mode"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("twilio_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_sessions_mode"))
        batch_op.drop_column("expiry_fixed")
    with op.batch_alter_table("twilio_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_participants_token"))
        batch_op.drop_column("proxy_e164")
