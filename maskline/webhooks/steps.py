"""The webhook connect path's Redis side: one script per step (``lua/step.lua``).

A call, the extension keyed after it, or a text is decided in one round
trip on the relay number's slot: the stored decision (a Twilio retry gets
it again while it is still true; a replay of a finished call gets nothing),
routing, per-caller and per-number extension lockouts, the binding's quota,
and the decision record itself. Key layout (no party number: blind-index
bytes, ids, roles, vault tokens):

* ``ml:{X}:c:<SID>``: the decision record of one call or message. Fields:
  ``<step>`` -> the stored :class:`StepDecision`; ``lf:<step>`` / ``lb:<step>``
  -> the route entry (and binding) a stored connect re-checks on a retry;
  ``b``/``fr``/``tr`` -> the binding and roles of the connect (for status
  callbacks); ``t`` -> first seen; ``done`` -> final status.
* ``ml:{X}:lv:<binding>``: the binding's connects (sorted set of SIDs by
  first seen), read by :mod:`maskline.webhooks.live`.
* ``ml:{X}:q:<binding>:<call|sms>:<h|d><window>``: quota counters.
* ``ml:{X}:xf:<caller index hex>``: wrong extensions of one caller on X.
* ``ml:{X}:xw`` / ``ml:{X}:xl``: wrong extensions on X from anyone in the
  window / X's extension lockdown (both with TTLs).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from maskline.numbers.routes import extension_lockdown_key, routing_prelude
from maskline.redis_script import call_script
from maskline.webhooks.interfaces import StepDecision


def record_key(relay: str, sid: str) -> str:
    """The decision record of call or message ``sid`` to or from ``relay``."""
    return f"ml:{{{relay}}}:c:{sid}"


def live_key(relay: str, binding_id: str) -> str:
    """The connects of ``binding_id`` on ``relay`` (SIDs scored by first seen)."""
    return f"ml:{{{relay}}}:lv:{binding_id}"


def lockdown_key(relay: str) -> str:
    """Present while ``relay``'s open extensions are locked down."""
    return extension_lockdown_key(relay)


def number_failures_key(relay: str) -> str:
    """Wrong extensions on ``relay`` from anyone, in the current window."""
    return f"ml:{{{relay}}}:xw"


def caller_failures_key(relay: str, caller_hex: str) -> str:
    """Wrong extensions of one caller (index hex, or "anonymous") on ``relay``."""
    return f"ml:{{{relay}}}:xf:{caller_hex}"


@dataclass(frozen=True, kw_only=True)
class StepLimits:
    """The numbers step.lua needs besides the request (from settings)."""

    record_ttl: int
    calls: tuple[int, int]  # per hour, per day
    sms: tuple[int, int]
    attempts: int
    caller_failures: int
    caller_window: int
    caller_lockout: int
    number_failures: int
    number_window: int
    number_lockout: int
    extension_digits: int


@dataclass(frozen=True, kw_only=True)
class StepOutcome:
    """What step.lua answered.

    ``outcome``: ``new`` (decided now), ``retry`` (the stored decision, still
    true), ``stale`` (a stored connect whose binding is no longer live) or
    ``done`` (the call or message is over: a replay).
    """

    outcome: str
    decision: StepDecision | None
    remember: bool
    lockdown_started: int | None
    extension_digits: int
    # Texts: someone has opted out of texts from this relay number (the
    # target is then checked before a text goes out).
    optouts: bool = False
    # This step keyed a wrong extension (counted, whether or not it asks again).
    wrong_extension: bool = False
    # A connect: the binding's sealed route copy (maskline.numbers.route_copies),
    # b"" if it has none (then the connect reads SQL).
    copy: bytes = b""


class StepStore:
    """Runs one webhook step (see the module docstring)."""

    def __init__(self, client: Any, *, limits: StepLimits) -> None:
        self.client = client
        self.limits = limits
        lim = limits
        constants = (
            *lim.calls,
            *lim.sms,
            lim.record_ttl,
            lim.attempts,
            lim.caller_failures,
            lim.caller_window,
            lim.caller_lockout,
            lim.number_failures,
            lim.number_window,
            lim.number_lockout,
            lim.extension_digits,
        )
        source = (resources.files("maskline.webhooks") / "lua" / "step.lua").read_text()
        # The settings' limits are constants of the script (one script per set
        # of limits), and its body a function whose fields come back as one
        # string: each call sends 7 arguments instead of 20 and reads one
        # bulk reply instead of an array of 7, the client CPU a connect pays.
        self._step = client.register_script(
            "\n".join(
                [
                    routing_prelude(),
                    "local LIMITS = {" + ", ".join(str(int(n)) for n in constants) + "}",
                    "local function step_main()",
                    source,
                    "end",
                    'return table.concat(step_main(), "\\n")',
                ]
            )
        )

    def run(
        self,
        relay: str,
        sid: str,
        step: str,
        *,
        now: int,
        caller_index: bytes | None,
        extension: str,
        kind: str,
        attempt: int = 1,
    ) -> StepOutcome:
        """Decide (or recall) ``step`` of call or message ``sid`` to ``relay``.

        ``extension`` is "" for a first step, the digits keyed, or "x" for
        nothing usable. Redis errors propagate (the caller apologises).
        """
        idx = caller_index or b""
        args = [step, now, idx, idx.hex(), extension, kind, attempt]
        raw = call_script(
            self.client, self._step, keys=[f"ml:{{{relay}}}", record_key(relay, sid)], args=args
        )
        # The copy is binary and last: split off at most seven fields before it.
        fields = raw.split(b"\n", 7) if isinstance(raw, bytes) else str(raw).encode().split(b"\n", 7)
        copy = fields[7] if len(fields) == 8 else b""
        outcome, stored, remember, lockdown, digits, optouts, wrong = (f.decode() for f in fields[:7])
        return StepOutcome(
            outcome=outcome,
            decision=StepDecision.loads(stored) if stored else None,
            remember=remember == "1",
            lockdown_started=int(lockdown) if lockdown else None,
            extension_digits=int(digits),
            optouts=optouts == "1",
            wrong_extension=wrong == "1",
            copy=copy,
        )

    def forget(self, relay: str, sid: str, step: str) -> None:
        """Drop a stored decision (a refusal whose routes were just made): the
        step is decided again. One command, so atomic."""
        self.client.hdel(record_key(relay, sid), step, f"lf:{step}", f"lb:{step}")

    def overrule(self, relay: str, sid: str, step: str, decision: StepDecision) -> None:
        """Replace a stored connect (an interceptor said no): a retry gets the refusal."""
        key = record_key(relay, sid)
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, step, decision.dumps())
        pipe.hdel(key, f"lf:{step}", f"lb:{step}")
        pipe.execute()
