"""A mainland deployment speaks Chinese unless told otherwise."""

from __future__ import annotations

from config import load_settings


def test_a_cn_deployment_defaults_to_chinese_prompts() -> None:
    settings = load_settings(environ={"MASKLINE_DEFAULT_REGION": "CN"})
    assert (settings.default_region, settings.voice_language, settings.voice_name) == ("CN", "zh-CN", None)


def test_an_explicit_language_wins() -> None:
    environ = {"MASKLINE_DEFAULT_REGION": "CN", "MASKLINE_VOICE_LANGUAGE": "en-US"}
    assert load_settings(environ=environ).voice_language == "en-US"
    assert load_settings(environ={}).voice_language == "en-US"
