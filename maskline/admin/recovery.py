"""One-time recovery codes of the console's second factor (issue 20).

Ten codes are made when an account enrolls TOTP (and again on request, which
spends the old ones). Each is 80 random bits, written ``xxxx-xxxx-xxxx-xxxx``
in base32, shown once and stored only as its SHA-256: like an API key, it has
too much entropy for a hash to be searched back. A code is spent by a
conditional UPDATE, so of two logins racing with one code only one gets in.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import re
import secrets

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from maskline.admin.models import RecoveryCode

CODES_PER_SET = 10
_SHAPE = re.compile(r"^[a-z2-7]{16}\Z")


def _normalized(code: str) -> str | None:
    """The code as stored (lowercase, no dashes or spaces), or None if it
    cannot be a recovery code (e.g. a six-digit TOTP code)."""
    text = (code or "").strip().lower().replace("-", "").replace(" ", "")
    return text if _SHAPE.match(text) else None


def looks_like_recovery_code(code: str) -> bool:
    return _normalized(code) is not None


def _digest(normalized: str) -> str:
    return hashlib.sha256(normalized.encode()).hexdigest()


def new_code() -> str:
    raw = base64.b32encode(secrets.token_bytes(10)).decode().lower()
    return "-".join(raw[i : i + 4] for i in range(0, 16, 4))


def issue(session: Session, user_id: int, now: dt.datetime) -> list[str]:
    """A fresh set for the account, replacing (and so spending) any old one."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
    codes = [new_code() for _ in range(CODES_PER_SET)]
    for code in codes:
        normalized = _normalized(code)
        assert normalized is not None
        session.add(RecoveryCode(user_id=user_id, code_hash=_digest(normalized), created_at=now))
    session.flush()
    return codes


def spend(session: Session, user_id: int, code: str, now: dt.datetime) -> bool:
    """Whether ``code`` was an unspent code of the account; it is spent now."""
    normalized = _normalized(code)
    if normalized is None:
        return False
    result = session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user_id,
            RecoveryCode.code_hash == _digest(normalized),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0) == 1


def remaining(session: Session, user_id: int) -> int:
    count = session.scalar(
        select(func.count())
        .select_from(RecoveryCode)
        .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
    )
    return int(count or 0)


def forget(session: Session, user_id: int) -> None:
    """Every code of the account goes (its second factor was reset)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id))
