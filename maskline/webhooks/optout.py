"""SMS opt-out and opt-in keywords, and who has opted out of which relay number.

Every deployment understands both languages' words, whatever its own:

- opt-out: Twilio's default English keywords (STOP, STOPALL, UNSUBSCRIBE,
  CANCEL, END, QUIT, REVOKE, OPTOUT, and the French ARRET that Twilio Proxy
  also drops), and the mainland ones (退订, TD, T);
- opt-in: START, YES, UNSTOP (Twilio's; there is no settled Chinese opt-in
  word, so the zh-CN confirmation tells the sender to reply START);
- help: HELP, INFO (forwarded like any text, as Twilio Proxy does).

As Twilio matches them, a keyword is the whole message, one word, in any
case: "STOP" opts out, "please stop" is an ordinary text. Surrounding spaces,
full-width letters and closing punctuation are ignored, because a
missed opt-out forwards a text the sender asked to end.

What the webhook does with them (services.py wires this in):

- an opt-out keyword is never forwarded to the other party; it is recorded
  as an interaction (status ``opted_out``); the sender is added to the relay
  number's opt-out set;
- while a sender is in that set, no text is sent from the relay number to
  them: a message the other party sends them is dropped (status
  ``recipient_opted_out``);
- an opt-in keyword removes them from the set; like Twilio Proxy, maskline
  does not forward UNSTOP, and forwards START and YES (they can be ordinary
  answers).

The set lives in Redis at ``ml:{X}:optout`` (X the relay number, so the key
sits in X's cluster slot beside its routes) and holds blind indexes only: the
truncated HMAC the routing store already uses (``Router.caller_index``),
never a number. Because the key shares X's slot, the check can join the one
Lua call that resolves X. A check that cannot run sends nothing, as a
routing lookup that cannot run routes nowhere.

The set is not in SQL, so ``maskline routes rebuild`` cannot restore it
after Redis loses its data; the interactions still record every keyword.
"""

from __future__ import annotations

import datetime as dt
import enum
import unicodedata
from typing import Any

from maskline.numbers.routes import route_key
from maskline.webhooks.models import Interaction


class Keyword(enum.StrEnum):
    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"
    HELP = "help"


OPT_OUT_WORDS = frozenset(
    {
        # Twilio's default opt-out keywords (Messaging, Advanced Opt-Out defaults).
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        # Twilio Proxy also drops these.
        "arret",
        "arrete",
        "arrett",
        # Mainland: "退订" (unsubscribe), and "TD" / "T" as in "回复TD退订".
        "退订",
        "td",
        "t",
    }
)
OPT_IN_WORDS = frozenset({"start", "yes", "unstop"})
HELP_WORDS = frozenset({"help", "info"})
# Opt-in keywords that are still forwarded: they can be ordinary answers.
FORWARDED_OPT_IN_WORDS = frozenset({"start", "yes"})

# Closing punctuation a phone adds or a thumb slips in: "STOP." "退订。" "TD!"
_TRAILING = ".!。！,，;；~～"  # noqa: RUF001 (full-width punctuation on purpose)
_LONGEST = max(len(w) for w in OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS)


def keyword_word(body: str) -> str | None:
    """The message as one normalized word (NFKC, case-folded, trimmed), or None."""
    if len(body) > 4 * _LONGEST:  # a keyword is short; don't normalize an essay
        return None
    word = unicodedata.normalize("NFKC", body).strip().rstrip(_TRAILING).strip().casefold()
    return word or None


def classify(body: str) -> Keyword | None:
    """Which keyword ``body`` is, if it is one (the whole message, one word)."""
    word = keyword_word(body)
    if word is None:
        return None
    if word in OPT_OUT_WORDS:
        return Keyword.OPT_OUT
    if word in OPT_IN_WORDS:
        return Keyword.OPT_IN
    if word in HELP_WORDS:
        return Keyword.HELP
    return None


def is_forwarded(body: str) -> bool:
    """Whether a keyword message still goes to the other party (non-keywords always do)."""
    kind = classify(body)
    if kind is Keyword.OPT_OUT:
        return False
    if kind is Keyword.OPT_IN:
        return keyword_word(body) in FORWARDED_OPT_IN_WORDS
    return True


def optout_key(relay_number: str) -> str:
    """``ml:{X}:optout``: in X's hash slot, for a Lua script that resolves X."""
    return f"{route_key(relay_number)}:optout"


class OptOutStore:
    """Which senders have opted out of texts from which relay number.

    Members are the truncated blind indexes the routing store uses
    (:func:`maskline.numbers.routes.short_index`): bytes, never a number.
    Every method is one Redis command.
    """

    def __init__(self, client: Any) -> None:
        self.client = client

    def opt_out(self, relay_number: str, index: bytes) -> bool:
        """Add the sender; True if they were not opted out before."""
        return bool(self.client.sadd(optout_key(relay_number), _member(index)))

    def opt_in(self, relay_number: str, index: bytes) -> bool:
        """Remove the sender; True if they had opted out."""
        return bool(self.client.srem(optout_key(relay_number), _member(index)))

    def is_opted_out(self, relay_number: str, index: bytes) -> bool:
        return bool(self.client.sismember(optout_key(relay_number), _member(index)))

    def count(self, relay_number: str) -> int:
        """How many senders have opted out of ``relay_number`` (for the console)."""
        return int(self.client.scard(optout_key(relay_number)))

    def apply(self, relay_number: str, index: bytes, body: str) -> Keyword | None:
        """Update the set for an incoming text; the keyword it was, if any."""
        kind = classify(body)
        if kind is Keyword.OPT_OUT:
            self.opt_out(relay_number, index)
        elif kind is Keyword.OPT_IN:
            self.opt_in(relay_number, index)
        return kind


def _member(index: bytes) -> bytes:
    if not isinstance(index, bytes) or not index:
        # A caller without a blind index (anonymous, malformed) cannot be stored.
        raise ValueError("a blind index (non-empty bytes) is required")
    return index


def keyword_interaction(
    *,
    sid: str,
    binding_id: str,
    owner: str,
    from_role: str,
    kind: Keyword,
    now: dt.datetime,
) -> Interaction:
    """The interaction row recording a keyword text (nothing of its body, no number).

    ``status`` is ``opted_out`` or ``opted_in`` (``help`` for HELP/INFO); the
    message itself was not relayed, so ``to_role`` is empty.
    """
    status = {Keyword.OPT_OUT: "opted_out", Keyword.OPT_IN: "opted_in", Keyword.HELP: "help"}[kind]
    return Interaction(
        sid=sid,
        binding_id=binding_id,
        owner=owner,
        type="sms",
        from_role=from_role,
        to_role="",
        status=status,
        duration=None,
        started_at=now,
        ended_at=now,
    )


__all__ = [
    "FORWARDED_OPT_IN_WORDS",
    "HELP_WORDS",
    "OPT_IN_WORDS",
    "OPT_OUT_WORDS",
    "Keyword",
    "OptOutStore",
    "classify",
    "is_forwarded",
    "keyword_interaction",
    "keyword_word",
    "optout_key",
]
