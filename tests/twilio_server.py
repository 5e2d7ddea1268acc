"""A real HTTP server on 127.0.0.1 playing the few Twilio REST endpoints maskline uses.

maskline's twilio ``Client`` reaches it through ``MASKLINE_TWILIO_API_URL``,
so the SDK's own request building, Basic auth, paging and error handling
run as they do against Twilio. Endpoints (under ``/2010-04-01/Accounts/{AccountSid}``):

* ``POST /Calls.json``: To, From and Url are required; To and From must be
  E.164, else Twilio's 21211 / 21212 error naming the number, as Twilio does.
* ``GET /IncomingPhoneNumbers.json``: ``PageSize`` / ``Page`` / ``PageToken``
  with Twilio's paging fields (``next_page_uri`` and friends).
* ``POST /IncomingPhoneNumbers/{PN...}.json``: changes the fields sent.

Every request is recorded (method, path, query, form, whether its auth was
right). ``fail_next`` makes the next requests answer with Twilio's JSON error body.
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.local_http import serving

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-twilio-auth-token"
PREFIX = "/2010-04-01/Accounts/"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_URL = re.compile(r"^https?://[^\s/]+(/\S*)?$")
NUMBER_FIELDS = {
    "VoiceUrl": "voice_url",
    "VoiceMethod": "voice_method",
    "SmsUrl": "sms_url",
    "SmsMethod": "sms_method",
    "StatusCallback": "status_callback",
    "StatusCallbackMethod": "status_callback_method",
}


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    authorised: bool


def error_body(status: int, code: int, message: str) -> dict[str, Any]:
    """Twilio's error JSON."""
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


@dataclass
class FakeTwilio:
    """The account's state, what it was asked, and the failures to answer with next."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    port: int = 0
    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)  # PN sid -> record
    calls: list[dict[str, Any]] = field(default_factory=list)
    requests: list[Recorded] = field(default_factory=list)
    failures: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    _serial: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _next_sid(self, prefix: str) -> str:
        # "fa" first: never one of the sids the webhook tests make up.
        self._serial += 1
        return f"{prefix}fa{self._serial:030x}"

    def add_number(self, e164: str, **fields: str) -> str:
        """An IncomingPhoneNumber of the account, with console defaults unless given."""
        sid = self._next_sid("PN")
        self.numbers[sid] = {
            "sid": sid,
            "account_sid": self.account_sid,
            "phone_number": e164,
            "friendly_name": e164,
            "voice_url": "https://demo.twilio.com/welcome/voice/",
            "voice_method": "POST",
            "sms_url": "https://demo.twilio.com/welcome/sms/reply",
            "sms_method": "POST",
            "status_callback": "",
            "status_callback_method": "POST",
            "uri": f"{PREFIX}{self.account_sid}/IncomingPhoneNumbers/{sid}.json",
            **fields,
        }
        return sid

    def number(self, e164: str) -> dict[str, Any]:
        return next(record for record in self.numbers.values() if record["phone_number"] == e164)

    def fail_next(self, status: int, code: int, message: str, *, times: int = 1) -> None:
        self.failures += [(status, error_body(status, code, message))] * times

    def posts(self, suffix: str) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST" and r.path.endswith(suffix)]

    # -- the endpoints ---------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], form: dict[str, str]) -> tuple[int, Any]:
        base = f"{PREFIX}{self.account_sid}"
        if path == f"{base}/Calls.json" and method == "POST":
            return self._create_call(form)
        if path == f"{base}/IncomingPhoneNumbers.json" and method == "GET":
            return self._list_numbers(query)
        match = re.fullmatch(rf"{re.escape(base)}/IncomingPhoneNumbers/(PN[0-9a-f]{{32}})\.json", path)
        if match and method == "POST":
            return self._update_number(match.group(1), form)
        return 404, error_body(404, 20404, f"The requested resource {path} was not found")

    def _create_call(self, form: dict[str, str]) -> tuple[int, Any]:
        for name, code in (("To", 21211), ("From", 21212)):
            if not _E164.match(form.get(name, "")):
                return 400, error_body(
                    400, code, f"The '{name}' number {form.get(name, '')} is not a valid phone number."
                )
        if not _URL.match(form.get("Url", "")):
            return 400, error_body(400, 21205, "Url is not a valid URL: " + form.get("Url", ""))
        sid = self._next_sid("CA")
        call = {
            "sid": sid,
            "account_sid": self.account_sid,
            "to": form["To"],
            "from": form["From"],
            "status": "queued",
            "direction": "outbound-api",
            "uri": f"{PREFIX}{self.account_sid}/Calls/{sid}.json",
        }
        self.calls.append({**call, "form": form})
        return 201, call

    def _list_numbers(self, query: dict[str, str]) -> tuple[int, Any]:
        size = int(query.get("PageSize", "50"))
        page = int(query.get("Page", "0"))
        records = sorted(self.numbers.values(), key=lambda r: r["sid"])
        chunk = records[page * size : (page + 1) * size]
        base = f"{PREFIX}{self.account_sid}/IncomingPhoneNumbers.json"
        more = (page + 1) * size < len(records)
        token = chunk[-1]["sid"] if chunk else ""
        return 200, {
            "incoming_phone_numbers": chunk,
            "page": page,
            "page_size": size,
            "start": page * size,
            "end": page * size + max(len(chunk) - 1, 0),
            "uri": f"{base}?PageSize={size}&Page={page}",
            "first_page_uri": f"{base}?PageSize={size}&Page=0",
            "previous_page_uri": (f"{base}?PageSize={size}&Page={page - 1}" if page else None),
            "next_page_uri": (
                f"{base}?PageSize={size}&Page={page + 1}&PageToken=PA{token}" if more else None
            ),
        }

    def _update_number(self, sid: str, form: dict[str, str]) -> tuple[int, Any]:
        record = self.numbers.get(sid)
        if record is None:
            return 404, error_body(
                404, 20404, f"The requested resource /IncomingPhoneNumbers/{sid}.json was not found"
            )
        for name, value in form.items():
            if name in NUMBER_FIELDS:
                record[NUMBER_FIELDS[name]] = value
        return 200, record


def _handler(fake: FakeTwilio) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length", "0") or 0)).decode()
            form = {k: v[-1] for k, v in parse_qs(raw, keep_blank_values=True).items()}
            expected = base64.b64encode(f"{fake.account_sid}:{fake.auth_token}".encode()).decode()
            authorised = self.headers.get("Authorization", "") == f"Basic {expected}"
            with fake.lock:
                fake.requests.append(Recorded(self.command, parts.path, query, form, authorised))
                if not authorised:
                    status, body = 401, error_body(401, 20003, "Authenticate")
                elif fake.failures:
                    status, body = fake.failures.pop(0)
                else:
                    status, body = fake.handle(self.command, parts.path, query, form)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = _serve
        do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler


@contextlib.contextmanager
def twilio_serving() -> Iterator[FakeTwilio]:
    """A fake Twilio serving in a thread until the block ends."""
    fake = FakeTwilio()
    with serving(_handler(fake)) as port:
        fake.port = port
        yield fake
