"""What a person sees on a console page, and the English words left in it.

Used by the zh-CN console tests (integration and browser). The check reads
text and the attributes a browser shows (placeholder, title, aria-label,
alt, button values), not the catalogue: a string nobody marked for
translation is caught. Allowed in Latin letters: maskline, ids and codes
(anything with a digit or one of ``_ . : / @ - + = ? & #``, or all capitals:
binding ids, audit actions, UTC, AXB, Asia/Shanghai), anything inside
``<code>`` (a command to type, such as ``maskline audit verify``), and a
language's own name in the language picker.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

ALLOWED_WORDS = {"maskline", "English"}
_VISIBLE_ATTRIBUTES = {"placeholder", "title", "aria-label", "alt"}
_CODE = re.compile(r"[0-9_.:/@\-+=?&#]")
_LATIN = re.compile(r"[A-Za-z]")


class _Visible(HTMLParser):
    """The text a person sees on a page, one string per text node or attribute."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style", "code"):
            self._hidden += 1
        named = dict(attrs)
        self.texts += [v for k, v in attrs if k in _VISIBLE_ATTRIBUTES and v]
        if tag == "input" and named.get("type") in ("submit", "button", "reset") and named.get("value"):
            self.texts.append(named["value"] or "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "code"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.texts.append(data)


def english_words(html: str) -> list[str]:
    """Latin-letter words of the visible text that are not ids, codes or allowed."""
    parser = _Visible()
    parser.feed(html)
    found = []
    for text in parser.texts:
        for token in text.split():
            # Punctuation that ends or wraps a word is not what makes it a code.
            word = token.strip(".,;:!?()（）\"'“”‘’「」、，。：；")  # noqa: RUF001
            if not _LATIN.search(word) or word in ALLOWED_WORDS:
                continue
            if _CODE.search(word) or (word.isupper() and len(word) >= 2):
                continue
            found.append(word)
    return found
