"""The relay-number pool: inventory, import, status and load.

Relay numbers are public: they may appear in errors and listings. Every
change is all-or-nothing; an import with bad rows reports all of them by
line number and applies none.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from maskline.clock import Clock, system_clock
from maskline.numbers.interfaces import InvalidRequest, PoolError
from maskline.numbers.models import Binding, RelayNumber
from maskline.numbers.regions import describe
from maskline.vault.interfaces import InvalidPhoneNumber
from maskline.vault.normalize import parse_relay

STATUSES = ("active", "locked", "retired")
CAPABILITIES = ("voice", "sms")


class NumberRegistrar(Protocol):
    def register_number(self, relay_number: str) -> None:
        """Make the routing store know the number (sets its generation marker)."""
        ...

    def pool_changed(self, relay_number: str) -> None:
        """The number's status changed: the routing store's selection follows."""
        ...


class PoolImportError(PoolError):
    """Bad rows in an import, each as (line number, message); nothing was applied."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        lines = "; ".join(f"line {line}: {message}" for line, message in problems)
        super().__init__(f"{len(problems)} bad row(s), nothing imported: {lines}")
        self.problems = problems


@dataclass(frozen=True, kw_only=True)
class PoolEntry:
    e164: str
    country: str
    area: str
    voice: bool
    sms: bool
    status: str
    live_bindings: int

    def to_json(self) -> dict[str, object]:
        return {
            "number": self.e164,
            "country": self.country,
            "area": self.area,
            "capabilities": [c for c in CAPABILITIES if getattr(self, c)],
            "status": self.status,
            "live_bindings": self.live_bindings,
        }


def parse_relay_number(raw: object, *, field: str, region: str | None = None) -> str:
    """E.164 of a relay number, or InvalidRequest naming the field.

    The vault's one parser reads it (:func:`maskline.vault.normalize.parse_relay`);
    national forms are read in ``region``, and need one.
    """
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidRequest(field, "must be a phone number")
    try:
        return parse_relay(raw, field=field, region=region)
    except InvalidPhoneNumber as exc:
        raise InvalidRequest(field, exc.reason) from None


def parse_capabilities(text: str, *, field: str) -> tuple[bool, bool]:
    parts = {p.strip().lower() for p in text.split(",") if p.strip()}
    unknown = parts - set(CAPABILITIES)
    if unknown or not parts:
        raise InvalidRequest(field, "must be voice, sms or voice,sms")
    return "voice" in parts, "sms" in parts


_EXTRA = "\0extra"  # where DictReader puts a row's fields beyond the header
_UNREADABLE = "\0unreadable"


def _records(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, record with trimmed lower-case keys and trimmed values) per row.

    A line the csv module cannot read (an over-long field, a stray carriage
    return) becomes one last record carrying ``_UNREADABLE``: a bad row, not a crash.
    """
    while True:
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # line_num has not counted the line that failed yet.
            yield reader.line_num + 1, {_UNREADABLE: f"unreadable CSV ({exc}); later rows were not read"}
            return
        yield (
            reader.line_num,
            {
                (key if key == _EXTRA else (key or "").strip().lower()): (
                    value if isinstance(value, str) else ""
                ).strip()
                for key, value in record.items()
            },
        )


def live_counts(session: Session, now: dt.datetime) -> dict[str, int]:
    """Live bindings per relay number (numbers with none are absent)."""
    rows = session.execute(
        select(Binding.relay_number, func.count())
        .where(Binding.status == "active", Binding.expires_at > now)
        .group_by(Binding.relay_number)
    ).all()
    return {number: int(count) for number, count in rows}


class LoadCache:
    """Live bindings per relay number, for ranking a bind's candidates.

    Counting them is a scan of every live binding, too much for every bind:
    the counts are read at most once per ``max_age`` and kept up to date in
    between with this process's own binds and unbinds. The ranking only
    spreads load; the Lua claim is what enforces the cap, so a count that
    is a little stale costs at most a claim that answers "full".
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._read_at: dt.datetime | None = None

    def counts(self, session: Session, now: dt.datetime, *, max_age: dt.timedelta) -> dict[str, int]:
        """The counts, read again from SQL first if older than ``max_age``."""
        with self._lock:
            read_at = self._read_at
        # Read again if the clock went back (a test's clock), not only forward.
        if read_at is None or not dt.timedelta(0) <= now - read_at < max_age:
            counts = live_counts(session, now)
            with self._lock:
                self._counts, self._read_at = counts, now
        with self._lock:
            return dict(self._counts)

    def add(self, relay_number: str, delta: int) -> None:
        """A binding was created (+1) or ended (-1) on ``relay_number`` here."""
        with self._lock:
            self._counts[relay_number] = max(0, self._counts.get(relay_number, 0) + delta)

    def at_least(self, relay_number: str, count: int) -> None:
        """The routing store says ``relay_number`` carries at least ``count``."""
        with self._lock:
            self._counts[relay_number] = max(count, self._counts.get(relay_number, 0))


class PoolService:
    """The pool's inventory. ``default_region`` reads numbers written without
    a country code (``MASKLINE_DEFAULT_REGION``) when a call names no region."""

    def __init__(
        self, *, routes: NumberRegistrar, clock: Clock = system_clock, default_region: str | None = None
    ) -> None:
        self.routes = routes
        self._clock = clock
        self.default_region = default_region

    def add(
        self,
        session: Session,
        numbers: list[str],
        *,
        voice: bool = True,
        sms: bool = True,
        status: str = "active",
        region: str | None = None,
    ) -> list[RelayNumber]:
        """Add numbers (all or none); each gets its routing generation marker."""
        rows = [
            (
                parse_relay_number(n, field=f"numbers[{i}]", region=region or self.default_region),
                voice,
                sms,
                status,
            )
            for i, n in enumerate(numbers)
        ]
        return self._insert(session, rows, [f"numbers[{i}]" for i in range(len(rows))])

    def _insert(
        self, session: Session, rows: list[tuple[str, bool, bool, str]], fields: list[str]
    ) -> list[RelayNumber]:
        seen: dict[str, str] = {}
        for (e164, *_rest), field in zip(rows, fields, strict=True):
            if e164 in seen:
                raise InvalidRequest(field, f"{e164} is listed twice (also {seen[e164]})")
            seen[e164] = field
        existing = set(session.scalars(select(RelayNumber.e164).where(RelayNumber.e164.in_(list(seen)))))
        for (e164, *_rest), field in zip(rows, fields, strict=True):
            if e164 in existing:
                raise InvalidRequest(field, f"{e164} is already in the pool")
        now = self._clock()
        added = []
        for e164, voice, sms, status in rows:
            country, area = describe(e164)
            row = RelayNumber(
                e164=e164, country=country, area=area, voice=voice, sms=sms, status=status, created_at=now
            )
            session.add(row)
            added.append(row)
        session.flush()
        for row in added:
            self.routes.register_number(row.e164)
        return added

    def import_csv(self, session: Session, text: str, *, region: str | None = None) -> list[RelayNumber]:
        """CSV with a header: number (required), capabilities, status."""
        # Spreadsheets often save UTF-8 with a byte-order mark; it is not part of the header.
        reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")), restkey=_EXTRA)
        try:
            fieldnames = reader.fieldnames
        except csv.Error as exc:
            raise PoolImportError([(1, f"unreadable CSV header ({exc})")]) from None
        if not fieldnames or "number" not in [f.strip().lower() for f in fieldnames]:
            raise PoolImportError([(1, "the header must name a 'number' column")])
        problems: list[tuple[int, str]] = []
        rows: list[tuple[str, bool, bool, str]] = []
        lines: list[int] = []
        seen: dict[str, int] = {}
        for line, record in _records(reader):
            try:
                if _UNREADABLE in record:
                    raise InvalidRequest("row", record[_UNREADABLE])
                if _EXTRA in record:
                    raise InvalidRequest("row", f"has more fields than the header ({len(fieldnames)})")
                e164 = parse_relay_number(
                    record.get("number", ""), field="number", region=region or self.default_region
                )
                voice, sms = parse_capabilities(
                    record.get("capabilities") or "voice,sms", field="capabilities"
                )
                status = (record.get("status") or "active").lower()
                if status not in ("active", "locked"):
                    raise InvalidRequest("status", "must be active or locked")
                if e164 in seen:
                    raise InvalidRequest("number", f"{e164} is also on line {seen[e164]}")
                seen[e164] = line
            except InvalidRequest as exc:
                problems.append((line, str(exc)))
                continue
            rows.append((e164, voice, sms, status))
            lines.append(line)
        existing = set(session.scalars(select(RelayNumber.e164).where(RelayNumber.e164.in_(list(seen)))))
        problems += [
            (line, f"number: {row[0]} is already in the pool")
            for row, line in zip(rows, lines, strict=True)
            if row[0] in existing
        ]
        if problems:
            raise PoolImportError(sorted(problems))
        if not rows:
            raise PoolImportError([(1, "no rows to import")])
        return self._insert(session, rows, [f"line {line}" for line in lines])

    def live_counts(self, session: Session, now: dt.datetime) -> dict[str, int]:
        return live_counts(session, now)

    def entries(self, session: Session, *, now: dt.datetime) -> list[PoolEntry]:
        counts = self.live_counts(session, now)
        return [
            PoolEntry(
                e164=r.e164,
                country=r.country,
                area=r.area,
                voice=r.voice,
                sms=r.sms,
                status=r.status,
                live_bindings=counts.get(r.e164, 0),
            )
            for r in session.scalars(
                select(RelayNumber).order_by(RelayNumber.country, RelayNumber.area, RelayNumber.e164)
            )
        ]

    def _get(self, session: Session, number: str) -> RelayNumber:
        e164 = parse_relay_number(number, field="NUMBER", region=self.default_region)
        row = session.get(RelayNumber, e164)
        if row is None:
            raise PoolError(f"{e164} is not in the pool")
        return row

    def set_status(self, session: Session, number: str, status: str, *, now: dt.datetime) -> RelayNumber:
        """lock: no new bindings, existing ones keep working; retire: out, once no binding lives."""
        if status not in STATUSES:
            raise InvalidRequest("status", f"must be one of {', '.join(STATUSES)}")
        row = self._get(session, number)
        if row.status == "retired" and status != "retired":
            # Retired numbers may have gone back to the carrier: final.
            raise PoolError(f"{row.e164} is retired; retirement is final")
        if status == "retired":
            live = self.live_counts(session, now).get(row.e164, 0)
            if live:
                raise PoolError(
                    f"{row.e164} still has {live} live binding(s); lock it and let them end first"
                )
        row.status = status
        self.routes.pool_changed(row.e164)
        return row

    def is_relay_number(self, session: Session, e164: str) -> bool:
        return session.get(RelayNumber, e164) is not None

    def numbers(self, session: Session) -> frozenset[str]:
        """Every number of the pool, whatever its status (a relay never calls a relay)."""
        return frozenset(session.execute(select(RelayNumber.e164)).scalars())
