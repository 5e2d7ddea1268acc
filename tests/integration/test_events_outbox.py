"""Events are written to the outbox in the transaction of their change, for
owners with an events URL only, and carry no party number."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from maskline import services_of
from maskline.api.models import OutboxEvent, Owner
from maskline.clock import FixedClock
from maskline.numbers.interfaces import BindingEvent, BindRequest, PoolExhausted, PoolExhaustedEvent
from maskline.numbers.models import Binding
from maskline.wiring import Services
from tests.conftest import add_relay_numbers
from tests.integration.api_helpers import ApiClient
from tests.integration.conftest import (
    BUYER,
    COURIER,
    MERCHANT,
    STRANGER,
    X1,
    X2,
    Twilio,
    sid,
    without_party_digits,
)

URL = "https://events.example.com/maskline?token=abc"


def axb(order: str = "o-1", *, owner: str = "shop-a", buyer: str = BUYER, **kw: Any) -> BindRequest:
    parties = {"buyer": buyer, "merchant": MERCHANT}
    return BindRequest(order_id=order, mode="axb", parties=parties, owner=owner, **kw)


def outbox(services: Services) -> list[OutboxEvent]:
    with services.db.session() as session:
        return list(session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def payloads(services: Services) -> list[dict[str, Any]]:
    return [json.loads(row.payload) for row in outbox(services)]


def types(services: Services) -> list[str]:
    return [row.type for row in outbox(services)]


def binding_count(services: Services) -> int:
    with services.db.session() as session:
        return int(session.scalar(select(func.count()).select_from(Binding)) or 0)


@pytest.fixture
def shop(services: Services, numbers: Any) -> Any:
    """Two relay numbers, and owner shop-a takes events."""
    add_relay_numbers(services, X1, X2)
    services.events.owners.set_events("shop-a", url=URL)
    return numbers


def test_a_bind_queues_binding_created_with_ids_roles_and_times(
    services: Services, shop: Any, clock: FixedClock
) -> None:
    view = shop.bindings.bind(axb(ttl=dt.timedelta(hours=2)))
    [row] = outbox(services)
    assert (row.owner, row.type, row.status, row.attempts, row.next_attempt_at) == (
        "shop-a",
        "binding.created",
        "pending",
        0,
        clock(),
    )
    event = json.loads(row.payload)
    assert event["id"] == row.event_id and event["type"] == "binding.created"
    assert event["created_at"] == "2026-11-24T12:00:00Z"
    assert event["data"] == {
        "binding_id": view.id,
        "order_id": "o-1",
        "mode": "axb",
        "relay_number": view.relay_number,
        "extension": None,
        "roles": ["buyer", "merchant"],
        "status": "active",
        "created_at": "2026-11-24T12:00:00Z",
        "expires_at": "2026-11-24T14:00:00Z",
        "delivered_at": None,
    }


def test_owners_without_an_events_url_get_no_events(services: Services, shop: Any) -> None:
    view = shop.bindings.bind(axb(owner="shop-b"))
    shop.bindings.unbind(view.id)
    assert outbox(services) == []


def test_an_unbind_queues_binding_unbound_with_its_end(
    services: Services, shop: Any, clock: FixedClock
) -> None:
    view = shop.bindings.bind(axb())
    clock.advance(minutes=5)
    shop.bindings.unbind(view.id)
    shop.bindings.unbind(view.id)  # idempotent: no second event
    created, unbound = payloads(services)
    assert (created["type"], unbound["type"]) == ("binding.created", "binding.unbound")
    assert unbound["data"]["binding_id"] == view.id and unbound["data"]["status"] == "unbound"
    assert unbound["data"]["ended_at"] == "2026-11-24T12:05:00Z"


def test_the_sweeper_queues_binding_expired(services: Services, shop: Any, clock: FixedClock) -> None:
    view = shop.bindings.bind(axb(ttl=dt.timedelta(hours=1)))
    clock.advance(hours=3)
    assert shop.sweeper.run_once(clock(), orphan_grace=0).expired == 1
    expired = payloads(services)[-1]
    assert expired["type"] == "binding.expired" and expired["data"]["binding_id"] == view.id
    assert (expired["data"]["status"], expired["data"]["ended_at"]) == ("expired", "2026-11-24T13:00:00Z")
    assert expired["created_at"] == "2026-11-24T15:00:00Z"


def test_erasing_a_party_queues_binding_unbound(services: Services, shop: Any) -> None:
    view = shop.bindings.bind(axb())
    with services.db.session() as session:
        binding = session.get(Binding, view.id)
        assert binding is not None
        token = binding.parties[0].token
        services.vault.erase(session, token, actor="test", reason="the buyer asked")
    assert types(services) == ["binding.created", "binding.unbound"]


def test_an_exhausted_pool_queues_pool_exhausted_and_no_binding_created(
    services: Services, numbers: Any
) -> None:
    add_relay_numbers(services, X1)
    services.events.owners.set_events("shop-a", url=URL)
    numbers.bindings.bind(axb("o-1"))
    with pytest.raises(PoolExhausted):
        numbers.bindings.bind(axb("o-2", buyer=STRANGER))
    assert types(services) == ["binding.created", "pool.exhausted"] and binding_count(services) == 1
    exhausted = payloads(services)[-1]["data"]
    assert exhausted == {
        "owner": "shop-a",
        "order_id": "o-2",
        "mode": "axb",
        "role": "merchant",
        "needed": 1,
        "at": "2026-11-24T12:00:00Z",
    }


def test_a_bind_that_fails_after_its_event_leaves_neither_binding_nor_event(
    services: Services, shop: Any
) -> None:
    def refuse(_session: Any, event: BindingEvent | PoolExhaustedEvent) -> None:
        raise RuntimeError(f"a later step of {event.type} failed")

    shop.bindings.on_event(refuse)  # runs after the outbox's listener, in the same transaction
    with pytest.raises(RuntimeError):
        shop.bindings.bind(axb())
    assert outbox(services) == [] and binding_count(services) == 0


def test_an_unbind_that_fails_after_its_event_leaves_the_binding_live_and_no_event(
    services: Services, shop: Any, clock: FixedClock
) -> None:
    view = shop.bindings.bind(axb())

    def refuse_unbind(_session: Any, event: BindingEvent | PoolExhaustedEvent) -> None:
        if event.type == "binding.unbound":
            raise RuntimeError("a later step of the unbind failed")

    shop.bindings.on_event(refuse_unbind)
    with pytest.raises(RuntimeError):
        shop.bindings.unbind(view.id)
    assert types(services) == ["binding.created"]
    assert shop.bindings.get(view.id).status == "active"


def test_the_outbox_and_owners_tables_hold_no_party_number(
    services: Services, shop: Any, clock: FixedClock
) -> None:
    first = shop.bindings.bind(axb("o-1", ttl=dt.timedelta(hours=1)))
    slip = shop.bindings.bind(
        BindRequest(order_id="o-2", mode="axe", parties={"buyer": BUYER}, allow=[COURIER], owner="shop-a")
    )
    shop.bindings.unbind(slip.id)
    shop.bindings.bind(axb("o-3", buyer=COURIER))  # the merchant is now on both numbers
    with pytest.raises(PoolExhausted):
        shop.bindings.bind(axb("o-4", buyer=STRANGER))
    clock.advance(hours=2)
    shop.sweeper.run_once(clock(), orphan_grace=0)
    assert set(types(services)) == {"binding.created", "binding.unbound", "binding.expired", "pool.exhausted"}
    with services.db.session() as session:
        dump = [repr(row.__dict__) for row in session.scalars(select(OutboxEvent))]
        dump += [repr(row.__dict__) for row in session.scalars(select(Owner))]
    text = "\n".join(dump)
    assert first.id in text and slip.extension in text  # the dump is the real thing
    assert without_party_digits(text)


def test_the_api_queues_events_for_its_owner(app: Flask, api: ApiClient) -> None:
    services = services_of(app)
    services.events.owners.set_events("shop-a", url=URL)
    created = api.post(
        "/v1/bindings", {"order_id": "o-9", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    assert created.status == 201, created.text
    assert api.delete(f"/v1/bindings/{created.body['id']}").status in (200, 204)
    events = payloads(services)
    assert [e["type"] for e in events] == ["binding.created", "binding.unbound"]
    assert {e["data"]["binding_id"] for e in events} == {created.body["id"]}
    assert without_party_digits(json.dumps(events))


def test_a_call_that_ends_queues_one_interaction_completed(
    app: Flask, twilio: Twilio, bind: Callable[..., Any], clock: FixedClock
) -> None:
    services = services_of(app)
    services.events.owners.set_events("shop-a", url=URL)
    view = bind(owner="shop-a")
    call_sid = sid()
    twilio.call(MERCHANT, view.relay_number, call_sid)
    twilio.call_status(call_sid, "in-progress")
    assert types(services) == ["binding.created"]  # not over yet
    clock.advance(seconds=42)
    twilio.call_status(call_sid, "completed", 42)
    twilio.call_status(call_sid, "completed", 42)  # Twilio retries: still one event
    assert types(services) == ["binding.created", "interaction.completed"]
    completed = payloads(services)[-1]["data"]
    assert completed == {
        "interaction_id": call_sid,
        "binding_id": view.id,
        "order_id": "o-1",
        "relay_number": view.relay_number,
        "type": "call",
        "from_role": "merchant",
        "to_role": "buyer",
        "status": "completed",
        "duration": 42,
        "started_at": "2026-11-24T12:00:00Z",
        "ended_at": "2026-11-24T12:00:42Z",
    }


def test_a_delivered_message_queues_interaction_completed(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    services = services_of(app)
    services.events.owners.set_events("shop-a", url=URL)
    view = bind(owner="shop-a")
    message_sid = sid("SM")
    twilio.sms(MERCHANT, view.relay_number, "on my way", message_sid=message_sid)
    # As Twilio sends them: the forwarded message goes from the relay number.
    forwarded = {"MessageSid": message_sid, "From": view.relay_number, "To": BUYER}
    twilio.post("/webhooks/twilio/sms/status", {**forwarded, "MessageStatus": "sent"})
    twilio.post("/webhooks/twilio/sms/status", {**forwarded, "MessageStatus": "delivered"})
    assert types(services) == ["binding.created", "interaction.completed"]
    data = payloads(services)[-1]["data"]
    assert (data["type"], data["status"], data["from_role"], data["to_role"]) == (
        "sms",
        "delivered",
        "merchant",
        "buyer",
    )


def test_interaction_listeners_run_once_in_its_transaction_whether_or_not_the_owner_takes_events(
    app: Flask, twilio: Twilio, bind: Callable[..., Any]
) -> None:
    services = services_of(app)
    seen: list[str] = []

    def listener(session: Any, interaction: Any) -> None:
        seen.append(interaction.sid)
        services.events.outbox.enqueue_body(session, owner="@test", type="test.raw", body='[{"as":"is"}]')

    services.events.outbox.on_interaction(listener)
    view = bind(owner="shop-z")  # takes no events
    call_sid = sid()
    twilio.call(MERCHANT, view.relay_number, call_sid)
    twilio.call_status(call_sid, "completed", 3)
    twilio.call_status(call_sid, "completed", 3)  # a retry: not again
    assert seen == [call_sid]
    [row] = outbox(services)
    assert (row.owner, row.type, row.payload, row.status) == ("@test", "test.raw", '[{"as":"is"}]', "pending")
