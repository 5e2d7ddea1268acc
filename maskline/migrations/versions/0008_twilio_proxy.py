"""Twilio Proxy v1 face: services, sessions and participants over bindings (issue 8).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 13:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "twilio_credentials",
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("token_wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("token_kek_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["api_keys.id"],
            name=op.f("fk_twilio_credentials_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_sid", name=op.f("pk_twilio_credentials")),
    )
    with op.batch_alter_table("twilio_credentials", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_twilio_credentials_key_id"), ["key_id"], unique=False)
    op.create_table(
        "twilio_services",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("unique_name", sa.String(length=191), nullable=False),
        sa.Column("default_ttl", sa.Integer(), nullable=False),
        sa.Column("geo_match_level", sa.String(length=24), nullable=False),
        sa.Column("number_selection_behavior", sa.String(length=16), nullable=False),
        sa.Column("callback_url", sa.String(length=500), nullable=True),
        sa.Column("intercept_callback_url", sa.String(length=500), nullable=True),
        sa.Column("out_of_session_callback_url", sa.String(length=500), nullable=True),
        sa.Column("intercept_fail_closed", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_twilio_services")),
        sa.UniqueConstraint("owner", "unique_name", name=op.f("uq_twilio_services_owner")),
    )
    with op.batch_alter_table("twilio_services", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_twilio_services_owner"), ["owner"], unique=False)
    op.create_table(
        "twilio_phone_numbers",
        sa.Column("service_sid", sa.String(length=34), nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("is_reserved", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["e164"], ["relay_numbers.e164"], name=op.f("fk_twilio_phone_numbers_e164_relay_numbers")
        ),
        sa.ForeignKeyConstraint(
            ["service_sid"],
            ["twilio_services.sid"],
            name=op.f("fk_twilio_phone_numbers_service_sid_twilio_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("service_sid", "e164", name=op.f("pk_twilio_phone_numbers")),
    )
    with op.batch_alter_table("twilio_phone_numbers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_twilio_phone_numbers_sid"), ["sid"], unique=False)
    op.create_table(
        "twilio_sessions",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("service_sid", sa.String(length=34), nullable=False),
        sa.Column("owner", sa.String(length=120), nullable=False),
        sa.Column("unique_name", sa.String(length=191), nullable=True),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("date_expiry", sa.DateTime(), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("closed_reason", sa.String(length=120), nullable=True),
        sa.Column("binding_id", sa.String(length=24), nullable=True),
        sa.Column("date_ended", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["service_sid"],
            ["twilio_services.sid"],
            name=op.f("fk_twilio_sessions_service_sid_twilio_services"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_twilio_sessions")),
        sa.UniqueConstraint("service_sid", "unique_name", name=op.f("uq_twilio_sessions_service_sid")),
    )
    with op.batch_alter_table("twilio_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_twilio_sessions_binding_id"), ["binding_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_twilio_sessions_owner"), ["owner"], unique=False)
    op.create_table(
        "twilio_participants",
        sa.Column("sid", sa.String(length=34), nullable=False),
        sa.Column("session_sid", sa.String(length=34), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=True),
        sa.Column("identifier_masked", sa.String(length=24), nullable=False),
        sa.Column("friendly_name", sa.String(length=255), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_sid"],
            ["twilio_sessions.sid"],
            name=op.f("fk_twilio_participants_session_sid_twilio_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["token"],
            ["vault_entries.token"],
            name=op.f("fk_twilio_participants_token_vault_entries"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("sid", name=op.f("pk_twilio_participants")),
    )
    with op.batch_alter_table("twilio_participants", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_twilio_participants_session_sid"), ["session_sid"], unique=False)
    op.create_table(
        "twilio_callbacks",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("service_sid", sa.String(length=34), nullable=False),
        sa.Column("account_sid", sa.String(length=34), nullable=False),
        sa.Column("url", sa.String(length=500), nullable=False),
        sa.Column("form", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_twilio_callbacks")),
        sa.UniqueConstraint("key", name=op.f("uq_twilio_callbacks_key")),
    )
    with op.batch_alter_table("twilio_callbacks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_twilio_callbacks_service_sid"), ["service_sid"], unique=False)
        batch_op.create_index("ix_twilio_callbacks_status_next", ["status", "next_attempt_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("twilio_callbacks", schema=None) as batch_op:
        batch_op.drop_index("ix_twilio_callbacks_status_next")
        batch_op.drop_index(batch_op.f("ix_twilio_callbacks_service_sid"))
    op.drop_table("twilio_callbacks")
    with op.batch_alter_table("twilio_participants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_participants_session_sid"))
    op.drop_table("twilio_participants")
    with op.batch_alter_table("twilio_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_sessions_owner"))
        batch_op.drop_index(batch_op.f("ix_twilio_sessions_binding_id"))
    op.drop_table("twilio_sessions")
    with op.batch_alter_table("twilio_phone_numbers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_phone_numbers_sid"))
    op.drop_table("twilio_phone_numbers")
    with op.batch_alter_table("twilio_services", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_services_owner"))
    op.drop_table("twilio_services")
    with op.batch_alter_table("twilio_credentials", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_twilio_credentials_key_id"))
    op.drop_table("twilio_credentials")
