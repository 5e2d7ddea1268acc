"""Each setting declared once (issue 21): name, type, default, range and doc.

A setting is a field of :class:`config.Settings` whose default is given by
:func:`setting`::

    extension_digits: int = setting(4, range=(1, 6), doc="extension length in axe mode")

From that one line come:

- its environment variable (``MASKLINE_`` + the upper-cased name, unless
  ``env=`` says otherwise) and the parser of its text, chosen by its type
  (``int``, ``float``, ``bool``, ``str``, ``Path``, ``dt.timedelta``, each
  optionally ``| None``) unless ``parse=`` names one;
- its validation, on every way a Settings is made (the environment,
  ``load_settings(overrides)``, ``with_overrides``, ``Settings(...)``):
  ``range=`` (inclusive) and ``choices=`` are checked in ``__post_init__``;
- its row in docs/configuration.md (``python -m config.doc`` writes the
  table; a unit test fails when it is stale), from ``doc=`` and the default
  (or ``shown=``, where the value itself would not say it).

A field declared without :func:`setting` is derived state, not a setting:
no variable sets it and the docs do not list it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from pathlib import Path
from typing import Any

from maskline import errors

PREFIX = "MASKLINE_"
METADATA_KEY = "maskline.setting"

Parser = Callable[[str, str], Any]


class SettingsError(errors.InputError, ValueError):
    """A setting has a value maskline cannot use; the message names the variable."""


@dataclass(frozen=True, kw_only=True)
class Setting:
    """What :func:`setting` records about one field, beside its name, type and default."""

    doc: str
    parse: Parser | None = None
    low: Any = None
    high: Any = None
    choices: tuple[str, ...] = ()
    shown: str | None = None
    env: str | None = None


@dataclass(frozen=True, kw_only=True)
class Declared:
    """One setting as the rest of config uses it: resolved name, variable and parser."""

    name: str
    env: str
    parse: Parser
    spec: Setting
    default: Any

    def check(self, value: Any) -> None:
        """Refuse a value out of the declared range or choices, whichever path made it."""
        spec = self.spec
        if spec.choices and value not in spec.choices:
            raise SettingsError(f"{self.env} must be one of {_or(spec.choices)}, not {value!r}")
        if spec.low is None or value is None:
            return
        # A float setting takes a whole number too; nothing takes a bool or text.
        kinds = (int, float) if isinstance(spec.low, float) else (type(spec.low),)
        if isinstance(value, bool) or not isinstance(value, kinds):
            wanted = "a number" if isinstance(spec.low, float) else "a whole number"
            raise SettingsError(f"{self.name} ({self.env}) must be {wanted}, not {value!r}")
        if not spec.low <= value <= spec.high:
            raise SettingsError(
                f"{self.name} ({self.env}) must be between {spec.low} and {spec.high}, not {value!r}"
            )


def setting(
    default: Any = MISSING,
    *,
    doc: str,
    factory: Callable[[], Any] | None = None,
    parse: Parser | None = None,
    range: tuple[Any, Any] | None = None,
    choices: tuple[str, ...] = (),
    shown: str | None = None,
    env: str | None = None,
) -> Any:
    """Declare a setting: the field's default (or ``factory``) and all the rest."""
    low, high = range if range is not None else (None, None)
    spec = Setting(doc=doc, parse=parse, low=low, high=high, choices=choices, shown=shown, env=env)
    metadata = {METADATA_KEY: spec}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def declared(cls: type) -> tuple[Declared, ...]:
    """Every setting of ``cls`` (a dataclass), in declaration order."""
    found = []
    for f in fields(cls):
        spec = f.metadata.get(METADATA_KEY)
        if spec is None:
            continue
        env = spec.env or PREFIX + f.name.upper()
        parse = spec.parse or _parser_for(f, spec)
        found.append(Declared(name=f.name, env=env, parse=parse, spec=spec, default=_default(f)))
    return tuple(found)


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    assert f.default_factory is not MISSING, f.name
    return f.default_factory()


def _parser_for(f: Field[Any], spec: Setting) -> Parser:
    """The parser a field's type implies (annotations are strings here)."""
    kind = str(f.type).removesuffix(" | None")
    if spec.choices and kind in ("str", "Literal"):
        return _parse_choice(spec.choices)
    by_type: dict[str, Parser] = {
        "str": lambda _name, value: value,
        "Path": lambda _name, value: Path(value),
        "bool": parse_bool,
        "dt.timedelta": parse_duration,
    }
    if kind in by_type:
        return by_type[kind]
    if kind == "int":
        return lambda name, value: parse_int(name, value, minimum=spec.low, maximum=spec.high)
    if kind == "float":
        return lambda name, value: parse_float(name, value, minimum=spec.low, maximum=spec.high)
    if kind.startswith("Literal[") or spec.choices:
        return _parse_choice(spec.choices)
    raise TypeError(f"setting {f.name}: a field of type {f.type} needs parse=")


def _parse_choice(choices: tuple[str, ...]) -> Parser:
    def parse(name: str, value: str) -> str:
        if value not in choices:
            raise SettingsError(f"{name} must be one of {_or(choices)}, not {value!r}")
        return value

    return parse


def _or(words: tuple[str, ...]) -> str:
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def parse_bool(name: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be true or false, not {value!r}")


def parse_int(name: str, value: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, not {value!r}") from None
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise SettingsError(f"{name} must be between {minimum} and {maximum}")
    return number


def parse_float(
    name: str, value: str, *, minimum: float | None = None, maximum: float | None = None
) -> float:
    try:
        number = float(value)
    except ValueError:
        raise SettingsError(f"{name} must be a number of seconds, not {value!r}") from None
    if minimum is not None and maximum is not None and not minimum <= number <= maximum:
        raise SettingsError(f"{name} must be between {minimum:g} and {maximum:g} seconds")
    return number


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*\Z")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(name: str, value: str) -> dt.timedelta:
    """``90``, ``30s``, ``15m``, ``72h``, ``90d`` or ``2w`` as a timedelta."""
    match = _DURATION.match(value.lower())
    if not match:
        raise SettingsError(f"{name} must be a duration such as 30s, 15m, 72h or 90d, not {value!r}")
    return dt.timedelta(seconds=float(match.group(1)) * _UNIT_SECONDS[match.group(2)])


def format_duration(value: dt.timedelta) -> str:
    """``7d`` and longer in days, else ``72h``, ``15m`` or ``30s``: as the docs write them."""
    seconds = value.total_seconds()
    if seconds >= 7 * 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"
