"""JSON parsing that refuses what a client could send to hurt the server.

``json.loads`` recurses once per nesting level, so ``[[[[…]]]]`` 5,000 deep
raises RecursionError (a 500, not a 400); Python's own ``int`` refuses more
than 4,300 digits with a ValueError, but ``1e999`` and ``NaN`` parse into
floats (``inf``, ``nan``) that later code may turn into OverflowError.
:func:`loads` turns every such input into ValueError, which Flask's
``get_json`` treats as malformed JSON (400), and :class:`SafeJSONProvider`
installs it for ``request.get_json`` everywhere in the app.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask.json.provider import DefaultJSONProvider

# Deeper than any request maskline takes (its bodies are two or three levels).
MAX_DEPTH = 64
# A \uD800-\uDFFF escape: a surrogate, which is no character on its own.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
# An integer longer than this is no id, count or duration maskline knows.
MAX_INT_DIGITS = 100


def nesting_depth(text: str) -> int:
    """The deepest nesting of ``[`` / ``{`` in JSON ``text`` (strings skipped), in one pass."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"a number longer than {MAX_INT_DIGITS} digits")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("a number too large to represent")
    return value


def _constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def loads(data: str | bytes, **kwargs: Any) -> Any:
    """``json.loads`` with ValueError (never RecursionError) for anything unsafe:
    nesting deeper than MAX_DEPTH, invalid UTF-8, lone surrogates, NaN / Infinity,
    numbers too large."""
    if isinstance(data, bytes | bytearray):
        try:
            data = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("the body is not UTF-8") from None
    if nesting_depth(data) > MAX_DEPTH:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
    kwargs.setdefault("parse_int", _int)
    kwargs.setdefault("parse_float", _float)
    kwargs.setdefault("parse_constant", _constant)
    try:
        value = json.loads(data, **kwargs)
    except RecursionError:  # belt and braces: the depth check should make this unreachable
        raise ValueError("JSON nested too deeply") from None
    if _SURROGATE_ESCAPE.search(data):
        # A lone surrogate parses into a str that cannot be encoded: later, a
        # database driver or a log handler would fail on it with a 500.
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the JSON holds a lone surrogate (\\uD800-\\uDFFF)") from None
    return value


class SafeJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, reading requests with :func:`loads`."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s, **kwargs)
