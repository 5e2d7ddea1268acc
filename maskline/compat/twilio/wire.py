"""Proxy v1's wire format: resource JSON, the list envelope, dates.

``base`` is maskline's own URL of the face (``<public or request URL>/twilio-proxy/v1``):
``url``, ``links`` and the paging URLs point there, never at twilio.com.
A participant's ``identifier`` is its masked form (``+1*******32``).
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from urllib.parse import urlencode

from maskline.compat.twilio.interfaces import derived_sid
from maskline.compat.twilio.models import ProxyPhoneNumber, ProxyService
from maskline.compat.twilio.services import ParticipantState, SessionState
from maskline.numbers.models import RelayNumber
from maskline.webhooks.models import Interaction


def stamp(when: dt.datetime | None) -> str | None:
    """Twilio's date format, ``YYYY-MM-DDTHH:MM:SSZ``."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if when is not None else None


def service_json(row: ProxyService, *, base: str, account_sid: str) -> dict[str, Any]:
    url = f"{base}/Services/{row.sid}"
    return {
        "sid": row.sid,
        "unique_name": row.unique_name,
        "account_sid": account_sid,
        "chat_instance_sid": None,
        "callback_url": row.callback_url,
        "default_ttl": row.default_ttl,
        "number_selection_behavior": row.number_selection_behavior,
        "geo_match_level": row.geo_match_level,
        "intercept_callback_url": row.intercept_callback_url,
        "out_of_session_callback_url": row.out_of_session_callback_url,
        # maskline's own field (the SDK ignores it): see docs/compat-twilio.md.
        "intercept_fail_closed": row.intercept_fail_closed,
        "date_created": stamp(row.created_at),
        "date_updated": stamp(row.updated_at),
        "url": url,
        "links": {
            "sessions": f"{url}/Sessions",
            "phone_numbers": f"{url}/PhoneNumbers",
            "short_codes": f"{url}/ShortCodes",
        },
    }


def phone_number_json(
    row: ProxyPhoneNumber, detail: tuple[RelayNumber | None, int], *, base: str, account_sid: str
) -> dict[str, Any]:
    relay, in_use = detail
    return {
        "sid": row.sid,
        "account_sid": account_sid,
        "service_sid": row.service_sid,
        "date_created": stamp(row.created_at),
        "date_updated": stamp(row.updated_at),
        "phone_number": row.e164,
        "friendly_name": row.e164,
        "iso_country": relay.country if relay is not None else None,
        "capabilities": {
            "voice_inbound": bool(relay and relay.voice),
            "voice_outbound": bool(relay and relay.voice),
            "sms_inbound": bool(relay and relay.sms),
            "sms_outbound": bool(relay and relay.sms),
        },
        "url": f"{base}/Services/{row.service_sid}/PhoneNumbers/{row.sid}",
        "is_reserved": row.is_reserved,
        "in_use": in_use,
    }


def session_json(state: SessionState, *, base: str, account_sid: str) -> dict[str, Any]:
    row = state.row
    url = f"{base}/Services/{row.service_sid}/Sessions/{row.sid}"
    return {
        "sid": row.sid,
        "service_sid": row.service_sid,
        "account_sid": account_sid,
        "date_started": stamp(state.date_started),
        "date_ended": stamp(state.date_ended),
        "date_last_interaction": stamp(state.date_last_interaction),
        "date_expiry": stamp(row.date_expiry),
        "unique_name": row.unique_name,
        "status": state.status,
        "closed_reason": state.closed_reason,
        "ttl": row.ttl,
        "mode": row.mode,
        "date_created": stamp(row.created_at),
        "date_updated": stamp(row.updated_at),
        "url": url,
        "links": {"interactions": f"{url}/Interactions", "participants": f"{url}/Participants"},
    }


def participant_json(
    state: ParticipantState, *, service_sid: str, base: str, account_sid: str
) -> dict[str, Any]:
    row = state.row
    url = f"{base}/Services/{service_sid}/Sessions/{row.session_sid}/Participants/{row.sid}"
    return {
        "sid": row.sid,
        "session_sid": row.session_sid,
        "service_sid": service_sid,
        "account_sid": account_sid,
        "friendly_name": row.friendly_name,
        # Masked: maskline never returns a party number.
        "identifier": row.identifier_masked,
        "proxy_identifier": state.proxy_identifier,
        "proxy_identifier_sid": (
            derived_sid("phone_number", state.proxy_identifier) if state.proxy_identifier else None
        ),
        "date_deleted": None,
        "date_created": stamp(row.created_at),
        "date_updated": stamp(row.updated_at),
        "url": url,
        "links": {"message_interactions": f"{url}/MessageInteractions"},
    }


# An opt-out or opt-in keyword is received and not proxied: Proxy's warning
# 80901 ("Message matched a stop word ... not proxying"). Proxy shows the
# inbound Message as received and has no outbound resource.
NOT_PROXIED = {"opted_out": 80901, "opted_in": 80901}


def interaction_json(
    row: Interaction,
    *,
    service_sid: str,
    session_sid: str,
    participants: dict[str, str],
    base: str,
    account_sid: str,
    participant_sid: str | None = None,
) -> dict[str, Any]:
    sid = derived_sid("interaction", row.sid)
    kind = "Call" if row.type == "call" else "Message"
    data: dict[str, Any] = {"duration": row.duration} if row.type == "call" else {}
    url = f"{base}/Services/{service_sid}/Sessions/{session_sid}/Interactions/{sid}"
    if participant_sid is not None:
        url = (
            f"{base}/Services/{service_sid}/Sessions/{session_sid}/Participants/{participant_sid}"
            f"/MessageInteractions/{sid}"
        )
    body: dict[str, Any] = {
        "sid": sid,
        "session_sid": session_sid,
        "service_sid": service_sid,
        "account_sid": account_sid,
        "data": json.dumps(data),
        "type": "voice" if row.type == "call" else "message",
        # A message sent through the API has no inbound leg.
        "inbound_participant_sid": participants.get(row.from_role),
        "inbound_resource_sid": None if row.from_role == "api" else row.sid,
        "inbound_resource_status": None if row.from_role == "api" else row.status,
        "inbound_resource_type": None if row.from_role == "api" else kind,
        "inbound_resource_url": None,
        "outbound_participant_sid": participants.get(row.to_role),
        "outbound_resource_sid": row.sid if row.from_role == "api" else None,
        "outbound_resource_status": row.status,
        "outbound_resource_type": kind,
        "outbound_resource_url": None,
        "date_created": stamp(row.started_at),
        "date_updated": stamp(row.ended_at or row.started_at),
        "url": url,
    }
    if row.status in NOT_PROXIED:
        data = {"errorCode": NOT_PROXIED[row.status], "keyword": row.status}
        body.update(
            data=json.dumps(data),
            inbound_resource_status="received",
            outbound_participant_sid=None,
            outbound_resource_sid=None,
            outbound_resource_status=None,
            outbound_resource_type=None,
        )
    if participant_sid is not None:
        body["participant_sid"] = participant_sid
    return body


def page(
    key: str, records: list[dict[str, Any]], *, url: str, page: int, page_size: int, more: bool
) -> dict[str, Any]:
    """Twilio's list envelope: the records under ``key`` and ``meta`` with paging URLs."""

    def at(number: int) -> str:
        return f"{url}?{urlencode({'PageSize': page_size, 'Page': number})}"

    return {
        key: records,
        "meta": {
            "page": page,
            "page_size": page_size,
            "first_page_url": at(0),
            "previous_page_url": at(page - 1) if page > 0 else None,
            "url": at(page),
            "next_page_url": at(page + 1) if more else None,
            "key": key,
        },
    }
