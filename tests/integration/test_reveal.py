"""The dual-control reveal over a real database: each step, each refusal,
expiry, the audit trail, and two views racing for one approval."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select, text, update

from maskline.admin.interfaces import (
    AdminIdentity,
    InvalidAdminInput,
    NotPermitted,
    RevealNotFound,
    RevealRefused,
)
from maskline.admin.models import AdminUser, RevealRequest
from maskline.admin.reveal import RevealPolicy, RevealService
from maskline.audit.models import AuditRecord
from maskline.clock import FixedClock
from maskline.wiring import Services
from tests.integration.reveal_helpers import BINDING, BUYER, MERCHANT, REASON, add_admin, add_binding

REQUEST_TTL, VIEW_WINDOW = dt.timedelta(hours=24), dt.timedelta(minutes=15)


@dataclass
class Viewed:
    """The alerts hook as the service sees it: it records what it was told."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, *, admin: str, request_id: str, at: dt.datetime) -> None:
        self.calls.append({"admin": admin, "request_id": request_id, "at": at})


@dataclass
class World:
    services: Services
    clock: FixedClock
    reveals: RevealService
    viewed: Viewed
    tokens: dict[str, str]
    admins: dict[str, AdminIdentity]

    def new_service(self, *, daily_limit: int = 3, on_view: Any = None) -> RevealService:
        return _service(self.services, self.clock, on_view or self.viewed, daily_limit=daily_limit)

    def request(self, who: str = "alice", role: str = "buyer") -> str:
        return self.reveals.request(self.admins[who], binding_id=BINDING, role=role, reason=REASON).id

    def approved(self, who: str = "alice", by: str = "bob") -> str:
        request_id = self.request(who)
        self.reveals.approve(self.admins[by], request_id)
        return request_id

    def status(self, request_id: str) -> str:
        with self.services.db.session() as session:
            row = session.get(RevealRequest, request_id)
            assert row is not None
            return row.status

    def trail(self) -> list[tuple[str, str, str]]:
        """(action, actor, subject) of the reveal's records, in chain order."""
        with self.services.db.session() as session:
            rows = session.execute(
                select(AuditRecord.action, AuditRecord.actor, AuditRecord.subject)
                .where(AuditRecord.action.like("reveal.%") | (AuditRecord.action == "vault.reveal"))
                .order_by(AuditRecord.seq)
            ).all()
        return [tuple(r) for r in rows]

    def actions(self) -> list[str]:
        return [action for action, _, _ in self.trail()]

    def set_admin(self, name: str, **values: Any) -> None:
        with self.services.db.session() as session:
            session.execute(update(AdminUser).where(AdminUser.name == name).values(**values))


def _service(services: Services, clock: FixedClock, on_view: Any, *, daily_limit: int = 3) -> RevealService:
    policy = RevealPolicy(request_ttl=REQUEST_TTL, view_window=VIEW_WINDOW, daily_limit=daily_limit)
    return RevealService(
        db=services.db,
        vault=services.vault,
        audit=services.audit,
        policy=policy,
        clock=clock,
        on_view=on_view,
    )


@pytest.fixture
def world(services: Services, clock: FixedClock) -> World:
    admins = {
        name: add_admin(services, name, role)
        for name, role in (
            ("alice", "security"),
            ("bob", "security"),
            ("carol", "security"),
            ("olga", "operator"),
            ("vic", "viewer"),
        )
    }
    viewed = Viewed()
    reveals = _service(services, clock, viewed)
    return World(services, clock, reveals, viewed, add_binding(services), admins)


def _digits(text_: str) -> str:
    return re.sub(r"\D", "", text_)


def _no_party_number(text_: str) -> bool:
    digits = _digits(text_)
    return not any(n[2:] in digits for n in (BUYER, MERCHANT))


# -- the whole path ------------------------------------------------------------


def test_request_approve_view_shows_the_number_once_with_every_step_audited(world: World) -> None:
    alice, bob = world.admins["alice"], world.admins["bob"]

    pending = world.reveals.request(alice, binding_id=BINDING, role="buyer", reason=REASON)
    approved = world.reveals.approve(bob, pending.id)
    number = world.reveals.view(alice, pending.id)

    assert number == BUYER
    assert (pending.status, pending.requested_by, pending.expires_at) == (
        "pending",
        "alice",
        world.clock() + REQUEST_TTL,
    )
    assert (approved.status, approved.decided_by, approved.expires_at) == (
        "approved",
        "bob",
        world.clock() + VIEW_WINDOW,
    )
    assert world.trail() == [
        ("reveal.request", "admin:alice", pending.id),
        ("reveal.approve", "admin:bob", pending.id),
        ("reveal.view", "admin:alice", pending.id),
        ("vault.reveal", "admin:alice", world.tokens["buyer"]),
    ]
    shown = world.reveals.get(pending.id)
    assert (shown.status, shown.viewed_at, shown.requested_by, shown.decided_by) == (
        "viewed",
        world.clock(),
        "alice",
        "bob",
    )


def test_the_view_tells_the_alerts_hook_who_looked_and_when(world: World) -> None:
    request_id = world.approved()
    world.clock.advance(minutes=3)

    world.reveals.view(world.admins["alice"], request_id)

    assert world.viewed.calls == [{"admin": "admin:alice", "request_id": request_id, "at": world.clock()}]


def test_a_failing_alerts_hook_does_not_lose_the_number(world: World) -> None:
    def broken(*, admin: str, request_id: str, at: dt.datetime) -> None:
        raise RuntimeError("alerts are down")

    reveals = world.new_service(on_view=broken)
    request_id = world.approved()

    assert reveals.view(world.admins["alice"], request_id) == BUYER
    assert world.status(request_id) == "viewed"


def test_the_merchant_party_can_be_requested_too(world: World) -> None:
    request_id = world.request(role="merchant")
    world.reveals.approve(world.admins["bob"], request_id)

    assert world.reveals.view(world.admins["alice"], request_id) == MERCHANT


# -- refusals --------------------------------------------------------------------


def test_self_approval_is_refused_and_recorded(world: World) -> None:
    request_id = world.request("alice")

    with pytest.raises(RevealRefused, match="your own request"):
        world.reveals.approve(world.admins["alice"], request_id)

    assert world.status(request_id) == "pending"
    assert world.trail()[-1] == ("reveal.refuse", "admin:alice", request_id)


def test_a_second_view_is_refused(world: World) -> None:
    request_id = world.approved()
    world.reveals.view(world.admins["alice"], request_id)

    with pytest.raises(RevealRefused, match="already viewed"):
        world.reveals.view(world.admins["alice"], request_id)

    assert world.actions().count("vault.reveal") == 1
    assert len(world.viewed.calls) == 1


def test_only_the_requester_may_view(world: World) -> None:
    request_id = world.approved("alice", by="bob")

    for other in ("bob", "carol"):
        with pytest.raises(RevealRefused, match="only the admin who made"):
            world.reveals.view(world.admins[other], request_id)

    assert world.status(request_id) == "approved"
    assert world.reveals.view(world.admins["alice"], request_id) == BUYER


def test_a_pending_request_cannot_be_viewed(world: World) -> None:
    request_id = world.request()

    with pytest.raises(RevealRefused, match="not approved yet"):
        world.reveals.view(world.admins["alice"], request_id)

    assert "vault.reveal" not in world.actions()


def test_an_approved_request_cannot_be_approved_again(world: World) -> None:
    request_id = world.approved("alice", by="bob")

    with pytest.raises(RevealRefused, match="approved, not pending"):
        world.reveals.approve(world.admins["carol"], request_id)


def test_two_views_at_once_show_the_number_exactly_once(world: World) -> None:
    request_id = world.approved()
    alice = world.admins["alice"]
    threads_count = 8
    start = threading.Barrier(threads_count)
    results: list[str] = []
    refusals: list[str] = []
    others: list[BaseException] = []
    lock = threading.Lock()

    def view() -> None:
        start.wait()
        try:
            number = world.reveals.view(alice, request_id)
        except RevealRefused as exc:
            with lock:
                refusals.append(str(exc))
        except BaseException as exc:  # reported by the assertion below
            with lock:
                others.append(exc)
        else:
            with lock:
                results.append(number)

    threads = [threading.Thread(target=view) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert others == []
    assert results == [BUYER]
    assert len(refusals) == threads_count - 1
    assert all("already viewed" in r for r in refusals)
    assert world.actions().count("vault.reveal") == 1
    assert len(world.viewed.calls) == 1


STEPS: dict[str, Callable[[World, AdminIdentity, str], object]] = {
    "request": lambda w, who, _: w.reveals.request(who, binding_id=BINDING, role="buyer", reason=REASON),
    "approve": lambda w, who, rid: w.reveals.approve(who, rid),
    "deny": lambda w, who, rid: w.reveals.deny(who, rid, reason=REASON),
    "cancel": lambda w, who, rid: w.reveals.cancel(who, rid),
    "view": lambda w, who, rid: w.reveals.view(who, rid),
}


@pytest.mark.parametrize("name", ["olga", "vic"])
@pytest.mark.parametrize("step", list(STEPS))
def test_viewers_and_operators_take_no_part(world: World, name: str, step: str) -> None:
    request_id = world.approved() if step in ("view", "cancel") else world.request()
    before = world.status(request_id)

    with pytest.raises(NotPermitted):
        STEPS[step](world, world.admins[name], request_id)

    assert world.status(request_id) == before
    assert "vault.reveal" not in world.actions()


@pytest.mark.parametrize("step", list(STEPS))
def test_a_disabled_admin_can_do_none_of_it(world: World, step: str) -> None:
    request_id = world.approved() if step in ("view", "cancel") else world.request()
    actor = "bob" if step in ("approve", "deny") else "alice"
    world.set_admin(actor, disabled_at=world.clock())

    with pytest.raises(NotPermitted, match="disabled"):
        STEPS[step](world, world.admins[actor], request_id)

    assert "vault.reveal" not in world.actions()


def test_a_session_of_an_admin_since_demoted_is_refused(world: World) -> None:
    request_id = world.approved()
    world.set_admin("alice", role="viewer")

    with pytest.raises(NotPermitted):
        world.reveals.view(world.admins["alice"], request_id)

    assert world.status(request_id) == "approved"


def test_an_identity_that_does_not_match_its_account_is_refused(world: World) -> None:
    request_id = world.approved()
    forged = AdminIdentity(id=world.admins["alice"].id, name="mallory", role="security")

    with pytest.raises(NotPermitted):
        world.reveals.view(forged, request_id)


# -- the daily limit -------------------------------------------------------------------


def test_the_daily_limit_refuses_the_next_request_until_the_next_utc_day(world: World) -> None:
    reveals = world.new_service(daily_limit=3)
    alice = world.admins["alice"]

    made = [reveals.request(alice, binding_id=BINDING, role="buyer", reason=REASON) for _ in range(3)]
    reveals.cancel(alice, made[0].id)  # a cancelled request still counts
    with pytest.raises(RevealRefused, match="daily reveal limit reached: 3"):
        reveals.request(alice, binding_id=BINDING, role="buyer", reason=REASON)
    left_today = reveals.requests_left_today(alice)
    world.clock.now = dt.datetime(2026, 11, 25, 0, 0, tzinfo=dt.UTC)
    next_day = reveals.request(alice, binding_id=BINDING, role="buyer", reason=REASON)

    assert left_today == 0
    assert next_day.status == "pending"
    assert reveals.requests_left_today(alice) == 2
    assert world.actions().count("reveal.request") == 4
    assert world.actions().count("reveal.refuse") == 1


def test_the_daily_limit_is_per_admin(world: World) -> None:
    reveals = world.new_service(daily_limit=1)
    reveals.request(world.admins["alice"], binding_id=BINDING, role="buyer", reason=REASON)

    with pytest.raises(RevealRefused):
        reveals.request(world.admins["alice"], binding_id=BINDING, role="buyer", reason=REASON)
    other = reveals.request(world.admins["bob"], binding_id=BINDING, role="buyer", reason=REASON)

    assert other.requested_by == "bob"


# -- expiry ------------------------------------------------------------------------


def test_a_pending_request_lapses_and_the_worker_expires_it(world: World) -> None:
    request_id = world.request()
    world.clock.advance(hours=24)

    with pytest.raises(RevealRefused, match="lapsed"):
        world.reveals.approve(world.admins["bob"], request_id)
    expired = world.reveals.expire_due(world.clock())
    again = world.reveals.expire_due(world.clock())

    assert (expired, again) == (1, 0)
    assert world.status(request_id) == "expired"
    assert world.trail()[-1] == ("reveal.expire", "worker", request_id)
    assert _data_of_last(world, "reveal.expire")["was"] == "pending"


def test_an_approval_unviewed_within_the_window_expires(world: World) -> None:
    request_id = world.approved()
    world.clock.advance(minutes=15)

    with pytest.raises(RevealRefused, match=r"view window .* closed"):
        world.reveals.view(world.admins["alice"], request_id)
    expired = world.reveals.expire_due(world.clock())

    assert expired == 1
    assert world.status(request_id) == "expired"
    assert _data_of_last(world, "reveal.expire")["was"] == "approved"
    assert "vault.reveal" not in world.actions()


def test_a_view_just_inside_the_window_works(world: World) -> None:
    request_id = world.approved()
    world.clock.advance(minutes=14, seconds=59)

    assert world.reveals.view(world.admins["alice"], request_id) == BUYER


def test_expiry_leaves_live_and_finished_requests_alone(world: World) -> None:
    viewed = world.approved()
    world.reveals.view(world.admins["alice"], viewed)
    denied = world.request()
    world.reveals.deny(world.admins["bob"], denied, reason="not a good enough reason")
    live = world.request("carol")
    world.clock.advance(hours=1)

    assert world.reveals.expire_due(world.clock()) == 0
    assert [world.status(r) for r in (viewed, denied, live)] == ["viewed", "denied", "pending"]


# -- deny and cancel -----------------------------------------------------------------


def test_a_denied_request_cannot_be_approved_or_viewed(world: World) -> None:
    request_id = world.request()

    denied = world.reveals.deny(world.admins["bob"], request_id, reason="no ticket supports this")
    with pytest.raises(RevealRefused, match="denied"):
        world.reveals.approve(world.admins["carol"], request_id)
    with pytest.raises(RevealRefused, match="denied"):
        world.reveals.view(world.admins["alice"], request_id)

    assert (denied.status, denied.decided_by) == ("denied", "bob")
    assert "reveal.deny" in world.actions()


def test_the_requester_cannot_deny_their_own_request(world: World) -> None:
    request_id = world.request()

    with pytest.raises(RevealRefused, match="cancel it instead"):
        world.reveals.deny(world.admins["alice"], request_id, reason="changed my mind about it")


def test_only_the_requester_may_cancel_even_after_approval(world: World) -> None:
    request_id = world.approved()

    with pytest.raises(RevealRefused, match="only the admin who made"):
        world.reveals.cancel(world.admins["bob"], request_id)
    cancelled = world.reveals.cancel(world.admins["alice"], request_id)
    with pytest.raises(RevealRefused, match="cancelled"):
        world.reveals.view(world.admins["alice"], request_id)

    assert cancelled.status == "cancelled"
    assert world.actions()[-2:] == ["reveal.cancel", "reveal.refuse"]


# -- input ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("binding_id", "role", "reason", "field"),
    [
        ("bd_bbbbbbbbbbbbbbbb", "buyer", REASON, "binding_id"),
        ("not a binding", "buyer", REASON, "binding_id"),
        (BINDING, "courier", REASON, "role"),
        (BINDING, "", REASON, "role"),
        (BINDING, "buyer", "because", "reason"),
        (BINDING, "buyer", "          ", "reason"),
        (BINDING, "buyer", "x" * 501, "reason"),
        (BINDING, "buyer", "ticket 4711\x00 oops", "reason"),
    ],
)
def test_bad_input_names_its_field(world: World, binding_id: str, role: str, reason: str, field: str) -> None:
    with pytest.raises(InvalidAdminInput) as caught:
        world.reveals.request(world.admins["alice"], binding_id=binding_id, role=role, reason=reason)

    assert caught.value.field == field
    assert world.actions() == []


def test_an_unknown_role_lists_the_binding_s_parties(world: World) -> None:
    with pytest.raises(InvalidAdminInput, match="its parties: buyer, merchant"):
        world.reveals.request(world.admins["alice"], binding_id=BINDING, role="courier", reason=REASON)


@pytest.mark.parametrize("request_id", ["rv_aaaaaaaaaaaaaaaa", "nonsense", "rv_' OR 1=1 --"])
def test_an_unknown_request_is_not_found(world: World, request_id: str) -> None:
    with pytest.raises(RevealNotFound) as caught:
        world.reveals.approve(world.admins["bob"], request_id)
    with pytest.raises(RevealNotFound):
        world.reveals.get(request_id)

    assert "OR 1=1" not in str(caught.value)


def test_an_erased_party_cannot_be_requested(world: World) -> None:
    with world.services.db.session() as session:
        world.services.vault.erase(session, world.tokens["buyer"], actor="dpo", reason="erasure request 7")

    with pytest.raises(InvalidAdminInput, match="erased"):
        world.reveals.request(world.admins["alice"], binding_id=BINDING, role="buyer", reason=REASON)


def test_a_party_erased_after_approval_is_refused_and_the_request_kept(world: World) -> None:
    request_id = world.approved()
    with world.services.db.session() as session:
        world.services.vault.erase(session, world.tokens["buyer"], actor="dpo", reason="erasure request 7")

    with pytest.raises(RevealRefused, match="erased"):
        world.reveals.view(world.admins["alice"], request_id)

    assert world.status(request_id) == "approved"
    assert "reveal.view" not in world.actions()


def test_a_view_for_another_token_is_refused(world: World) -> None:
    request_id = world.approved()

    with pytest.raises(RevealRefused, match="another party"):
        world.reveals.view(world.admins["alice"], request_id, token=world.tokens["merchant"])
    number = world.reveals.view(world.admins["alice"], request_id, token=world.tokens["buyer"], via="cli:ops")

    assert number == BUYER
    assert _data_of_last(world, "reveal.view")["via"] == "cli:ops"


# -- reading -----------------------------------------------------------------------


def test_list_and_get_show_names_newest_first(world: World) -> None:
    first = world.approved("alice", by="bob")
    world.clock.advance(minutes=1)
    second = world.request("carol", role="merchant")

    rows = world.reveals.list(binding_id=BINDING)
    pending = world.reveals.list(status="pending")

    assert [(r.id, r.requested_by, r.decided_by, r.status) for r in rows] == [
        (second, "carol", None, "pending"),
        (first, "alice", "bob", "approved"),
    ]
    assert [r.id for r in pending] == [second]
    assert world.reveals.list(binding_id="bd_bbbbbbbbbbbbbbbb") == []


def test_identity_looks_an_account_up_by_name(world: World) -> None:
    assert world.reveals.identity("admin:alice") == world.admins["alice"]
    assert world.reveals.identity("bob") == world.admins["bob"]


# -- no number anywhere ------------------------------------------------------------


def test_no_party_number_in_requests_audit_records_or_errors(world: World) -> None:
    messages: list[str] = []
    viewed = world.approved()
    world.reveals.view(world.admins["alice"], viewed)
    for attempt in (
        lambda: world.reveals.view(world.admins["alice"], viewed),
        lambda: world.reveals.approve(world.admins["alice"], world.request()),
        lambda: world.reveals.view(world.admins["bob"], world.approved()),
    ):
        with pytest.raises(RevealRefused) as caught:
            attempt()
        messages.append(str(caught.value))
    world.reveals.request(
        world.admins["carol"], binding_id=BINDING, role="buyer", reason=f"caller says it is {BUYER}, check"
    )
    world.clock.advance(days=1)
    world.reveals.expire_due(world.clock())

    with world.services.db.engine.connect() as conn:
        requests = conn.execute(text("SELECT * FROM reveal_requests")).all()
        audit = conn.execute(text("SELECT * FROM audit_log")).all()
    dumped = json.dumps([[str(v) for v in row] for row in [*requests, *audit]])

    assert len(requests) == 4
    assert {"reveal.request", "reveal.approve", "reveal.view", "reveal.refuse", "reveal.expire"} <= set(
        world.actions()
    )
    assert _no_party_number(dumped)
    assert all(_no_party_number(m) for m in messages)
    assert _no_party_number(repr(world.reveals.list()))


def _data_of_last(world: World, action: str) -> dict[str, Any]:
    with world.services.db.session() as session:
        data = session.scalars(
            select(AuditRecord.data).where(AuditRecord.action == action).order_by(AuditRecord.seq.desc())
        ).first()
    assert data is not None
    loaded: dict[str, Any] = json.loads(data)
    return loaded
