"""safe_json.loads: what json.loads takes, minus what could crash a request."""

from __future__ import annotations

import pytest

from maskline.safe_json import MAX_DEPTH, loads, nesting_depth


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    assert nesting_depth('{"a": "[[[[{{{{\\"]]]"}') == 1
    assert loads('{"a": "' + "[" * 5000 + '"}') == {"a": "[" * 5000}


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        "[" * 100_000,
        '{"n": NaN}',
        '{"n": -Infinity}',
        '{"n": 1e400}',
        '{"n": ' + "1" * 101 + "}",
        '{"s": "\\udc00"}',
        b'{"s": "\xc3\x28"}',
    ],
)
def test_unsafe_json_is_a_value_error(text: str | bytes) -> None:
    with pytest.raises(ValueError):
        loads(text)


def test_ordinary_json_is_unchanged() -> None:
    assert loads(b'{"a": [1, 2.5, -3, true, null, "\\ud83d\\ude00"]}') == {
        "a": [1, 2.5, -3, True, None, "😀"]
    }
