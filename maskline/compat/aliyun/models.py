"""Tables of the Alibaba Dyplsapi face: AccessKeys (each mapped onto an API
key) and AXG number groups, whose members are vault tokens.

The AccessKey secret is needed in clear to verify HMAC signatures, so it is
sealed in the vault (``secret_token`` names the entry; purpose
:data:`~maskline.compat.aliyun.interfaces.SECRET_PURPOSE`), never stored as
text nor only hashed. A subscription (``SubsId``) is the binding itself;
:class:`AliyunSubscription` marks the bindings this face made, with their
PoolKey (for call receipts), their one-way call restriction and, for AXG,
their group G. :class:`AliyunPoolNumber` gives an owner's PoolKey relay
numbers of its own (``maskline aliyun pool``); relay numbers are public.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from maskline.db import Base, UTCDateTime


class AliyunAccessKey(Base):
    """An AccessKey id, the API key whose owner and scopes it carries, and
    the vault token of its sealed secret. Revoking the API key revokes it."""

    __tablename__ = "aliyun_access_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    api_key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    secret_token: Mapped[str] = mapped_column(ForeignKey("vault_entries.token"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AliyunAxgGroup(Base):
    """An AXG number group G of an owner (CreateAxgGroup). ``id`` is Alibaba's GroupId."""

    __tablename__ = "aliyun_axg_groups"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    owner: Mapped[str] = mapped_column(String(120), index=True)
    pool_key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    remark: Mapped[str] = mapped_column(String(256))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AliyunAxgMember(Base):
    """A number of group G, as the vault token of the party number (never the number)."""

    __tablename__ = "aliyun_axg_members"

    group_id: Mapped[int] = mapped_column(ForeignKey("aliyun_axg_groups.id"), primary_key=True)
    token: Mapped[str] = mapped_column(ForeignKey("vault_entries.token"), primary_key=True, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class AliyunSubscription(Base):
    """A binding made through this face (its SubsId), written in the binding's
    own transaction: its calls get SecretReport receipts, which carry the
    PoolKey it was bound with. No number: the binding holds vault tokens."""

    __tablename__ = "aliyun_subscriptions"

    binding_id: Mapped[str] = mapped_column(ForeignKey("bindings.id", ondelete="CASCADE"), primary_key=True)
    pool_key: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # Alibaba's one-way restriction (CONTROL_AX_DISABLE: A cannot call X;
    # CONTROL_BX_DISABLE: B cannot); NULL: none. Enforced on the webhook path.
    call_restrict: Mapped[str | None] = mapped_column(String(24), index=True)
    # The AXG group G whose numbers are the binding's allowed callers (BindAxg,
    # UpdateSubscription updateAxgGroup); NULL for AXB and AXN.
    group_id: Mapped[int | None] = mapped_column(ForeignKey("aliyun_axg_groups.id"), index=True)


class AliyunPoolNumber(Base):
    """A relay number of an owner's PoolKey: a bind under that PoolKey draws
    only from its numbers. A PoolKey with none draws from the whole pool.
    Keyed per owner (AccessKeys belong to an owner): two owners may use the
    same PoolKey name for different numbers, and a number may be in several
    PoolKeys."""

    __tablename__ = "aliyun_pool_numbers"

    owner: Mapped[str] = mapped_column(String(120), primary_key=True)
    pool_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    e164: Mapped[str] = mapped_column(ForeignKey("relay_numbers.e164"), primary_key=True, index=True)
    added_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
