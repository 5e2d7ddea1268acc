"""Typed settings for maskline: the one place the process environment is read.

``load_settings()`` builds a frozen :class:`Settings` from defaults, then the
environment, then explicit overrides (tests pass theirs here). Nothing else in
the code base reads ``os.environ``.

Each setting is declared once, as a field of :class:`Settings` with
:func:`~config.declare.setting` (type, default, range, doc): the environment
variable, its parser, the validation of every Settings made and the table in
docs/configuration.md all come from that line. To add a setting, add one::

    my_limit: int = setting(10, range=(1, 1000), doc="what it limits, for the docs")

then ``python -m config.doc`` (the docs table; a unit test checks it).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from config.declare import Declared, SettingsError, declared, parse_duration, setting
from config.parsing import (
    API_SCOPES,
    CONSOLE_LANGUAGES,
    DEFAULT_API_RATE_LIMITS,
    SMS_REDACTIONS,
    VOICE_LANGUAGES,
    parse_account_sid,
    parse_console_language,
    parse_limit,
    parse_log_level,
    parse_number_types,
    parse_outbound_allow,
    parse_public_url,
    parse_rate_limits,
    parse_region,
    parse_region_set,
    parse_sms_redact,
    parse_timezone,
    parse_working_days,
    parse_working_hours,
)
from config.redis_url import RedisUrlError, is_cluster_url, parse_cluster_url

if TYPE_CHECKING:
    from maskline.outbound import IPNetwork, OutboundPolicy

Environment = Literal["development", "production", "testing"]
ENVIRONMENTS: tuple[Environment, ...] = ("development", "production", "testing")

# Named for what it is, so that nobody mistakes it for a secret; production
# refuses to start with it (see Settings.problems()).
INSECURE_DEVELOPMENT_SECRET = "insecure-development-key"  # noqa: S105 (named so; refused in production)
# The shortest MASKLINE_SECRET_KEY production accepts.
MIN_SECRET_KEY_BYTES = 32
# In development, without MASKLINE_TWILIO_AUTH_TOKEN, the webhook token is
# read from this file in the instance folder (``maskline init`` writes it),
# so that ``maskline serve`` and ``maskline sim`` agree out of the box.
DEVELOPMENT_TOKEN_FILE = "twilio-auth-token.dev"  # noqa: S105 (a file name)

# phonenumbers' PhoneNumberType names refused as party numbers by default:
# calls to them cost the platform money or reach services, not people.
DEFAULT_REFUSED_NUMBER_TYPES = frozenset({"PREMIUM_RATE", "SHARED_COST"})

# Twilio's REST API; MASKLINE_TWILIO_API_URL may name a regional edge or a gateway.
TWILIO_API_URL = "https://api.twilio.com"

# Counts a deployment could plausibly want, and no more: a typo of three
# zeros is refused rather than obeyed.
_COUNT = (1, 100_000)
_ALERT = (1, 1_000_000)


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob maskline has, with development defaults.

    ``redis_url`` set to ``None`` selects the embedded development Redis
    (a fakeredis TCP server started by ``maskline serve``); ``database_url``
    defaults to a SQLite file under ``instance_path``.
    """

    env: Environment = setting(
        "development", choices=ENVIRONMENTS, doc="`development`, `production` or `testing`"
    )
    instance_path: Path = setting(
        factory=lambda: Path.cwd() / "instance", shown="`./instance`", doc="where development state lives"
    )
    database_url: str = setting(
        "",
        shown="SQLite file under the instance folder",
        doc="PostgreSQL in production (`postgresql://…`)",
    )
    redis_url: str | None = setting(
        None,
        shown="embedded fakeredis",
        doc="`redis://host:port/db`, or a Redis Cluster: `redis+cluster://host:port[,host:port...]` "
        "(startup nodes; database 0 only). Every key about relay number X carries the tag `{X}`, so each "
        "script stays on one slot; readiness pings every primary",
    )
    keys_file: Path | None = setting(None, shown="`instance/keys.json`", doc="the key ring file (mode 0600)")
    # The key ring as JSON, for deployments that inject secrets through the
    # environment instead of a file. Takes precedence over keys_file.
    keys_json: str | None = setting(None, env="MASKLINE_KEYS", doc="the key ring as JSON, instead of a file")
    default_region: str = setting(
        "US", parse=parse_region, doc="region for numbers written without `+country`"
    )
    allowed_countries: frozenset[str] = setting(
        frozenset(),
        parse=parse_region_set,
        shown="any",
        doc="comma-separated regions party numbers may belong to",
    )
    refused_number_types: frozenset[str] = setting(
        DEFAULT_REFUSED_NUMBER_TYPES,
        parse=parse_number_types,
        shown="`PREMIUM_RATE,SHARED_COST`",
        doc="phonenumbers types refused as party numbers",
    )
    secret_key: str = setting(
        INSECURE_DEVELOPMENT_SECRET,
        doc="signs console sessions and CSRF tokens; production refuses the default and anything under "
        "32 bytes",
    )
    log_level: str = setting("INFO", parse=parse_log_level, doc="logging level")
    log_file: Path | None = setting(
        None,
        shown="stderr only",
        doc="a log file besides stderr; every record is scrubbed of phone numbers, gunicorn's access and "
        "error logs included (the access log has method, path with numbers masked, status, bytes and "
        "duration, never the query string)",
    )
    keyring_reload_seconds: float = setting(
        2.0, doc="how often (seconds) a process looks for a changed key file"
    )
    # -- numbers ------------------------------------------------------------
    max_bindings_per_number: int = setting(
        200, range=_COUNT, doc="live bindings one relay number carries (extensions included)"
    )
    extension_digits: int = setting(
        4, range=(1, 6), doc="extension length in axe mode (never a leading zero)"
    )
    # Allow-any bindings' extensions (anyone may key them): longer, so that
    # guessing costs more (issue 17).
    open_extension_digits: int = setting(
        6,
        range=(1, 8),
        doc="extension length of allow-any axe bindings, which anyone may key: they go only to relay numbers "
        "whose extensions are this long (a number's length changes only while it carries no live extension, "
        "so printed slips keep theirs; the Gather collects each number's own length)",
    )
    owner_max_live_bindings: int = setting(
        0,
        range=(0, 100_000_000),
        shown="`0` (no cap)",
        doc="live bindings an owner may hold when `maskline owner set-limits` gave it no cap of its own; at "
        "the cap a bind gets 409 `owner_limit_reached` (each compat face answers in its vendor's shape); "
        "checked in the same Redis step as the relay number's claim, so concurrent binds never overshoot "
        "([owner-limits.md](owner-limits.md))",
    )
    cooldown: dt.timedelta = setting(
        dt.timedelta(hours=24),
        doc="after a binding ends, its number is not given to its parties again, nor its extension reissued",
    )
    default_ttl: dt.timedelta = setting(dt.timedelta(hours=72), doc="binding lifetime when none is given")
    max_ttl: dt.timedelta = setting(dt.timedelta(days=90), doc="the longest binding lifetime allowed")
    retention: dt.timedelta = setting(
        dt.timedelta(days=90), doc="parties with no binding for this long are erased by the worker"
    )
    geo_policy: Literal["nearest", "strict", "global"] = setting(
        "nearest",
        choices=("nearest", "strict", "global"),
        doc="`nearest`: the buyer's area, city, province, then country, never another country (409 "
        "`pool_exhausted` naming it); `strict`: the area or a clear error; `global`: any country last "
        "([binding.md](binding.md))",
    )
    # After an order is marked delivered, its binding lives at most this long
    # (the courier may still need to call back; then the slip goes dead).
    delivery_grace: dt.timedelta = setting(
        dt.timedelta(hours=72), doc="after an order is marked delivered, its binding ends within this"
    )
    # Vault entries no binding uses are collected after this grace period
    # (it covers a binding request between its put and its commit).
    vault_gc_grace: dt.timedelta = setting(
        dt.timedelta(hours=1), doc="vault entries no binding uses are collected after this"
    )
    # -- webhooks -----------------------------------------------------------
    # Twilio signs the URL it called; behind a proxy that is not the URL the
    # app sees. public_url (scheme://host[/prefix]) wins; else, with
    # trust_proxy, X-Forwarded-Proto/Host; else the request's own URL.
    public_url: str | None = setting(
        None,
        parse=parse_public_url,
        doc="the URL Twilio and browsers use (`https://host[/prefix]`): signatures are checked against it "
        "behind TLS termination; required (https) in production",
    )
    trust_proxy: bool = setting(
        False, doc="without a public URL, take it from `X-Forwarded-Proto` / `X-Forwarded-Host`"
    )
    twilio_auth_token: str | None = setting(
        None,
        shown="development: `instance/twilio-auth-token.dev` (made by `maskline init`); elsewhere unset",
        doc="checks `X-Twilio-Signature`; without a token every webhook gets 403, and production refuses "
        "to start. `maskline serve` and `maskline sim` read the same development file, so a local "
        "simulated call is signed right with no flag",
    )
    # Set when twilio_auth_token is development's local webhook token (made by
    # `maskline init`): it signs local webhooks and the simulator, and is
    # never sent to Twilio's REST API as the account's credential. Derived,
    # not a setting.
    twilio_token_is_local: bool = False
    # Twilio's REST API (click-to-call, `maskline pool sync-twilio`): the
    # account the auth token belongs to, and where its API is reached. Not
    # needed at start-up: without the SID those two features say so.
    twilio_account_sid: str | None = setting(
        None,
        parse=parse_account_sid,
        doc="the account (`AC…`) whose REST API click-to-call and `pool sync-twilio` use, with the auth "
        "token; not needed to start: without it those two answer 503 / exit 1 naming it",
    )
    twilio_api_url: str = setting(
        TWILIO_API_URL,
        parse=parse_public_url,
        doc="where Twilio's REST API is reached: a regional edge (`https://api.dublin.ie1.twilio.com`) or "
        "an egress gateway",
    )
    call_time_limit: int = setting(
        3600, range=(60, 4 * 3600), doc="`timeLimit` of a relayed call, in seconds"
    )
    voice_language: str = setting(
        "en-US",
        choices=VOICE_LANGUAGES,
        doc="language of prompts (`en-US`, `zh-CN`); `zh-CN` when `MASKLINE_DEFAULT_REGION` is `CN`",
    )
    # None: the language's own voice (maskline/webhooks/prompts.py DEFAULT_VOICES).
    voice_name: str | None = setting(None, shown="the language's", doc="voice of prompts")
    extension_prompt: str | None = setting(
        None, shown="the language's", doc="what callers hear when asked for the extension"
    )
    extension_max_failures: int = setting(
        5,
        range=(1, 1000),
        doc="wrong extensions from one caller on one number within `MASKLINE_EXTENSION_FAILURE_WINDOW` "
        "lock it out for `MASKLINE_EXTENSION_LOCKOUT`",
    )
    # More wrong extensions than this on one relay number, from any callers,
    # within the window lock down its open extensions (per-caller lockouts
    # alone let rotating caller IDs guess on).
    extension_max_failures_per_number: int = setting(
        20,
        range=_COUNT,
        doc="more wrong extensions than this on one relay number, from any callers, within "
        "`MASKLINE_EXTENSION_FAILURE_WINDOW` lock down its open extensions for `MASKLINE_EXTENSION_LOCKOUT` "
        "(allow-listed and already-known callers still connect; see [webhook-path.md](webhook-path.md))",
    )
    extension_failure_window: dt.timedelta = setting(
        dt.timedelta(minutes=10), doc="the window wrong extensions are counted in"
    )
    extension_lockout: dt.timedelta = setting(
        dt.timedelta(minutes=15), doc="how long a caller (or a number's open extensions) stays locked out"
    )
    sms_redact: frozenset[str] = setting(
        frozenset({"phones", "links"}),
        parse=parse_sms_redact,
        shown="`phones,links`",
        doc="what is masked in forwarded SMS bodies (`none` for nothing)",
    )
    sms_media: Literal["forward", "refuse"] = setting(
        "refuse", choices=("forward", "refuse"), doc="`forward` or `refuse` MMS media"
    )
    calls_per_hour: int = setting(20, range=_COUNT, doc="per-binding quota of calls per hour")
    calls_per_day: int = setting(60, range=_COUNT, doc="per-binding quota of calls per day")
    sms_per_hour: int = setting(30, range=_COUNT, doc="per-binding quota of messages per hour")
    sms_per_day: int = setting(100, range=_COUNT, doc="per-binding quota of messages per day")
    webhook_dedupe_ttl: dt.timedelta = setting(
        dt.timedelta(days=7),
        doc="how long webhook decisions are kept: retries get the same answer, replays of ended calls none",
    )
    # Redis need not hold ~1 KB per call for the full de-duplication TTL (at
    # national scale, terabytes; docs/scaling.md).
    webhook_ended_ttl: dt.timedelta = setting(
        dt.timedelta(hours=1),
        doc="how long a connected call's or message's decisions stay in Redis once SQL has recorded its "
        "end (replays after that are refused from SQL); never longer than the de-duplication TTL",
    )
    # A hung backend costs a caller this long, then an apology, rather than
    # Twilio's own 15 s timeout and an error message.
    webhook_backend_timeout: float = setting(
        0.5,
        range=(0.05, 30.0),
        doc="seconds: the webhook path's Redis socket timeout and PostgreSQL statement timeout; past it "
        "the caller hears the apology",
    )
    # -- API ----------------------------------------------------------------
    api_rate_limits: Mapping[str, str] = setting(
        factory=lambda: dict(DEFAULT_API_RATE_LIMITS),
        parse=parse_rate_limits,
        shown="`" + ", ".join(f"{scope}={limit}" for scope, limit in DEFAULT_API_RATE_LIMITS.items()) + "`",
        doc="per-key limits by scope (`SCOPE=LIMIT[;LIMIT]`, comma-separated; the scopes named replace "
        "their defaults)",
    )
    idempotency_ttl: dt.timedelta = setting(
        dt.timedelta(hours=24), doc="how long an `Idempotency-Key`'s first answer is replayed"
    )
    api_max_body: int = setting(
        64 * 1024, range=(1024, 1024 * 1024), doc="bytes; a larger API request body gets 413"
    )
    # -- events -------------------------------------------------------------
    events_max_attempts: int = setting(
        12, range=(1, 100), doc="deliveries of one outbound event before it is marked failed (see Events)"
    )
    # -- Alibaba Dyplsapi face (maskline.compat.aliyun) ------------------------
    aliyun_max_skew: dt.timedelta = setting(
        dt.timedelta(minutes=15),
        doc="Alibaba face: how far a signed request's time may be from the server's; nonces are "
        "remembered for twice this",
    )
    aliyun_signature_v2: bool = setting(False, doc="Alibaba face: also accept the older HMAC-SHA1 signatures")
    aliyun_report_url: str | None = setting(
        None,
        parse=parse_public_url,
        doc="Alibaba face: where SecretReport call receipts (party numbers masked) are pushed (https); "
        "needs `MASKLINE_ALIYUN_REPORT_SECRET`",
    )
    aliyun_report_secret: str | None = setting(
        None, doc="Alibaba face: the secret SecretReport call receipts are signed with"
    )
    # -- metrics ------------------------------------------------------------
    metrics_token: str | None = setting(
        None, doc="when set, `/metrics` wants `Authorization: Bearer <token>`"
    )
    # -- admin console --------------------------------------------------------
    admin_session_ttl: dt.timedelta = setting(
        dt.timedelta(hours=8), doc="a console session ends this long after login"
    )
    admin_idle_timeout: dt.timedelta = setting(
        dt.timedelta(minutes=30), doc="a console session ends after this long without a request"
    )
    admin_max_failed_logins: int = setting(
        5, range=(1, 100), doc="failed passwords or TOTP codes in a row before an account is locked"
    )
    admin_lockout: dt.timedelta = setting(
        dt.timedelta(minutes=15), doc="how long a console account stays locked"
    )
    admin_cookie_secure: bool = setting(
        True,
        doc="the console cookie is `Secure` (browsers treat `http://localhost` as secure, so development "
        "works); production refuses `false`",
    )
    # On top of the per-(account, address) lockout: slows name spraying.
    admin_login_rate_limit: str = setting(
        "10/minute;100/hour",
        parse=parse_limit,
        doc="console login attempts per client address ([console-security.md](console-security.md))",
    )
    # As werkzeug's ProxyFix x_for counts them: the client address is the Nth
    # entry from the right.
    trusted_proxies: int = setting(
        0,
        range=(0, 10),
        doc="how many reverse proxies' `X-Forwarded-For` entries to believe (ProxyFix's x_for); 0: the "
        "socket's peer is the client",
    )
    console_language: str = setting(
        "en",
        parse=parse_console_language,
        choices=CONSOLE_LANGUAGES,
        doc="the console's language when neither the admin's own setting nor the browser's names one it "
        "has (`en` or `zh-CN`)",
    )
    display_timezone: str = setting(
        "UTC",
        parse=parse_timezone,
        doc="the IANA zone console times and CLI tables are shown in, with their offset (each admin may "
        "choose their own; the API stays UTC)",
    )
    # -- dual-control reveal ------------------------------------------------
    reveal_request_ttl: dt.timedelta = setting(
        dt.timedelta(hours=24), doc="a pending reveal request lapses after this"
    )
    reveal_view_window: dt.timedelta = setting(
        dt.timedelta(minutes=15), doc="an approved reveal may be viewed once within this"
    )
    reveal_daily_limit: int = setting(
        3, range=(0, 1000), doc="reveal requests one security admin may make per UTC day"
    )
    reveal_notice: bool = setting(
        False,
        doc="`true`: each new reveal request is also a `reveal_requested` alert, sent through the alerts "
        "channel (`MASKLINE_ALERTS_URL`) so approvers hear of it",
    )
    # From 07:00: a mainland courier's day (and its support desk's) starts early.
    working_hours: tuple[dt.time, dt.time] = setting(
        (dt.time(7, 0), dt.time(19, 0)),
        parse=parse_working_hours,
        shown="`07:00-19:00`",
        doc="working hours (`08:00-19:00` form, in the working time zone): a reveal viewed outside them "
        "is an alert",
    )
    working_days: frozenset[int] = setting(
        frozenset({0, 1, 2, 3, 4}),
        parse=parse_working_days,
        shown="`mon-fri`",
        doc="working days (`mon-fri` or `mon,wed,sat`): a reveal viewed on another day is an alert",
    )
    # None: the display zone (a Beijing deployment works Beijing hours).
    working_timezone: str | None = setting(
        None,
        parse=parse_timezone,
        shown="`MASKLINE_DISPLAY_TIMEZONE`",
        doc="the IANA zone working hours are read in, e.g. `Asia/Shanghai`",
    )
    # -- alerts -------------------------------------------------------------
    # Each threshold is the most that passes without an alert, per window.
    alert_distinct_buyers_per_hour: int = setting(
        50,
        range=_ALERT,
        doc="distinct buyers one caller (calls and messages that reached them) may reach in an hour "
        "without an alert",
    )
    # An order system's key binds many buyers by design; set this to its normal peak.
    alert_key_distinct_buyers_per_hour: int = setting(
        5000,
        range=(1, 10_000_000),
        doc="distinct buyers one API key may bind in an hour without an alert (set it to the order "
        "system's normal peak)",
    )
    alert_bindings_per_minute: int = setting(
        600, range=_ALERT, doc="bindings one API key may create in a minute without an alert"
    )
    alert_strangers_per_hour: int = setting(
        20,
        range=_ALERT,
        doc="calls and messages from non-parties per hour, to one relay number and from one caller",
    )
    alert_wrong_extensions_per_hour: int = setting(
        20, range=_ALERT, doc="extensions keyed in vain per hour, on one relay number and by one caller"
    )
    alert_failed_logins_per_hour: int = setting(
        5, range=_ALERT, doc="failed console logins of one account per hour"
    )
    alerts_url: str | None = setting(
        None,
        parse=parse_public_url,
        doc="where the worker POSTs alerts as signed JSON (needs `MASKLINE_ALERTS_SECRET`)",
    )
    alerts_secret: str | None = setting(None, doc="the secret that signs the alerts")
    # -- audit checkpoints ----------------------------------------------------
    # Never the vault's key ring, never in SQL.
    audit_signing_key_file: Path | None = setting(
        None,
        doc="the Ed25519 key that signs audit checkpoints, as a PEM file (mode 0600; `maskline audit "
        "keygen`); this or `MASKLINE_AUDIT_SIGNING_KEY`, never the vault key ring",
    )
    audit_signing_key: str | None = setting(None, doc="the same key as PEM text, instead of the file")
    audit_checkpoint_file: Path | None = setting(
        None,
        doc="where signed checkpoints go, outside the database: a JSON-lines file (appended and fsynced)",
    )
    audit_checkpoint_url: str | None = setting(
        None,
        parse=parse_public_url,
        doc="and/or an https URL that gets each checkpoint POSTed (http only to loopback outside production)",
    )
    # Deleting the newest records undetected is possible until a checkpoint covers them.
    audit_checkpoint_interval: dt.timedelta = setting(
        dt.timedelta(minutes=5),
        doc="how often `maskline worker` signs one (it also signs within seconds after any reveal or "
        "admin change, once chained)",
    )
    # -- outbound URLs (maskline.outbound) --------------------------------------
    # Ranges maskline may call although they are not public (loopback, RFC 1918,
    # link-local, CGNAT, ULA, ...): a receiver on the operator's own network.
    outbound_allow: tuple[IPNetwork, ...] = setting(
        (),
        parse=parse_outbound_allow,
        shown="unset",
        doc="CIDRs that outbound URLs (events, callbacks, alerts, checkpoints) may reach although "
        "internal; everything else internal is refused ([outbound-urls.md](outbound-urls.md))",
    )

    def __post_init__(self) -> None:
        # Every construction path comes here (the environment, overrides,
        # with_overrides, Settings(...)): the declared ranges and choices hold
        # for each, not only for values read from the environment.
        for declared_setting in SETTINGS:
            declared_setting.check(getattr(self, declared_setting.name))
        if not self.database_url:
            sqlite_path = self.instance_path / "maskline.sqlite3"
            object.__setattr__(self, "database_url", f"sqlite:///{sqlite_path}")
        if self.keys_file is None and self.keys_json is None:
            object.__setattr__(self, "keys_file", self.instance_path / "keys.json")
        if self.twilio_auth_token is None and self.env == "development":
            # Development only: production and testing never read it, so a
            # token left in a folder never signs a production webhook.
            local = _read_development_token(self.instance_path)
            object.__setattr__(self, "twilio_auth_token", local)
            object.__setattr__(self, "twilio_token_is_local", local is not None)
        if is_cluster_url(self.redis_url):
            # Checked here, for the environment and overrides alike: a bad node
            # list would otherwise surface as a connection error at first use.
            try:
                parse_cluster_url("MASKLINE_REDIS_URL", self.redis_url or "")
            except RedisUrlError as exc:
                raise SettingsError(str(exc)) from None
        if self.alerts_url and not self.alerts_secret:
            # Alerts are sent signed or not at all; a URL alone would mean
            # alerts silently never leave the console.
            raise SettingsError("MASKLINE_ALERTS_URL needs MASKLINE_ALERTS_SECRET, which signs the alerts")
        if self.aliyun_report_url and not self.aliyun_report_secret:
            raise SettingsError(
                "MASKLINE_ALIYUN_REPORT_URL needs MASKLINE_ALIYUN_REPORT_SECRET, which signs the receipts"
            )
        self._check_outbound_urls()

    def _check_outbound_urls(self) -> None:
        """The operator's own outbound URLs pass the guard every tenant's URL passes."""
        from maskline.outbound import RefusedUrl

        policy = self.outbound_policy()
        for name, value in (
            ("MASKLINE_ALERTS_URL", self.alerts_url),
            ("MASKLINE_ALIYUN_REPORT_URL", self.aliyun_report_url),
            ("MASKLINE_AUDIT_CHECKPOINT_URL", self.audit_checkpoint_url),
        ):
            if value:
                try:
                    policy.check_url(value, field=name)
                except RefusedUrl as exc:
                    raise SettingsError(str(exc)) from None

    def outbound_policy(self) -> OutboundPolicy:
        """Where this deployment may connect (maskline.outbound): loopback only outside production."""
        from maskline.outbound import OutboundPolicy

        return OutboundPolicy.for_settings(production=self.is_production, allow=self.outbound_allow)

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def working_zone(self) -> str:
        """The zone working hours are read in: their own, else the display zone."""
        return self.working_timezone or self.display_timezone

    def problems(self) -> list[str]:
        """Reasons this configuration must not start in production (empty if fine).

        Key-ring problems are checked when the ring is loaded, where the
        file's content is known.
        """
        if not self.is_production:
            return []
        found = []
        if self.secret_key == INSECURE_DEVELOPMENT_SECRET:
            found.append("MASKLINE_SECRET_KEY is the insecure development key")
        elif len(self.secret_key.encode()) < MIN_SECRET_KEY_BYTES:
            # It signs console sessions and CSRF tokens: a short one can be guessed offline.
            found.append(
                f"MASKLINE_SECRET_KEY is {len(self.secret_key.encode())} bytes; use at least "
                f"{MIN_SECRET_KEY_BYTES} random bytes "
                "(python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.public_url is None:
            # Twilio signs the URL it called: behind TLS termination the app
            # cannot see it, and a guess from Host headers is the attacker's to make.
            found.append("MASKLINE_PUBLIC_URL is not set (the https URL Twilio and browsers use)")
        elif not self.public_url.startswith("https://"):
            found.append("MASKLINE_PUBLIC_URL must be an https URL in production")
        if not self.admin_cookie_secure:
            found.append(
                "MASKLINE_ADMIN_COOKIE_SECURE is false (the console cookie must be Secure in production)"
            )
        if self.redis_url is None:
            found.append("MASKLINE_REDIS_URL is not set (the embedded Redis is for development)")
        if self.database_url.startswith("sqlite"):
            found.append("MASKLINE_DATABASE_URL is SQLite (use PostgreSQL in production)")
        if not self.twilio_auth_token:
            found.append("MASKLINE_TWILIO_AUTH_TOKEN is not set (webhook signatures cannot be checked)")
        # The audit signing key and checkpoint destination are deliberately
        # not required here, of every process: only the worker (and `maskline
        # audit checkpoint`) signs, and a private key copied onto every web
        # node is a key more people can read, which is what checkpoints must
        # not allow. The production worker refuses to start without them
        # instead (audit_checkpoint_problems): without checkpoints a database
        # superuser could rewrite or truncate the chain undetected.
        return found

    def audit_checkpoint_problems(self) -> list[str]:
        """Why this configuration cannot sign audit checkpoints (empty if it can).

        The production worker refuses to start on any of them; elsewhere the
        worker runs without checkpoints and says so. The key file itself is
        checked when it is read.
        """
        found = []
        if self.audit_signing_key_file is None and self.audit_signing_key is None:
            found.append("no audit signing key (MASKLINE_AUDIT_SIGNING_KEY_FILE; `maskline audit keygen`)")
        if self.audit_checkpoint_file is None and self.audit_checkpoint_url is None:
            found.append(
                "no audit checkpoint destination (MASKLINE_AUDIT_CHECKPOINT_FILE or _CHECKPOINT_URL)"
            )
        return found


def development_token_path(instance_path: Path) -> Path:
    """Where development keeps its webhook token (see DEVELOPMENT_TOKEN_FILE)."""
    return instance_path / DEVELOPMENT_TOKEN_FILE


def _read_development_token(instance_path: Path) -> str | None:
    try:
        token = development_token_path(instance_path).read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(
            f"{development_token_path(instance_path)} cannot be read ({type(exc).__name__}); "
            "delete it and run `maskline init`, or set MASKLINE_TWILIO_AUTH_TOKEN"
        ) from None
    return token or None


SETTINGS: tuple[Declared, ...] = declared(Settings)


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Map MASKLINE_* variables onto Settings fields, each with its declared parser."""
    values: dict[str, Any] = {}
    for declared_setting in SETTINGS:
        text = environ.get(declared_setting.env)
        if text not in (None, ""):
            values[declared_setting.name] = declared_setting.parse(declared_setting.env, text)
    if "voice_language" not in values and values.get("default_region") == "CN":
        # A mainland deployment speaks Chinese unless told otherwise.
        values["voice_language"] = "zh-CN"
    return values


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the environment, then ``overrides`` (field names)."""
    values = _from_environment(os.environ if environ is None else environ)
    known = {f.name for f in fields(Settings)}
    for key, value in (overrides or {}).items():
        if key not in known:
            raise SettingsError(f"unknown setting {key!r}")
        values[key] = value
    return Settings(**values)


def with_overrides(settings: Settings, **changes: Any) -> Settings:
    """A copy of ``settings`` with some fields changed (defaults recomputed)."""
    return replace(settings, **changes)


def service_urls_for_tests(environ: Mapping[str, str] | None = None) -> tuple[str | None, str | None]:
    """The real PostgreSQL and Redis URLs the test suite should use, if any."""
    env = os.environ if environ is None else environ
    return (
        env.get("MASKLINE_TEST_DATABASE_URL") or None,
        env.get("MASKLINE_TEST_REDIS_URL") or None,
    )


__all__ = [
    "API_SCOPES",
    "CONSOLE_LANGUAGES",
    "DEFAULT_API_RATE_LIMITS",
    "DEFAULT_REFUSED_NUMBER_TYPES",
    "DEVELOPMENT_TOKEN_FILE",
    "ENVIRONMENTS",
    "INSECURE_DEVELOPMENT_SECRET",
    "MIN_SECRET_KEY_BYTES",
    "SETTINGS",
    "SMS_REDACTIONS",
    "TWILIO_API_URL",
    "VOICE_LANGUAGES",
    "Environment",
    "Settings",
    "SettingsError",
    "development_token_path",
    "load_settings",
    "parse_console_language",
    "parse_duration",
    "parse_sms_redact",
    "parse_timezone",
    "service_urls_for_tests",
    "setting",
    "with_overrides",
]
