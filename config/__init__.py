"""Typed settings for maskline: the one place the process environment is read.

``load_settings()`` builds a frozen :class:`Settings` from defaults, then the
environment, then explicit overrides (tests pass theirs here). Nothing else in
the code base reads ``os.environ``.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import phonenumbers

from config.redis_url import RedisUrlError, is_cluster_url, parse_cluster_url
from maskline import errors

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
DEFAULT_API_RATE_LIMITS = {
    "bindings:write": "200/second",
    "bindings:read": "400/second",
    "calls:write": "10/second;300/hour",
    "waybills:read": "50/second",
    "pool:read": "10/second",
}

_PREFIX = "MASKLINE_"
# Twilio's REST API; MASKLINE_TWILIO_API_URL may name a regional edge or a gateway.
TWILIO_API_URL = "https://api.twilio.com"


class SettingsError(errors.InputError, ValueError):
    """A setting has a value maskline cannot use; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Every knob maskline has, with development defaults.

    ``redis_url`` set to ``None`` selects the embedded development Redis
    (a fakeredis TCP server started by ``maskline serve``); ``database_url``
    defaults to a SQLite file under ``instance_path``.
    """

    env: Environment = "development"
    instance_path: Path = field(default_factory=lambda: Path.cwd() / "instance")
    database_url: str = ""
    redis_url: str | None = None
    keys_file: Path | None = None
    # The key ring as JSON, for deployments that inject secrets through the
    # environment instead of a file. Takes precedence over keys_file.
    keys_json: str | None = None
    default_region: str = "US"
    # ISO 3166 regions party numbers may belong to; empty means any.
    allowed_countries: frozenset[str] = frozenset()
    refused_number_types: frozenset[str] = DEFAULT_REFUSED_NUMBER_TYPES
    secret_key: str = INSECURE_DEVELOPMENT_SECRET
    log_level: str = "INFO"
    log_file: Path | None = None
    # How often (seconds) a process looks for a changed key file, so that a
    # key added or promoted on disk is picked up without a restart.
    keyring_reload_seconds: float = 2.0
    # -- numbers ------------------------------------------------------------
    max_bindings_per_number: int = 200
    extension_digits: int = 4
    cooldown: dt.timedelta = dt.timedelta(hours=24)
    default_ttl: dt.timedelta = dt.timedelta(hours=72)
    max_ttl: dt.timedelta = dt.timedelta(days=90)
    retention: dt.timedelta = dt.timedelta(days=90)
    # nearest: the buyer's area, province, then country, never another
    # country; strict: the area only; global: nearest, then any country.
    geo_policy: Literal["nearest", "strict", "global"] = "nearest"
    # After an order is marked delivered, its binding lives at most this long
    # (the courier may still need to call back; then the slip goes dead).
    delivery_grace: dt.timedelta = dt.timedelta(hours=72)
    # Vault entries no binding uses are collected after this grace period
    # (it covers a binding request between its put and its commit).
    vault_gc_grace: dt.timedelta = dt.timedelta(hours=1)
    # -- webhooks -----------------------------------------------------------
    # Twilio signs the URL it called; behind a proxy that is not the URL the
    # app sees. public_url (scheme://host[/prefix]) wins; else, with
    # trust_proxy, X-Forwarded-Proto/Host; else the request's own URL.
    public_url: str | None = None
    trust_proxy: bool = False
    twilio_auth_token: str | None = None
    # Set when twilio_auth_token is development's local webhook token (made by
    # `maskline init`): it signs local webhooks and the simulator, and is
    # never sent to Twilio's REST API as the account's credential.
    twilio_token_is_local: bool = False
    # Twilio's REST API (click-to-call, `maskline pool sync-twilio`): the
    # account the auth token belongs to, and where its API is reached. Not
    # needed at start-up: without the SID those two features say so.
    twilio_account_sid: str | None = None
    twilio_api_url: str = TWILIO_API_URL
    call_time_limit: int = 3600
    voice_language: str = "en-US"
    # None: the language's own voice (maskline/webhooks/prompts.py DEFAULT_VOICES).
    voice_name: str | None = None
    # Replaces the language's built-in "enter the extension" prompt.
    extension_prompt: str | None = None
    extension_max_failures: int = 5
    # More wrong extensions than this on one relay number, from any callers,
    # within the window lock down its open extensions (per-caller lockouts
    # alone let rotating caller IDs guess on).
    extension_max_failures_per_number: int = 20
    extension_failure_window: dt.timedelta = dt.timedelta(minutes=10)
    extension_lockout: dt.timedelta = dt.timedelta(minutes=15)
    # What SMS bodies lose before forwarding: any of "phones", "links".
    sms_redact: frozenset[str] = frozenset({"phones", "links"})
    sms_media: Literal["forward", "refuse"] = "refuse"
    calls_per_hour: int = 20
    calls_per_day: int = 60
    sms_per_hour: int = 30
    sms_per_day: int = 100
    # How long a webhook decision (and "this call has ended") is remembered:
    # the window in which a retry gets the same answer and a replay none.
    webhook_dedupe_ttl: dt.timedelta = dt.timedelta(days=7)
    # How long a connected call's or message's decisions stay in Redis once
    # SQL holds its end: replays after that are refused by the durable
    # interaction row, so Redis need not hold ~1 KB per call for the full
    # de-duplication TTL (at national scale, terabytes; docs/scaling.md).
    webhook_ended_ttl: dt.timedelta = dt.timedelta(hours=1)
    # Socket timeout (seconds) of the Redis client and PostgreSQL statements
    # on the webhook path: a hung backend costs a caller this long, then an
    # apology, rather than Twilio's own 15 s timeout and an error message.
    webhook_backend_timeout: float = 0.5
    # -- API ----------------------------------------------------------------
    # Per-key rate limits by scope (Flask-Limiter notation, ";" between limits).
    api_rate_limits: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_API_RATE_LIMITS))
    # How long an Idempotency-Key's first answer is replayed.
    idempotency_ttl: dt.timedelta = dt.timedelta(hours=24)
    # The largest API request body accepted (bytes); larger gets 413.
    api_max_body: int = 64 * 1024
    # -- events -------------------------------------------------------------
    # Deliveries of one outbound event before it is marked failed.
    events_max_attempts: int = 12
    # -- Alibaba Dyplsapi face (maskline.compat.aliyun) ------------------------
    # How far a signed request's timestamp may be from the server's clock;
    # a nonce is remembered for twice this long, so no replay fits the window.
    aliyun_max_skew: dt.timedelta = dt.timedelta(minutes=15)
    # Accept the older HMAC-SHA1 signatures (version 1.0, "v2" in the SDK).
    aliyun_signature_v2: bool = False
    # Where the worker pushes end-of-call receipts (Alibaba's SecretReport
    # shape, party numbers masked) of calls on the face's subscriptions,
    # signed with the secret like events; none if unset. https (http only to
    # loopback, outside production), as every outbound URL.
    aliyun_report_url: str | None = None
    aliyun_report_secret: str | None = None
    # -- metrics ------------------------------------------------------------
    # When set, /metrics wants "Authorization: Bearer <token>".
    metrics_token: str | None = None
    # -- admin console --------------------------------------------------------
    # A console session ends this long after login, or after this long idle.
    admin_session_ttl: dt.timedelta = dt.timedelta(hours=8)
    admin_idle_timeout: dt.timedelta = dt.timedelta(minutes=30)
    # Failed logins in a row before an account is locked, and for how long.
    admin_max_failed_logins: int = 5
    admin_lockout: dt.timedelta = dt.timedelta(minutes=15)
    # The console's cookie is Secure (sent over https only) unless this is
    # off; browsers treat http://localhost as secure, so development works.
    admin_cookie_secure: bool = True
    # Console login attempts per client address (Flask-Limiter notation), on
    # top of the per-(account, address) lockout: slows name spraying.
    admin_login_rate_limit: str = "10/minute;100/hour"
    # Reverse proxies in front of maskline whose X-Forwarded-For is believed,
    # as werkzeug's ProxyFix x_for counts them: the client address is the Nth
    # entry from the right. 0 (the default): none, the socket's peer is the client.
    trusted_proxies: int = 0
    # The console's language when neither the admin's own setting nor the
    # browser's Accept-Language names one it has (en or zh-CN).
    console_language: str = "en"
    # The IANA zone times are shown in (console, CLI tables), with their
    # offset; each admin may choose their own. The API stays in UTC.
    display_timezone: str = "UTC"
    # -- dual-control reveal ------------------------------------------------
    # A pending request lapses after reveal_request_ttl; once approved, the
    # requester may view the number once within reveal_view_window.
    reveal_request_ttl: dt.timedelta = dt.timedelta(hours=24)
    reveal_view_window: dt.timedelta = dt.timedelta(minutes=15)
    # Reveals one security admin may request per day (UTC).
    reveal_daily_limit: int = 3
    # Working hours (local to working_timezone); a reveal outside them raises an alert.
    # From 07:00: a mainland courier's day (and its support desk's) starts early.
    working_hours: tuple[dt.time, dt.time] = (dt.time(7, 0), dt.time(19, 0))
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday is 0
    # None: the display zone (a Beijing deployment works Beijing hours).
    working_timezone: str | None = None
    # -- alerts -------------------------------------------------------------
    # Each threshold is the most that passes without an alert, per window.
    alert_distinct_buyers_per_hour: int = 50  # per caller
    # An order system's key binds many buyers by design; set this to its normal peak.
    alert_key_distinct_buyers_per_hour: int = 5000  # per API key
    alert_bindings_per_minute: int = 600  # per API key
    alert_strangers_per_hour: int = 20  # per relay number, and per caller
    alert_wrong_extensions_per_hour: int = 20  # per relay number, and per caller
    alert_failed_logins_per_hour: int = 5  # per admin account
    # Where the worker sends alerts (signed JSON, as events); none if unset.
    alerts_url: str | None = None
    alerts_secret: str | None = None
    # -- audit checkpoints ----------------------------------------------------
    # The Ed25519 key that signs the chain's head: a file, or the key itself
    # (MASKLINE_AUDIT_SIGNING_KEY); never the vault's key ring, never in SQL.
    audit_signing_key_file: Path | None = None
    audit_signing_key: str | None = None
    # Where signed checkpoints are appended, outside the database.
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_url: str | None = None
    # The longest time the newest audit records go unsigned (deleting them
    # undetected is possible until a checkpoint covers them). The worker also
    # signs soon after every reveal view and admin change (Checkpointer.prompted).
    audit_checkpoint_interval: dt.timedelta = dt.timedelta(minutes=5)
    # -- outbound URLs (maskline.outbound) --------------------------------------
    # Ranges maskline may call although they are not public (loopback, RFC 1918,
    # link-local, CGNAT, ULA, ...): a receiver on the operator's own network.
    outbound_allow: tuple[IPNetwork, ...] = ()

    def __post_init__(self) -> None:
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


def _parse_env_name(value: str) -> Environment:
    if value not in ENVIRONMENTS:
        raise SettingsError(f"MASKLINE_ENV must be one of {', '.join(ENVIRONMENTS)}, not {value!r}")
    return value


def _parse_region(name: str, value: str) -> str:
    region = value.strip().upper()
    if len(region) != 2 or not region.isalpha():
        raise SettingsError(f"{name} must be a two-letter region code such as CN or US")
    # A typo such as UK (for GB) would otherwise refuse, or never match, every number.
    if region not in phonenumbers.SUPPORTED_REGIONS:
        raise SettingsError(f"{name}: {region} is not a region phonenumbers knows (e.g. GB, not UK)")
    return region


def _parse_region_set(name: str, value: str) -> frozenset[str]:
    parts = [p for p in (s.strip() for s in value.split(",")) if p]
    return frozenset(_parse_region(name, p) for p in parts)


def _parse_number_types(name: str, value: str) -> frozenset[str]:
    """phonenumbers type names; ``premium-rate`` (as errors spell it) is PREMIUM_RATE."""
    types = frozenset(p.strip().upper().replace("-", "_") for p in value.split(",") if p.strip())
    for number_type in sorted(types):
        if number_type.startswith("_") or not isinstance(
            getattr(phonenumbers.PhoneNumberType, number_type, None), int
        ):
            raise SettingsError(f"{name}: {number_type} is not a phonenumbers number type")
    return types


def _parse_float(name: str, value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {value!r}") from None


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*\Z")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(name: str, value: str) -> dt.timedelta:
    """``90``, ``30s``, ``15m``, ``72h``, ``90d`` or ``2w`` as a timedelta."""
    match = _DURATION.match(value.lower())
    if not match:
        raise SettingsError(f"{name} must be a duration such as 30s, 15m, 72h or 90d, not {value!r}")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def _parse_int(name: str, value: str, *, minimum: int, maximum: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if not minimum <= number <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}")
    return number


VOICE_LANGUAGES = ("en-US", "zh-CN")
CONSOLE_LANGUAGES = ("en", "zh-CN")


def parse_console_language(name: str, value: str) -> str:
    """``en`` or ``zh-CN`` (``en-US``, ``zh``, ``zh_CN`` and any case accepted)."""
    lowered = value.strip().lower().replace("_", "-")
    if lowered in ("en", "en-us", "en-gb"):
        return "en"
    if lowered in ("zh", "zh-cn", "zh-hans", "zh-hans-cn"):
        return "zh-CN"
    raise SettingsError(f"{name} must be one of {', '.join(CONSOLE_LANGUAGES)}, not {value!r}")


API_SCOPES = ("bindings:write", "bindings:read", "calls:write", "waybills:read", "pool:read")
SMS_REDACTIONS = ("phones", "links")


def _parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def _parse_public_url(name: str, value: str) -> str:
    url = value.strip().rstrip("/")
    if not re.match(r"^https?://[^/?#\s]+(/[^?#\s]*)?\Z", url):
        raise SettingsError(f"{name} must be an http(s) URL such as https://relay.example.com")
    return url


def parse_sms_redact(name: str, value: str) -> frozenset[str]:
    """``phones,links`` (any subset) or ``none``; SettingsError names ``name``."""
    parts = frozenset(p.strip().lower() for p in value.split(",") if p.strip())
    if parts == {"none"}:
        return frozenset()
    unknown = sorted(parts - set(SMS_REDACTIONS))
    if unknown:
        raise SettingsError(f"{name} takes phones, links (comma-separated) or none, not {unknown[0]!r}")
    return parts


def _parse_limit(name: str, value: str) -> str:
    """One Flask-Limiter limit string (``10/minute;100/hour``)."""
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise SettingsError(f"{name}: {value.strip()!r} is not a limit such as 10/minute;100/hour") from None
    return value.strip()


def _parse_rate_limits(name: str, value: str) -> dict[str, str]:
    """``scope=limit;limit,scope=limit``: the scopes named replace their defaults."""
    from limits import parse_many

    limits = dict(DEFAULT_API_RATE_LIMITS)
    for item in filter(None, (part.strip() for part in value.split(","))):
        scope, sep, limit = item.partition("=")
        if not sep or scope.strip() not in API_SCOPES:
            raise SettingsError(f"{name}: each item is SCOPE=LIMIT with a scope of {', '.join(API_SCOPES)}")
        try:
            parse_many(limit)
        except ValueError:
            raise SettingsError(f"{name}: {limit.strip()!r} is not a limit such as 100/second") from None
        limits[scope.strip()] = limit.strip()
    return limits


def _from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """Map MASKLINE_* variables onto Settings fields, validating each."""

    def get(name: str) -> str | None:
        value = environ.get(_PREFIX + name)
        return value if value not in (None, "") else None

    values: dict[str, Any] = {}
    if (v := get("ENV")) is not None:
        values["env"] = _parse_env_name(v)
    if (v := get("INSTANCE_PATH")) is not None:
        values["instance_path"] = Path(v)
    if (v := get("DATABASE_URL")) is not None:
        values["database_url"] = v
    if (v := get("REDIS_URL")) is not None:
        values["redis_url"] = v
    if (v := get("KEYS_FILE")) is not None:
        values["keys_file"] = Path(v)
    if (v := get("KEYS")) is not None:
        values["keys_json"] = v
    if (v := get("DEFAULT_REGION")) is not None:
        values["default_region"] = _parse_region("MASKLINE_DEFAULT_REGION", v)
    if (v := get("ALLOWED_COUNTRIES")) is not None:
        values["allowed_countries"] = _parse_region_set("MASKLINE_ALLOWED_COUNTRIES", v)
    if (v := get("REFUSED_NUMBER_TYPES")) is not None:
        values["refused_number_types"] = _parse_number_types("MASKLINE_REFUSED_NUMBER_TYPES", v)
    if (v := get("SECRET_KEY")) is not None:
        values["secret_key"] = v
    if (v := get("LOG_LEVEL")) is not None:
        values["log_level"] = v.upper()
    if (v := get("LOG_FILE")) is not None:
        values["log_file"] = Path(v)
    if (v := get("KEYRING_RELOAD_SECONDS")) is not None:
        values["keyring_reload_seconds"] = _parse_float("MASKLINE_KEYRING_RELOAD_SECONDS", v)
    if (v := get("MAX_BINDINGS_PER_NUMBER")) is not None:
        values["max_bindings_per_number"] = _parse_int(
            "MASKLINE_MAX_BINDINGS_PER_NUMBER", v, minimum=1, maximum=100_000
        )
    if (v := get("EXTENSION_DIGITS")) is not None:
        values["extension_digits"] = _parse_int("MASKLINE_EXTENSION_DIGITS", v, minimum=1, maximum=6)
    for name in ("cooldown", "default_ttl", "max_ttl", "retention", "vault_gc_grace", "delivery_grace"):
        if (v := get(name.upper())) is not None:
            values[name] = parse_duration(_PREFIX + name.upper(), v)
    if (v := get("GEO_POLICY")) is not None:
        if v not in ("nearest", "strict", "global"):
            raise SettingsError(f"MASKLINE_GEO_POLICY must be nearest, strict or global, not {v!r}")
        values["geo_policy"] = v
    values.update(_webhook_settings(get))
    if "voice_language" not in values and values.get("default_region") == "CN":
        # A mainland deployment speaks Chinese unless told otherwise.
        values["voice_language"] = "zh-CN"
    return values


def _webhook_settings(get: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if (v := get("PUBLIC_URL")) is not None:
        values["public_url"] = _parse_public_url("MASKLINE_PUBLIC_URL", v)
    if (v := get("TRUST_PROXY")) is not None:
        values["trust_proxy"] = _parse_bool("MASKLINE_TRUST_PROXY", v)
    if (v := get("TWILIO_AUTH_TOKEN")) is not None:
        values["twilio_auth_token"] = v
    if (v := get("TWILIO_ACCOUNT_SID")) is not None:
        if not re.match(r"^AC[0-9a-fA-F]{32}\Z", v.strip()):
            raise SettingsError("MASKLINE_TWILIO_ACCOUNT_SID must be an account SID: AC and 32 hex digits")
        values["twilio_account_sid"] = v.strip()
    if (v := get("TWILIO_API_URL")) is not None:
        values["twilio_api_url"] = _parse_public_url("MASKLINE_TWILIO_API_URL", v)
    if (v := get("VOICE_LANGUAGE")) is not None:
        if v not in VOICE_LANGUAGES:
            raise SettingsError(f"MASKLINE_VOICE_LANGUAGE must be one of {', '.join(VOICE_LANGUAGES)}")
        values["voice_language"] = v
    if (v := get("VOICE_NAME")) is not None:
        values["voice_name"] = v
    if (v := get("EXTENSION_PROMPT")) is not None:
        values["extension_prompt"] = v
    limits = {
        "call_time_limit": (60, 4 * 3600),
        "extension_max_failures": (1, 1000),
        "extension_max_failures_per_number": (1, 100_000),
        "calls_per_hour": (1, 100_000),
        "calls_per_day": (1, 100_000),
        "sms_per_hour": (1, 100_000),
        "sms_per_day": (1, 100_000),
    }
    for field_name, (low, high) in limits.items():
        if (v := get(field_name.upper())) is not None:
            values[field_name] = _parse_int(_PREFIX + field_name.upper(), v, minimum=low, maximum=high)
    for field_name in (
        "extension_failure_window",
        "extension_lockout",
        "webhook_dedupe_ttl",
        "webhook_ended_ttl",
    ):
        if (v := get(field_name.upper())) is not None:
            values[field_name] = parse_duration(_PREFIX + field_name.upper(), v)
    if (v := get("SMS_REDACT")) is not None:
        values["sms_redact"] = parse_sms_redact("MASKLINE_SMS_REDACT", v)
    if (v := get("SMS_MEDIA")) is not None:
        if v not in ("forward", "refuse"):
            raise SettingsError(f"MASKLINE_SMS_MEDIA must be forward or refuse, not {v!r}")
        values["sms_media"] = v
    if (v := get("WEBHOOK_BACKEND_TIMEOUT")) is not None:
        timeout = _parse_float("MASKLINE_WEBHOOK_BACKEND_TIMEOUT", v)
        if not 0.05 <= timeout <= 30:
            raise SettingsError("MASKLINE_WEBHOOK_BACKEND_TIMEOUT must be between 0.05 and 30 seconds")
        values["webhook_backend_timeout"] = timeout
    if (v := get("API_RATE_LIMITS")) is not None:
        values["api_rate_limits"] = _parse_rate_limits("MASKLINE_API_RATE_LIMITS", v)
    if (v := get("IDEMPOTENCY_TTL")) is not None:
        values["idempotency_ttl"] = parse_duration("MASKLINE_IDEMPOTENCY_TTL", v)
    if (v := get("API_MAX_BODY")) is not None:
        values["api_max_body"] = _parse_int("MASKLINE_API_MAX_BODY", v, minimum=1024, maximum=1024 * 1024)
    if (v := get("METRICS_TOKEN")) is not None:
        values["metrics_token"] = v
    if (v := get("EVENTS_MAX_ATTEMPTS")) is not None:
        values["events_max_attempts"] = _parse_int("MASKLINE_EVENTS_MAX_ATTEMPTS", v, minimum=1, maximum=100)
    values.update(_insider_settings(get))
    return values


_WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def _parse_working_hours(name: str, value: str) -> tuple[dt.time, dt.time]:
    """``08:00-19:00``: start inclusive, end exclusive, start before end."""
    match = re.match(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*\Z", value)
    try:
        if not match:
            raise ValueError
        start = dt.time(int(match.group(1)), int(match.group(2)))
        end = dt.time(int(match.group(3)), int(match.group(4)))
    except ValueError:
        raise SettingsError(f"{name} must be a range of times such as 08:00-19:00, not {value!r}") from None
    if start >= end:
        raise SettingsError(f"{name}: the start ({start:%H:%M}) must be before the end ({end:%H:%M})")
    return start, end


def _parse_working_days(name: str, value: str) -> frozenset[int]:
    """``mon-fri`` or ``mon,wed,sat``: days as weekday numbers (Monday 0)."""
    days: set[int] = set()
    for part in filter(None, (p.strip().lower() for p in value.split(","))):
        first, _, last = part.partition("-")
        if first not in _WEEKDAYS or (last and last not in _WEEKDAYS):
            raise SettingsError(f"{name} takes days such as mon-fri or mon,wed,sat, not {part!r}")
        start, end = _WEEKDAYS.index(first), _WEEKDAYS.index(last or first)
        if end < start:
            raise SettingsError(f"{name}: {part!r} runs backwards")
        days.update(range(start, end + 1))
    if not days:
        raise SettingsError(f"{name} names no day")
    return frozenset(days)


def parse_timezone(name: str, value: str) -> str:
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(value.strip())
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{name}: {value!r} is not an IANA time zone such as Asia/Shanghai") from None
    return value.strip()


def _insider_settings(get: Any) -> dict[str, Any]:
    """The admin console, dual-control reveal, alerts and audit checkpoints."""
    values: dict[str, Any] = {}
    durations = (
        "admin_session_ttl",
        "admin_idle_timeout",
        "admin_lockout",
        "reveal_request_ttl",
        "reveal_view_window",
        "audit_checkpoint_interval",
    )
    for field_name in durations:
        if (v := get(field_name.upper())) is not None:
            values[field_name] = parse_duration(_PREFIX + field_name.upper(), v)
    counts = {
        "admin_max_failed_logins": (1, 100),
        "reveal_daily_limit": (0, 1000),
        "alert_distinct_buyers_per_hour": (1, 1_000_000),
        "alert_key_distinct_buyers_per_hour": (1, 10_000_000),
        "alert_bindings_per_minute": (1, 1_000_000),
        "alert_strangers_per_hour": (1, 1_000_000),
        "alert_wrong_extensions_per_hour": (1, 1_000_000),
        "alert_failed_logins_per_hour": (1, 1_000_000),
    }
    for field_name, (low, high) in counts.items():
        if (v := get(field_name.upper())) is not None:
            values[field_name] = _parse_int(_PREFIX + field_name.upper(), v, minimum=low, maximum=high)
    if (v := get("ADMIN_LOGIN_RATE_LIMIT")) is not None:
        values["admin_login_rate_limit"] = _parse_limit("MASKLINE_ADMIN_LOGIN_RATE_LIMIT", v)
    if (v := get("TRUSTED_PROXIES")) is not None:
        values["trusted_proxies"] = _parse_int("MASKLINE_TRUSTED_PROXIES", v, minimum=0, maximum=10)
    if (v := get("ADMIN_COOKIE_SECURE")) is not None:
        values["admin_cookie_secure"] = _parse_bool("MASKLINE_ADMIN_COOKIE_SECURE", v)
    if (v := get("WORKING_HOURS")) is not None:
        values["working_hours"] = _parse_working_hours("MASKLINE_WORKING_HOURS", v)
    if (v := get("WORKING_DAYS")) is not None:
        values["working_days"] = _parse_working_days("MASKLINE_WORKING_DAYS", v)
    if (v := get("WORKING_TIMEZONE")) is not None:
        values["working_timezone"] = parse_timezone("MASKLINE_WORKING_TIMEZONE", v)
    if (v := get("DISPLAY_TIMEZONE")) is not None:
        values["display_timezone"] = parse_timezone("MASKLINE_DISPLAY_TIMEZONE", v)
    if (v := get("CONSOLE_LANGUAGE")) is not None:
        values["console_language"] = parse_console_language("MASKLINE_CONSOLE_LANGUAGE", v)
    if (v := get("ALERTS_URL")) is not None:
        values["alerts_url"] = _parse_public_url("MASKLINE_ALERTS_URL", v)
    if (v := get("ALERTS_SECRET")) is not None:
        values["alerts_secret"] = v
    if (v := get("ALIYUN_MAX_SKEW")) is not None:
        values["aliyun_max_skew"] = parse_duration("MASKLINE_ALIYUN_MAX_SKEW", v)
    if (v := get("ALIYUN_SIGNATURE_V2")) is not None:
        values["aliyun_signature_v2"] = _parse_bool("MASKLINE_ALIYUN_SIGNATURE_V2", v)
    if (v := get("ALIYUN_REPORT_URL")) is not None:
        values["aliyun_report_url"] = _parse_public_url("MASKLINE_ALIYUN_REPORT_URL", v)
    if (v := get("ALIYUN_REPORT_SECRET")) is not None:
        values["aliyun_report_secret"] = v
    if (v := get("AUDIT_SIGNING_KEY_FILE")) is not None:
        values["audit_signing_key_file"] = Path(v)
    if (v := get("AUDIT_SIGNING_KEY")) is not None:
        values["audit_signing_key"] = v
    if (v := get("AUDIT_CHECKPOINT_FILE")) is not None:
        values["audit_checkpoint_file"] = Path(v)
    if (v := get("AUDIT_CHECKPOINT_URL")) is not None:
        values["audit_checkpoint_url"] = _parse_public_url("MASKLINE_AUDIT_CHECKPOINT_URL", v)
    if (v := get("OUTBOUND_ALLOW")) is not None:
        from maskline.outbound import parse_cidrs

        try:
            values["outbound_allow"] = parse_cidrs("MASKLINE_OUTBOUND_ALLOW", v)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
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
    if "env" in values:
        values["env"] = _parse_env_name(values["env"])
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
    "with_overrides",
]
