"""The console's words for errors raised below it, and for stored codes (no database)."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask

from maskline.admin import i18n
from maskline.admin.interfaces import InvalidAdminInput, LoginRefused, RevealRefused


@pytest.fixture(params=["zh-CN", "en"])
def language(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def in_console(language: str, call, *args):  # type: ignore[no-untyped-def]
    app = Flask(__name__)
    i18n.init_app(app, language=language, timezone="Asia/Shanghai")
    with app.test_request_context("/admin/"):
        return call(*args)


@pytest.mark.parametrize(
    ("error", "chinese"),
    [
        (
            RevealRefused("request rv_1 lapsed at 2026-12-08 00:00 UTC without approval"),
            "申请 rv_1 未获批准，已于 2026-12-08 08:00 +08:00 失效。",
        ),
        (RevealRefused("request rv_2 is denied, not pending"), "申请 rv_2 的状态是“已拒绝”，不是“待审批”。"),
        (InvalidAdminInput("hours", "must be a whole number of hours"), "小时数：必须是整数小时"),
        (
            LoginRefused("wrong name or password, or the account is locked or disabled"),
            "用户名或密码错误，或账号已被锁定或停用。",
        ),
        (RevealRefused("something new and unknown"), "操作被拒绝：something new and unknown"),
    ],
)
def test_errors_in_chinese_and_unchanged_in_english(error: Exception, chinese: str, language: str) -> None:
    shown = in_console(language, i18n.error_text, error)
    assert shown == (chinese if language == "zh-CN" else str(error))


def test_codes_are_words_and_unknown_codes_pass_through(language: str) -> None:
    words = in_console(language, lambda: [i18n.label(c) for c in ("live", "no-answer", "bd_x1", "axb")])
    expected = ["生效中", "无人接听", "bd_x1", "AXB（双方通话）"] if language == "zh-CN" else [
        "live", "no answer", "bd_x1", "AXB (two parties)"
    ]  # fmt: skip
    assert words == expected


def test_alert_details_read_in_the_console_language_and_zone(language: str) -> None:
    day = in_console(language, i18n.detail_value, "weekday", "Saturday")
    assert day == ("星期六" if language == "zh-CN" else "Saturday")
    first = in_console(language, i18n.detail_value, "first_at", "2026-12-07T23:06:00Z")
    assert first == "2026-12-08 07:06:00 +08:00"
    assert (
        in_console(language, i18n.when, dt.datetime(2026, 12, 7, 23, 6, tzinfo=dt.UTC))
        == "2026-12-08 07:06 +08:00"
    )
