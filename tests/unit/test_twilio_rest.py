"""The REST client's base-URL rewriting and the scrubbing of Twilio's messages."""

from __future__ import annotations

import pytest
import requests
from twilio.base.exceptions import TwilioRestException

from maskline.twilio_rest import ConfiguredHttpClient, TwilioError, scrub, translate


@pytest.mark.parametrize(
    ("base", "url", "expected"),
    [
        (
            "http://127.0.0.1:8080",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Calls.json",
            "http://127.0.0.1:8080/2010-04-01/Accounts/AC1/Calls.json",
        ),
        (
            "https://gateway.example.com/twilio/",
            "https://api.twilio.com/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json?PageSize=50&Page=1",
            "https://gateway.example.com/twilio/2010-04-01/Accounts/AC1/IncomingPhoneNumbers.json"
            "?PageSize=50&Page=1",
        ),
    ],
)
def test_every_request_goes_to_the_configured_base_url(base: str, url: str, expected: str) -> None:
    assert ConfiguredHttpClient(base_url=base).rewrite(url) == expected


def test_twilios_message_loses_the_numbers_it_quotes_but_keeps_status_and_code() -> None:
    exc = TwilioRestException(
        400, "/Calls.json", "The 'To' number +1 (415) 555-0132 is not a valid phone number.", code=21211
    )
    error = translate(exc, region="US")
    assert (error.status, error.code) == (400, 21211)
    assert "555" not in error.message and "is not a valid phone number" in error.message
    assert error.summary().startswith("HTTP 400, error 21211: ")


@pytest.mark.parametrize(
    ("exc", "maybe_done"),
    [(requests.ConnectionError("refused"), False), (requests.ReadTimeout("slow"), True)],
)
def test_a_network_failure_says_whether_twilio_may_have_acted(exc: Exception, maybe_done: bool) -> None:
    error = translate(exc, region="US")
    assert isinstance(error, TwilioError) and error.status is None and error.maybe_done is maybe_done


def test_scrub_bounds_the_length_and_never_answers_empty() -> None:
    assert len(scrub("x " * 1000, region="US")) == 300
    assert scrub("", region="US") == "no message"
