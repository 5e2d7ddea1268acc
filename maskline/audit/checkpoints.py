"""Signed checkpoints of the audit chain's head, kept outside the database.

The hash chain alone catches an edited, deleted or reordered record, but not
a database superuser who edits a record and then recomputes every hash after
it, nor one who deletes the newest records: what is left is a valid chain.
A checkpoint pins the head: ``(seq, hash, records)`` at a time, signed with
an Ed25519 key that is neither in the database nor in the vault's key ring,
and appended to a JSON-lines file or POSTed to an endpoint, both outside the
database. ``verify_with_checkpoints`` then catches both: the recomputed
chain's hash at a checkpoint's seq differs, and the truncated chain ends
before the last checkpoint's seq. Forging a checkpoint needs the private key;
checking one needs only the public key.

Key format (``maskline audit keygen``):

* private: PKCS#8 PEM, unencrypted (``-----BEGIN PRIVATE KEY-----``), as
  ``openssl genpkey -algorithm ed25519`` also writes it; in a file (mode
  0600) or as the text of ``MASKLINE_AUDIT_SIGNING_KEY``;
* public: one line, ``ed25519:`` and the base64 of its 32 raw bytes;
* key id: the first 16 hex digits of SHA-256 of the raw public key.

A checkpoint is one line of JSON::

    {"at":"2026-11-24T12:00:00.000000Z","hash":"<64 hex>","key_id":"<16 hex>",
     "records":42,"seq":42,"sig":"<base64>","v":1}

``sig`` is the Ed25519 signature of ``DOMAIN`` followed by the same object
without ``sig``, as sorted, compact JSON.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import functools
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from maskline.audit.chain import GENESIS_HASH, canonical_time
from maskline.audit.interfaces import CheckpointError, VerifyResult
from maskline.audit.models import AuditRecord
from maskline.audit.services import AuditLog
from maskline.clock import Clock, system_clock
from maskline.db import Database
from maskline.outbound import OutboundPolicy, RefusedUrl

log = logging.getLogger(__name__)

DOMAIN = b"maskline audit checkpoint v1\n"
VERSION = 1
PUBLIC_PREFIX = "ed25519:"
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
_KEY_ID = re.compile(r"^[0-9a-f]{16}\Z")
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
# Enough of a checkpoint file's end to hold its last line.
_TAIL = 8192


# -- keys --------------------------------------------------------------------------


def _raw_public(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class PublicKey:
    """An Ed25519 public key that checkpoints are checked against."""

    key: Ed25519PublicKey

    @property
    def key_id(self) -> str:
        return hashlib.sha256(_raw_public(self.key)).hexdigest()[:16]

    @property
    def text(self) -> str:
        return PUBLIC_PREFIX + base64.b64encode(_raw_public(self.key)).decode()

    def verifies(self, checkpoint: Checkpoint) -> bool:
        try:
            self.key.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_message())
        except (InvalidSignature, binascii.Error, ValueError):
            return False
        return True


class SigningKey:
    """The private key that signs checkpoints. Never logged, never printed."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        self.public = PublicKey(private.public_key())

    def __repr__(self) -> str:
        return f"SigningKey(key_id={self.public.key_id})"

    @classmethod
    def generate(cls) -> SigningKey:
        return cls(Ed25519PrivateKey.generate())

    def pem(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def sign(self, *, seq: int, hash: str, records: int, at: dt.datetime) -> Checkpoint:
        unsigned = Checkpoint(seq=seq, hash=hash, records=records, at=at, key_id=self.public.key_id)
        signature = self._private.sign(unsigned.signed_message())
        return Checkpoint(
            seq=seq,
            hash=hash,
            records=records,
            at=at,
            key_id=unsigned.key_id,
            signature=base64.b64encode(signature).decode(),
        )


def parse_signing_key(pem: bytes, *, source: str) -> SigningKey:
    """The key in ``pem``, or CheckpointError naming ``source`` (never the key)."""
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise CheckpointError(
            f"{source} is not an unencrypted Ed25519 private key in PEM "
            "(make one with `maskline audit keygen`)"
        ) from None
    if not isinstance(private, Ed25519PrivateKey):
        raise CheckpointError(f"{source} is not an Ed25519 key")
    return SigningKey(private)


def load_signing_key(*, path: Path | None, text: str | None, production: bool) -> SigningKey:
    """The signing key from its file or its environment variable (one, not both)."""
    if path is not None and text is not None:
        raise CheckpointError("set MASKLINE_AUDIT_SIGNING_KEY_FILE or MASKLINE_AUDIT_SIGNING_KEY, not both")
    if text is not None:
        return parse_signing_key(text.encode(), source="MASKLINE_AUDIT_SIGNING_KEY")
    if path is None:
        raise CheckpointError("no audit signing key: set MASKLINE_AUDIT_SIGNING_KEY_FILE")
    try:
        mode = path.stat().st_mode
        pem = path.read_bytes()
    except FileNotFoundError:
        raise CheckpointError(f"audit signing key file {path} does not exist") from None
    except OSError as exc:
        raise CheckpointError(f"audit signing key file {path} cannot be read: {exc.strerror}") from None
    if production and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise CheckpointError(
            f"audit signing key file {path} is accessible to group or others (chmod 600 it)"
        )
    return parse_signing_key(pem, source=f"audit signing key file {path}")


def write_new_key_file(path: Path) -> SigningKey:
    """A new key in a new file (mode 0600, fsynced); an existing file is never overwritten."""
    key = SigningKey.generate()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise CheckpointError(f"{path} exists; a signing key is never overwritten") from None
    except OSError as exc:
        raise CheckpointError(f"cannot create {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # whatever the umask
        _write_all(fd, key.pem())
        os.fsync(fd)
    finally:
        os.close(fd)
    return key


def parse_public_key(value: str) -> PublicKey:
    """``ed25519:<base64>``, or a file holding that line or a PEM public key."""
    text = value.strip()
    if not text.startswith(PUBLIC_PREFIX):
        path = Path(text)
        try:
            text = path.read_text().strip()
        except (OSError, UnicodeDecodeError):
            raise CheckpointError(
                f"public key {value!r} is neither ed25519:<base64> nor a readable file"
            ) from None
        if text.startswith("-----BEGIN"):
            try:
                public = serialization.load_pem_public_key(text.encode())
            except (ValueError, UnsupportedAlgorithm):
                raise CheckpointError(f"{path} holds no PEM public key") from None
            if not isinstance(public, Ed25519PublicKey):
                raise CheckpointError(f"{path} holds a public key that is not Ed25519")
            return PublicKey(public)
    try:
        raw = base64.b64decode(text[len(PUBLIC_PREFIX) :], validate=True)
        return PublicKey(Ed25519PublicKey.from_public_bytes(raw))
    except (binascii.Error, ValueError):
        raise CheckpointError("a public key is ed25519: followed by the base64 of 32 bytes") from None


# -- checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """The chain's head as signed: ``records`` records, the last ``seq`` with ``hash``."""

    seq: int
    hash: str
    records: int
    at: dt.datetime
    key_id: str
    signature: str = ""

    def body(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "seq": self.seq,
            "hash": self.hash,
            "records": self.records,
            "at": canonical_time(self.at),
            "key_id": self.key_id,
        }

    def signed_message(self) -> bytes:
        return DOMAIN + json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()

    def line(self) -> str:
        return json.dumps({**self.body(), "sig": self.signature}, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, value: object) -> Checkpoint:
        """A checkpoint from its parsed JSON, or ValueError saying what is wrong."""
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
        if value.get("v") != VERSION:
            raise ValueError(f"version {value.get('v')!r}, expected {VERSION}")
        seq, records = value.get("seq"), value.get("records")
        for name, number in (("seq", seq), ("records", records)):
            if not isinstance(number, int) or isinstance(number, bool) or number < 0:
                raise ValueError(f"{name} is not a whole number")
        head, key_id, at, sig = value.get("hash"), value.get("key_id"), value.get("at"), value.get("sig")
        if not isinstance(head, str) or not _HEX64.match(head):
            raise ValueError("hash is not 64 hex digits")
        if not isinstance(key_id, str) or not _KEY_ID.match(key_id):
            raise ValueError("key_id is not 16 hex digits")
        if not isinstance(sig, str) or not sig:
            raise ValueError("no signature")
        if not isinstance(at, str):
            raise ValueError("no time")
        when = dt.datetime.strptime(at, _TIME_FORMAT).replace(tzinfo=dt.UTC)
        assert isinstance(seq, int) and isinstance(records, int)
        return cls(seq=seq, hash=head, records=records, at=when, key_id=key_id, signature=sig)


@dataclass(frozen=True)
class NumberedCheckpoint:
    line: int
    checkpoint: Checkpoint


def parse_checkpoints(lines: Iterable[str], *, source: str) -> Iterator[NumberedCheckpoint]:
    """Checkpoints of a JSON-lines text; CheckpointError names the first bad line."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            checkpoint = Checkpoint.from_json(json.loads(text))
        except ValueError as exc:
            raise CheckpointError(f"{source} line {number} is not a checkpoint: {exc}") from None
        yield NumberedCheckpoint(number, checkpoint)


def read_checkpoints(path: Path) -> list[NumberedCheckpoint]:
    try:
        with path.open(encoding="utf-8") as handle:
            return list(parse_checkpoints(handle, source=str(path)))
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"checkpoint file {path} cannot be read: {type(exc).__name__}") from None


# -- verifying -----------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CheckpointedResult:
    """The chain's walk, checked against signed checkpoints."""

    chain: VerifyResult
    checkpoints: int = 0
    latest: Checkpoint | None = None
    problem: str | None = None  # about the checkpoints themselves
    # When the check ran: what the newest checkpoint leaves uncovered runs until now.
    now: dt.datetime | None = None

    @property
    def uncovered_records(self) -> int:
        """Records after the newest checkpoint: deleting them would go unnoticed."""
        return self.chain.records - self.latest.records if self.latest is not None else self.chain.records

    @property
    def uncovered_time(self) -> dt.timedelta | None:
        """From the newest checkpoint to ``now``: records written then are not yet signed."""
        if self.latest is None or self.now is None:
            return None
        return max(self.now - self.latest.at, dt.timedelta(0))

    @property
    def ok(self) -> bool:
        return self.chain.ok and self.problem is None

    def summary(self) -> str:
        if self.problem is not None:
            return f"BROKEN: {self.problem}"
        if not self.chain.ok:
            return self.chain.summary()
        assert self.latest is not None
        after = self.uncovered_records
        text = (
            f"{self.chain.summary()}; {self.checkpoints} signed checkpoints agree, the latest covers "
            f"{self.latest.records} records (signed {canonical_time(self.latest.at)}, key "
            f"{self.latest.key_id}); {after} records since"
        )
        span = self.uncovered_time
        if span is not None:
            text += (
                f"; uncovered by the newest checkpoint: {after} records and {_duration(span)} "
                "(deleting those would not be detected)"
            )
        return text


def _duration(span: dt.timedelta) -> str:
    seconds = int(span.total_seconds())
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    clock = f"{hours:d}:{minutes:02d}:{seconds:02d}"
    return f"{days}d {clock}" if days else clock


def verify_with_checkpoints(
    session: Session,
    audit: AuditLog,
    checkpoints: Sequence[NumberedCheckpoint],
    keys: Sequence[PublicKey],
    *,
    source: str = "checkpoints",
    now: dt.datetime | None = None,
) -> CheckpointedResult:
    """Every checkpoint's signature, then the chain against all of them.

    Each checkpoint pins the hash at its seq: a chain recomputed after an
    edit differs at the first checkpoint past the edit, and a chain whose
    newest records were deleted is shorter than the last checkpoint.
    """
    blank = VerifyResult(ok=True, records=0)
    if not checkpoints:
        return CheckpointedResult(chain=blank, problem=f"{source} holds no checkpoint")
    by_id = {key.key_id: key for key in keys}
    pins: dict[int, str] = {}
    for item in checkpoints:
        cp = item.checkpoint
        key = by_id.get(cp.key_id)
        where = f"{source} line {item.line}"
        if key is None:
            return CheckpointedResult(
                chain=blank, problem=f"{where} is signed by key {cp.key_id}, not by a key given"
            )
        if not key.verifies(cp):
            return CheckpointedResult(chain=blank, problem=f"{where}: the signature does not verify")
        if cp.seq != cp.records:
            return CheckpointedResult(chain=blank, problem=f"{where}: seq and record count disagree")
        # Lines need not be in seq order (two workers may append out of
        # order); what two of them say about one record must agree.
        if pins.get(cp.seq, cp.hash) != cp.hash:
            return CheckpointedResult(
                chain=blank, problem=f"{where} and an earlier checkpoint disagree on record {cp.seq}"
            )
        if cp.seq > 0:
            pins[cp.seq] = cp.hash
        elif cp.hash != GENESIS_HASH:
            return CheckpointedResult(chain=blank, problem=f"{where}: an empty chain has another hash")
    latest = max((item.checkpoint for item in checkpoints), key=lambda cp: (cp.seq, cp.at))
    chain = audit.verify(session, pins=pins)
    return CheckpointedResult(chain=chain, checkpoints=len(checkpoints), latest=latest, now=now)


# -- destinations --------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class Destination(Protocol):
    name: str

    def send(self, checkpoint: Checkpoint) -> None:
        """Store or deliver ``checkpoint``, or raise CheckpointError."""
        ...


class FileDestination:
    """Appends each checkpoint as one line and fsyncs it before returning."""

    name = "file"

    def __init__(self, path: Path) -> None:
        self.path = path

    def send(self, checkpoint: Checkpoint) -> None:
        created = not self.path.exists()
        try:
            # One write of one line with O_APPEND: lines of two workers never interleave.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                _write_all(fd, (checkpoint.line() + "\n").encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                directory = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(directory)
                finally:
                    os.close(directory)
        except OSError as exc:
            raise CheckpointError(f"checkpoint file {self.path}: {exc.strerror}") from None

    def last(self) -> Checkpoint | None:
        """The file's last checkpoint, or None (no file, or an unreadable end)."""
        try:
            with self.path.open("rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - _TAIL))
                tail = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return None
        lines = [line for line in tail.splitlines() if line.strip()]
        if not lines:
            return None
        try:
            return Checkpoint.from_json(json.loads(lines[-1]))
        except ValueError:
            return None


class Sender(Protocol):
    def __call__(self, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int: ...


def _post_json(
    url: str, body: bytes, headers: dict[str, str], timeout: float, *, policy: OutboundPolicy
) -> int:
    """The default :class:`Sender`: through the outbound guard, as every outbound request."""
    return policy.post(
        url, body, {**headers, "Content-Type": "application/json", "User-Agent": "maskline-audit/1"}, timeout
    )


class UrlDestination:
    """POSTs each checkpoint's JSON; a 2xx answer is delivery. No retry queue:
    the next checkpoint supersedes this one, and a failure is reported (by
    type or status, never the URL) so the worker's output shows it."""

    name = "url"

    def __init__(self, url: str, *, send: Sender, timeout: float = 5.0) -> None:
        self._url = url
        self._send = send
        self._timeout = timeout

    def __repr__(self) -> str:
        return "UrlDestination(…)"

    def send(self, checkpoint: Checkpoint) -> None:
        headers = {"Maskline-Checkpoint-Key": checkpoint.key_id}
        try:
            status = self._send(self._url, checkpoint.line().encode(), headers, self._timeout)
        except RefusedUrl as exc:
            raise CheckpointError(f"checkpoint URL: {exc.kind}") from None
        except Exception as exc:
            # By type only: a message could quote the URL.
            raise CheckpointError(f"checkpoint URL: {type(exc).__name__}") from None
        if not 200 <= status < 300:
            raise CheckpointError(f"checkpoint URL answered HTTP {status}")


# -- signing -------------------------------------------------------------------------


@dataclass
class CheckpointReport:
    signed: Checkpoint | None = None
    sent: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        if self.signed is None:
            return "audit checkpoint: " + ("; ".join(self.errors) or "not due")
        head = f"audit checkpoint: {self.signed.records} records signed (key {self.signed.key_id})"
        if self.sent:
            head += ", to " + " and ".join(self.sent)
        return head + "".join(f"; {error}" for error in self.errors)


def prompts_checkpoint(actor: str, action: str) -> bool:
    """Whether a record is one the worker signs soon after, not at the next interval:
    a reveal (request, approval, view ...), a vault reveal or erase, and any
    change by a person (console ``admin:`` or command line ``cli:``), but not
    logins, logouts and second-factor checks, which change nothing."""
    if action.startswith(("reveal.", "vault.")):
        return True
    if action in _ROUTINE_ADMIN_ACTIONS:
        return False
    return actor.startswith(("admin:", "cli:"))


_ROUTINE_ADMIN_ACTIONS = frozenset(
    {"admin.login", "admin.login.fail", "admin.logout", "admin.totp.ok", "admin.totp.fail"}
)
# How long after a failed prompted checkpoint the next is tried (the interval's
# own checkpoint is tried at its time whatever this says).
PROMPT_RETRY = dt.timedelta(seconds=30)
# Records looked at per poll: the newest are what matter, and a backlog
# larger than this is a prompt anyway (it is signed at once).
PROMPT_SCAN = 5000


class Checkpointer:
    """Verifies the chain, signs its head and sends it to every destination.

    Before signing, the chain must still hold the last checkpoint this
    process made or (for a file destination) the file's last one signed by
    this key: a chain rewritten or truncated since then is reported, never
    signed. From that checkpoint on only the newer records are walked.

    A checkpoint is due every ``interval`` and also as soon as a chained
    record :func:`prompts_checkpoint` (a reveal view, an admin change) lies
    beyond the last one: the worker polls :meth:`run_prompted` every few
    seconds, so such a record is signed within seconds, never by the request
    that wrote it, and one checkpoint covers every record before it (at
    most one per such request, usually fewer).
    """

    def __init__(
        self,
        *,
        db: Database,
        audit: AuditLog,
        key: SigningKey,
        destinations: Sequence[Destination],
        interval: dt.timedelta,
        clock: Clock = system_clock,
    ) -> None:
        if not destinations:
            raise CheckpointError("no checkpoint destination")
        self.db = db
        self.audit = audit
        self.key = key
        self.destinations = list(destinations)
        self.interval = interval
        self._clock = clock
        self._last: Checkpoint | None = None
        self._looked = False
        # The highest seq already looked at for prompting records.
        self._scanned = 0
        self._retry_at: dt.datetime | None = None

    def _previous(self) -> Checkpoint | None:
        if not self._looked:
            self._looked = True
            for destination in self.destinations:
                if isinstance(destination, FileDestination):
                    last = destination.last()
                    if last is not None and self.key.public.verifies(last):
                        self._last = last
        return self._last

    def due(self, now: dt.datetime) -> bool:
        previous = self._previous()
        return previous is None or now - previous.at >= self.interval

    def prompted(self) -> bool:
        """Whether a record past the last checkpoint prompts one (see :func:`prompts_checkpoint`).

        Only records not looked at before are read (by seq, the primary key),
        so polling costs a range scan of what was written since the last poll.
        """
        previous = self._previous()
        start = max(self._scanned, previous.seq if previous is not None else 0)
        with self.db.session() as session:
            rows = session.execute(
                select(AuditRecord.seq, AuditRecord.actor, AuditRecord.action)
                .where(AuditRecord.seq > start)
                .order_by(AuditRecord.seq)
                .limit(PROMPT_SCAN)
            ).all()
        if not rows:
            return False
        if any(prompts_checkpoint(actor, action) for _seq, actor, action in rows) or len(rows) == PROMPT_SCAN:
            return True
        self._scanned = rows[-1][0]
        return False

    def run_prompted(self, now: dt.datetime) -> CheckpointReport:
        """A checkpoint now if a reveal view or an admin change is not yet
        covered (or the interval's is due). Never raises; after a failure,
        waits :data:`PROMPT_RETRY` before the next prompted try."""
        if self._retry_at is not None and now < self._retry_at and not self.due(now):
            return CheckpointReport()
        try:
            if not (self.due(now) or self.prompted()):
                return CheckpointReport()
        except Exception as exc:
            log.error("audit checkpoint prompt check failed: %s", type(exc).__name__)
            return CheckpointReport(errors=[f"prompt check failed: {type(exc).__name__}"])
        report = self._run()
        self._retry_at = now + PROMPT_RETRY if report.errors and report.signed is None else None
        return report

    def checkpoint(self) -> CheckpointReport:
        """Sign the head now. CheckpointError if the chain does not verify or
        every destination failed (one failing of two is in the report)."""
        previous = self._previous()
        after = (previous.seq, previous.hash) if previous is not None else None
        with self.db.session() as session:
            result = self.audit.verify(session, after=after)
        if not result.ok:
            raise CheckpointError(f"the audit chain does not verify; nothing signed: {result.summary()}")
        checkpoint = self.key.sign(
            seq=result.records,
            hash=result.last_hash or GENESIS_HASH,
            records=result.records,
            at=self._clock(),
        )
        report = CheckpointReport(signed=checkpoint)
        for destination in self.destinations:
            try:
                destination.send(checkpoint)
                report.sent.append(destination.name)
            except CheckpointError as exc:
                log.warning("audit checkpoint not stored: %s", exc)
                report.errors.append(str(exc))
        if not report.sent:
            raise CheckpointError("; ".join(report.errors))
        self._last = checkpoint
        log.info("audit checkpoint: %d records signed (key %s)", checkpoint.records, checkpoint.key_id)
        return report

    def run_due(self, now: dt.datetime) -> CheckpointReport:
        """The worker's job: a checkpoint if one is due. Never raises."""
        if not self.due(now):
            return CheckpointReport()
        return self._run()

    def _run(self) -> CheckpointReport:
        try:
            return self.checkpoint()
        except CheckpointError as exc:
            log.error("audit checkpoint failed: %s", exc)
            return CheckpointReport(errors=[str(exc)])
        except Exception as exc:
            log.error("audit checkpoint failed: %s", type(exc).__name__)
            return CheckpointReport(errors=[f"failed: {type(exc).__name__}"])


def signing_key_from(settings: Settings) -> SigningKey:
    return load_signing_key(
        path=settings.audit_signing_key_file,
        text=settings.audit_signing_key,
        production=settings.is_production,
    )


def build_checkpointer(
    settings: Settings,
    *,
    db: Database,
    audit: AuditLog,
    clock: Clock = system_clock,
    send: Sender | None = None,
) -> Checkpointer:
    """The configured checkpointer, or CheckpointError naming what is missing or unusable."""
    problems = settings.audit_checkpoint_problems()
    if problems:
        raise CheckpointError("; ".join(problems))
    key = signing_key_from(settings)
    destinations: list[Destination] = []
    if settings.audit_checkpoint_file is not None:
        destinations.append(FileDestination(settings.audit_checkpoint_file))
    if settings.audit_checkpoint_url is not None:
        policy = settings.outbound_policy()
        try:
            # The outbound guard every URL maskline calls passes (maskline.outbound).
            url = policy.check_url(settings.audit_checkpoint_url, field="MASKLINE_AUDIT_CHECKPOINT_URL")
        except RefusedUrl as exc:
            raise CheckpointError(str(exc)) from None
        if send is None:
            send = functools.partial(_post_json, policy=policy)
        destinations.append(UrlDestination(url, send=send))
    return Checkpointer(
        db=db,
        audit=audit,
        key=key,
        destinations=destinations,
        interval=settings.audit_checkpoint_interval,
        clock=clock,
    )
