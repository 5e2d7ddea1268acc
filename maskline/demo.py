"""``maskline demo``: one order's story, start to finish, on a throwaway instance.

It needs no services and touches nothing of the user's: a fresh temporary
folder holds a SQLite database and a development key ring made for the run,
Redis is the in-process fakeredis, and the Twilio auth token is made up.
MASKLINE_* settings are ignored on purpose (the settings are built with an
empty environment), so a configured database, Redis or key ring is never
written to, whatever it points at.

Calls and texts are real webhooks: the carrier simulator signs them as Twilio
does, posts them to the app's own endpoints through Flask's test client and
reads the TwiML that comes back. The pool, the bindings and the unbinds go
through the same services the CLI uses.

Party numbers are printed masked (as the simulator masks them); relay numbers
are public and printed in clear. The story checks itself: an outcome other
than the one it tells, or the buyer's number found in a dump, makes
:func:`run_demo` return 1.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import sqlite3
import tempfile
import textwrap
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import click

from config import Settings, load_settings
from maskline import create_app, migrate, services_of
from maskline.logging_setup import configure_logging
from maskline.numbers.interfaces import BindingView, BindRequest
from maskline.sim.carrier import CallResult, CarrierSimulator, FlaskTransport, mask_number
from maskline.vault import keyring as kr
from maskline.vault.models import VaultEntry
from maskline.wiring import build_services

# Fictional numbers: 555-01xx is reserved for fiction in North America, and
# phonenumbers accepts these as valid, so the vault and the pool take them.
RELAY_NUMBERS = ("+14155550100", "+14155550101", "+14155550102")
CAST = {
    "buyer": "+14155550132",
    "merchant": "+12125550143",
    "courier": "+13125550154",
    "stranger": "+16175550165",
}
BUYER = CAST["buyer"]
ORDER_ID = "order-1001"
# The in-process app answers at this URL; the simulator signs for it.
PUBLIC_URL = "http://localhost"
SMS_BODY = "Your parcel ships today. Questions? Call 212-555-0199 or see https://shop.example/t/1001"
WIDTH = 96  # output lines are wrapped to this many columns


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """The numbers, words and settings of one region's telling."""

    region: str
    relay_numbers: tuple[str, ...]
    cast: dict[str, str]
    order_id: str
    sms_body: str
    voice_language: str

    @property
    def buyer(self) -> str:
        return self.cast["buyer"]

    def forms(self) -> dict[str, str]:
        """The buyer's number as people and programs write it."""
        return written_forms(self.buyer) if self.region == "US" else mainland_forms(self.buyer)


US = Scenario(
    region="US",
    relay_numbers=RELAY_NUMBERS,
    cast=CAST,
    order_id=ORDER_ID,
    sms_body=SMS_BODY,
    voice_language="en-US",
)
# Mainland numbers that phonenumbers accepts as valid (no range is reserved
# for fiction there). The relay numbers are landlines in Beijing (010) and
# Shanghai (021), as a carrier's privacy-number platform hands them out.
CN = Scenario(
    region="CN",
    relay_numbers=("+861065520100", "+861065520101", "+862165520102"),
    cast={
        "buyer": "+8613912340003",
        "merchant": "+862165520143",
        "courier": "+8613712340154",
        "stranger": "+8615912340165",
    },
    order_id="order-1001",
    sms_body="您的包裹今天发货。有问题请致电 021-6552 0199 或访问 https://shop.example/t/1001",
    voice_language="zh-CN",
)
SCENARIOS = {"US": US, "CN": CN}


# -- the buyer's number, in every form it could be written ------------------------


def written_forms(e164: str) -> dict[str, str]:
    """A +1 number as people and programs write it: description -> text."""
    digits = e164.lstrip("+")
    national = digits[1:]
    area, exchange, line = national[:3], national[3:6], national[6:]
    return {
        "E.164": e164,
        "digits with country code": digits,
        "national digits": national,
        "(NNN) NNN-NNNN": f"({area}) {exchange}-{line}",
        "NNN-NNN-NNNN": f"{area}-{exchange}-{line}",
        "NNN NNN NNNN": f"{area} {exchange} {line}",
        "NNN.NNN.NNNN": f"{area}.{exchange}.{line}",
        "local NNN-NNNN": f"{exchange}-{line}",
        "local digits": exchange + line,
    }


def mainland_forms(e164: str) -> dict[str, str]:
    """A +86 mobile or landline as people and programs write it: description -> text."""
    national = e164.removeprefix("+86")
    if len(national) == 11 and national.startswith("1"):  # mobile: 3-4-4
        head, mid, tail = national[:3], national[3:7], national[7:]
        spaced = {"NNN NNNN NNNN": f"{head} {mid} {tail}", "NNN-NNNN-NNNN": f"{head}-{mid}-{tail}"}
        local = {"last eight digits": national[3:]}
    else:  # landline: trunk 0, area code, number
        area = national[:2] if national[0] in "12" else national[:3]
        number = national[len(area) :]
        spaced = {"0AA-NNNNNNNN": f"0{area}-{number}", "0AA NNNN NNNN": f"0{area} {number[:4]} {number[4:]}"}
        local = {"local digits": number}
    return {
        "E.164": e164,
        "digits with country code": e164.lstrip("+"),
        "national digits": national,
        **spaced,
        **local,
    }


def _encodings(text: str) -> set[bytes]:
    """The bytes ``text`` would leave: UTF-8, UTF-16 and hex (as dumps print blobs)."""
    raw = text.encode()
    return {raw, text.encode("utf-16-le"), raw.hex().encode(), raw.hex().upper().encode()}


def find_number(blob: bytes, forms: Iterable[str]) -> list[str]:
    """The forms of a number found in ``blob`` (searched as bytes and as latin-1 text)."""
    texts = (blob, blob.decode("latin-1").encode("utf-8"))
    return [form for form in forms if any(enc in text for enc in _encodings(form) for text in texts)]


# -- dumps --------------------------------------------------------------------------


def dump_redis(client: Any) -> tuple[Counter[str], bytes]:
    """Every key with every value read by its type, and DUMPed: (key shapes, bytes)."""
    parts: list[bytes] = []
    shapes: Counter[str] = Counter()
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        kind = kind.decode() if isinstance(kind, bytes) else str(kind)
        shapes[f"{key_shape(key.decode(errors='replace'))} ({kind})"] += 1
        parts.append(key)
        if kind == "string":
            parts.append(client.get(key) or b"")
        elif kind == "hash":
            for name, value in client.hgetall(key).items():
                parts += [name, value]
        elif kind == "list":
            parts += client.lrange(key, 0, -1)
        elif kind == "set":
            parts += list(client.smembers(key))
        elif kind == "zset":
            parts += [m + b" " + str(s).encode() for m, s in client.zrange(key, 0, -1, withscores=True)]
        elif kind == "stream":
            parts += [repr(entry).encode() for entry in client.xrange(key)]
        with contextlib.suppress(Exception):  # DUMP is a bonus where the server has it
            parts.append(client.dump(key) or b"")
    return shapes, b"\n".join(parts)


# What varies in key names, so that keys of one kind read as one shape.
_KEY_PARTS = (
    (re.compile(r"\{\+\d+\}"), "{X}"),  # a relay number (public)
    (re.compile(r"\b(CA|SM|MM)[0-9a-f]{32}\b"), "<sid>"),
    (re.compile(r"\bbd_[a-z2-7]+\b"), "<binding>"),
    (re.compile(r"[0-9a-f]{16,}"), "<hash>"),
    (re.compile(r"\d{3,}"), "<n>"),
)


def key_shape(key: str) -> str:
    for pattern, replacement in _KEY_PARTS:
        key = pattern.sub(replacement, key)
    return key


def dump_sqlite(path: Path) -> tuple[int, bytes]:
    """``iterdump()`` of the database, read-only: (tables, SQL text as bytes)."""
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        tables = connection.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        text = "\n".join(connection.iterdump())
    finally:
        connection.close()
    return int(tables), text.encode()


# -- telling ------------------------------------------------------------------------


@dataclass
class Teller:
    """Prints the story; counts outcomes that are not the ones it tells."""

    echo: Callable[[str], None]
    failures: list[str] = field(default_factory=list)

    def title(self, text: str) -> None:
        self.line(text, 0, hang=0, bold=True)

    def section(self, number: int, title: str, explanation: str) -> None:
        self.echo("")
        self.echo(click.style(f"{number}. {title}", bold=True, fg="cyan"))
        self.line(explanation, hang=0, dim=True)

    def paragraph(self, text: str) -> None:
        self.line(text, 0, hang=0)

    def line(self, text: str, indent: int = 3, *, hang: int = 3, **style: Any) -> None:
        """``text`` wrapped under ``indent``; continuation lines ``hang`` further in."""
        lines = textwrap.wrap(
            text,
            WIDTH,
            initial_indent=" " * indent,
            subsequent_indent=" " * (indent + hang),
            break_on_hyphens=False,
            break_long_words=False,  # paths and tokens stay whole
        ) or [""]
        for line in lines:
            self.echo(click.style(line, **style) if style else line)

    def outcome(self, text: str, *, as_told: bool) -> None:
        if as_told:
            self.line(f"-> {text}", 5, fg="green")
        else:
            self.failures.append(text)
            self.line(f"-> {text}  [NOT AS EXPECTED]", 5, fg="red", bold=True)


def party(role: str, scenario: Scenario = US) -> str:
    return f"{role} {mask_number(scenario.cast[role])}"


class RecordingTransport:
    """The in-process transport, keeping every TwiML answer (step 6 looks at them)."""

    def __init__(self, app: Any) -> None:
        self.inner = FlaskTransport(app)
        self.answers: list[str] = []

    def post(self, path: str, form: dict[str, str], headers: dict[str, str]) -> tuple[int, str]:
        status, body = self.inner.post(path, form, headers)
        self.answers.append(body)
        return status, body


# One sample of the rejections counter, as /metrics shows it.
_REJECTIONS = re.compile(r'^maskline_webhook_rejections_total\{reason="([^"]+)"\} (\S+)$', re.MULTILINE)


def rejection_counts(app: Any) -> Counter[str]:
    """Calls and texts that reached no one, by reason, read from the app's /metrics."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    return Counter({reason: int(float(value)) for reason, value in _REJECTIONS.findall(text)})


class Story:
    """The six steps, over one app and one simulator."""

    def __init__(
        self, *, app: Any, transport: RecordingTransport, teller: Teller, scenario: Scenario = US
    ) -> None:
        self.app = app
        self.scenario = scenario
        self.cast = scenario.cast
        self.services = services_of(app)
        self.transport = transport
        self.teller = teller
        self.sim = CarrierSimulator(
            transport=transport,
            auth_token=self.services.settings.twilio_auth_token or "",
            public_url=PUBLIC_URL,
        )
        self.who = {number: role for role, number in self.cast.items()}
        self.axb: BindingView | None = None
        self.axe: BindingView | None = None

    def party(self, role: str) -> str:
        return party(role, self.scenario)

    @property
    def buyer(self) -> str:
        return self.scenario.buyer

    # -- calls and texts ----------------------------------------------------------

    def call(
        self, caller: str, relay: str, *, digits: list[str] | None = None, duration: int = 0
    ) -> tuple[CallResult, list[str]]:
        """Ring ``relay`` from ``caller`` and print what they hear.

        Returns the result and the rejection reasons the call added to the metrics.
        """
        keyed = f", keys {' then '.join(digits)}" if digits else ""
        self.teller.line(f"{self.party(caller)} dials {relay}{keyed}")
        before, first = rejection_counts(self.app), len(self.transport.answers)
        result = self.sim.call(from_number=self.cast[caller], to_number=relay, digits=digits)
        reasons = sorted((rejection_counts(self.app) - before).elements())
        for answer in self.transport.answers[first:]:
            for said in heard(answer):
                self.teller.line(f'hears: "{said}"', 5)
        if result.outcome == "connected" and duration:
            self.sim.call_status(
                call_sid=result.call_sid, from_number=self.cast[caller], to_number=relay, duration=duration
            )
        return result, reasons

    def expect_connected(self, caller: str, relay: str, target: str, **kw: Any) -> None:
        result, _ = self.call(caller, relay, **kw)
        reached = self.who.get(result.dialed or "", "someone not in the story")
        as_told = (
            result.outcome == "connected" and result.dialed == self.cast[target] and result.caller_id == relay
        )
        if result.outcome == "connected":
            self.teller.outcome(
                f"connected to the {reached} ({mask_number(result.dialed)}); "
                f"the {reached}'s phone shows {result.caller_id}",
                as_told=as_told,
            )
        else:
            self.teller.outcome(f"{result.outcome}, not connected", as_told=False)

    def expect_refused(self, caller: str, relay: str, **kw: Any) -> None:
        result, reasons = self.call(caller, relay, **kw)
        why = f" (reason: {', '.join(reasons)})" if reasons else ""
        if result.outcome == "rejected":
            self.teller.outcome(f"refused, no one was dialed{why}", as_told=True)
        else:
            dialed = mask_number(result.dialed) or "no one yet"
            self.teller.outcome(f"{result.outcome} ({dialed}), not refused", as_told=False)

    # -- the six steps --------------------------------------------------------------

    def pool_and_binding(self) -> None:
        self.teller.section(
            1,
            "The pool and the binding",
            "maskline owns a pool of relay numbers. When an order is placed, its parties are "
            "bound to one: merchant and buyer share a number (axb); the courier gets a number "
            "plus an extension for the shipping slip (axe), and only the courier may use it.",
        )
        numbers = self.services.numbers
        with self.services.db.session() as session:
            added = numbers.pool.add(session, list(self.scenario.relay_numbers), voice=True, sms=True)
        self.teller.line(f"pool add: {', '.join(r.e164 for r in added)} (voice, sms; public numbers)")
        self.axb = numbers.bindings.bind(
            BindRequest(
                order_id=self.scenario.order_id,
                mode="axb",
                parties={"buyer": self.buyer, "merchant": self.cast["merchant"]},
            )
        )
        self.axe = numbers.bindings.bind(
            BindRequest(
                order_id=self.scenario.order_id,
                mode="axe",
                parties={"buyer": self.buyer, "courier": self.cast["courier"]},
            )
        )
        self.teller.line(
            f"bind {self.scenario.order_id}, merchant <-> buyer: {self.axb.id} on {self.axb.relay_number}"
        )
        self.teller.line(
            f"bind {self.scenario.order_id}, courier -> buyer:   {self.axe.id} on {self.axe.relay_number} "
            f"ext. {self.axe.extension}, allowed caller: the courier"
        )
        with self.services.db.session() as session:
            token = self.services.vault.lookup(session, self.buyer)
        self.teller.line(f"the buyer's number is sealed in the vault as {token}")
        self.teller.line(f"the merchant's screen shows the buyer as {self.axb.dial_for('merchant')}")
        self.teller.line(
            f'the shipping slip reads: "call {self.axe.relay_number}, ext. {self.axe.extension}"'
        )

    def merchant_calls(self) -> None:
        assert self.axb is not None
        x = self.axb.relay_number
        self.teller.section(
            2,
            "The merchant calls the buyer",
            "The merchant dials the relay number; maskline sees who is calling and connects the "
            "other party, showing the relay number as caller ID. It works the other way round "
            "too, and for texts, with phone numbers and links taken out of the text.",
        )
        self.expect_connected("merchant", x, "buyer", duration=95)
        self.expect_connected("buyer", x, "merchant", duration=30)
        self.teller.line(f'{self.party("merchant")} texts {x}: "{self.scenario.sms_body}"')
        sms = self.sim.sms(from_number=self.cast["merchant"], to_number=x, body=self.scenario.sms_body)
        message = sms.messages[0] if sms.messages else {}
        as_told = sms.outcome == "forwarded" and message.get("to") == self.buyer and message.get("from") == x
        self.teller.outcome(
            f"delivered to the {self.who.get(message.get('to', ''), 'nobody')} "
            f'({mask_number(message.get("to"))}) from {message.get("from")}: "{message.get("body")}"',
            as_told=as_told,
        )

    def courier_calls(self) -> None:
        assert self.axe is not None and self.axe.extension is not None
        self.teller.section(
            3,
            "The courier calls the number on the slip",
            "The slip carries the relay number and an extension, never the buyer's number. "
            "The courier is on the binding's allow-list, keys the extension and is connected.",
        )
        self.expect_connected(
            "courier", self.axe.relay_number, "buyer", digits=[self.axe.extension], duration=40
        )

    def stranger_calls(self) -> None:
        assert self.axe is not None and self.axb is not None and self.axe.extension is not None
        ext = self.axe.extension
        self.teller.section(
            4,
            "A stranger with a photo of the slip",
            "Someone photographs the slip and calls. The right extension from a phone that is not "
            "on the allow-list sounds exactly like a wrong one, and leads nowhere; repeated "
            "guessing locks the caller out. Calling the merchant's relay number fails too.",
        )
        self.expect_refused("stranger", self.axe.relay_number, digits=[ext, ext])
        self.expect_refused("stranger", self.axb.relay_number)

    def order_ends(self) -> None:
        assert self.axe is not None and self.axb is not None and self.axe.extension is not None
        self.teller.section(
            5,
            "The order is delivered and ends",
            "The order system unbinds. The numbers go dead for these parties at once, and cool "
            "down: they are not given to the same parties again for a while, nor is the extension "
            "reissued, so an old contact calling back reaches no one new.",
        )
        bindings = self.services.numbers.bindings
        for view in bindings.find(order_id=self.scenario.order_id):
            ended = bindings.unbind(view.id)
            self.teller.line(f"unbind {ended.id} ({ended.mode} on {ended.relay_number}): {ended.status}")
        self.expect_refused("merchant", self.axb.relay_number)
        self.expect_refused("courier", self.axe.relay_number, digits=[self.axe.extension])

    def search_dumps(self, folder: Path, log_file: Path) -> None:
        self.teller.section(
            6,
            "Dump everything and search for the buyer's number",
            "What an insider or a thief could copy: the whole database, every Redis key and value, "
            "and the log file. Each is searched for the buyer's number in every written form "
            "(as text, UTF-16 and hex).",
        )
        assert self.axb is not None
        relay, forms = self.axb.relay_number, self.scenario.forms()
        self.teller.line(
            "forms searched: " + ", ".join(forms) + f" (the number is {mask_number(self.buyer)})"
        )
        with self.services.db.session() as session:
            token = self.services.vault.lookup(session, self.buyer)
            entry = session.get(VaultEntry, token) if token else None
            sealed = (entry.ciphertext or b"", entry.kek_version) if entry else (b"", None)
        shapes, redis_blob = dump_redis(self.services.redis)
        database = folder / "maskline.sqlite3"
        tables, sql = dump_sqlite(database)
        files = {f.name: f.read_bytes() for f in sorted(folder.glob("maskline.sqlite3*"))}
        self.teller.line(f"looking in {folder}:")
        # The token must be in the SQL dump: proof that the search reads the data.
        self.report(
            f"SQL dump of {database.name} (iterdump, {tables} tables)",
            sql,
            forms,
            holds=(f"the buyer's vault token {token}", (token or "?").encode()),
        )
        for name, blob in files.items():
            self.report(f"raw file {name}", blob, forms)
        self.report(
            f"Redis (in-process), {shapes.total()} keys, every value read by type and DUMPed",
            redis_blob,
            forms,
            holds=("the relay numbers", relay.encode()),
            detail="keys, X being a relay number: "
            + ", ".join(f"{shape} x{n}" for shape, n in sorted(shapes.items())),
        )
        self.report(f"log file {log_file.name} (DEBUG)", log_file.read_bytes(), forms)

        self.teller.line("where the buyer's number does live:")
        as_told = bool(sealed[0]) and not find_number(sealed[0], forms.values())
        self.teller.outcome(
            f"sealed in the vault: {token}, AES-256-GCM ciphertext {sealed[0][:12].hex()}... "
            f"({len(sealed[0])} bytes), data key wrapped by key-encryption key v{sealed[1]}; "
            "the key ring is a file outside the database",
            as_told=as_told,
        )
        holding = [a for a in self.transport.answers if find_number(a.encode(), forms.values())]
        only_in_number = all(not find_number(_outside_number(a).encode(), forms.values()) for a in holding)
        self.teller.outcome(
            f"in clear only in the TwiML sent to the carrier: {len(holding)} of "
            f"{len(self.transport.answers)} answers, each time inside <Dial><Number> or "
            "<Message to>, which tell the carrier whom to ring or text",
            as_told=bool(holding) and only_in_number,
        )

    def report(
        self,
        where: str,
        blob: bytes,
        forms: dict[str, str],
        *,
        holds: tuple[str, bytes] | None = None,
        detail: str | None = None,
    ) -> None:
        """Search one dump and say what was found; ``holds`` is what it must contain."""
        found = find_number(blob, forms.values())
        self.teller.line(f"{where}: {len(blob):,} bytes", 5)
        if detail:
            self.teller.line(detail, 7, dim=True)
        if found:
            names = [name for name, text in forms.items() if text in found]
            self.teller.outcome(f"FOUND the buyer's number ({', '.join(names)})", as_told=False)
        elif holds is not None and holds[1] not in blob:
            self.teller.outcome(f"not found, but {holds[0]} is missing too: the dump is wrong", as_told=False)
        else:
            extra = f" (it does hold {holds[0]})" if holds else ""
            self.teller.outcome(f"buyer's number not found{extra}", as_told=True)


def heard(twiml: str) -> list[str]:
    """What a caller hears from one voice answer: a <Gather>'s prompt (its caller
    keys digits; the <Say> after it is only for a caller who keys nothing), or
    the answer's <Say> lines."""
    with contextlib.suppress(ElementTree.ParseError):
        root = ElementTree.fromstring(twiml)  # noqa: S314 (the app's own answer, in process)
        gather = root.find("Gather")
        says = gather.iter("Say") if gather is not None else root.findall("Say")
        return [(say.text or "").strip() for say in says]
    return []


def _outside_number(twiml: str) -> str:
    """A TwiML answer without the texts of <Number> and the ``to`` of <Message>."""
    try:
        root = ElementTree.fromstring(twiml)  # noqa: S314 (the app's own answer, in process)
    except ElementTree.ParseError:
        return twiml  # not TwiML: nothing in it is where the carrier needs it
    for element in root.iter():
        if element.tag == "Number":
            element.text = ""
        if element.tag == "Message":
            element.attrib.pop("to", None)
    return ElementTree.tostring(root, encoding="unicode")


# -- the instance -----------------------------------------------------------------------


def demo_settings(folder: Path, scenario: Scenario = US) -> Settings:
    """Embedded defaults in ``folder``; the environment is not read (MASKLINE_* ignored)."""
    return load_settings(
        {
            "env": "development",
            "instance_path": folder,
            "database_url": f"sqlite:///{folder / 'maskline.sqlite3'}",
            "redis_url": None,  # no embedded server runs in a fresh folder: in-process fakeredis
            "keys_file": folder / "keys.json",
            "default_region": scenario.region,
            "voice_language": scenario.voice_language,
            "twilio_auth_token": "demo-" + secrets.token_hex(16),
            # Quiet while the app starts (it says it is using an in-process
            # Redis, which this demo has already said); see run_demo.
            "log_level": "ERROR",
            "log_file": folder / "maskline.log",
        },
        environ={},
    )


def prepare(settings: Settings) -> None:
    """What `maskline init` does: a development key ring and the schema."""
    assert settings.keys_file is not None
    kr.write_keyring_file(settings.keys_file, kr.new_keyring(development=True))
    services = build_services(settings, check_schema=False)
    try:
        migrate.upgrade(services.db.engine)
    finally:
        services.close()


def run_demo(*, keep: bool = False, echo: Callable[[str], None] = click.echo, region: str = "US") -> int:
    """Tell the story (with ``region``'s numbers and language); 0 if everything happened as told, else 1."""
    scenario = SCENARIOS[region]
    teller = Teller(echo)
    folder = Path(tempfile.mkdtemp(prefix="maskline-demo-"))
    try:
        tell(folder, teller, scenario)
    finally:
        # Releases the log file in the folder; stderr keeps errors only.
        configure_logging(level="ERROR")
        if not keep:
            shutil.rmtree(folder, ignore_errors=True)
    teller.echo("")
    if teller.failures:
        teller.title(f"{len(teller.failures)} step(s) did not go as told (marked above).")
    else:
        teller.title(
            "Done: the buyer was reachable by the right people while the order lived, by no one "
            "after, and their number is nowhere but the vault."
        )
    if scenario.region == "CN":
        teller.echo("")
        teller.paragraph(
            "For a mainland deployment: MASKLINE_DEFAULT_REGION=CN (national forms such as "
            "13912345678 and 010-6552 0100 are read as mainland numbers, and callers hear Chinese), "
            "MASKLINE_DISPLAY_TIMEZONE=Asia/Shanghai, and the console in Chinese: open /admin after "
            "`maskline serve` and choose 中文, or set MASKLINE_CONSOLE_LANGUAGE=zh-CN. "
            "See docs/china.md."
        )
    if keep:
        teller.echo(f"kept the demo's folder (database, key ring, log): {folder}")
    return 1 if teller.failures else 0


def tell(folder: Path, teller: Teller, scenario: Scenario = US) -> None:
    """The introduction and the six steps, on a new instance in ``folder``."""
    settings = demo_settings(folder, scenario)
    where = " (mainland China: +86 numbers, Chinese prompts)" if scenario.region == "CN" else ""
    teller.title(f"maskline demo: the story of {scenario.order_id}{where}")
    teller.paragraph(
        "A throwaway instance: a SQLite database and a development key ring in a temporary "
        "folder, an in-process Redis (fakeredis), a made-up Twilio auth token. MASKLINE_* "
        "settings are ignored. Every call and text below is a webhook signed as Twilio signs "
        "it, sent to maskline's real endpoints; what callers hear is the TwiML that comes back."
    )
    teller.paragraph(
        "The cast (party numbers are masked here, as maskline masks them everywhere): "
        + ", ".join(party(role, scenario) for role in scenario.cast)
    )
    prepare(settings)
    app = create_app(settings)
    services = services_of(app)
    try:
        assert settings.log_file is not None
        # Now that the app has started, the log file takes everything.
        configure_logging(
            level="DEBUG", log_file=settings.log_file, region=settings.default_region, console_level="ERROR"
        )
        story = Story(app=app, transport=RecordingTransport(app), teller=teller, scenario=scenario)
        story.pool_and_binding()
        story.merchant_calls()
        story.courier_calls()
        story.stranger_calls()
        story.order_ends()
        story.search_dumps(folder, settings.log_file)
    finally:
        services.close()


@click.command()
@click.option(
    "--keep", is_flag=True, help="keep the temporary folder (database, key ring, log) and print its path"
)
@click.option(
    "--region",
    type=click.Choice(sorted(SCENARIOS), case_sensitive=False),
    default="US",
    show_default=True,
    help="whose numbers and language: US, or CN (mainland numbers, Chinese prompts)",
)
def demo(keep: bool, region: str) -> None:
    """One order's story on a throwaway instance: bind, calls, a stranger, the end, the dumps.

    Needs no services and ignores MASKLINE_* settings: nothing configured is touched.
    """
    raise SystemExit(run_demo(keep=keep, region=region.upper()))
