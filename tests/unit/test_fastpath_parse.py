"""The webhook fast path's form parser reads what urllib's parse_qsl reads.

The signature is computed over these fields, so any difference from the
parser Twilio's own validator is checked against would accept or refuse the
wrong requests.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from maskline.webhooks.fastpath import _parse

# Raw query text: the characters that matter to the parser (separators,
# escapes, plus) among ordinary ones, and broken escapes.
_RAW = st.lists(st.sampled_from([*"ab=&+%2F0Z9 é;", "%2", "%zz", "%E9", "%C3%A9"])).map("".join)


def _expected(body: str) -> tuple[dict[str, list[str]], dict[str, str]]:
    every: dict[str, list[str]] = {}
    for name, value in parse_qsl(body, keep_blank_values=True, encoding="utf-8", errors="replace"):
        every.setdefault(name, []).append(value)
    return every, {name: values[0] for name, values in every.items()}


@settings(deadline=None, max_examples=400)
@given(_RAW)
def test_any_text_parses_as_parse_qsl_parses_it(body: str) -> None:
    every, first = _parse(body)
    assert (every, dict(first)) == _expected(body)


@settings(deadline=None)
@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=8))
def test_encoded_forms_come_back_field_by_field(pairs: list[tuple[str, str]]) -> None:
    body = "&".join(f"{quote_plus(name)}={quote_plus(value)}" for name, value in pairs)
    every, first = _parse(body)
    assert (every, dict(first)) == _expected(body)
    for name, value in pairs:
        assert value in every[name]


def test_a_twilio_form_keeps_its_plus_and_repeated_fields() -> None:
    every, first = _parse("From=%2B14155550100&To=%2B14155550111&MediaUrl0=a&MediaUrl0=b&Body=hi+there&Empty")
    assert first["From"] == "+14155550100"
    assert every["MediaUrl0"] == ["a", "b"] and first["MediaUrl0"] == "a"
    assert first["Body"] == "hi there"
    assert first["Empty"] == ""
    assert _parse("") == ({}, {})
