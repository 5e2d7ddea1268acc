"""Keyset pagination for the console's lists.

A page is found by the sort key of the row it starts after (``after``, older
rows) or before (``before``, newer rows), never by an offset: a page costs the
same at row 10 and at row 10 million, and a row added while someone reads
does not shift the next page by one. Every key list ends with a unique
column, so rows that tie on time are neither skipped nor repeated.

A cursor is the key values as URL-safe base64 JSON. It is input: a cursor
that does not decode to values of the list's key types is refused with
:class:`InvalidAdminInput` (the page says so; never a 500).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, and_, false, func, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session

from maskline.admin.interfaces import InvalidAdminInput

PAGE_SIZE = 50
# Rows an export reads per round trip (each batch in its own short transaction).
EXPORT_BATCH = 500
MAX_CURSOR = 400

T = TypeVar("T")
Key = InstrumentedAttribute[Any]


@dataclass(frozen=True, kw_only=True)
class Keyset:
    """A list's sort: its key columns (the last one unique), newest or highest first."""

    columns: tuple[Key, ...]
    descending: bool = True

    def values(self, row: object) -> tuple[object, ...]:
        return tuple(getattr(row, c.key) for c in self.columns)

    def beyond(self, values: Sequence[object], *, forward: bool) -> ColumnElement[bool]:
        """Rows after ``values`` in reading order (``forward``) or before them."""
        later = forward == self.descending  # "after" in a descending list is "smaller"
        clauses: list[ColumnElement[bool]] = []
        for i, column in enumerate(self.columns):
            equal = [self.columns[j] == values[j] for j in range(i)]
            step = column < values[i] if later else column > values[i]
            clauses.append(and_(*equal, step))
        # The leading bound repeats what the OR says, in a form an index on
        # the first key can range-scan (an OR of ANDs is not one range).
        first = self.columns[0]
        bound = first <= values[0] if later else first >= values[0]
        return and_(bound, or_(false(), *clauses))

    def order(self, *, forward: bool) -> list[ColumnElement[Any]]:
        ascending = forward != self.descending
        return [c.asc() if ascending else c.desc() for c in self.columns]


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    """One page: its rows, the list's total, and cursors to the pages around it."""

    rows: list[T]
    total: int
    after: str | None  # the next page's cursor, if there is a next page
    before: str | None  # the previous page's cursor, if this is not the first
    size: int = PAGE_SIZE

    @property
    def first(self) -> bool:
        return self.before is None


@dataclass(frozen=True, kw_only=True)
class Cursor:
    """Where a page starts: after (older rows) or before (newer rows) a cursor, or the first page."""

    after: str | None = None
    before: str | None = None


def as_is(row: Any) -> Any:
    """The row itself (for :func:`page`'s ``convert``)."""
    return row


def encode(values: Sequence[object]) -> str:
    """A cursor for key ``values`` (times as ISO 8601 with offset)."""
    plain = [v.isoformat() if isinstance(v, dt.datetime) else v for v in values]
    raw = json.dumps(plain, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str, keyset: Keyset, *, field: str) -> tuple[object, ...]:
    """The key values of ``cursor``, each of its column's Python type."""
    refused = InvalidAdminInput(field, "is not a page of this list; start again from the first page")
    if len(cursor) > MAX_CURSOR:
        raise refused
    try:
        plain = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError):
        raise refused from None
    if not isinstance(plain, list) or len(plain) != len(keyset.columns):
        raise refused
    values: list[object] = []
    for raw, column in zip(plain, keyset.columns, strict=True):
        # A TypeDecorator (UTCDateTime) names its own type as object: ask what it wraps.
        kind = getattr(column.type, "impl_instance", column.type).python_type
        if kind is dt.datetime and isinstance(raw, str):
            try:
                when = dt.datetime.fromisoformat(raw)
            except ValueError:
                raise refused from None
            if when.tzinfo is None:
                raise refused
            values.append(when)
        elif kind in (int, str) and type(raw) is kind:  # not bool for int, not float
            values.append(raw)
        else:
            raise refused
    return tuple(values)


def count(session: Session, query: Select[Any]) -> int:
    """How many rows ``query`` (filtered, unordered) holds."""
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    return int(total or 0)


def page(
    session: Session,
    query: Select[Any],
    keyset: Keyset,
    *,
    cursor: Cursor,
    convert: Callable[[Any], T],
    size: int = PAGE_SIZE,
) -> Page[T]:
    """The page of ``query``'s entities at ``cursor``, each row passed through ``convert``."""
    total = count(session, query)
    after, before = cursor.after, cursor.before
    if before:
        start = decode(before, keyset, field="before")
        found = list(
            session.scalars(
                query.where(keyset.beyond(start, forward=False))
                .order_by(*keyset.order(forward=False))
                .limit(size + 1)
            )
        )
        more_before = len(found) > size
        rows = list(reversed(found[:size]))
        if not rows:  # nothing newer any more: the first page
            return page(session, query, keyset, cursor=Cursor(), size=size, convert=convert)
        return Page(
            rows=[convert(r) for r in rows],
            total=total,
            before=encode(keyset.values(rows[0])) if more_before else None,
            after=encode(keyset.values(rows[-1])),
            size=size,
        )
    start_after = decode(after, keyset, field="after") if after else None
    selected = query if start_after is None else query.where(keyset.beyond(start_after, forward=True))
    found = list(session.scalars(selected.order_by(*keyset.order(forward=True)).limit(size + 1)))
    rows = found[:size]
    return Page(
        rows=[convert(r) for r in rows],
        total=total,
        after=encode(keyset.values(rows[-1])) if len(found) > size else None,
        before=encode(keyset.values(rows[0])) if start_after is not None and rows else None,
        size=size,
    )


def every(
    sessions: Callable[[], Any], query: Select[Any], keyset: Keyset, *, batch: int = EXPORT_BATCH
) -> Iterator[Any]:
    """Every row of ``query`` in reading order, ``batch`` rows per short transaction.

    For exports: memory stays at one batch however long the list, and no
    transaction is held open while a slow client downloads. ``sessions``
    opens a session (``Database.session``); rows are detached when yielded.
    """
    start: tuple[object, ...] | None = None
    while True:
        with sessions() as session:
            selected = query if start is None else query.where(keyset.beyond(start, forward=True))
            rows = list(session.scalars(selected.order_by(*keyset.order(forward=True)).limit(batch)))
            session.expunge_all()
        yield from rows
        if len(rows) < batch:
            return
        start = keyset.values(rows[-1])
