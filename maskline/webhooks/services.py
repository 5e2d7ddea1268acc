"""What the Twilio webhooks decide, and the Redis state behind their answers.

Every answer follows the same order: (signature and fields are checked by
the view), de-duplicate on (endpoint, sid, step), then act. A decision is
stored in Redis before it is acted on, so a Twilio retry of a live step gets
the same answer, and once a status callback says the call or message is
over, a replayed request connects no one.

Redis keys (none holds a party number: blind-index hex, ids, vault tokens):

* ``ml:wh:{SID}``: hash per call or message, hash-tagged on its sid. Fields:
  ``<endpoint>:<step>`` -> stored :class:`StepDecision`; ``b``/``fr``/``tr``
  -> binding and roles of a connect; ``t`` -> first seen (epoch); ``done``
  -> final status from a status callback.
* ``ml:{X}:q:<binding>:<call|sms>:<h|d><bucket>``: quota counters.
* ``ml:{X}:xf:<caller index hex>``: wrong extensions from one caller on X.

Recording a decision and counting a quota are one Lua script each
(``lua/record.lua`` on the sid's slot, ``lua/quota.lua`` on X's): one
command and one reply, not a MULTI of five or a pipeline of four.

Any backend failure (Redis, SQL, the vault) becomes an apology, counted:
never a 500 and never a connection to anyone but the routed party.

Calls and messages from non-parties, extensions keyed in vain, and
connects to a buyer are signalled to the alerts (``maskline.audit.alerts``):
an append to an in-process queue, with no Redis or SQL work on this path.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from maskline.audit.alerts import ALERT_FAILURES, BUYER_ROLE, STRANGER_REASONS, caller_subject
from maskline.fast_sql import FastReader
from maskline.numbers.models import Binding
from maskline.numbers.route_copies import open_copy
from maskline.numbers.routes import epoch, route_key, routing_prelude, short_index
from maskline.webhooks import optout, twiml
from maskline.webhooks.interfaces import (
    TERMINAL_CALL_STATUSES,
    TERMINAL_SMS_STATUSES,
    BackendUnavailable,
    StepDecision,
)
from maskline.webhooks.models import Interaction
from maskline.webhooks.policy import BindingOptions, SmsPolicy
from maskline.webhooks.prompts import LANGUAGES
from maskline.webhooks.recordings import RecordingEvent, store_recording
from maskline.webhooks.sms_carry import SmsCarry
from maskline.webhooks.steps import StepLimits, StepOutcome, StepStore, record_key

if TYPE_CHECKING:
    from maskline.db import Database
    from maskline.numbers.router import Router
    from maskline.wiring import Services, WebhookBackends

log = logging.getLogger(__name__)

# Labels are reasons and endpoint names only: bounded, and never a number.
REJECTIONS = Counter("maskline_webhook_rejections", "Calls and messages that reached no one", ["reason"])
FAILURES = Counter(
    "maskline_webhook_failures", "Requests answered with an apology: a backend failed", ["endpoint"]
)
SIGNATURE_FAILURES = Counter("maskline_webhook_signature_failures", "Requests refused with 403")
LOCKOUTS = Counter("maskline_extension_lockouts", "Callers locked out for guessing extensions")
LOCKDOWNS = Counter("maskline_extension_lockdowns", "Relay numbers whose open extensions were locked down")
RETRIES = Counter(
    "maskline_webhook_retries", "Repeated steps answered from the stored decision", ["endpoint"]
)
CONNECTS = Counter("maskline_webhook_connects", "Calls and messages forwarded", ["type"])
COPY_MISSES = Counter(
    "maskline_route_copy_misses", "Connects whose route copy did not open (they read SQL instead)"
)
_CALL_CONNECTS = CONNECTS.labels(type="call")  # looked up once: counted on every connect

# A wrong extension gets one more try, then goodbye.
EXTENSION_ATTEMPTS = 2
# Reasons an extension attempt counts as wrong. The caller hears the same
# for all three, so guessing learns nothing about which extensions exist.
_WRONG_EXTENSION = frozenset({"bad_extension", "stranger", "expired"})


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _loose_text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _lua(name: str) -> str:
    return (resources.files("maskline.webhooks") / "lua" / f"{name}.lua").read_text()


class DecisionStore:
    """Stored step decisions of calls and messages decided in Python
    (click-to-call, the faces' API messages), in the same records as
    step.lua's (``ml:{X}:c:<SID>``), so that status callbacks find both."""

    def __init__(self, client: Any, *, ttl_seconds: int, ended_ttl_seconds: int | None = None) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.ended_ttl = ttl_seconds if ended_ttl_seconds is None else min(ended_ttl_seconds, ttl_seconds)
        self._record = client.register_script(_lua("record"))
        self._finish = client.register_script(_FINISH)
        self._settle = client.register_script(routing_prelude() + "\n" + _lua("settle"))

    @classmethod
    def from_settings(cls, client: Any, settings: Any) -> DecisionStore:
        return cls(
            client,
            ttl_seconds=int(settings.webhook_dedupe_ttl.total_seconds()),
            ended_ttl_seconds=int(settings.webhook_ended_ttl.total_seconds()),
        )

    @staticmethod
    def key(sid: str, relay: str) -> str:
        return record_key(relay, sid)

    def lookup(self, sid: str, step: str, *, relay: str) -> tuple[StepDecision | None, bool]:
        """(the stored decision of ``step``, whether the call or message is over)."""
        stored, done = self.client.hmget(self.key(sid, relay), [step, "done"])
        return (StepDecision.loads(stored) if stored else None), done is not None

    def record(self, sid: str, step: str, decision: StepDecision, *, now: int, relay: str) -> StepDecision:
        """Store ``decision`` unless a concurrent retry stored one first; return the winner."""
        connect = decision.action == "connect" and bool(decision.binding_id)
        roles = (decision.binding_id, decision.from_role, decision.target_role) if connect else ()
        args = [step, decision.dumps(), now, self.ttl, *(value or "" for value in roles or ("", "", ""))]
        stored = self._record(keys=[self.key(sid, relay)], args=args)
        return StepDecision.loads(stored) if stored else decision

    def info(self, sid: str, *, relay: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.client.hgetall(self.key(sid, relay)).items()}

    def finish(self, sid: str, status: str, *, relays: list[str], done: bool) -> tuple[str, dict[str, str]]:
        """The record of ``sid`` under the first of ``relays`` that has one,
        marked over if ``done``, as (relay, fields); ("", {}) if none has.

        A final status for a sid never seen leaves a husk under the first
        relay number, so a request replayed after it finds the call over.
        """
        mark = status if done else ""
        for relay in relays:
            fields = self._finish(keys=[self.key(sid, relay)], args=[mark])
            if fields:
                it = iter(fields)
                # Binary fields (the route entry a retry re-checks) are not read here.
                return relay, {_text(k): _loose_text(v) for k, v in zip(it, it, strict=True)}
        if done and relays:
            key = self.key(sid, relays[0])
            pipe = self.client.pipeline(transaction=True)
            pipe.hset(key, "done", status)
            pipe.expire(key, self.ttl, nx=True)
            pipe.execute()
        return "", {}

    def settle(self, sid: str, *, relay: str, now: int) -> None:
        """The record of an ended call, once SQL holds its end: shortened to
        the ended TTL, or, while the binding it connected is still live, cut
        down to its ``done`` mark for as long as the binding may live (a
        connect reads no SQL, so only this mark refuses a replay then).
        Never lengthened (see lua/settle.lua)."""
        self._settle(keys=[self.key(sid, relay), route_key(relay)], args=[self.ended_ttl, now])


_FINISH = """
if redis.call("EXISTS", KEYS[1]) == 0 then return {} end
if ARGV[1] ~= "" then redis.call("HSET", KEYS[1], "done", ARGV[1]) end
return redis.call("HGETALL", KEYS[1])
"""


class Quotas:
    """Per-binding calls and messages per hour and per day (fixed windows)."""

    def __init__(self, client: Any, *, limits: dict[str, tuple[int, int]]) -> None:
        self.client = client
        self.limits = limits  # kind -> (per hour, per day)
        self._take = client.register_script(_lua("quota"))

    @staticmethod
    def keys(relay: str, binding_id: str, kind: str, *, now: int) -> list[str]:
        """The hour and day counters of one use: both tagged ``{relay}``, so
        the script that counts them stays on one slot of a cluster."""
        prefix = f"ml:{{{relay}}}:q:{binding_id}:{kind}"
        return [f"{prefix}:h{now // 3600}", f"{prefix}:d{now // 86400}"]

    # A counter is read only within its window; a minute past its end covers
    # clock skew between processes.
    GRACE_SECONDS = 60

    @classmethod
    def ttls(cls, now: int) -> list[int]:
        """Seconds the hour and day counters of ``now`` must live: to the end of
        their window, not a fixed two of them (the day counters, 104 B per
        binding and kind, were kept two days: most of the quota memory)."""
        return [3600 - now % 3600 + cls.GRACE_SECONDS, 86400 - now % 86400 + cls.GRACE_SECONDS]

    def take(self, relay: str, binding_id: str, kind: str, *, now: int) -> bool:
        """Count one use; False if it goes over either limit."""
        per_hour, per_day = self.limits[kind]
        keys = self.keys(relay, binding_id, kind, now=now)
        used_hour, used_day = self._take(keys=keys, args=self.ttls(now))
        return int(used_hour) <= per_hour and int(used_day) <= per_day


class PoolDirectory:
    """Which numbers are maskline's own relay numbers (cached from SQL).

    Read on the hot path of every call, so it is a set in memory refreshed
    every ``refresh_seconds``, not a query per call.
    """

    def __init__(self, services: Services, *, refresh_seconds: float = 30.0) -> None:
        self._services = services
        self._refresh = refresh_seconds
        self._numbers: frozenset[str] | None = None
        self._loaded_at = 0.0
        self._lock = threading.Lock()

    def __contains__(self, number: object) -> bool:
        if self._numbers is None or time.monotonic() - self._loaded_at > self._refresh:
            self._load()
        assert self._numbers is not None
        return number in self._numbers

    def _load(self) -> None:
        with self._lock:
            try:
                with self._services.webhook_backends.db.session() as session:
                    numbers = self._services.numbers.pool.numbers(session)
            except Exception as exc:
                if self._numbers is None:
                    raise BackendUnavailable(f"pool unavailable: {type(exc).__name__}") from None
                log.warning("pool directory kept its last copy: %s", type(exc).__name__)
                numbers = self._numbers
            self._numbers = numbers
            self._loaded_at = time.monotonic()


class WebhookService:
    """The decisions behind ``/webhooks/twilio/*`` (see :class:`~maskline.webhooks.interfaces.Webhooks`)."""

    def __init__(self, *, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.settings = settings
        # Actions are paths Twilio resolves against the URL it called; behind
        # a proxy that serves maskline under a prefix, they need the prefix.
        self.path_prefix = urlsplit(settings.public_url).path if settings.public_url else ""
        self.voice_twiml = twiml.Voice(
            language=settings.voice_language,
            voice=settings.voice_name,
            extension_prompt=settings.extension_prompt,
            path_prefix=self.path_prefix,
        )
        # Binding languages other than the deployment's (see voice_for).
        self._voices: dict[str, twiml.Voice] = {}
        self.pool = PoolDirectory(services)
        self.sms_policy = SmsPolicy(redact=settings.sms_redact, media=settings.sms_media)
        self._steps: StepStore | None = None
        self._decisions: DecisionStore | None = None
        self._carry: SmsCarry | None = None
        # Asked before a call or message is connected (the Twilio Proxy
        # face's intercept callback): (kind, decision, sid) -> go ahead? Each
        # bounds its own time; a "no" rejects the step, and one that raises
        # fails it closed like any backend failure (the apology).
        self.interceptors: list[Callable[[str, StepDecision, str], bool]] = []
        # Told of a call or text that a decision refused (kind, sid, relay,
        # caller, decision), e.g. the Twilio Proxy face's out-of-session
        # callback. Each bounds its own time (as interceptors do); one that
        # raises is logged and changes nothing for the caller. One that
        # answers True has made routes for this call (Proxy's auto-create):
        # the step is decided once more, and that decision is told to no one.
        self.rejections: list[Callable[[str, str, str, str, StepDecision], bool | None]] = []
        # Told of each status callback of a connected call or text (sid, kind,
        # status, its record's fields, whether it ended), after it is stored,
        # e.g. the Twilio Proxy face's per-event callbacks. Same rules as above.
        self.status_listeners: list[Callable[[str, str, str, dict[str, str], bool], None]] = []

    def _tell_rejected(self, kind: str, sid: str, relay: str, caller: str, decision: StepDecision) -> bool:
        """Tell the rejection listeners; whether one made routes for this call."""
        again = False
        if decision.action == "reject" and self.rejections:
            for listener in self.rejections:
                try:
                    again = bool(listener(kind, sid, relay, caller, decision)) or again
                except Exception as exc:
                    log.warning("rejection listener failed: %s", type(exc).__name__)
        return again

    def _intercept(self, kind: str, sid: str, decision: StepDecision) -> StepDecision:
        if decision.action != "connect":
            return decision
        for go_ahead in self.interceptors:
            if not go_ahead(kind, decision, sid):
                return self.reject("intercepted", binding_id=decision.binding_id)
        return decision

    @property
    def backends(self) -> WebhookBackends:
        """Redis, SQL and the router with the webhook path's short timeouts."""
        return self.services.webhook_backends

    @property
    def db(self) -> Database:
        return self.backends.db

    def _decision_store(self) -> DecisionStore:
        # Built on first use: building never connects.
        if self._decisions is None:
            self._decisions = DecisionStore.from_settings(self.backends.redis, self.settings)
        return self._decisions

    @property
    def fast_sql(self) -> FastReader:
        """The connect path's one prepared statement (psycopg, no SQLAlchemy)."""
        return self.backends.fast_sql

    @property
    def router(self) -> Router:
        return self.backends.router

    def _now(self) -> int:
        return epoch(self.services.clock())

    # -- voice -----------------------------------------------------------------

    def steps(self) -> StepStore:
        """The step script's client (built on first use: building never connects)."""
        if self._steps is None:
            s = self.settings
            self._steps = StepStore(
                self.backends.redis,
                limits=StepLimits(
                    record_ttl=int(s.webhook_dedupe_ttl.total_seconds()),
                    calls=(s.calls_per_hour, s.calls_per_day),
                    sms=(s.sms_per_hour, s.sms_per_day),
                    attempts=EXTENSION_ATTEMPTS,
                    caller_failures=s.extension_max_failures,
                    caller_window=int(s.extension_failure_window.total_seconds()),
                    caller_lockout=int(s.extension_lockout.total_seconds()),
                    number_failures=s.extension_max_failures_per_number,
                    number_window=int(s.extension_failure_window.total_seconds()),
                    number_lockout=int(s.extension_lockout.total_seconds()),
                    extension_digits=s.extension_digits,
                ),
            )
        return self._steps

    def voice(self, *, call_sid: str, relay: str, caller: str) -> str:
        try:
            decision, _, copy = self._run_step(
                "call", call_sid, "voice:1", relay, caller, extension="", attempt=1
            )
            if decision is None:
                return self.voice_twiml.goodbye
            return self._render_voice(decision, relay, call_sid, copy)
        except Exception as exc:  # never a 500 to Twilio, never a wrong party
            return self.apology("voice", exc)

    def extension(self, *, call_sid: str, relay: str, caller: str, digits: str, attempt: int) -> str:
        try:
            decision, _, copy = self._run_step(
                "call", call_sid, f"ext:{attempt}", relay, caller, extension=digits, attempt=attempt
            )
            if decision is None:
                return self.voice_twiml.goodbye
            return self._render_voice(decision, relay, call_sid, copy)
        except Exception as exc:
            return self.apology("extension", exc)

    def _run_step(
        self,
        kind: str,
        sid: str,
        step: str,
        relay: str,
        caller: str,
        *,
        extension: str,
        attempt: int,
        index: bytes | None = None,
    ) -> tuple[StepDecision | None, bool, bytes]:
        """The decision of one step, from one run of step.lua (None for a
        replay), whether anyone opted out of texts from ``relay``, and the
        binding's sealed route copy (b"" if none: the connect reads SQL).

        Signals (alerts, rejection listeners, interceptors) follow a decision
        made now, never a retried one, so a retry is not counted twice.
        """
        if caller in self.pool:
            # A relay number calling a relay number: a loop, never routed.
            return self.reject("relay_caller"), False, b""
        if index is None:
            index = self.caller_index(caller)
        steps = self.steps()
        out = steps.run(
            relay,
            sid,
            step,
            now=self._now(),
            caller_index=index,
            extension=extension,
            kind="sms" if kind == "sms" else "call",
            attempt=attempt,
        )
        if out.outcome == "done":
            self.reject("completed")  # the call is over: a replay connects no one
            return None, False, b""
        if out.outcome == "stale":
            self.reject("ended")  # a retry after its binding ended: no one
            return None, False, b""
        decision = out.decision
        assert decision is not None
        if out.outcome == "retry":
            RETRIES.labels(endpoint=step.split(":")[0]).inc()
            return decision, out.optouts, out.copy
        decided = self._after_decision(kind, sid, step, relay, caller, index, decision, out)
        if decided.action == "reject" and self._tell_rejected(kind, sid, relay, caller, decided):
            # A listener made this call's routes (Proxy's auto-create): decide once more.
            steps.forget(relay, sid, step)
            out = steps.run(
                relay,
                sid,
                step,
                now=self._now(),
                caller_index=index,
                extension=extension,
                kind="sms" if kind == "sms" else "call",
                attempt=attempt,
            )
            if out.outcome == "new" and out.decision is not None:
                decided = self._after_decision(kind, sid, step, relay, caller, index, out.decision, out)
        return decided, out.optouts, out.copy

    def _after_decision(
        self,
        kind: str,
        sid: str,
        step: str,
        relay: str,
        caller: str,
        index: bytes | None,
        decision: StepDecision,
        out: StepOutcome,
    ) -> StepDecision:
        reason = decision.reason
        if decision.action == "reject":
            if reason == "unavailable":
                # Redis answers without the generation marker: a lost store
                # (a rebuild starts; fail closed) or no pool number at all.
                if self.router.without_marker(relay).reason != "not_pool_number":
                    raise BackendUnavailable("routing unavailable")
                decision = StepDecision.rejected("not_pool_number")
                self._decision_store().record(sid, step, decision, now=self._now(), relay=relay)
                reason = decision.reason
            REJECTIONS.labels(reason=reason or "unavailable").inc()
            self._tally_refusal(reason)
            if reason == "locked_out":
                LOCKOUTS.inc()
            elif not out.wrong_extension:
                self._refused(relay, index, reason)
        if out.wrong_extension:
            self._wrong_extension(relay, index)
        if out.lockdown_started is not None:
            self._lockdown(relay, out.lockdown_started)
        if decision.action == "connect":
            if out.remember and decision.binding_id:
                self.router.remember(relay, decision.binding_id, caller)
            decision = self._contact(index, decision)
            checked = self._intercept(kind, sid, decision)
            if checked is not decision:
                self.steps().overrule(relay, sid, step, checked)
                decision = checked
        return decision

    def caller_index(self, caller: str) -> bytes | None:
        """The caller's truncated blind index (the router's, with Twilio's own
        E.164 form read without a second parse)."""
        return self.router.caller_index(caller)

    def answer_step(self, sid: str, step: str, relay: str, decide: Any) -> str:
        """The TwiML of one voice step decided in Python (click-to-call's
        bridge): the stored decision of (sid, step) if any (a retry), none
        for a call that is over (a replay), else ``decide()``, stored first."""
        store = self._decision_store()
        stored, done = store.lookup(sid, step, relay=relay)
        if done:
            self.reject("completed")
            return self.voice_twiml.goodbye
        if stored is None:
            stored = store.record(sid, step, decide(), now=self._now(), relay=relay)
        else:
            RETRIES.labels(endpoint=step.split(":")[0]).inc()
        return self._render_voice(stored, relay, sid)

    def _render_voice(self, decision: StepDecision, relay: str, sid: str, copy: bytes = b"") -> str:
        if decision.action == "connect":
            opened = self._open(decision, relay, sid, copy)
            if opened is None:
                return self.voice_twiml.goodbye
            number, options = opened
            _CALL_CONNECTS.inc()
            time_limit = self.settings.call_time_limit
            if options.record:
                return self.voice_for(options.language).connect_recorded(
                    relay=relay, number=number, time_limit=time_limit, call_sid=sid
                )
            return twiml.connect(relay=relay, number=number, time_limit=time_limit)
        if decision.action == "gather":
            return self.voice_twiml.gather(
                digits=decision.digits or self.settings.extension_digits,
                attempt=decision.attempt,
                retry=decision.attempt > 1,
            )
        if decision.reason == "locked_down":
            return self.voice_twiml.try_later
        if decision.reason in _WRONG_EXTENSION | {"locked_out"}:
            return self.voice_twiml.goodbye
        if decision.reason == "quota":
            # A party of the binding (a quota counts connects): its language.
            return self.voice_for(self._binding_language(decision.binding_id)).rejected
        return self.voice_twiml.rejected

    # -- sms -------------------------------------------------------------------

    def sms(self, *, message_sid: str, relay: str, sender: str, body: str, media: list[str]) -> str:
        try:
            index = self.caller_index(sender)
            decision, optouts, copy = self._run_step(
                "sms", message_sid, "sms:1", relay, sender, extension="", attempt=1, index=index
            )
            if decision is None:
                return twiml.EMPTY_MESSAGING
            keyword = optout.classify(body) if decision.action == "connect" else None
            if keyword is not None and index is not None:
                handled = self._keyword(keyword, message_sid, relay, index, decision, body)
                if handled is not None:
                    return handled
            return self._render_sms(
                decision, message_sid, relay, body, media, optouts=optouts, index=index, copy=copy
            )
        except Exception as exc:
            return self.apology("sms", exc)

    def _keyword(
        self, keyword: optout.Keyword, sid: str, relay: str, index: bytes, decision: StepDecision, body: str
    ) -> str | None:
        """A party's opt-out or opt-in word: the set changes, and a word that is
        not forwarded is recorded as an interaction instead. None: forward it."""
        store = optout.OptOutStore(self.backends.redis)
        if keyword is optout.Keyword.OPT_OUT:
            store.opt_out(relay, index)
        elif keyword is optout.Keyword.OPT_IN:
            store.opt_in(relay, index)
        if optout.is_forwarded(body):
            return None
        status = "opted_out" if keyword is optout.Keyword.OPT_OUT else "opted_in"
        self.steps().overrule(relay, sid, "sms:1", self.reject(status, binding_id=decision.binding_id))
        self._keyword_interaction(sid, decision, keyword)
        # Twilio answers STOP and START itself on its numbers: nothing more to say.
        return twiml.EMPTY_MESSAGING

    def _keyword_interaction(self, sid: str, decision: StepDecision, keyword: optout.Keyword) -> None:
        try:
            with self.db.session() as session:
                owner = session.execute(
                    select(Binding.owner).where(Binding.id == decision.binding_id)
                ).scalar_one_or_none()
                if session.get(Interaction, sid) is None:
                    session.add(
                        optout.keyword_interaction(
                            sid=sid,
                            binding_id=decision.binding_id or "",
                            owner=owner or "",
                            from_role=decision.from_role or "",
                            kind=keyword,
                            now=self.services.clock(),
                        )
                    )
        except Exception as exc:  # the set has changed; only the record is lost
            self._failure("sms_keyword", exc)

    def _render_sms(
        self,
        decision: StepDecision,
        sid: str,
        relay: str,
        body: str,
        media: list[str],
        *,
        optouts: bool,
        index: bytes | None,
        copy: bytes = b"",
    ) -> str:
        language = self.settings.voice_language
        if decision.action == "connect":
            opened = self._open(decision, relay, sid, copy)
            if opened is None:
                return twiml.EMPTY_MESSAGING
            number, options = opened
            language = options.language or language
            policy = options.sms
            if media and policy.media == "refuse":
                refused = self.reject("media_refused", binding_id=decision.binding_id)
                self.steps().overrule(relay, sid, "sms:1", refused)
                return twiml.sms_reply("media_refused", language)
            if optouts and self._opted_out(relay, number):
                # Its recipient asked for no more texts from this number.
                dropped = self.reject("recipient_opted_out", binding_id=decision.binding_id)
                self.steps().overrule(relay, sid, "sms:1", dropped)
                return twiml.sms_reply("recipient_opted_out", language)
            CONNECTS.labels(type="sms").inc()
            return twiml.message(
                to=number,
                relay=relay,
                body=self._cleaned(relay, decision, index, body, policy),
                media=media if policy.media == "forward" else None,
                action=f"{self.path_prefix}/webhooks/twilio/sms/status?ref={sid}&x={quote(relay)}",
            )
        # Replies go back to the sender only, from the relay number.
        if decision.reason in ("quota", "media_refused", "recipient_opted_out"):
            # A party of the binding: answered in the binding's language.
            return twiml.sms_reply(decision.reason, self._binding_language(decision.binding_id) or language)
        return twiml.EMPTY_MESSAGING

    def _cleaned(
        self, relay: str, decision: StepDecision, index: bytes | None, body: str, policy: SmsPolicy
    ) -> str:
        """The body as the binding's policy says, a number split over the
        sender's consecutive texts included (the carried digits sealed in Redis)."""
        region = self.settings.default_region
        if index is None or not decision.binding_id:
            return policy.clean(body, region=region)
        if self._carry is None:
            self._carry = SmsCarry(
                redis=self.backends.redis, keyring=self.services.keys.current, region=region
            )
        now = self.services.clock()
        return self._carry.check(relay, decision.binding_id, index, body, now, policy=policy, region=region)

    def _opted_out(self, relay: str, number: str) -> bool:
        index = short_index(self.services.vault.index_of(number))
        return optout.OptOutStore(self.backends.redis).is_opted_out(relay, index)

    # -- recording -------------------------------------------------------------

    def whisper(self, language: str | None = None) -> str:
        """What the called party hears before a recorded call is joined, in
        the binding's language (named in the whisper URL the <Dial> gave)."""
        return self.voice_for(language).whisper

    def recording_status(self, event: RecordingEvent, *, relays: list[str]) -> None:
        """Store a recording under the binding of the call it recorded."""
        try:
            _, info = self._decision_store().finish(event.call_sid, "", relays=relays, done=False)
            binding_id = info.get("b") or self._binding_of_interaction(event.call_sid)
            if not binding_id:
                # Only connected calls of recorded bindings are recorded, so
                # this is a forged or very late callback: nothing to file it under.
                self.reject("no_binding")
                log.warning("recording %s names a call maskline did not connect", event.sid)
                return
            store_recording(self.db, event, binding_id=binding_id, now=self.services.clock())
        except Exception as exc:
            self._failure("recording", exc)

    def _binding_of_interaction(self, call_sid: str) -> str | None:
        with self.db.session() as session:
            return session.execute(
                select(Interaction.binding_id).where(Interaction.sid == call_sid)
            ).scalar_one_or_none()

    # -- status callbacks ------------------------------------------------------
    # ``relays`` are the numbers the record may be under, most likely first:
    # the number called (inbound), or the number that called (click-to-call,
    # forwarded messages).

    def voice_status(self, *, call_sid: str, status: str, duration: int | None, relays: list[str]) -> None:
        ended = status in TERMINAL_CALL_STATUSES
        self._status(call_sid, "call", status, duration, done=ended, ended=ended, relays=relays)

    def sms_status(self, *, message_sid: str, status: str, relays: list[str]) -> None:
        # Any status means the message was acted on: a replay must not resend it.
        ended = status in TERMINAL_SMS_STATUSES
        self._status(message_sid, "sms", status, None, done=True, ended=ended, relays=relays)

    def _status(
        self,
        sid: str,
        kind: str,
        status: str,
        duration: int | None,
        *,
        done: bool,
        ended: bool,
        relays: list[str],
    ) -> None:
        try:
            store = self._decision_store()
            relay, info = store.finish(sid, status, relays=relays, done=done)
            if info.get("b"):
                self._store_interaction(sid, kind, status, duration, info, ended=ended)
                if ended:
                    store.settle(sid, relay=relay, now=self._now())
                for listener in self.status_listeners:
                    try:
                        listener(sid, kind, status, info, ended)
                    except Exception as exc:
                        log.warning("status listener failed: %s", type(exc).__name__)
        except Exception as exc:
            self._failure(f"{kind}_status", exc)

    def _store_interaction(
        self, sid: str, kind: str, status: str, duration: int | None, info: dict[str, str], *, ended: bool
    ) -> None:
        now = self.services.clock()
        started = dt_from_epoch(int(info["t"])) if info.get("t") else now
        for _ in range(2):  # a concurrent first insert of the same sid: update instead
            try:
                with self.db.session() as session:
                    row = session.get(Interaction, sid)
                    if row is None:
                        owner = session.execute(
                            select(Binding.owner).where(Binding.id == info["b"])
                        ).scalar_one_or_none()
                        row = Interaction(
                            sid=sid,
                            binding_id=info["b"],
                            owner=owner or "",
                            type=kind,
                            from_role=info.get("fr", ""),
                            to_role=info.get("tr", ""),
                            status=status,
                            started_at=started,
                        )
                        session.add(row)
                    elif row.ended_at is not None and not ended:
                        return  # a late "ringing" never overwrites a final status
                    row.status = status
                    if duration is not None:
                        row.duration = duration
                    if ended and row.ended_at is None:
                        row.ended_at = now
                        # Once per interaction, committed with its final status.
                        self.services.events.outbox.interaction_completed(session, row)
                return
            except IntegrityError:
                continue

    # -- helpers ---------------------------------------------------------------

    # -- alerts ----------------------------------------------------------------
    # A decision is made once per (sid, step), so a retried step is not
    # counted twice. Signals only go to the alerts' in-process queue: no Redis
    # and no SQL on this path (see maskline.audit.alerts), and never an error.

    def _refused(self, relay: str, index: bytes | None, reason: str | None) -> None:
        """A call or message refused: counted if it came from a non-party."""
        if reason not in STRANGER_REASONS:
            return
        try:
            self.services.alerts.stranger(
                relay=self._relay_subject(relay), caller=caller_subject(index), at=self.services.clock()
            )
        except Exception as exc:  # an alert never fails a call
            self._alert_failed(exc)

    def _lockdown(self, relay: str, wrong: int) -> None:
        LOCKDOWNS.inc()
        log.warning("extension lockdown on %s after %d wrong extensions", relay, wrong)
        try:
            at = self.services.clock()
            until = at + self.settings.extension_lockout
            self.services.alerts.extension_lockdown(relay=relay, wrong=wrong, until=until, at=at)
        except Exception as exc:
            self._alert_failed(exc)

    def _wrong_extension(self, relay: str, index: bytes | None) -> None:
        try:
            self.services.alerts.wrong_extension(
                relay=self._relay_subject(relay), caller=caller_subject(index), at=self.services.clock()
            )
        except Exception as exc:
            self._alert_failed(exc)

    def _contact(self, index: bytes | None, decision: StepDecision) -> StepDecision:
        """``decision``, after counting a connect to a buyer as the caller's contact."""
        if decision.action == "connect" and decision.target_role == BUYER_ROLE:
            try:
                self.services.alerts.contacted(
                    caller=caller_subject(index), buyer=decision.target_token, at=self.services.clock()
                )
            except Exception as exc:
                self._alert_failed(exc)
        return decision

    def _relay_subject(self, relay: str) -> str | None:
        # Only maskline's own relay numbers (public) name an alert.
        return relay if relay in self.pool else None

    @staticmethod
    def _alert_failed(exc: Exception) -> None:
        ALERT_FAILURES.labels(stage="internal").inc()
        log.warning("alert signal failed: %s", type(exc).__name__)

    # One statement: the target's sealed number and the binding's options.
    # Decisions come from Redis; this read only opens what they name.
    # Redis's decision record says whether the call is over; SQL says it too
    # once the end has committed, which still holds after Redis lost its data
    # (a replayed request must not get a number back then either). Both
    # primary-key lookups ride in the same statement: no second round trip.
    _CONNECT_READ = (
        "SELECT v.purpose, v.wrapped_key, v.ciphertext, v.erased_at,"
        " b.record, b.sms_redact, b.sms_media, b.relay_number,"
        " (SELECT i.ended_at FROM interactions i WHERE i.sid = %s), b.language"
        " FROM vault_entries v LEFT JOIN bindings b ON b.id = %s"
        " WHERE v.token = %s"
    )
    _CONNECT_TYPES = (
        "text",
        "bytea",
        "bytea",
        "timestamp",
        "bool",
        "text",
        "text",
        "text",
        "timestamp",
        "text",
    )

    def _open(
        self, decision: StepDecision, relay: str, sid: str, copy: bytes = b""
    ) -> tuple[str, BindingOptions] | None:
        """The target's number (for the TwiML only) and the binding's options:
        from the binding's route copy when it opens (no SQL: step.lua's
        record already said the call is not over), else in one prepared
        statement; None if SQL knows call or message ``sid`` is over (a
        replay); any failure is BackendUnavailable."""
        token, binding_id = decision.target_token, decision.binding_id
        if not token or not binding_id:
            raise BackendUnavailable("connect decision without a target")
        if copy:
            opened = self._open_copy(copy, decision, relay)
            if opened is not None:
                return opened
        try:
            row = self.fast_sql.row(self._CONNECT_READ, (sid, binding_id, token), self._CONNECT_TYPES)
        except Exception as exc:  # DB down or timed out: never a wrong number
            raise BackendUnavailable(f"connect read: {type(exc).__name__}") from None
        if row is None or row[7] is None:
            # A route names a target or binding SQL does not have: never act on it.
            raise BackendUnavailable("connect read: unknown target or binding")
        purpose, wrapped_key, ciphertext, erased_at, record, redact, media, binding_relay, ended, language = (
            row
        )
        if ended is not None:
            self.reject("completed")
            return None
        if binding_relay != relay:
            # Only ever the binding's own relay number as caller ID.
            raise BackendUnavailable("connect read: the binding has another relay number")
        try:
            number = self.services.vault.open_row(
                token, purpose=purpose, wrapped_key=wrapped_key, ciphertext=ciphertext, erased_at=erased_at
            )
        except Exception as exc:  # erased, integrity: never a wrong number
            raise BackendUnavailable(f"vault: {type(exc).__name__}") from None
        default = self.sms_policy
        sms = SmsPolicy(
            redact=default.redact if redact is None else frozenset(filter(None, redact.split(","))),
            media=default.media if media is None else media,
        )
        return number, BindingOptions(record=bool(record), sms=sms, relay=binding_relay, language=language)

    def _open_copy(
        self, copy: bytes, decision: StepDecision, relay: str
    ) -> tuple[str, BindingOptions] | None:
        """The target's number and options from the route copy, or None (a
        copy that does not open, e.g. sealed under a retired KEK: SQL then).
        The copy's AAD names this relay number, binding and roles, so it
        never gives another binding's number."""
        binding_id, target = decision.binding_id or "", decision.target_role or ""
        roles = [decision.from_role or "", target]
        try:
            numbers, o = open_copy(
                self.services.keys.current(), copy, relay=relay, binding_id=binding_id, roles=roles
            )
            number = numbers[target]
        except Exception as exc:
            COPY_MISSES.inc()
            log.debug("route copy not used: %s", type(exc).__name__)
            return None
        default = self.sms_policy
        sms = SmsPolicy(
            redact=default.redact
            if o.sms_redact is None
            else frozenset(filter(None, o.sms_redact.split(","))),
            media=default.media if o.sms_media is None else o.sms_media,
        )
        return number, BindingOptions(record=o.record, sms=sms, relay=relay, language=o.language)

    # The language of a binding whose party is answered without a connect
    # (its quota is used up): a primary-key read on that rare path only.
    _LANGUAGE_READ = "SELECT b.language FROM bindings b WHERE b.id = %s"

    def _binding_language(self, binding_id: str | None) -> str | None:
        """A binding's own language, or None (the deployment's) when it has
        none or SQL cannot say: the words are all that depend on it."""
        if not binding_id:
            return None
        try:
            row = self.fast_sql.row(self._LANGUAGE_READ, (binding_id,), ("text",))
        except Exception as exc:
            log.warning("binding language read failed: %s", type(exc).__name__)
            return None
        return None if row is None else row[0]

    def voice_for(self, language: str | None) -> twiml.Voice:
        """The spoken answers in ``language`` (None or the deployment's: the
        configured voice and prompt; another: that language's own voice)."""
        if language is None or language == self.settings.voice_language or language not in LANGUAGES:
            return self.voice_twiml
        voice = self._voices.get(language)
        if voice is None:
            voice = self._voices[language] = twiml.Voice(
                language=language, voice=None, path_prefix=self.path_prefix, named_in_whisper=True
            )
        return voice

    def reject(self, reason: str, *, binding_id: str | None = None) -> StepDecision:
        """A reject decision, counted by reason."""
        REJECTIONS.labels(reason=reason).inc()
        self._tally_refusal(reason)
        return StepDecision.rejected(reason, binding_id=binding_id)

    def _tally_refusal(self, reason: str | None) -> None:
        """Queued for the overview's refusals by reason (no I/O here; see
        AlertService.refused), never an error."""
        try:
            self.services.alerts.refused(reason=reason, at=self.services.clock())
        except Exception as exc:
            self._alert_failed(exc)

    def _failure(self, endpoint: str, exc: Exception) -> None:
        FAILURES.labels(endpoint=endpoint).inc()
        # The exception type only: messages of drivers can quote input.
        log.warning("webhook %s failed closed: %s", endpoint, type(exc).__name__)

    def apology(self, endpoint: str, exc: Exception) -> str:
        """The answer to a backend failure: counted, logged by type, HTTP 200."""
        self._failure(endpoint, exc)
        REJECTIONS.labels(reason="unavailable").inc()
        self._tally_refusal("unavailable")
        if endpoint == "sms":
            return twiml.EMPTY_MESSAGING
        return self.voice_twiml.apology


def dt_from_epoch(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
