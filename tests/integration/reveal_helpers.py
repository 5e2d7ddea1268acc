"""Rows the reveal tests start from: admin accounts and a binding of two
parties, written directly (accounts and bindings have their own tests)."""

from __future__ import annotations

import datetime as dt

from maskline.admin.interfaces import AdminIdentity, Role
from maskline.admin.models import AdminUser
from maskline.numbers.models import Binding, BindingMember, RelayNumber
from maskline.wiring import Services

BUYER, MERCHANT = "+14155550132", "+12125550143"
RELAY = "+14155550100"
BINDING = "bd_aaaaaaaaaaaaaaaa"
REASON = "ticket 4711: buyer disputes a delivery"


def add_admin(services: Services, name: str, role: Role) -> AdminIdentity:
    with services.db.session() as session:
        user = AdminUser(
            name=name, role=role, password_hash="not-used-here", failed_logins=0, created_at=services.clock()
        )
        session.add(user)
        session.flush()
        return AdminIdentity(id=user.id, name=name, role=role)


def add_binding(services: Services) -> dict[str, str]:
    """Binding BINDING of a buyer and a merchant; their vault tokens by role."""
    now = services.clock()
    with services.db.session() as session:
        tokens = {
            role: services.vault.put(session, number).token
            for role, number in (("buyer", BUYER), ("merchant", MERCHANT))
        }
        session.add(RelayNumber(e164=RELAY, country="US", area="415", status="active", created_at=now))
        session.flush()
        session.add(
            Binding(
                id=BINDING,
                owner="shop-a",
                order_id="o-1",
                mode="axb",
                relay_number=RELAY,
                expires_at=now + dt.timedelta(hours=72),
                created_at=now,
                members=[
                    BindingMember(position=i, kind="party", role=role, token=token)
                    for i, (role, token) in enumerate(tokens.items())
                ],
            )
        )
    return tokens
