"""``maskline vault reveal`` with and without a dual-control reveal request.

Requests are made and approved in this process, through the reveal service
over the command's own database and key ring; the command spends them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from config import load_settings
from maskline.admin.reveal import RevealPolicy, RevealService
from maskline.audit.models import AuditRecord
from maskline.clock import FixedClock
from maskline.wiring import Services, build_services
from tests.e2e.conftest import Cli
from tests.integration.reveal_helpers import BINDING, BUYER, MERCHANT, REASON, add_admin, add_binding


@pytest.fixture
def services(initialised: Cli) -> Iterator[Services]:
    """This process's services over the command's database and key ring."""
    built = build_services(load_settings(environ=initialised.env), check_schema=False)
    yield built
    built.close()


@pytest.fixture
def reveals(services: Services) -> RevealService:
    return RevealService(
        db=services.db,
        vault=services.vault,
        audit=services.audit,
        policy=RevealPolicy.from_settings(services.settings),
        clock=services.clock,
    )


@pytest.fixture
def tokens(services: Services) -> dict[str, str]:
    for name in ("alice", "bob"):
        add_admin(services, name, "security")
    return add_binding(services)


def _approved(services: Services, reveals: RevealService, role: str = "buyer") -> str:
    alice, bob = reveals.identity("alice"), reveals.identity("bob")
    request_id = reveals.request(alice, binding_id=BINDING, role=role, reason=REASON).id
    reveals.approve(bob, request_id)
    return request_id


def _actions(services: Services) -> list[str]:
    with services.db.session() as session:
        return list(session.scalars(select(AuditRecord.action).order_by(AuditRecord.seq)))


def _error(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def _no_party_number(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return not any(n[2:] in digits for n in (BUYER, MERCHANT))


def test_production_refuses_the_plain_form(
    initialised: Cli, services: Services, tokens: dict[str, str]
) -> None:
    result = initialised.run(
        "vault",
        "reveal",
        tokens["buyer"],
        "--actor",
        "alice",
        "--reason",
        "ticket 42, urgent",
        env={"MASKLINE_ENV": "production"},
        ok=False,
    )

    assert "needs --request ID" in _error(result.stderr)
    assert result.stdout == ""
    assert "vault.reveal" not in _actions(services)


def test_development_keeps_the_plain_audited_form(
    initialised: Cli, services: Services, tokens: dict[str, str]
) -> None:
    number = initialised.out("vault", "reveal", tokens["buyer"], "--actor", "ops", "--reason", "ticket 42")

    assert number == BUYER
    assert _actions(services)[-1] == "vault.reveal"


def test_an_approved_request_is_spent_as_its_one_view(
    initialised: Cli, services: Services, reveals: RevealService, tokens: dict[str, str]
) -> None:
    request_id = _approved(services, reveals)
    args = ("vault", "reveal", tokens["buyer"], "--actor", "alice", "--request", request_id)

    first = initialised.run(*args)
    second = initialised.run(*args, ok=False)

    assert first.stdout.strip() == BUYER
    assert "already viewed" in _error(second.stderr)
    assert second.stdout == ""
    assert reveals.get(request_id).status == "viewed"
    assert _actions(services)[-3:] == ["reveal.view", "vault.reveal", "reveal.refuse"]
    assert _no_party_number(first.stderr + second.stderr)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--actor", "bob"), "only the admin who made"),
        (("--actor", "nobody"), "no admin named nobody"),
        (("--actor", "alice", "--reason", "ticket 42, urgent"), "carries its own reason"),
    ],
)
def test_a_request_is_refused_to_anyone_but_its_requester(
    initialised: Cli,
    services: Services,
    reveals: RevealService,
    tokens: dict[str, str],
    extra: tuple[str, ...],
    message: str,
) -> None:
    request_id = _approved(services, reveals)

    result = initialised.run("vault", "reveal", tokens["buyer"], "--request", request_id, *extra, ok=False)

    assert message in _error(result.stderr)
    assert result.stdout == ""
    assert reveals.get(request_id).status == "approved"


def test_a_request_for_another_party_is_refused(
    initialised: Cli, services: Services, reveals: RevealService, tokens: dict[str, str]
) -> None:
    request_id = _approved(services, reveals, role="merchant")

    result = initialised.run(
        "vault", "reveal", tokens["buyer"], "--actor", "alice", "--request", request_id, ok=False
    )

    assert "another party" in _error(result.stderr)
    assert result.stdout == ""
    assert reveals.get(request_id).status == "approved"


def test_the_worker_expires_lapsed_requests(
    initialised: Cli, services: Services, tokens: dict[str, str]
) -> None:
    # Made two days ago (the command runs on the real clock): long lapsed.
    two_days_ago = FixedClock(services.clock() - dt.timedelta(days=2))
    earlier = RevealService(
        db=services.db,
        vault=services.vault,
        audit=services.audit,
        policy=RevealPolicy.from_settings(services.settings),
        clock=two_days_ago,
    )
    request_id = _approved(services, earlier)

    output = initialised.out("worker", "--once")

    assert "reveal requests expired: 1" in output.splitlines()
    assert earlier.get(request_id).status == "expired"
    assert _actions(services)[-1] == "reveal.expire"
