"""Imports every package's tables, so Base.metadata is complete (for Alembic)."""

from maskline.audit.models import AuditRecord
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.vault.models import KeyVersion, VaultEntry

__all__ = [
    "AuditRecord",
    "Binding",
    "BindingMember",
    "KeyVersion",
    "RelayNumber",
    "VaultEntry",
]
