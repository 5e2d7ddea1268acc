"""A Twilio Proxy quickstart, moved to maskline: the integration as Twilio's
quickstart writes it (create a Service, add a number, create a Session, add
two Participants, let them talk, then change, read and close the Session),
with only the client line changed. The unmodified ``twilio`` SDK drives it;
the calls arrive as signed webhooks from the carrier side."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from twilio.rest import Client

from tests.conftest import EPOCH
from tests.integration.conftest import BUYER, MERCHANT, X1, AppMaker, Twilio
from tests.integration.test_compat_twilio import (  # noqa: F401 (fixtures)
    app,
    base_url,
    client,
    fake_twilio,
)

PUBLIC = "https://relay.example.com"


def test_the_proxy_quickstart_runs_unchanged(app: Flask, client: Client, make_app: AppMaker) -> None:  # noqa: F811
    # Step 1: a Proxy Service, and a number for it.
    service = client.proxy.v1.services.create(unique_name="My First Service")
    client.proxy.v1.services(service.sid).phone_numbers.create(phone_number=X1)

    # Step 2: a Session, and its two Participants; each reads its proxy number at once.
    session = client.proxy.v1.services(service.sid).sessions.create(unique_name="MyFirstSession")
    participants = client.proxy.v1.services(service.sid).sessions(session.sid).participants
    alice = participants.create(friendly_name="Alice", identifier=BUYER)
    assert alice.proxy_identifier == X1
    bob = participants.create(friendly_name="Bob", identifier=MERCHANT)
    assert bob.proxy_identifier == X1

    # Step 3: Alice calls her proxy number and reaches Bob, who sees the proxy number.
    twilio = Twilio(app, base=PUBLIC)
    call_sid = "CA" + "7" * 32
    assert twilio.call(BUYER, alice.proxy_identifier, call_sid=call_sid).dialed == (X1, MERCHANT)
    twilio.call_status(call_sid, "completed", duration=42)
    assert twilio.call(MERCHANT, bob.proxy_identifier).dialed == (X1, BUYER)

    # Step 4: update the Session (a longer ttl), then read it and its Interactions.
    updated = client.proxy.v1.services(service.sid).sessions(session.sid).update(ttl=3600)
    assert updated.date_expiry == EPOCH + dt.timedelta(seconds=3600)
    fetched = client.proxy.v1.services(service.sid).sessions("MyFirstSession").fetch()
    assert (fetched.sid, fetched.status) == (session.sid, "in-progress")
    interactions = client.proxy.v1.services(service.sid).sessions(session.sid).interactions.list()
    # Alice's call has ended; Bob's is still under way, and listed as Twilio lists it.
    by_call = {i.inbound_resource_sid: i for i in interactions}
    first = by_call[call_sid]
    assert (first.type, first.inbound_participant_sid, first.outbound_participant_sid) == (
        "voice",
        alice.sid,
        bob.sid,
    )
    assert (first.inbound_resource_status, len(interactions)) == ("completed", 2)
    (live,) = [i for i in interactions if i.inbound_resource_sid != call_sid]
    assert (live.inbound_participant_sid, live.inbound_resource_status) == (bob.sid, "in-progress")
    assert [p.friendly_name for p in participants.list()] == ["Alice", "Bob"]

    # Step 5: close it: nobody reaches anybody through the proxy number any more.
    closed = client.proxy.v1.services(service.sid).sessions(session.sid).update(status="closed")
    assert closed.status == "closed"
    assert twilio.call(BUYER, X1).dialed is None
    assert client.proxy.v1.services(service.sid).sessions(session.sid).delete() is True
