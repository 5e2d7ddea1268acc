"""Opt-out / opt-in keyword detection (pure) and the prompts catalogue."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from maskline.webhooks import prompts, twiml
from maskline.webhooks.optout import Keyword, classify, is_forwarded, keyword_interaction, optout_key


@pytest.mark.parametrize(
    ("body", "kind"),
    [
        ("STOP", Keyword.OPT_OUT),
        ("stop", Keyword.OPT_OUT),
        ("  Stop. ", Keyword.OPT_OUT),
        ("STOPALL", Keyword.OPT_OUT),
        ("UNSUBSCRIBE", Keyword.OPT_OUT),
        ("cancel", Keyword.OPT_OUT),
        ("END", Keyword.OPT_OUT),
        ("QUIT", Keyword.OPT_OUT),
        ("REVOKE", Keyword.OPT_OUT),
        ("OPTOUT", Keyword.OPT_OUT),
        ("退订", Keyword.OPT_OUT),
        ("退订。", Keyword.OPT_OUT),
        ("TD", Keyword.OPT_OUT),
        ("td", Keyword.OPT_OUT),
        ("ＴＤ", Keyword.OPT_OUT),  # full-width  # noqa: RUF001
        ("T", Keyword.OPT_OUT),
        ("\u3000t\u3000", Keyword.OPT_OUT),  # ideographic spaces
        ("START", Keyword.OPT_IN),
        ("yes", Keyword.OPT_IN),
        ("UNSTOP", Keyword.OPT_IN),
        ("HELP", Keyword.HELP),
        ("info", Keyword.HELP),
        ("please stop", None),
        ("STOP calling me", None),
        ("不要退订", None),
        ("TDD", None),
        ("", None),
        ("stop" * 50, None),
        ("The parcel is at the door", None),
    ],
)
def test_classify(body: str, kind: Keyword | None) -> None:
    assert classify(body) == kind


@pytest.mark.parametrize(
    ("body", "forwarded"),
    [
        ("STOP", False),
        ("退订", False),
        ("TD", False),
        ("UNSTOP", False),
        ("START", True),
        ("YES", True),
        ("HELP", True),
        ("please stop", True),
    ],
)
def test_what_is_forwarded(body: str, forwarded: bool) -> None:
    assert is_forwarded(body) is forwarded


def test_the_key_is_tagged_with_the_relay_number() -> None:
    assert optout_key("+861065520100") == "ml:{+861065520100}:optout"


def test_a_keyword_interaction_holds_roles_and_status_only() -> None:
    now = dt.datetime(2026, 12, 8, tzinfo=dt.UTC)
    row = keyword_interaction(
        sid="SM" + "0" * 32, binding_id="bd_x", owner="shop", from_role="buyer", kind=Keyword.OPT_OUT, now=now
    )
    assert (row.type, row.from_role, row.to_role, row.status) == ("sms", "buyer", "", "opted_out")


def test_every_language_has_every_text_and_chinese_is_chinese() -> None:
    assert set(prompts.CATALOGUE) == set(prompts.LANGUAGES)
    for field in dataclasses.fields(prompts.Texts):
        english, chinese = (getattr(prompts.CATALOGUE[lang], field.name) for lang in ("en-US", "zh-CN"))
        assert english and chinese and english != chinese
        assert any("\u4e00" <= c <= "\u9fff" for c in chinese), field.name


@pytest.mark.parametrize(
    ("binding", "deployment", "language"),
    [
        (None, "zh-CN", "zh-CN"),
        ("en-US", "zh-CN", "en-US"),
        ("fr-FR", "zh-CN", "zh-CN"),
        (None, "xx", "en-US"),
    ],
)
def test_language_for(binding: str | None, deployment: str, language: str) -> None:
    assert prompts.language_for(binding, deployment) == language


@pytest.mark.parametrize(
    ("language", "voice", "attributes"),
    [
        ("zh-CN", None, ("Polly.Zhiyu", "cmn-CN")),
        ("zh-CN", "Polly.Zhiyu-Neural", ("Polly.Zhiyu-Neural", "cmn-CN")),
        ("zh-CN", "Google.cmn-CN-Standard-A", ("Google.cmn-CN-Standard-A", "cmn-CN")),
        ("zh-CN", "alice", ("alice", "zh-CN")),
        ("en-US", None, ("alice", "en-US")),
    ],
)
def test_say_attributes_pair_voice_and_language_as_twilio_lists_them(
    language: str, voice: str | None, attributes: tuple[str, str]
) -> None:
    say = prompts.say_attributes(language, voice)
    assert (say.voice, say.language) == attributes


@pytest.mark.parametrize(
    ("kind", "language", "text"),
    [
        ("quota", "zh-CN", "短信已达上限"),
        ("media_refused", "zh-CN", "无法转发图片"),
        ("stranger", "zh-CN", "无法转达"),
        ("quota", "en-US", "message limit"),
        ("stranger", None, "cannot pass on"),
    ],
)
def test_sms_replies_in_the_language(kind: str, language: str | None, text: str) -> None:
    answer = twiml.sms_reply(kind, language)
    assert text in answer and answer.startswith("<?xml") and "<Message>" in answer


def test_the_recording_notice_is_spoken_in_chinese_by_a_mandarin_voice() -> None:
    voice = twiml.Voice(language="zh-CN", voice=None)
    assert "本次通话将被录音" in voice.whisper
    assert 'language="cmn-CN"' in voice.whisper and 'voice="Polly.Zhiyu"' in voice.whisper
