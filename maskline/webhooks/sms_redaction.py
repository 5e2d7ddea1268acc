"""What an SMS body loses before it is forwarded: phone numbers and links.

People who want to pass a number past a filter write it so a pattern does
not see it: ``3,1,0,5,5,5,0,1,2,3``, ``310*555*0123``, ``3a1a0…``, full-width
digits, ``一三八一二三四五六七八``, keycaps (3️⃣), circled digits (③). So the
text is *normalised* before anything is matched:

* every character that stands for a digit becomes that digit: any Unicode
  decimal digit (full-width, Arabic-Indic, Devanagari, mathematical ...),
  superscript, circled, parenthesised and dingbat digits (①, ⑴, ❶, ⒈;
  ⑩-⑳ as two digits), and Chinese numerals (〇零一幺二两三四五六七八九 and
  壹贰叁肆伍陆柒捌玖, with their traditional forms);
* combining marks and format characters (the keycap's U+20E3, variation
  selectors, zero-width spaces and joiners) are not there at all;
* up to :data:`MAX_GAP` other characters between two digits do not break
  a *run*.

A run is a phone number when phonenumbers finds it a possible number in
the binding's region (a number dialable only locally counts from seven
digits), or in E.164 when it follows a ``+``; and any run of
:data:`ALWAYS_DIGITS` or more digits is one. A run that is exactly a date
(``2026-11-24``, ``2026年11月24日``, optionally with a time) stays. Shorter
order numbers, amounts and dates stay readable.

A link is anything with a scheme (``https://``), anything starting
``www.``, any ``label.label`` whose last label is a public suffix of the
Public Suffix List (bundled in the ``publicsuffixlist`` package: nothing is
fetched at run time) or a reserved name (``example``, ``test``, ``local``
...), and any dotted host name followed by ``/`` or ``:port``. Full-width
letters and ideographic full stops (``evil。com``) are read as ASCII.

docs/sms-redaction.md lists what is and is not redacted.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import phonenumbers
from phonenumbers import NumberParseException, ValidationResult
from publicsuffixlist import PublicSuffixList

from maskline.redaction import PHONE_PLACEHOLDER

LINK_PLACEHOLDER = "[link removed]"
# Characters (other than ignorable ones) between two digits that keep them in one run.
MAX_GAP = 3
# A run this long is a phone number whatever the region says (E.164 holds at most 15).
ALWAYS_DIGITS = 11
# A number dialable only inside its area is withheld from this length on.
LOCAL_ONLY_DIGITS = 7

_CHINESE = {
    **dict.fromkeys("〇零", "0"),
    **dict.fromkeys("一幺壹弌", "1"),
    **dict.fromkeys("二两兩贰貳弍", "2"),
    **dict.fromkeys("三叁參叄弎", "3"),
    **dict.fromkeys("四肆", "4"),
    **dict.fromkeys("五伍", "5"),
    **dict.fromkeys("六陆陸", "6"),
    **dict.fromkeys("七柒", "7"),
    **dict.fromkeys("八捌", "8"),
    **dict.fromkeys("九玖", "9"),
}
_OPENING = frozenset("([\uff08")  # and the full-width bracket
_PLUS = frozenset("+\uff0b\ufe62")  # plus, full-width and small plus
# RFC 2606 / 6761 / 6762 / 7686 / 9476 names and ICANN's .internal: not in
# the Public Suffix List's ICANN part, but links all the same.
_RESERVED_TLDS = frozenset(
    {
        "example",
        "test",
        "invalid",
        "localhost",
        "local",
        "onion",
        "internal",
        "alt",
        "home",
        "lan",
        "corp",
        "intranet",
        "private",
    }
)
_DOTS = str.maketrans(dict.fromkeys("\u3002\uff0e\uff61\ufe12", "."))  # ideographic full stops


@functools.lru_cache(maxsize=8192)
def digits_of(ch: str) -> str:
    """The digit(s) ``ch`` stands for ("" if none). ``⑫`` is "12"."""
    if "0" <= ch <= "9":
        return ch
    value = unicodedata.decimal(ch, None)
    if value is None:
        value = unicodedata.digit(ch, None)
    if value is not None:
        return str(value)
    if ch in _CHINESE:
        return _CHINESE[ch]
    numeric = unicodedata.numeric(ch, None)
    # Circled / parenthesised numbers 10-20 (category No); not 十 nor Roman numerals.
    if numeric is not None and unicodedata.category(ch) == "No" and numeric == int(numeric) and numeric <= 20:
        return str(int(numeric))
    return ""


@functools.lru_cache(maxsize=8192)
def _ignorable(ch: str) -> bool:
    # Combining marks (the keycap U+20E3, variation selectors) and format
    # characters (zero-width space / joiner): invisible, so never a gap.
    return unicodedata.category(ch) in ("Mn", "Me", "Cf")


def normalise_digits(text: str) -> str:
    """The digits ``text`` spells, in order (ignoring everything else)."""
    return "".join(digits_of(ch) for ch in text)


@dataclass(frozen=True, slots=True)
class Run:
    """Digits close together: ``text[start:end]`` spells ``digits``."""

    start: int
    end: int
    digits: str
    plus: bool


def find_runs(text: str, *, max_gap: int = MAX_GAP) -> list[Run]:
    """Every run of digits in ``text`` (normalised; gaps of up to ``max_gap`` characters)."""
    runs: list[Run] = []
    start = end = -1
    digits: list[str] = []
    gap = 0
    for index, ch in enumerate(text):
        value = digits_of(ch)
        if value:
            if digits and gap > max_gap:
                runs.append(_run(text, start, end, digits))
                digits = []
            if not digits:
                start = index
            digits.append(value)
            end = index + 1
            gap = 0
        elif digits and not _ignorable(ch):
            gap += 1
    if digits:
        runs.append(_run(text, start, end, digits))
    return runs


def _run(text: str, start: int, end: int, digits: list[str]) -> Run:
    # An opening bracket right before the first digit, and a plus before that, go with the run.
    if start > 0 and text[start - 1] in _OPENING:
        start -= 1
    before = start - 1
    while before >= 0 and (text[before] == " " or _ignorable(text[before])):
        before -= 1
    plus = before >= 0 and text[before] in _PLUS
    if plus:
        start = before
    # The keycap's combining marks after the last digit go with it.
    while end < len(text) and _ignorable(text[end]):
        end += 1
    return Run(start=start, end=end, digits="".join(digits), plus=plus)


_DATE = re.compile(
    r"(?:19|20)\d\d(?:[-/.](?:0?[1-9]|1[0-2])[-/.](?:0?[1-9]|[12]\d|3[01])"
    r"|年(?:0?[1-9]|1[0-2])月(?:(?:0?[1-9]|[12]\d|3[01])[日号]?)?)"
    r"(?:[T ]?(?:[01]?\d|2[0-3])[:\uff1a][0-5]\d(?:[:\uff1a][0-5]\d(?:[.,]\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)?"
)


def _ascii_digits(text: str) -> str:
    return "".join(d if len(d := digits_of(ch)) == 1 else ch for ch in text)


def is_phone_number(digits: str, *, region: str, plus: bool = False) -> bool:
    """Whether a run's ``digits`` are a phone number (see the module's rules)."""
    if len(digits) >= ALWAYS_DIGITS:
        return True
    if len(digits) < 3:
        return False
    candidates = [(digits, region)]
    if plus:
        candidates.append(("+" + digits, "ZZ"))
    for text, where in candidates:
        try:
            number = phonenumbers.parse(text, where)
        except NumberParseException:
            continue
        reason = phonenumbers.is_possible_number_with_reason(number)
        if reason == ValidationResult.IS_POSSIBLE:
            return True
        if reason == ValidationResult.IS_POSSIBLE_LOCAL_ONLY and len(digits) >= LOCAL_ONLY_DIGITS:
            return True
    return False


def phone_runs(text: str, *, region: str) -> list[Run]:
    """The runs of ``text`` that are phone numbers (dates excepted)."""
    found = []
    for run in find_runs(text):
        if not is_phone_number(run.digits, region=region, plus=run.plus):
            continue
        if _DATE.fullmatch(_ascii_digits(text[run.start : run.end])):
            continue
        found.append(run)
    return found


def replace_spans(text: str, spans: Iterable[tuple[int, int]], placeholder: str) -> str:
    """``text`` with each (start, end) span replaced; overlapping spans merge."""
    out: list[str] = []
    last = 0
    for start, end in sorted(spans):
        if start < last:
            if end > last:
                last = end
            continue
        out.append(text[last:start])
        out.append(placeholder)
        last = end
    out.append(text[last:])
    return "".join(out)


def redact_phones(text: str, *, region: str) -> str:
    """``text`` with every phone number (as this module reads them) replaced."""
    return replace_spans(text, ((r.start, r.end) for r in phone_runs(text, region=region)), PHONE_PLACEHOLDER)


# -- links ---------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _suffixes() -> PublicSuffixList:
    # The list shipped inside the package (accept_unknown=False: "zz" is not a TLD).
    return PublicSuffixList(accept_unknown=False)


def _is_tld(label: str) -> bool:
    label = label.lower()
    return label in _RESERVED_TLDS or (not label.isdigit() and _suffixes().is_public(label))


_SCHEME = r"[a-z][a-z0-9+.\-]*://\S+"
_WWW = r"www\.\S+"
_HOST = r"(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W_](?:[\w-]*[^\W_])?"
_LINKISH = re.compile(rf"(?<![\w.+-])(?:{_SCHEME}|{_WWW}|(?P<host>{_HOST})(?P<rest>[/:?#]\S*)?)")
_PORT_OR_PATH = re.compile(r"/|:\d")


def _fold(text: str) -> str:
    """Same length as ``text``: compatibility letters (full-width) as ASCII, lower
    case, ideographic full stops as dots."""
    out = []
    for ch in text.translate(_DOTS):
        folded = unicodedata.normalize("NFKC", ch).lower() if not ch.isascii() else ch.lower()
        out.append(folded if len(folded) == 1 else ch)
    return "".join(out)


def link_spans(text: str) -> list[tuple[int, int]]:
    """Where the links of ``text`` are."""
    spans = []
    for match in _LINKISH.finditer(_fold(text)):
        host, rest = match.group("host"), match.group("rest") or ""
        if host is None:
            spans.append(match.span())
            continue
        last = host.rsplit(".", 1)[-1]
        pathed = bool(_PORT_OR_PATH.match(rest)) and (
            any(c.isalpha() for c in host) or re.fullmatch(r"\d{1,3}(?:\.\d{1,3}){3}", host) is not None
        )
        if pathed or _is_tld(last):
            spans.append(match.span())
    return spans


def redact_links(text: str) -> str:
    return replace_spans(text, link_spans(text), LINK_PLACEHOLDER)


def apply(text: str, links: Iterable[tuple[int, int]], phones: Iterable[tuple[int, int]]) -> str:
    """``text`` with link and phone spans replaced, overlapping ones merged: a
    merged span is a link if it is exactly one link, else a phone number (so a
    link cannot hide part of a number's digits, nor a number part of a link)."""
    spans = sorted(
        [(start, end, True) for start, end in links] + [(start, end, False) for start, end in phones]
    )
    merged: list[list[Any]] = []
    for start, end, is_link in spans:
        if merged and start < merged[-1][1]:
            last = merged[-1]
            last[2] = last[2] and is_link and (start, end) == (last[0], last[1])
            last[1] = max(last[1], end)
        else:
            merged.append([start, end, is_link])
    out: list[str] = []
    last_end = 0
    for start, end, is_link in merged:
        out.append(text[last_end:start])
        out.append(LINK_PLACEHOLDER if is_link else PHONE_PLACEHOLDER)
        last_end = end
    out.append(text[last_end:])
    return "".join(out)


def redact(text: str, *, region: str, phones: bool = True, links: bool = True) -> str:
    """Links and phone numbers, both found in the text as sent (a URL's digits
    go with it; digits a link would split still count as one run)."""
    found_links = link_spans(text) if links else []
    found_phones = [(r.start, r.end) for r in phone_runs(text, region=region)] if phones else []
    return apply(text, found_links, found_phones)
