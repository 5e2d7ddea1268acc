"""One exception tree (maskline.errors, issue 21): each package keeps its own
root and names, and every error says which kind of failure it is."""

from __future__ import annotations

import pytest

from config import SettingsError
from config.redis_url import RedisUrlError
from maskline import errors
from maskline.admin import interfaces as admin
from maskline.api import interfaces as api
from maskline.api.calls import CallQuotaExceeded, ClickToCallUnavailable
from maskline.api.keys import KeyRequestInvalid
from maskline.api.views import Unavailable as ApiUnavailable
from maskline.audit import interfaces as audit
from maskline.compat.aliyun import credentials as aliyun_credentials
from maskline.compat.aliyun import interfaces as aliyun
from maskline.compat.twilio import credentials as twilio_credentials
from maskline.compat.twilio import interfaces as proxy
from maskline.events import interfaces as events
from maskline.numbers import interfaces as numbers
from maskline.outbound import RefusedUrl
from maskline.sim.twiml import TwimlError
from maskline.twilio_rest import TwilioError, TwilioNotConfigured
from maskline.vault import interfaces as vault
from maskline.webhooks import interfaces as webhooks
from maskline.wiring import StartupError

ROOTS = [
    admin.AdminError,
    api.ApiError,
    audit.AuditError,
    events.EventsError,
    numbers.NumbersError,
    vault.VaultError,
    webhooks.WebhookError,
    proxy.ProxyError,
    aliyun.AliyunError,
    StartupError,
    TwilioError,
    TwilioNotConfigured,
    CallQuotaExceeded,
    SettingsError,
    RedisUrlError,
    RefusedUrl,
    KeyRequestInvalid,
    TwimlError,
]


@pytest.mark.parametrize("root", ROOTS, ids=lambda c: c.__name__)
def test_every_root_is_a_maskline_error(root: type[Exception]) -> None:
    assert issubclass(root, errors.MasklineError)


@pytest.mark.parametrize(
    "unavailable",
    [
        numbers.RoutingUnavailable,
        webhooks.BackendUnavailable,
        ClickToCallUnavailable,
        ApiUnavailable,
        proxy.ServiceUnavailable,
        aliyun.ServiceUnavailable,
        twilio_credentials.NotAvailable,
    ],
    ids=lambda c: f"{c.__module__}.{c.__name__}",
)
def test_every_unavailable_is_the_one_kind(unavailable: type[Exception]) -> None:
    assert issubclass(unavailable, errors.Unavailable)


def test_the_two_faces_share_one_credentials_error() -> None:
    assert aliyun_credentials.NotAvailable is twilio_credentials.NotAvailable


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (numbers.InvalidRequest("ttl", "too long"), errors.InputError),
        (vault.InvalidPhoneNumber("parties.buyer", "not a number"), errors.InputError),
        (numbers.BindingNotFound("b"), errors.NotFound),
        (vault.VaultEntryNotFound("t"), errors.NotFound),
        (numbers.PoolExhausted("none"), errors.Conflict),
        (numbers.BindingNotLive("b"), errors.Conflict),
        (webhooks.SignatureInvalid("bad"), errors.Forbidden),
        (admin.NotPermitted("no"), errors.Forbidden),
        (admin.RevealNotFound("gone"), errors.NotFound),
        (vault.VaultIntegrityError("tampered"), errors.IntegrityError),
        (audit.AuditChainBroken("row 3"), errors.IntegrityError),
        (api.NotFound("no"), errors.NotFound),
        (proxy.ResourceNotFound("no"), errors.NotFound),
        (aliyun.Forbidden("scope"), errors.Forbidden),
    ],
    ids=lambda v: type(v).__name__,
)
def test_leaves_say_their_kind(error: Exception, kind: type[Exception]) -> None:
    assert isinstance(error, kind)


def test_a_kind_does_not_catch_the_others() -> None:
    outage = numbers.RoutingUnavailable("redis down")
    assert not isinstance(outage, errors.InputError | errors.NotFound | errors.Conflict | errors.Forbidden)


@pytest.mark.parametrize("error", [SettingsError, RedisUrlError, RefusedUrl, KeyRequestInvalid, TwimlError])
def test_what_was_a_value_error_still_is(error: type[Exception]) -> None:
    # An ``except ValueError`` anywhere still catches what it caught before.
    assert issubclass(error, ValueError)
    assert issubclass(error, errors.InputError)


def test_the_kinds_are_not_builtin_errors() -> None:
    # A new InputError is not silently swallowed by an old ``except ValueError``.
    assert not issubclass(errors.InputError, ValueError)
    assert not issubclass(errors.NotFound, LookupError)
