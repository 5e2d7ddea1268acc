"""The vault's contract: what it offers and the exceptions it raises.

Exception tree::

    VaultError
    ├── InvalidPhoneNumber      input is not an acceptable party number (names the field)
    ├── VaultEntryNotFound      no entry with that token
    ├── VaultEntryErased        the entry was erased; only its tombstone is left
    ├── VaultIntegrityError     ciphertext, AAD or key version does not verify
    └── KeyRingError            the key ring is missing, malformed or unusable
        └── KeyRingMismatch     the ring does not match the one the database records

No message of these exceptions ever contains a phone number: callers may log
them and return them to users.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol

# The purpose bound into every sealed party number (part of the AAD), so a
# ciphertext copied into another context does not open there.
from maskline import errors

PARTY_NUMBER = "party-number"


class VaultError(errors.MasklineError):
    """Base of every error the vault raises."""


class InvalidPhoneNumber(VaultError, errors.InputError):
    """The input is not an acceptable party number. Nothing was stored.

    ``field`` names the input (e.g. ``parties.buyer``), ``reason`` says why.
    The offending value is deliberately not part of the message.
    """

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class VaultEntryNotFound(VaultError, errors.NotFound):
    """No vault entry has this token."""


class VaultEntryErased(VaultError, errors.NotFound):
    """The entry was erased (PIPL / GDPR); the number no longer exists."""

    def __init__(self, token: str, erased_at: dt.datetime | None) -> None:
        when = f" at {erased_at.isoformat()}" if erased_at else ""
        super().__init__(f"vault entry {token} was erased{when}")
        self.token = token
        self.erased_at = erased_at


class VaultIntegrityError(VaultError, errors.IntegrityError):
    """A sealed value failed to verify: tampered, misplaced or unknown key.

    The vault raises this rather than ever returning a wrong number.
    """


class KeyRingError(VaultError):
    """The key ring cannot be used (missing, malformed, development key in production)."""


class KeyRingMismatch(KeyRingError):
    """The loaded key ring lacks or contradicts a key the database relies on."""


@dataclass(frozen=True, slots=True)
class PutResult:
    """The token of a stored number and whether this call created it."""

    token: str
    created: bool


class Vault(Protocol):
    """Stores party numbers sealed; hands out opaque tokens.

    Every number is normalized to E.164 first. One person (one E.164 number)
    has one token while their entry lives.
    """

    def put(self, raw_number: str, *, field: str = "number", region: str | None = None) -> PutResult:
        """Seal and store a number, or return the existing token for it."""
        ...

    def lookup(self, raw_number: str, *, field: str = "number", region: str | None = None) -> str | None:
        """The token of a stored number, or None; stores nothing."""
        ...

    def open(self, token: str) -> str:
        """The E.164 number behind ``token``. Callers must audit their reason."""
        ...

    def erase(self, token: str, *, actor: str, reason: str) -> None:
        """Destroy the number behind ``token`` and leave a tombstone."""
        ...
