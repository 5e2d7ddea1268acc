# ruff: noqa: RUF001  (look-alike digits and letters are what these tests are about)
"""SMS redaction as a smuggler tries it: digits dressed up, numbers spread
out, bare domains. What is not a number stays readable."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from maskline.redaction import PHONE_PLACEHOLDER
from maskline.webhooks.policy import SmsPolicy
from maskline.webhooks.sms_redaction import (
    LINK_PLACEHOLDER,
    find_runs,
    normalise_digits,
    redact,
)

BOTH = SmsPolicy(redact=frozenset({"phones", "links"}), media="refuse")
KEYCAP = "\ufe0f\u20e3"


@pytest.mark.parametrize(
    "body",
    [
        # the red team's bodies (issue 17)
        "3,1,0,5,5,5,0,1,2,3",
        "310*555*0123",
        "3a1a0a5a5a5a0a1a2a3",
        "一三八一二三四五六七八",
        "".join(d + KEYCAP for d in "3105550123"),
        # and their relatives
        "１３８００１３８０００",
        "壹叁捌零零壹叁捌零零零",
        "幺三八 零零幺三 八零零零",
        "①③⑧⓪⓪①③⑧⓪⓪⓪",
        "❶❸❽⓿⓿❶❸❽⓿⓿⓿",
        "٠١٣٨٠٠١٣٨٠٠٠",  # Arabic-Indic
        "१३८००१३८०००",  # Devanagari
        "𝟏𝟑𝟖𝟎𝟎𝟏𝟑𝟖𝟎𝟎𝟎",  # mathematical bold
        "1\u200b3\u200b8\u200b0\u200b0\u200b1\u200b3\u200b8\u200b0\u200b0\u200b0",  # zero-width spaces
        "138 - 0013 - 8000",
        "+1 415 555 0132",
        "(415) 555-0132",
        "4.1.5.5.5.5.0.1.3.2",
        "four one five: 4 1 5 5 5 5 0 1 3 2",
    ],
)
@pytest.mark.parametrize("region", ["US", "CN"])
def test_a_number_however_written_is_redacted(body: str, region: str) -> None:
    cleaned = BOTH.clean(f"call me {body} ok", region=region)

    assert PHONE_PLACEHOLDER in cleaned
    assert normalise_digits(cleaned) == "", cleaned
    assert cleaned.startswith("call me ") and cleaned.endswith(" ok")


@pytest.mark.parametrize(
    "body",
    [
        "evil.example/p",
        "see evil.example",
        "pay at shop.top now",
        "ｅｖｉｌ．ｃｏｍ",
        "evil。com/login",
        "http://203.0.113.9/x",
        "hxxp://evil/x",
        "www.evil",
        "intranet.corp:8080",
        "10.0.0.1/admin",
        "evil.unknowntld/path",
        "例子.中国",
        "mail a@b.io",
    ],
)
def test_links_are_redacted(body: str) -> None:
    cleaned = BOTH.clean(body, region="US")

    assert LINK_PLACEHOLDER in cleaned, cleaned
    assert "." not in cleaned.replace(LINK_PLACEHOLDER, "") or cleaned.endswith("now")


@pytest.mark.parametrize(
    ("body", "region"),
    [
        ("your order 123456 ships today", "CN"),
        ("your order 123456 ships today", "US"),
        ("total $25.99, tip 3.50", "US"),
        ("总价 ¥1,299.00", "CN"),
        ("delivered on 2026-11-24", "US"),
        ("delivered on 2026-11-24", "CN"),
        ("seen at 2026-11-24 12:00:00", "CN"),
        ("2026年11月24日送达", "CN"),
        ("gate 3, room 1205, at 5pm", "US"),
        ("e.g. leave it at the door.", "US"),
        ("pickup code 8842", "CN"),
        ("evil.zz is not a domain", "US"),
    ],
)
def test_order_numbers_amounts_and_dates_stay_readable(body: str, region: str) -> None:
    assert BOTH.clean(body, region=region) == body


def test_a_policy_without_links_keeps_links_and_without_phones_keeps_numbers() -> None:
    body = "evil.example 13800138000"

    assert (
        SmsPolicy(redact=frozenset({"phones"}), media="refuse").clean(body, region="CN").startswith("evil.")
    )
    assert (
        SmsPolicy(redact=frozenset({"links"}), media="refuse")
        .clean(body, region="CN")
        .endswith("13800138000")
    )


# -- the normaliser, tried with generated spellings ------------------------------------------

SPELLINGS: dict[str, list[str]] = {
    d: [
        d,
        chr(0xFF10 + int(d)),  # full-width
        "〇一二三四五六七八九"[int(d)],
        "零壹贰叁肆伍陆柒捌玖"[int(d)],
        d + KEYCAP,
        "⓪①②③④⑤⑥⑦⑧⑨"[int(d)],
        chr(0x0660 + int(d)),  # Arabic-Indic
        chr(0x0966 + int(d)),  # Devanagari
        chr(0x1D7CE + int(d)),  # mathematical bold
    ]
    + (["两"] if d == "2" else [])
    for d in "0123456789"
}
SEPARATORS = st.text(alphabet=" ,.*-_/|()a~#:\u200b\n", min_size=0, max_size=3)


@st.composite
def spelled(draw: st.DrawFn, digits: st.SearchStrategy[str]) -> tuple[str, str]:
    """(digits, the same digits spelled out with up to three characters between them)."""
    value = draw(digits)
    parts = []
    for index, digit in enumerate(value):
        if index:
            parts.append(draw(SEPARATORS))
        parts.append(draw(st.sampled_from(SPELLINGS[digit])))
    return value, "".join(parts)


@settings(deadline=None, max_examples=300)
@given(spelled(st.text(alphabet="0123456789", min_size=1, max_size=20)))
def test_any_spelling_normalises_to_its_digits_in_one_run(case: tuple[str, str]) -> None:
    digits, text = case

    assert normalise_digits(text) == digits
    assert [run.digits for run in find_runs(text)] == [digits]


@settings(deadline=None, max_examples=200)
@given(spelled(st.text(alphabet="0123456789", min_size=11, max_size=15)), st.sampled_from(["US", "CN", "GB"]))
def test_eleven_digits_or_more_never_survive_however_spelled(case: tuple[str, str], region: str) -> None:
    _digits, text = case

    assert normalise_digits(redact(f"x {text} y", region=region)) == ""


@settings(deadline=None, max_examples=300)
@given(st.text(max_size=80), st.sampled_from(["US", "CN"]))
def test_no_long_run_is_left_in_any_text(text: str, region: str) -> None:
    cleaned = redact(text, region=region)

    assert all(len(run.digits) < 11 for run in find_runs(cleaned)), cleaned
