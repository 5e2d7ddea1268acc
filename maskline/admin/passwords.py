"""Console passwords: Argon2id (memory-hard), with a floor on what is accepted.

Argon2id at argon2-cffi's defaults (RFC 9106's second recommended profile:
3 passes over 64 MiB, 4 lanes) makes every guess cost a GPU or an ASIC the
same memory it costs the server, which is what a stolen ``admin_users`` table
must be made worthless against.
"""

from __future__ import annotations

import functools

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from maskline.admin.interfaces import InvalidAdminInput

MIN_LENGTH = 12
MAX_LENGTH = 1024  # Argon2 takes anything; a megabyte "password" is an attack on CPU.

_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified when the account does not exist, so that an unknown name costs
    as long as a wrong password and the login page's timing names no accounts.
    Made on first use: a hash costs ~0.1 s, which every CLI command would pay
    at import."""
    return _hasher.hash("maskline-no-such-account")


def check_new_password(password: str, *, name: str) -> None:
    """Refuse a password a careful admin would not choose (InvalidAdminInput on 'password')."""
    if len(password) < MIN_LENGTH:
        raise InvalidAdminInput("password", f"must be at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise InvalidAdminInput("password", f"must be at most {MAX_LENGTH} characters")
    if name.lower() in password.lower():
        raise InvalidAdminInput("password", "must not contain the account's name")
    if len(set(password)) < 5:
        raise InvalidAdminInput("password", "uses too few different characters")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """Whether ``password`` matches; ``None`` (no such account) costs the same and fails."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored_hash or _dummy_hash(), password) and stored_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    """Whether the hash was made with weaker parameters than today's."""
    return _hasher.check_needs_rehash(stored_hash)
