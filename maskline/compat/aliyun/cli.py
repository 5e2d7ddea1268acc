"""``maskline aliyun pool``: the relay numbers of an owner's PoolKey.

A bind through the Dyplsapi face under a PoolKey with numbers draws only
from them; a PoolKey with none draws from the whole pool. Adding and
removing are all or nothing, and audited as ``cli:<login>`` (relay numbers
are public: the audit entry names them). Removing a number from a PoolKey
leaves its live bindings alone.
"""

from __future__ import annotations

import json
from typing import Any

import click
from sqlalchemy import delete, select

from maskline.compat.aliyun.models import AliyunPoolNumber
from maskline.numbers.interfaces import InvalidRequest
from maskline.numbers.models import RelayNumber
from maskline.numbers.pool import parse_relay_number

MAX_POOL_KEY = 64


def _services() -> Any:
    from maskline.cli import _services as build

    return build()


def _audit(services: Any, session: Any, action: str, subject: str, data: dict[str, Any]) -> None:
    from maskline.cli import _audit as audit

    audit(services, session, action, subject, data)


def _pool_key(value: str) -> str:
    if not value.strip() or len(value) > MAX_POOL_KEY or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise click.BadParameter(
            f"1 to {MAX_POOL_KEY} characters, no control characters", param_hint="POOLKEY"
        )
    return value


def _relay_numbers(services: Any, session: Any, numbers: tuple[str, ...]) -> list[str]:
    """NUMBERS in E.164, each a relay number of the pool that is not retired (all checked first)."""
    found = []
    region = services.settings.default_region
    for i, raw in enumerate(numbers):
        try:
            e164 = parse_relay_number(raw, field=f"NUMBER[{i}]", region=region)
        except InvalidRequest as exc:
            raise click.ClickException(str(exc)) from None
        relay = session.get(RelayNumber, e164)
        if relay is None:
            # Not echoed: a number outside the pool may be someone's own.
            raise click.ClickException(f"NUMBER[{i}] is not a relay number of the pool (maskline pool add)")
        if relay.status == "retired":
            raise click.ClickException(f"{e164} is retired")
        found.append(e164)
    return list(dict.fromkeys(found))


@click.group("aliyun")
def aliyun() -> None:
    """The Alibaba Cloud Dyplsapi face."""


@aliyun.group("pool")
def pool() -> None:
    """Relay numbers of a PoolKey: binds under it draw only from them."""


_owner = click.option("--owner", required=True, help="the owner whose AccessKeys use this PoolKey")


@pool.command("add")
@click.argument("pool_key", metavar="POOLKEY")
@click.argument("numbers", nargs=-1, required=True)
@_owner
def pool_add(pool_key: str, numbers: tuple[str, ...], owner: str) -> None:
    """Give POOLKEY of OWNER these relay numbers (already in the pool)."""
    pool_key = _pool_key(pool_key)
    with _services() as services, services.db.session() as session:
        wanted = _relay_numbers(services, session, numbers)
        present = set(
            session.scalars(
                select(AliyunPoolNumber.e164).where(
                    AliyunPoolNumber.owner == owner, AliyunPoolNumber.pool_key == pool_key
                )
            )
        )
        added = [n for n in wanted if n not in present]
        now = services.clock()
        for e164 in added:
            session.add(AliyunPoolNumber(owner=owner, pool_key=pool_key, e164=e164, added_at=now))
        _audit(
            services,
            session,
            "aliyun.pool.added",
            f"aliyun-pool:{owner}/{pool_key}",
            {"owner": owner, "pool_key": pool_key, "numbers": added},
        )
    click.echo(f"added {len(added)} number(s) to {pool_key} of {owner}: {', '.join(added) or '-'}")


@pool.command("remove")
@click.argument("pool_key", metavar="POOLKEY")
@click.argument("numbers", nargs=-1, required=True)
@_owner
def pool_remove(pool_key: str, numbers: tuple[str, ...], owner: str) -> None:
    """Take these numbers out of POOLKEY of OWNER (their live bindings stay)."""
    pool_key = _pool_key(pool_key)
    with _services() as services, services.db.session() as session:
        wanted = _relay_numbers(services, session, numbers)
        removed = sorted(
            session.scalars(
                delete(AliyunPoolNumber)
                .where(
                    AliyunPoolNumber.owner == owner,
                    AliyunPoolNumber.pool_key == pool_key,
                    AliyunPoolNumber.e164.in_(wanted),
                )
                .returning(AliyunPoolNumber.e164)
            )
        )
        _audit(
            services,
            session,
            "aliyun.pool.removed",
            f"aliyun-pool:{owner}/{pool_key}",
            {"owner": owner, "pool_key": pool_key, "numbers": removed},
        )
    click.echo(f"removed {len(removed)} number(s) from {pool_key} of {owner}: {', '.join(removed) or '-'}")


@pool.command("list")
@click.option("--owner", default=None, help="only this owner's PoolKeys")
@click.option("--json", "as_json", is_flag=True)
def pool_list(owner: str | None, as_json: bool) -> None:
    """PoolKeys with numbers: owner, PoolKey, number, its pool status."""
    query = (
        select(AliyunPoolNumber.owner, AliyunPoolNumber.pool_key, AliyunPoolNumber.e164, RelayNumber.status)
        .join(RelayNumber, RelayNumber.e164 == AliyunPoolNumber.e164)
        .order_by(AliyunPoolNumber.owner, AliyunPoolNumber.pool_key, AliyunPoolNumber.e164)
    )
    if owner is not None:
        query = query.where(AliyunPoolNumber.owner == owner)
    with _services() as services, services.db.session() as session:
        rows = session.execute(query).all()
    if as_json:
        entries = [{"owner": o, "pool_key": k, "number": n, "status": s} for o, k, n, s in rows]
        click.echo(json.dumps(entries, indent=2, ensure_ascii=False))
        return
    click.echo(f"{'owner':<20} {'pool key':<24} {'number':<16} status")
    for o, k, n, s in rows:
        click.echo(f"{o[:20]:<20} {k[:24]:<24} {n:<16} {s}")
