"""Imports every package's tables, so Base.metadata is complete (for Alembic)."""

from maskline.admin.models import AccountChange, AdminSession, AdminUser, RecoveryCode, RevealRequest
from maskline.api.models import ApiKey, IdempotencyRecord, OutboxEvent, Owner, Waybill
from maskline.audit.models import Alert, AuditRecord
from maskline.compat.aliyun import models as aliyun_models  # noqa: F401 (registers its tables)
from maskline.compat.twilio import models as twilio_models  # noqa: F401 (registers its tables)
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.vault.models import KeyVersion, VaultEntry
from maskline.webhooks.models import Interaction, Recording

__all__ = [
    "AccountChange",
    "AdminSession",
    "AdminUser",
    "Alert",
    "ApiKey",
    "AuditRecord",
    "Binding",
    "BindingMember",
    "IdempotencyRecord",
    "Interaction",
    "KeyVersion",
    "OutboxEvent",
    "Owner",
    "Recording",
    "RecoveryCode",
    "RelayNumber",
    "RevealRequest",
    "VaultEntry",
    "Waybill",
]
