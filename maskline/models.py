"""Imports every package's tables, so Base.metadata is complete (for Alembic)."""

from maskline.audit.models import AuditRecord
from maskline.vault.models import KeyVersion, VaultEntry

__all__ = ["AuditRecord", "KeyVersion", "VaultEntry"]
