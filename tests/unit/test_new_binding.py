"""A binding being made is plain data; the ORM path gets the same rows from it."""

from __future__ import annotations

import datetime as dt

from maskline.numbers.new_binding import NewBinding, NewMember

NOW = dt.datetime(2026, 12, 8, 12, 0, tzinfo=dt.UTC)


def _axe() -> NewBinding:
    return NewBinding(
        id="bd_aaaaaaaaaaaaaaaa",
        owner="shop-a",
        order_id="o-1",
        mode="axe",
        relay_number="+14155550100",
        extension="123",
        allow_any=False,
        record=True,
        sms_redact="codes",
        sms_media="refuse",
        language="en-US",
        expires_at=NOW + dt.timedelta(days=1),
        created_at=NOW,
        members=(
            NewMember(0, "party", "buyer", "tok-b"),
            NewMember(1, "caller", "courier", "tok-c"),
            NewMember(2, "caller", "courier", "tok-d"),
        ),
    )


def test_parties_and_callers_keep_their_order() -> None:
    new = _axe()
    assert [m.token for m in new.parties] == ["tok-b"]
    assert [m.token for m in new.callers] == ["tok-c", "tok-d"]
    assert (new.status, new.version, new.delivered_at) == ("active", 1, None)


def test_the_orm_binding_has_every_column_and_member() -> None:
    new = _axe()
    orm = new.to_orm()
    for column in (
        "id", "owner", "order_id", "mode", "relay_number", "extension", "allow_any", "record",
        "sms_redact", "sms_media", "language", "status", "expires_at", "created_at", "version",
    ):  # fmt: skip
        assert getattr(orm, column) == getattr(new, column), column
    assert [(m.position, m.kind, m.role, m.token) for m in orm.members] == [
        (m.position, m.kind, m.role, m.token) for m in new.members
    ]
    assert [m.token for m in orm.parties] == ["tok-b"] and len(orm.callers) == 2
