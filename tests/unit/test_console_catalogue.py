"""The console's catalogue: every marked string translated, and the shipped .mo is the .po compiled."""

from __future__ import annotations

import datetime as dt
import gettext
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

import maskline.admin
from config import SettingsError, load_settings
from maskline.clock import format_local

ADMIN = Path(maskline.admin.__file__).parent
MESSAGES = ADMIN / "translations" / "zh_Hans_CN" / "LC_MESSAGES"
METHODS = [("**/templates/**.html", "jinja2"), ("**.py", "python")]


def _po() -> dict[str, str]:
    with (MESSAGES / "messages.po").open("rb") as f:
        catalog = read_po(f)
    return {str(m.id): str(m.string) for m in catalog if m.id and not m.fuzzy}


def test_every_marked_string_has_a_chinese_translation() -> None:
    keywords = {"_": None, "gettext": None, "N_": None}
    marked = {m[2] for m in extract_from_dir(str(ADMIN), METHODS, keywords=keywords)}
    translated = {k for k, v in _po().items() if v}
    assert len(marked) > 200
    assert sorted(marked - translated) == []


def test_the_shipped_mo_is_the_po_compiled() -> None:
    with (MESSAGES / "messages.mo").open("rb") as f:
        shipped = gettext.GNUTranslations(f)
    catalog = {k: v for k, v in shipped._catalog.items() if k}  # type: ignore[attr-defined]
    assert catalog == _po()


def test_translations_keep_their_placeholders() -> None:
    import re

    for msgid, msgstr in _po().items():
        assert sorted(re.findall(r"%\(\w+\)s", msgid)) == sorted(re.findall(r"%\(\w+\)s", msgstr)), msgid


@pytest.mark.parametrize(
    ("raw", "language"),
    [("zh-CN", "zh-CN"), ("zh_cn", "zh-CN"), ("zh", "zh-CN"), ("en-US", "en"), ("en", "en")],
)
def test_console_language_setting(raw: str, language: str) -> None:
    settings = load_settings(environ={"MASKLINE_CONSOLE_LANGUAGE": raw})
    assert settings.console_language == language


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MASKLINE_CONSOLE_LANGUAGE", "fr"),
        ("MASKLINE_DISPLAY_TIMEZONE", "Beijing"),
        ("MASKLINE_DISPLAY_TIMEZONE", "+08:00"),
    ],
)
def test_bad_console_settings_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings(environ={name: value})


def test_display_zone_defaults_to_utc_and_sets_working_hours_zone() -> None:
    assert load_settings(environ={}).working_zone == "UTC"
    shanghai = load_settings(environ={"MASKLINE_DISPLAY_TIMEZONE": "Asia/Shanghai"})
    assert (shanghai.display_timezone, shanghai.working_zone) == ("Asia/Shanghai", "Asia/Shanghai")
    both = {"MASKLINE_DISPLAY_TIMEZONE": "Asia/Shanghai", "MASKLINE_WORKING_TIMEZONE": "UTC"}
    assert load_settings(environ=both).working_zone == "UTC"


@pytest.mark.parametrize(
    ("when", "zone", "shown"),
    [
        (dt.datetime(2026, 12, 7, 23, 6, tzinfo=dt.UTC), "Asia/Shanghai", "2026-12-08 07:06 +08:00"),
        (dt.datetime(2026, 12, 7, 23, 6, tzinfo=dt.UTC), "UTC", "2026-12-07 23:06 +00:00"),
        (dt.datetime(2026, 7, 1, 12, 0, tzinfo=dt.UTC), "America/St_Johns", "2026-07-01 09:30 -02:30"),
        (dt.datetime(2026, 12, 7, 23, 6), "Asia/Shanghai", "2026-12-08 07:06 +08:00"),  # naive is UTC
    ],
)
def test_times_are_shown_with_their_offset(when: dt.datetime, zone: str, shown: str) -> None:
    assert format_local(when, zone) == shown
