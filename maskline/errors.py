"""One exception tree for maskline (issue 21).

Every error maskline raises on purpose is a :class:`MasklineError`, and
says what kind of failure it is by one of the kinds below. A package keeps
its own root (``VaultError``, ``NumbersError``, ...) and its own names; the
root subclasses :class:`MasklineError`, and a leaf adds its kind::

    MasklineError
    ├── InputError     the caller sent something unusable; nothing changed
    │                  (SettingsError, InvalidRequest, InvalidPhoneNumber, ...)
    ├── NotFound       no such thing, or not the caller's (BindingNotFound, ...)
    ├── Conflict       the state refuses it (PoolExhausted, BindingNotLive, ...)
    ├── Forbidden      who asks may not (NotPermitted, SignatureInvalid, ...)
    ├── Unavailable    a backend (Redis, the database, the vault, Twilio's
    │                  API) cannot serve it; fail closed, retry later
    └── IntegrityError stored data failed its check (a tampered ciphertext,
                       a broken audit chain): never a wrong answer instead

A face answers each kind in its own shape (the API's JSON error, Twilio's
error body, Alibaba's codes, apologetic TwiML), so one ``except`` on a kind
works across packages: ``except Unavailable`` catches routing, webhook,
click-to-call and each face's "unavailable" alike.

Kinds do not subclass the built-in ``ValueError`` and friends: the errors
that always were ``ValueError`` (SettingsError, RefusedUrl, ...) keep it as a
second base, so an ``except ValueError`` catches what it always caught.

Leaf module: it imports nothing of maskline, so every layer may use it.
"""

from __future__ import annotations

__all__ = [
    "Conflict",
    "Forbidden",
    "InputError",
    "IntegrityError",
    "MasklineError",
    "NotFound",
    "Unavailable",
]


class MasklineError(Exception):
    """Root of every error maskline raises on purpose."""


class InputError(MasklineError):
    """The caller sent something unusable; the message names the field, what
    was seen (never a party number) and what to send. Nothing changed."""


class NotFound(MasklineError):
    """No such thing, or it belongs to someone else (who then gets 404)."""


class Conflict(MasklineError):
    """The current state refuses the operation (taken, ended, exhausted)."""


class Forbidden(MasklineError):
    """Whoever asks may not do this (a scope, a role, a signature, a lock-out)."""


class Unavailable(MasklineError):
    """A backend cannot serve the request: fail closed, retry later."""


class IntegrityError(MasklineError):
    """Stored data failed its integrity check; never answer with a guess."""
