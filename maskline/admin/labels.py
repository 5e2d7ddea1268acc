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
    "pool_low": N_("pool running low"),
    "live_bindings": N_("live bindings"),
    "capacity": N_("capacity"),
    "load_percent": N_("load (%)"),
    "until": N_("until"),
    "request_id": N_("request"),
    "local_time": N_("local time"),
    "weekday": N_("weekday"),
    "timezone": N_("time zone"),
    "first_at": N_("first"),
    "last_at": N_("last"),
    "window_seconds": N_("window (seconds)"),
    # fields of audit records' details
    "order_id": N_("order"),
    "owner": N_("owner"),
    "mode": N_("mode"),
    "relay_number": N_("relay number"),
    "extension": N_("extension"),
    "expires_at": N_("expires"),
    "ended_at": N_("ended"),
    "changes": N_("changes"),
    "role": N_("role"),
    "binding_id": N_("binding"),
    "token": N_("vault token"),
    "requested_by": N_("requested by"),
    "via": N_("via"),
    "step": N_("step"),
    "refusal": N_("refusal"),
    "ttl_seconds": N_("time to live (seconds)"),
    "roles": N_("roles"),
    "allow": N_("who may call"),
    "allowed_callers": N_("allowed callers"),
    "fallback_used": N_("fallback number used"),
    "record": N_("recorded"),
    "delivered_at": N_("delivered"),
    "numbers": N_("numbers"),
    "voice": N_("voice"),
    "sms_allowed": N_("texts"),
    # values of those fields: how a number was revealed, a reveal's steps,
    # and why a step was refused (the error's type)
    "console": N_("console"),
    "request": N_("request"),
    "approve": N_("approve"),
    "deny": N_("deny"),
    "cancel": N_("cancel"),
    "view": N_("view"),
    "RevealRefused": N_("refused"),
    "RevealNotFound": N_("no such request"),
    "InvalidAdminInput": N_("invalid input"),
    "NotPermitted": N_("not permitted"),
    # reasons the accounts service writes on the audit record
    "unknown account": N_("unknown account"),
    "account disabled": N_("account disabled"),
    "account locked": N_("account locked"),
    "wrong password": N_("wrong password"),
    "wrong password; account locked": N_("wrong password; account locked"),
}


# Why a call or message reached no one (the webhook path's reject reasons).
REFUSAL_REASONS: Mapping[str, str] = {
    "no_binding": N_("no binding on this relay number"),
    "stranger": N_("caller is not a party"),
    "expired": N_("binding expired"),
    "extension_required": N_("no extension keyed"),
    "bad_extension": N_("wrong extension"),
    "unavailable": N_("routing unavailable"),
    "no_recent_caller": N_("no recent caller to call back"),
    "not_pool_number": N_("not a number of the pool"),
    "completed": N_("call already completed (a replay)"),
    "ended": N_("binding already ended (a retry)"),
    "intercepted": N_("stopped by an operator"),
    "locked_down": N_("extensions locked down"),
    "locked_out": N_("caller locked out (too many wrong extensions)"),
    "media_refused": N_("picture message refused"),
    "quota": N_("text quota reached"),
    "recipient_opted_out": N_("recipient opted out of texts"),
    "relay_caller": N_("a relay number called a relay number"),
}

# Audit actions, as the console names them. An action not listed is shown
# as stored (a new one is still better seen than hidden).
ACTIONS: Mapping[str, str] = {
    "admin.alert.acknowledge": N_("acknowledged an alert"),
    "admin.binding.view": N_("viewed a binding (masked)"),
    "admin.export": N_("downloaded a CSV export"),
    "admin.login": N_("logged in to the console"),
    "admin.login.fail": N_("console login failed"),
    "admin.logout": N_("logged out of the console"),
    "admin.preferences": N_("changed console preferences"),
    "admin.totp.enroll": N_("enrolled a second factor"),
    "admin.totp.fail": N_("second factor refused"),
    "admin.totp.ok": N_("second factor accepted"),
    "admin.user.create": N_("created a console user"),
    "admin.user.disable": N_("disabled a console user"),
    "admin.user.enable": N_("enabled a console user"),
    "admin.user.totp_reset": N_("reset a user's second factor"),
    "admin.user.unlock": N_("unlocked a console user"),
    "aliyun.accesskey.created": N_("created an Alibaba access key"),
    "aliyun.pool.added": N_("added an Alibaba number pool"),
    "aliyun.pool.removed": N_("removed an Alibaba number pool"),
    "aliyun.subscription.call_restrict": N_("restricted calls of an Alibaba subscription"),
    "apikey.created": N_("created an API key"),
    "apikey.revoked": N_("revoked an API key"),
    "apikey.twilio_credentials": N_("set an API key's Twilio credentials"),
    "binding.created": N_("binding created"),
    "binding.expired": N_("binding expired"),
    "binding.party_replaced": N_("binding party replaced"),
    "binding.reopened": N_("binding reopened"),
    "binding.unbound": N_("binding unbound"),
    "binding.updated": N_("binding changed"),
    "call.requested": N_("outbound call requested"),
    "interaction.deleted": N_("interaction deleted"),
    "keys.added": N_("vault key added"),
    "keys.promoted": N_("vault key promoted"),
    "keys.retired": N_("vault key retired"),
    "keys.rotated": N_("vault key rotated"),
    "message.requested": N_("outbound text requested"),
    "owner.events_cleared": N_("owner's event delivery removed"),
    "owner.events_set": N_("owner's event delivery set"),
    "pool.added": N_("relay numbers added"),
    "pool.exhausted": N_("pool exhausted: a bind was refused"),
    "pool.extensions_unlocked": N_("relay number's extensions unlocked"),
    "pool.imported": N_("relay numbers imported"),
    "pool.locked": N_("relay number locked"),
    "pool.retired": N_("relay number retired"),
    "pool.twilio_synced": N_("pool synced with Twilio"),
    "pool.unlocked": N_("relay number unlocked"),
    "reveal.approve": N_("reveal approved"),
    "reveal.cancel": N_("reveal cancelled"),
    "reveal.deny": N_("reveal denied"),
    "reveal.expire": N_("reveal lapsed"),
    "reveal.refuse": N_("reveal refused"),
    "reveal.request": N_("reveal requested"),
    "reveal.view": N_("revealed number viewed"),
    "vault.erase": N_("party number erased"),
    "vault.put": N_("party number stored in the vault"),
    "vault.reveal": N_("party number revealed (command line)"),
    "waybill.linked": N_("tracking number linked"),
}
