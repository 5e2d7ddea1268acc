"""The Alembic migrations produce exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine

import maskline.models  # noqa: F401  (registers every table)
from maskline import migrate
from maskline.db import Base


def test_migrations_match_models(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_schema_is_at_head(migrated_engine: Engine) -> None:
    assert migrate.is_up_to_date(migrated_engine)
