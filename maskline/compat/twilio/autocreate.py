"""The out-of-session callback's auto-create answer (Proxy's "online directory").

When a Service's out-of-session callback answers 2xx with Proxy's JSON
auto-create body::

    {"uniqueName": "...", "ttl": 3600, "mode": "voice-and-message",
     "participantIdentifier": "+1..."}

maskline makes the session Proxy would: the caller (who reached the
Service's number, typically a reserved one published as a directory entry)
is the first participant on that very number, ``participantIdentifier`` the
second. From then on each reaches the other through that number, and sees it
as caller id. The caller's number travels from the webhook to the worker
only as a vault token (``_callerToken`` in the queued form, never sent).

As in Proxy, the call or text that triggered the callback is connected when
the callback is answered while it waits (see outofsession: asked at once,
bounded); only an answer the worker reads later, on a retry, leaves it
refused (the caller calls or texts again). TwiML answers are never run. Any
other answer is ignored.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from maskline.compat.twilio.interfaces import ProxyError
from maskline.compat.twilio.models import ProxyPhoneNumber, ProxyService

log = logging.getLogger(__name__)

CALLER_TOKEN = "_callerToken"  # noqa: S105 (a field name, not a secret): a private field of a queued form: stripped before sending
MAX_ANSWER = 16 * 1024
ACTOR = "twilio:out-of-session"


def auto_create(services: Any, form: dict[str, str], answer: bytes) -> str | None:
    """Make the session an auto-create ``answer`` asks for; its sid, or None
    (not an auto-create answer, or refused: logged, never raised)."""
    token = form.get(CALLER_TOKEN)
    if not token or not answer or len(answer) > MAX_ANSWER:
        return None
    try:
        body = json.loads(answer)
    except ValueError:
        return None  # TwiML or anything else: not an auto-create answer
    if not isinstance(body, dict) or not isinstance(body.get("participantIdentifier"), str):
        return None
    ttl = body.get("ttl")
    if ttl is not None and (not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0):
        log.warning("out-of-session auto-create ignored: ttl is not a whole number of seconds")
        return None
    unique_name, mode = body.get("uniqueName"), body.get("mode")
    if (unique_name is not None and not isinstance(unique_name, str)) or (
        mode is not None and not isinstance(mode, str)
    ):
        log.warning("out-of-session auto-create ignored: uniqueName and mode must be strings")
        return None
    from maskline.compat.twilio.services import SESSION_MODES, ProxyFace

    if mode is not None and mode not in SESSION_MODES:
        log.warning("out-of-session auto-create ignored: mode is not one of Proxy's")
        return None
    service_sid, relay = form.get("interactionServiceSid", ""), form.get("To", "")
    try:
        with services.db.session() as session:
            service = session.get(ProxyService, service_sid)
            number = session.get(ProxyPhoneNumber, (service_sid, relay))
            if service is None or number is None:
                return None  # the Service or its number went away meanwhile
            owner = service.owner
            caller = services.vault.open(session, token)
        state = ProxyFace(services=services).create_session(
            owner,
            service_sid,
            unique_name=unique_name,
            ttl=ttl or None,
            date_expiry=None,
            mode=mode,
            status=None,
            participants=[
                {"Identifier": caller, "ProxyIdentifier": relay},
                {"Identifier": body["participantIdentifier"]},
            ],
            actor=ACTOR,
        )
    except ProxyError as exc:
        # The message names fields, never numbers.
        log.warning("out-of-session auto-create for %s refused: %s", service_sid, exc.message)
        return None
    log.info("out-of-session auto-create: session %s on %s", state.row.sid, relay)
    sid: str = state.row.sid
    return sid
