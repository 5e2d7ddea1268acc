"""What the soak expects of every call and text: a model of the bindings it made.

The soak keeps, for every binding it created, what the API answered (relay
number, extension, parties, expiry) and every change it asked for since
(unbind, extend, delivered), each as a window [sent, answered]. A call is then
judged once it is over: it must connect exactly when the model says a
binding of the caller on that relay number was live for the whole call, to
exactly that binding's other party, with the relay number as caller ID;
otherwise it must be refused.

Near a boundary the model cannot know what the server saw, so such a call is
*not judged* (counted as ambiguous) rather than counted as a false misroute:

* the binding's expiry lies within ``margin`` of the call (Redis keeps the
  expiry in whole seconds, and the server decides at some instant inside
  the request);
* the binding's creation, an unbind, an extend or a delivered change was in
  flight at some moment of the call (the server acts somewhere between a
  request's sending and its answer);
* a creation for the caller was still unanswered when the call ended (a
  reused merchant or courier can be bound on a relay number again once the
  cool-down of an earlier binding there has passed).

Phone numbers here are fictional: area code + 555-01XX, the range the North
American plan keeps for fiction (valid for ``phonenumbers``).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

import phonenumbers

Verdict = Literal["ok", "misroute", "ambiguous"]
INF = float("inf")
WARM_UP_BUYERS = 9  # non-geographic buyers among the first 18: each server process meets one


_ORDINARY = {
    phonenumbers.PhoneNumberType.FIXED_LINE,
    phonenumbers.PhoneNumberType.MOBILE,
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE,
}


def _area_codes() -> list[int]:
    """US area codes where AAA-555-01XX is a valid, ordinary number (about 450):
    not toll-free, premium-rate (900) or shared-cost, which maskline refuses."""
    codes = []
    for area in range(201, 990):
        number = phonenumbers.parse(f"+1{area}5550142")
        # US only: +1 also reaches Canada and the Caribbean, and the default
        # geo policy never gives a party a relay number of another country.
        if (
            phonenumbers.is_valid_number(number)
            and phonenumbers.number_type(number) in _ORDINARY
            and phonenumbers.region_code_for_number(number) == "US"
        ):
            codes.append(area)
    return codes


class Numbers:
    """Fictional party numbers in disjoint ranges, so a stranger is never a party.

    Lines 0100-0179 are buyers (handed out in turn, wrapping after ~36,000),
    0180-0189 strangers, 0190-0199 reused merchants and couriers (and a few
    warm-up buyers in an area code the regulars never reach).
    """

    def __init__(self) -> None:
        self.areas = _area_codes()
        self.non_geographic = [
            area
            for area in self.areas
            if phonenumbers.length_of_geographical_area_code(phonenumbers.parse(f"+1{area}5550142")) == 0
        ]
        self._buyers = 0
        self._strangers = 0
        self._lock = threading.Lock()
        # Every number handed out, by its national digits: what the soak searches
        # responses and logs for (lookups are safe while another thread adds).
        self.used: dict[str, str] = {}

    def _number(self, first_line: int, lines: int, n: int) -> str:
        area = self.areas[n % len(self.areas)]
        line = first_line + (n // len(self.areas)) % lines
        number = f"+1{area}555{line:04d}"
        self.used[number[2:]] = number
        return number

    def buyer(self) -> str:
        with self._lock:
            self._buyers += 1
            n = self._buyers
            if n <= 2 * WARM_UP_BUYERS and n % 2 == 0 and self.non_geographic:
                # Every other one of the first buyers has a number with no
                # geographic area code: binding one makes the server load
                # phonenumbers' geocoder (about 100 MiB, once per process).
                # That is warm-up, and belongs before memory is compared.
                number = f"+1{self.non_geographic[0]}555{190 + n // 2:04d}"
                self.used[number[2:]] = number
                return number
            return self._number(100, 80, n)

    def stranger(self) -> str:
        with self._lock:
            self._strangers += 1
            return self._number(180, 10, self._strangers)

    def regulars(self, count: int, offset: int) -> list[str]:
        """``count`` fixed numbers (merchants, or couriers with another offset)."""
        with self._lock:
            return [self._number(190, 10, offset + i) for i in range(count)]


@dataclass
class Window:
    """A change the soak asked for: sent, and answered (None while in flight)."""

    sent: float
    answered: float | None = None


@dataclass
class Binding:
    """One binding as the API described it, and the changes asked of it since."""

    id: str
    mode: str  # axb or axe
    relay: str
    extension: str | None
    parties: dict[str, str]  # role -> number (axb: buyer, merchant; axe: buyer)
    allowed: list[str]  # axe: the courier(s) allowed to key the extension
    expires_at: float  # epoch seconds, as the API answered
    sent: float  # when its creation was asked for
    created: float  # when the API answered 201 (the routes exist from then on)
    unbind: Window | None = None
    changes: list[Window] = field(default_factory=list)  # extends, delivered
    delivered: bool = False  # marked delivered: can no longer be extended

    def ended_by(self, now: float) -> bool:
        """Certainly ended (the server's view) well before ``now``: for picking, not for judging."""
        if self.unbind is not None:
            return True
        return now >= self.expires_at

    def end_bounds(self) -> tuple[float, float]:
        """The earliest and latest moment the server may have ended it."""
        lo = hi = self.expires_at
        if self.unbind is not None:
            lo = min(lo, self.unbind.sent)
            hi = min(hi, self.unbind.answered if self.unbind.answered is not None else INF)
        return lo, hi

    def state(self, start: float, end: float, margin: float) -> Literal["live", "dead", "changing", "ending"]:
        """Was it live for all of [start, end], dead (or not yet there) for all
        of it, or can't one tell?

        What the server does on a request it does between the request's
        sending and its answer, and it decides a call at one instant within
        the call's own request: so requests are compared by those bounds, no
        margin. The expiry is another matter: a wall-clock time, kept in whole
        seconds in Redis, so it gets ``margin`` on either side.
        """
        if end < self.sent:
            return "dead"  # the call was over before the binding was asked for
        if start <= self.created:
            return "changing"  # the call overlapped the creation
        for change in self.changes:
            done = change.answered if change.answered is not None else INF
            if change.sent <= end and start <= done:
                return "changing"
        live = end < self.expires_at - margin
        dead = start > self.expires_at + margin
        if self.unbind is not None:
            unbound = self.unbind.answered if self.unbind.answered is not None else INF
            live = live and end < self.unbind.sent
            dead = dead or start > unbound
        if dead:
            return "dead"
        return "live" if live else "ending"

    def peer_of(self, number: str) -> str | None:
        """Whom ``number`` reaches through this binding (axb: the other party; axe: the buyer)."""
        if self.mode == "axe":
            return self.parties["buyer"] if number in self.allowed else None
        others = [n for n in self.parties.values() if n != number]
        return others[0] if len(others) == 1 and number in self.parties.values() else None


@dataclass(frozen=True)
class Expectation:
    verdict: Verdict
    why: str = ""


class Model:
    """Every binding the soak made, indexed for picking and judging (thread-safe)."""

    def __init__(self, *, margin: float) -> None:
        self.margin = margin
        self.lock = threading.Lock()
        self.bindings: dict[str, Binding] = {}
        # Creations in flight per party number: [sent, answered] windows.
        self.creating: dict[str, list[Window]] = {}

    # -- creation --------------------------------------------------------------------

    def creation_started(self, numbers: Iterable[str], now: float) -> Window:
        window = Window(sent=now)
        with self.lock:
            for number in numbers:
                self.creating.setdefault(number, []).append(window)
        return window

    def creation_done(self, window: Window, now: float, binding: Binding | None) -> None:
        with self.lock:
            window.answered = now
            if binding is not None:
                self.bindings[binding.id] = binding
            # Once answered, a creation is judged through its binding (or, if
            # it failed, bound no one): only those in flight are kept here.
            for number, windows in list(self.creating.items()):
                kept = [w for w in windows if w.answered is None]
                if kept:
                    self.creating[number] = kept
                else:
                    del self.creating[number]

    # -- picking ---------------------------------------------------------------------

    def live(self, now: float, *, away: float = 0.0) -> list[Binding]:
        """Bindings live now and for ``away`` seconds more, with no change in flight."""
        with self.lock:
            return [
                b
                for b in self.bindings.values()
                if b.unbind is None
                and b.expires_at > now + away
                and all(c.answered is not None for c in b.changes)
            ]

    def ended(self, now: float, *, since: float) -> list[Binding]:
        """Bindings certainly ended at least ``since`` seconds ago."""
        with self.lock:
            out = []
            for b in self.bindings.values():
                if b.end_bounds()[1] + since < now:
                    out.append(b)
            return out

    def live_count(self, now: float) -> int:
        with self.lock:
            return sum(1 for b in self.bindings.values() if not b.ended_by(now))

    def held_count(self, now: float, *, keep: float) -> int:
        """Bindings Redis may rightly still hold: live, or ended within ``keep``
        seconds (the cool-down, plus the worker's lag in purging)."""
        with self.lock:
            return sum(1 for b in self.bindings.values() if b.end_bounds()[1] + keep > now)

    def forget_older_than(self, now: float, age: float) -> None:
        """Drop bindings that ended more than ``age`` seconds ago (memory of a long soak)."""
        with self.lock:
            for binding_id, b in list(self.bindings.items()):
                if b.end_bounds()[1] + age < now:
                    del self.bindings[binding_id]

    # -- judging ---------------------------------------------------------------------

    def expect(
        self, *, caller: str, relay: str, extension: str | None, start: float, end: float
    ) -> tuple[Expectation, str | None]:
        """What a call (or text) from ``caller`` to ``relay`` over [start, end]
        should have done: (verdict basis, the number it must reach or None for
        refused). A verdict of "ambiguous" means: do not judge it."""
        m = self.margin
        with self.lock:
            # A creation still unanswered may have bound the caller on this
            # relay number (answered ones are in the model, and judged there).
            for window in self.creating.get(caller, []):
                if window.answered is None and window.sent <= end:
                    return Expectation("ambiguous", "a creation for the caller was in flight"), None
            candidates = [
                b
                for b in self.bindings.values()
                if b.relay == relay
                and (
                    (b.mode == "axb" and extension is None and caller in b.parties.values())
                    or (b.mode == "axe" and extension is not None and b.extension == extension)
                )
            ]
            # An axe buyer calling its relay number reaches the most recent
            # allowed caller: the model does not follow that, so while such a
            # binding may be live the call is not judged.
            for b in self.bindings.values():
                bound_here = b.mode == "axe" and b.relay == relay and caller in b.parties.values()
                if bound_here and extension is None and b.state(start, end, m) != "dead":
                    return Expectation("ambiguous", "the caller is an axe binding's bound party"), None
            live: list[Binding] = []
            for b in candidates:
                state = b.state(start, end, m)
                if state == "changing":
                    return Expectation("ambiguous", "the binding was being changed"), None
                if state == "ending":
                    return Expectation("ambiguous", "the binding ended near the call"), None
                if state == "live" and b.peer_of(caller) is not None:
                    live.append(b)
        if len(live) > 1:
            ids = ", ".join(b.id for b in live)
            return Expectation("misroute", f"the model holds two live bindings for one caller: {ids}"), None
        if live:
            return Expectation("ok", live[0].id), live[0].peer_of(caller)
        return Expectation("ok", "no live binding"), None
