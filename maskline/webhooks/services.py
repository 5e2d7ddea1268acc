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
from urllib.parse import urlsplit

from prometheus_client import Counter
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from maskline.audit.alerts import ALERT_FAILURES, BUYER_ROLE, STRANGER_REASONS, caller_subject
from maskline.numbers.models import Binding
from maskline.numbers.routes import epoch
from maskline.webhooks import twiml
from maskline.webhooks.interfaces import (
    TERMINAL_CALL_STATUSES,
    TERMINAL_SMS_STATUSES,
    BackendUnavailable,
    StepDecision,
)
from maskline.webhooks.models import Interaction
from maskline.webhooks.policy import BindingOptions, BindingOptionsCache, SmsPolicy
from maskline.webhooks.recordings import RecordingEvent, store_recording

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
RETRIES = Counter(
    "maskline_webhook_retries", "Repeated steps answered from the stored decision", ["endpoint"]
)
CONNECTS = Counter("maskline_webhook_connects", "Calls and messages forwarded", ["type"])

# A wrong extension gets one more try, then goodbye.
EXTENSION_ATTEMPTS = 2
# Reasons an extension attempt counts as wrong. The caller hears the same
# for all three, so guessing learns nothing about which extensions exist.
_WRONG_EXTENSION = frozenset({"bad_extension", "stranger", "expired"})
SMS_QUOTA_REPLY = "Sorry, this number has reached its message limit for now."
SMS_MEDIA_REPLY = "Sorry, pictures and files cannot be forwarded through this number."


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _lua(name: str) -> str:
    return (resources.files("maskline.webhooks") / "lua" / f"{name}.lua").read_text()


class DecisionStore:
    """Stored step decisions per sid (``ml:wh:{SID}``), with a TTL."""

    def __init__(self, client: Any, *, ttl_seconds: int, ended_ttl_seconds: int | None = None) -> None:
        self.client = client
        self.ttl = ttl_seconds
        self.ended_ttl = ttl_seconds if ended_ttl_seconds is None else min(ended_ttl_seconds, ttl_seconds)
        self._record = client.register_script(_lua("record"))

    @classmethod
    def from_settings(cls, client: Any, settings: Any) -> DecisionStore:
        return cls(
            client,
            ttl_seconds=int(settings.webhook_dedupe_ttl.total_seconds()),
            ended_ttl_seconds=int(settings.webhook_ended_ttl.total_seconds()),
        )

    @staticmethod
    def key(sid: str) -> str:
        return f"ml:wh:{{{sid}}}"

    def lookup(self, sid: str, step: str) -> tuple[StepDecision | None, bool]:
        """(the stored decision of ``step``, whether the call or message is over)."""
        stored, done = self.client.hmget(self.key(sid), [step, "done"])
        return (StepDecision.loads(stored) if stored else None), done is not None

    def record(self, sid: str, step: str, decision: StepDecision, *, now: int) -> StepDecision:
        """Store ``decision`` unless a concurrent retry stored one first; return the winner."""
        connect = decision.action == "connect" and bool(decision.binding_id)
        roles = (decision.binding_id, decision.from_role, decision.target_role) if connect else ()
        args = [step, decision.dumps(), now, self.ttl, *(value or "" for value in roles or ("", "", ""))]
        stored = self._record(keys=[self.key(sid)], args=args)
        return StepDecision.loads(stored) if stored else decision

    def info(self, sid: str) -> dict[str, str]:
        return {_text(k): _text(v) for k, v in self.client.hgetall(self.key(sid)).items()}

    def mark_done(self, sid: str, status: str) -> None:
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(self.key(sid), "done", status)
        # NX: a record has its TTL from its first decision; only a husk made
        # here (a status for a sid never seen) needs one, and a late status
        # must not undo a settle().
        pipe.expire(self.key(sid), self.ttl, nx=True)
        pipe.execute()

    def settle(self, sid: str) -> None:
        """Shorten the record's life to the ended TTL: SQL now holds the end.

        Only after the interaction's end has committed: until then this
        record is what refuses a replay (``LT``: never lengthens it).
        """
        self.client.expire(self.key(sid), self.ended_ttl, lt=True)


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


class ExtensionGuard:
    """Locks out a caller who keys too many wrong extensions on one relay number."""

    def __init__(self, client: Any, *, max_failures: int, window_seconds: int, lockout_seconds: int) -> None:
        self.client = client
        self.max_failures = max_failures
        self.window = window_seconds
        self.lockout = lockout_seconds

    @staticmethod
    def key(relay: str, caller_hex: str) -> str:
        return f"ml:{{{relay}}}:xf:{caller_hex}"

    def locked(self, relay: str, caller_hex: str) -> bool:
        count = self.client.get(self.key(relay, caller_hex))
        return count is not None and int(count) >= self.max_failures

    def fail(self, relay: str, caller_hex: str) -> bool:
        """Count a wrong extension; True if the caller is now locked out."""
        key = self.key(relay, caller_hex)
        pipe = self.client.pipeline(transaction=True)
        pipe.set(key, 0, ex=self.window, nx=True)  # the window starts at the first failure
        pipe.incr(key)
        count = int(pipe.execute()[-1])
        if count >= self.max_failures:
            self.client.expire(key, self.lockout)
            return True
        return False


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
        self.pool = PoolDirectory(services)
        self.sms_policy = SmsPolicy(redact=settings.sms_redact, media=settings.sms_media)
        self._state: tuple[DecisionStore, Quotas, ExtensionGuard] | None = None
        self._options: BindingOptionsCache | None = None
        # Asked before a call or message is connected (the Twilio Proxy
        # face's intercept callback): (kind, decision, sid) -> go ahead? Each
        # bounds its own time; a "no" rejects the step, and one that raises
        # fails it closed like any backend failure (the apology).
        self.interceptors: list[Callable[[str, StepDecision, str], bool]] = []
        # Told of a call or text that a decision refused (kind, sid, relay,
        # caller, decision), e.g. the Twilio Proxy face's out-of-session
        # callback. Each must be cheap and never wait on the network; one that
        # raises is logged and changes nothing for the caller.
        self.rejections: list[Callable[[str, str, str, str, StepDecision], None]] = []

    def _tell_rejected(
        self, kind: str, sid: str, relay: str, caller: str, decision: StepDecision
    ) -> StepDecision:
        if decision.action == "reject" and self.rejections:
            for listener in self.rejections:
                try:
                    listener(kind, sid, relay, caller, decision)
                except Exception as exc:
                    log.warning("rejection listener failed: %s", type(exc).__name__)
        return decision

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

    # Redis-backed parts are built on first use: building them never connects.
    def _redis_parts(self) -> tuple[DecisionStore, Quotas, ExtensionGuard]:
        if self._state is None:
            client = self.backends.redis
            s = self.settings
            self._state = (
                DecisionStore.from_settings(client, s),
                Quotas(
                    client,
                    limits={
                        "call": (s.calls_per_hour, s.calls_per_day),
                        "sms": (s.sms_per_hour, s.sms_per_day),
                    },
                ),
                ExtensionGuard(
                    client,
                    max_failures=s.extension_max_failures,
                    window_seconds=int(s.extension_failure_window.total_seconds()),
                    lockout_seconds=int(s.extension_lockout.total_seconds()),
                ),
            )
        return self._state

    @property
    def router(self) -> Router:
        return self.backends.router

    def _now(self) -> int:
        return epoch(self.services.clock())

    def options_of(self, binding_id: str | None) -> BindingOptions:
        """A binding's recording and SMS policy (its own, else the deployment's)."""
        if not binding_id:
            raise BackendUnavailable("a decision without a binding")
        if self._options is None:
            self._options = BindingOptionsCache(db=self.db, default_sms=self.sms_policy)
        return self._options.get(binding_id)

    def policy_for(self, binding_id: str | None) -> SmsPolicy:
        """The SMS policy of a binding."""
        return self.options_of(binding_id).sms

    # -- voice -----------------------------------------------------------------

    def voice(self, *, call_sid: str, relay: str, caller: str) -> str:
        try:
            return self.answer_step(
                call_sid,
                "voice:1",
                relay,
                lambda: self._tell_rejected(
                    "call",
                    call_sid,
                    relay,
                    caller,
                    self._intercept("call", call_sid, self._decide_call(relay, caller)),
                ),
            )
        except Exception as exc:  # never a 500 to Twilio, never a wrong party
            return self.apology("voice", exc)

    def extension(self, *, call_sid: str, relay: str, caller: str, digits: str, attempt: int) -> str:
        try:
            return self.answer_step(
                call_sid,
                f"ext:{attempt}",
                relay,
                lambda: self._intercept(
                    "call", call_sid, self._decide_extension(relay, caller, digits, attempt)
                ),
            )
        except Exception as exc:
            return self.apology("extension", exc)

    def answer_step(self, sid: str, step: str, relay: str, decide: Any) -> str:
        """The TwiML of one voice step: the stored decision of (sid, step) if
        any (a retry), none for a call that is over (a replay), else
        ``decide()``, stored first. Also used by the click-to-call bridge."""
        store = self._redis_parts()[0]
        stored, done = store.lookup(sid, step)
        if done:
            # The call is over: a replayed request connects no one.
            self.reject("completed")
            return self.voice_twiml.goodbye
        if stored is None:
            stored = store.record(sid, step, decide(), now=self._now())
        else:
            RETRIES.labels(endpoint=step.split(":")[0]).inc()
        return self._render_voice(stored, relay, sid)

    def _decide_call(self, relay: str, caller: str) -> StepDecision:
        if caller in self.pool:
            return self.reject("relay_caller")
        index = self.router.caller_index(caller)  # once: route, lockout and alerts key on it
        route = self.router.resolve(relay, caller, caller_index=index)
        if route.reason == "unavailable":
            raise BackendUnavailable("routing unavailable")
        if route.reason == "extension_required":
            if self._redis_parts()[2].locked(relay, index.hex() if index is not None else "anonymous"):
                return self.reject("locked_out")
            return StepDecision(action="gather", attempt=1)
        if route.action == "connect":
            return self._contact(index, self._within_quota(relay, StepDecision.from_route(route), "call"))
        self._refused(relay, index, route.reason)
        return self.reject(route.reason or "unavailable", binding_id=route.binding_id)

    def _decide_extension(self, relay: str, caller: str, digits: str, attempt: int) -> StepDecision:
        if caller in self.pool:
            return self.reject("relay_caller")
        guard = self._redis_parts()[2]
        index = self.router.caller_index(caller)  # once: the lockout and the route both key on it
        caller_hex = index.hex() if index is not None else "anonymous"
        if guard.locked(relay, caller_hex):
            return self.reject("locked_out")
        route = self.router.resolve(relay, caller, digits, caller_index=index)
        if route.reason == "unavailable":
            raise BackendUnavailable("routing unavailable")
        if route.action == "connect":
            return self._contact(index, self._within_quota(relay, StepDecision.from_route(route), "call"))
        if route.reason in _WRONG_EXTENSION:
            self._wrong_extension(relay, index)
            if guard.fail(relay, caller_hex):
                LOCKOUTS.inc()
                return self.reject("locked_out")
            if attempt < EXTENSION_ATTEMPTS:
                return StepDecision(action="gather", attempt=attempt + 1)
        return self.reject(route.reason or "unavailable", binding_id=route.binding_id)

    def _render_voice(self, decision: StepDecision, relay: str, sid: str) -> str:
        if decision.action == "connect":
            options = self.options_of(decision.binding_id)
            if options.relay != relay:
                # A retry of the sid sent to another number: the stored connect
                # never goes out with a caller ID that is not its binding's relay.
                self.reject("wrong_relay")
                return self.voice_twiml.rejected
            record = options.record
            number = self._open(decision.target_token, sid)
            if number is None:
                self._over(sid)
                return self.voice_twiml.goodbye
            CONNECTS.labels(type="call").inc()
            time_limit = self.settings.call_time_limit
            if record:
                return self.voice_twiml.connect_recorded(
                    relay=relay, number=number, time_limit=time_limit, call_sid=sid
                )
            return twiml.connect(relay=relay, number=number, time_limit=time_limit)
        if decision.action == "gather":
            return self.voice_twiml.gather(
                digits=self.settings.extension_digits, attempt=decision.attempt, retry=decision.attempt > 1
            )
        if decision.reason in _WRONG_EXTENSION | {"locked_out"}:
            return self.voice_twiml.goodbye
        return self.voice_twiml.rejected

    # -- sms -------------------------------------------------------------------

    def sms(self, *, message_sid: str, relay: str, sender: str, body: str, media: list[str]) -> str:
        try:
            store = self._redis_parts()[0]
            stored, done = store.lookup(message_sid, "sms:1")
            if done:
                self.reject("completed")
                return twiml.EMPTY_MESSAGING
            if stored is None:
                decision = self._tell_rejected(
                    "sms",
                    message_sid,
                    relay,
                    sender,
                    self._intercept(
                        "sms", message_sid, self._decide_sms(relay, sender, has_media=bool(media))
                    ),
                )
                stored = store.record(message_sid, "sms:1", decision, now=self._now())
            else:
                RETRIES.labels(endpoint="sms").inc()
            return self._render_sms(stored, message_sid, relay, body, media)
        except Exception as exc:
            return self.apology("sms", exc)

    def _decide_sms(self, relay: str, sender: str, *, has_media: bool) -> StepDecision:
        if sender in self.pool:
            return self.reject("relay_caller")
        index = self.router.caller_index(sender)
        route = self.router.resolve(relay, sender, caller_index=index)
        if route.reason == "unavailable":
            raise BackendUnavailable("routing unavailable")
        if route.action != "connect":
            self._refused(relay, index, route.reason)
            return self.reject(route.reason or "unavailable", binding_id=route.binding_id)
        if has_media and self.policy_for(route.binding_id).media == "refuse":
            return self.reject("media_refused", binding_id=route.binding_id)
        return self._contact(index, self._within_quota(relay, StepDecision.from_route(route), "sms"))

    def _render_sms(self, decision: StepDecision, sid: str, relay: str, body: str, media: list[str]) -> str:
        if decision.action == "connect":
            options = self.options_of(decision.binding_id)
            if options.relay != relay:  # as for calls: only ever from the binding's relay
                self.reject("wrong_relay")
                return twiml.EMPTY_MESSAGING
            policy = options.sms
            number = self._open(decision.target_token, sid)
            if number is None:
                self._over(sid)
                return twiml.EMPTY_MESSAGING
            CONNECTS.labels(type="sms").inc()
            return twiml.message(
                to=number,
                relay=relay,
                body=policy.clean(body, region=self.settings.default_region),
                media=media if policy.media == "forward" else None,
                action=f"{self.path_prefix}/webhooks/twilio/sms/status?ref={sid}",
            )
        # Replies go back to the sender only, from the relay number.
        if decision.reason == "quota":
            return twiml.reply(SMS_QUOTA_REPLY)
        if decision.reason == "media_refused":
            return twiml.reply(SMS_MEDIA_REPLY)
        return twiml.EMPTY_MESSAGING

    # -- recording -------------------------------------------------------------

    def whisper(self) -> str:
        """What the called party hears before a recorded call is joined."""
        return self.voice_twiml.whisper

    def recording_status(self, event: RecordingEvent) -> None:
        """Store a recording under the binding of the call it recorded."""
        try:
            info = self._redis_parts()[0].info(event.call_sid)
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

    def voice_status(self, *, call_sid: str, status: str, duration: int | None) -> None:
        ended = status in TERMINAL_CALL_STATUSES
        self._status(call_sid, "call", status, duration, done=ended, ended=ended)

    def sms_status(self, *, message_sid: str, status: str) -> None:
        # Any status means the message was acted on: a replay must not resend it.
        ended = status in TERMINAL_SMS_STATUSES
        self._status(message_sid, "sms", status, None, done=True, ended=ended)

    def _status(
        self, sid: str, kind: str, status: str, duration: int | None, *, done: bool, ended: bool
    ) -> None:
        try:
            store = self._redis_parts()[0]
            if done:
                store.mark_done(sid, status)
            info = store.info(sid)
            if info.get("b"):
                self._store_interaction(sid, kind, status, duration, info, ended=ended)
                if ended:
                    store.settle(sid)
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

    def _within_quota(self, relay: str, decision: StepDecision, kind: str) -> StepDecision:
        quotas = self._redis_parts()[1]
        if quotas.take(relay, decision.binding_id or "", kind, now=self._now()):
            return decision
        return self.reject("quota", binding_id=decision.binding_id)

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

    def _open(self, token: str | None, sid: str) -> str | None:
        """The target's number, for the TwiML only; None if SQL says the call
        or message ``sid`` is already over; any failure is BackendUnavailable.

        Redis remembers finished calls for the de-duplication TTL only, and
        not at all once it has lost its data: a replayed request must still
        not get a number back, so the (durable) interaction is asked too.
        """
        if not token:
            raise BackendUnavailable("connect decision without a target")
        vault = self.services.vault

        ended = select(Interaction.ended_at).where(Interaction.sid == sid).scalar_subquery()

        def read(connection: Any) -> str | None:
            return vault.open_readonly_unless(connection, token, unless=ended)

        try:
            # One SELECT of two primary-key lookups, in AUTOCOMMIT (retried
            # once if PostgreSQL restarted).
            return self.db.read(read)
        except Exception as exc:  # DB down, erased, integrity: never a wrong number
            raise BackendUnavailable(f"vault: {type(exc).__name__}") from None

    def _over(self, sid: str) -> None:
        """A connect for a call or message SQL knows has ended: a replay. Remember it."""
        self.reject("completed")
        store = self._redis_parts()[0]
        store.mark_done(sid, "completed")
        store.settle(sid)

    @staticmethod
    def reject(reason: str, *, binding_id: str | None = None) -> StepDecision:
        """A reject decision, counted by reason."""
        REJECTIONS.labels(reason=reason).inc()
        return StepDecision.rejected(reason, binding_id=binding_id)

    def _failure(self, endpoint: str, exc: Exception) -> None:
        FAILURES.labels(endpoint=endpoint).inc()
        # The exception type only: messages of drivers can quote input.
        log.warning("webhook %s failed closed: %s", endpoint, type(exc).__name__)

    def apology(self, endpoint: str, exc: Exception) -> str:
        """The answer to a backend failure: counted, logged by type, HTTP 200."""
        self._failure(endpoint, exc)
        REJECTIONS.labels(reason="unavailable").inc()
        if endpoint == "sms":
            return twiml.EMPTY_MESSAGING
        return self.voice_twiml.apology


def dt_from_epoch(seconds: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, dt.UTC)
