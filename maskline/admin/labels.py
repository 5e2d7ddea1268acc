"""The console's words for codes the data holds: statuses, modes, roles, kinds.

Stored values stay codes (the API and the audit chain use them); the
console shows these words instead, in its language (maskline.admin.i18n
looks them up). ``N_`` marks each for the catalogue without translating it
here, where no request (and so no language) exists yet.
"""

from __future__ import annotations

from collections.abc import Mapping


def N_(message: str) -> str:
    """Mark ``message`` for the catalogue; it is translated where it is shown."""
    return message


# Values stored as codes (statuses, modes, roles, kinds) and shown as words.
# Anything not listed is shown as stored: a code of a kind the console does
# not know yet is still better seen than hidden.
LABELS: Mapping[str, str] = {
    # what a console search was taken as
    "nothing": N_("nothing"),
    "binding id": N_("binding id"),
    "relay number": N_("relay number"),
    "tracking number": N_("tracking number"),
    "order id": N_("order id"),
    # audit subjects that are words, not ids
    "pool": N_("pool"),
    "audit": N_("audit log"),
    "interactions": N_("interactions"),
    # a party number the vault cannot open
    "(erased)": N_("(erased)"),
    "(unreadable)": N_("(unreadable)"),
    # binding status and mode
    "live": N_("live"),
    "active": N_("active"),
    "unbound": N_("unbound"),
    "expired": N_("expired"),
    "axb": N_("AXB (two parties)"),
    "axe": N_("AXE (extension)"),
    # relay number status
    "locked": N_("locked"),
    "retired": N_("retired"),
    # admin roles
    "viewer": N_("viewer"),
    "operator": N_("operator"),
    "security": N_("security"),
    "admin": N_("admin"),
    # account changes waiting for a second admin
    "create_user": N_("create account"),
    "set_role": N_("change role"),
    "reset_totp": N_("reset second factor"),
    "reset_password": N_("reset password"),
    # party roles
    "buyer": N_("buyer"),
    "merchant": N_("merchant"),
    "courier": N_("courier"),
    "rider": N_("rider"),
    "seller": N_("seller"),
    "customer": N_("customer"),
    "caller": N_("caller"),
    "stranger": N_("stranger"),
    "unknown": N_("unknown"),
    "participant1": N_("participant 1"),
    "participant2": N_("participant 2"),
    # interactions
    "call": N_("call"),
    "sms": N_("text message"),
    "completed": N_("completed"),
    "in-progress": N_("in progress"),
    "ringing": N_("ringing"),
    "queued": N_("queued"),
    "busy": N_("busy"),
    "no-answer": N_("no answer"),
    "failed": N_("failed"),
    "canceled": N_("cancelled"),
    "delivered": N_("delivered"),
    "undelivered": N_("undelivered"),
    "forwarded": N_("forwarded"),
    "refused": N_("refused"),
    "rejected": N_("rejected"),
    "received": N_("received"),
    "sent": N_("sent"),
    # reveal requests
    "pending": N_("pending"),
    "approved": N_("approved"),
    "viewed": N_("viewed"),
    "denied": N_("denied"),
    "cancelled": N_("cancelled"),
    # alert kinds and their details
    "distinct_buyers": N_("many distinct buyers"),
    "binding_burst": N_("burst of bindings"),
    "stranger_calls": N_("calls from strangers"),
    "wrong_extensions": N_("wrong extensions"),
    "failed_logins": N_("failed logins"),
    "off_hours_reveal": N_("reveal outside working hours"),
    "extension_lockdown": N_("extensions locked down"),
    "reveal_requested": N_("reveal request waiting"),
    "until": N_("until"),
    "request_id": N_("request"),
    "local_time": N_("local time"),
    "weekday": N_("weekday"),
    "timezone": N_("time zone"),
    "first_at": N_("first"),
    "last_at": N_("last"),
    "window_seconds": N_("window (seconds)"),
    # reasons the accounts service writes on the audit record
    "unknown account": N_("unknown account"),
    "account disabled": N_("account disabled"),
    "account locked": N_("account locked"),
    "wrong password": N_("wrong password"),
    "wrong password; account locked": N_("wrong password; account locked"),
}
