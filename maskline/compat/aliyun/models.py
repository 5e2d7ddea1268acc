"""Tables of the Alibaba Dyplsapi face: AccessKeys (each mapped onto an API
key) and AXG number groups, whose members are vault tokens.

The AccessKey secret is needed in clear to verify HMAC signatures, so it is
sealed in the vault (``secret_token`` names the entry; purpose
:data:`~maskline.compat.aliyun.interfaces.SECRET_PURPOSE`), never stored as
text nor only hashed. A subscription (``SubsId``) is the binding itself;
:class:`AliyunSubscription` marks the bindings this face made, with their
PoolKey, for call receipts.
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
