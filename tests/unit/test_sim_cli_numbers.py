"""`maskline sim` sends numbers as Twilio does: E.164, read in the deployment's region."""

from __future__ import annotations

import click
import pytest

from maskline.sim.cli import _e164


def test_national_forms_become_e164_in_the_deployment_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MASKLINE_DEFAULT_REGION", "CN")
    assert _e164("010-6552 0100", option="--to") == "+861065520100"
    assert _e164("13912340003", option="--from", allow_withheld=True) == "+8613912340003"
    assert _e164("anonymous", option="--from", allow_withheld=True) == "anonymous"


def test_a_bad_number_names_the_option_and_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MASKLINE_DEFAULT_REGION", raising=False)
    with pytest.raises(click.BadParameter) as err:
        _e164("13912340003", option="--to")
    assert "give region CN" in err.value.format_message() and "13912340003" not in err.value.format_message()
    with pytest.raises(click.BadParameter):
        _e164("anonymous", option="--to")
