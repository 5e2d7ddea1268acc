"""What the fuzz tests look for: party numbers in any written form, in answers and in logs.

The log lines are the ones production writes: the file handler that
:func:`maskline.logging_setup.configure_logging` attaches (with its redacting
filter), and gunicorn's access log line rendered with ``maskline serve``'s own
format. The raw ``maskline.*`` records are kept as well, before any filter:
the design says code never logs a party number on purpose, filter or not.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import unquote, unquote_plus, urlsplit

import phonenumbers
from gunicorn.config import Config

from maskline.server import ACCESS_LOG_FORMAT, scrubbed_logger

# Digits with the separators people write between groups (at most three in a row).
_RUN = re.compile(r"\d(?:(?:[^\w\n]|_){0,3}\d)*")


def written_forms(e164: str) -> list[str]:
    """``e164`` as people and programs write it (the fuzzers send these)."""
    parsed = phonenumbers.parse(e164)
    national = phonenumbers.national_significant_number(parsed)
    fmt = phonenumbers.PhoneNumberFormat
    forms = [
        e164,
        e164[1:],
        national,
        phonenumbers.format_number(parsed, fmt.NATIONAL),
        phonenumbers.format_number(parsed, fmt.INTERNATIONAL),
        phonenumbers.format_number(parsed, fmt.RFC3966),
        "-".join((national[:3], national[3:6], national[6:])),
        ".".join((national[:3], national[3:6], national[6:])),
        " ".join(national),
        national.translate({ord(d): 0xFF10 + int(d) for d in "0123456789"}),  # full-width digits
    ]
    return list(dict.fromkeys(forms))


def _national(e164: str) -> str:
    return phonenumbers.national_significant_number(phonenumbers.parse(e164))


def _ascii_digits(text: str) -> str:
    return "".join(
        str(unicodedata.decimal(c)) if unicodedata.decimal(c, None) is not None else c for c in text
    )


def _readings(text: str) -> Iterator[str]:
    """``text`` as written, and as a reader would decode it (entities, %-escapes, Unicode digits)."""
    seen = {text}
    yield text
    for decode in (html.unescape, unquote, unquote_plus, lambda t: unicodedata.normalize("NFKC", t)):
        decoded = _ascii_digits(decode(text))
        if decoded not in seen:
            seen.add(decoded)
            yield decoded


def numbers_in(text: str, numbers: Iterable[str]) -> list[str]:
    """Which of ``numbers`` (E.164) appear in ``text`` in any written form."""
    wanted = {n: _national(n) for n in numbers}
    found: set[str] = set()
    for reading in _readings(text):
        for run in _RUN.findall(reading):
            digits = re.sub(r"\D", "", _ascii_digits(run))
            found |= {n for n, national in wanted.items() if national in digits}
    return sorted(found)


class _RawRecords(logging.Handler):
    """Every ``maskline.*`` record, formatted before any handler's filter rewrites it."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "maskline" or record.name.startswith("maskline."):
            text = record.getMessage()
            if record.exc_info and record.exc_info[1] is not None:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            self.lines.append(f"{record.name}: {text}")


class LogWatch:
    """The log lines written since the last :meth:`take`: the app's log file and the raw records."""

    def __init__(self, log_file: Path, raw: _RawRecords) -> None:
        self.log_file = log_file
        self.raw = raw
        self._offset = log_file.stat().st_size if log_file.exists() else 0
        self.total = 0

    def take(self) -> list[str]:
        lines = []
        if self.log_file.exists():
            with self.log_file.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
            self._offset += len(data)
            lines += [f"log file: {line}" for line in data.decode("utf-8", "replace").splitlines()]
        lines += [f"raw record {line}" for line in self.raw.lines]
        self.raw.lines.clear()
        self.total += len(lines)
        return lines


@contextmanager
def watching_logs(log_file: Path) -> Iterator[LogWatch]:
    """Watch ``log_file`` (the app's, at the level the app configured) and raw maskline records.

    The raw handler goes first on the root logger so it sees each record
    before the redacting filter of maskline's own handlers rewrites it.
    """
    root = logging.getLogger()
    raw = _RawRecords()
    root.handlers.insert(0, raw)
    try:
        yield LogWatch(log_file, raw)
    finally:
        root.removeHandler(raw)


# maskline serve's gunicorn logger (its access atoms scrubbed as they are
# read), for numbers written the way the fuzzed app's region (US) writes them.
_GUNICORN = scrubbed_logger("US")(Config())


def access_log_line(response: Any) -> str:
    """The line ``maskline serve``'s gunicorn access log would write for ``response``
    (a werkzeug test response, or schemathesis' response to a WSGI call)."""
    request = response.request
    if hasattr(request, "environ"):  # werkzeug
        environ = dict(request.environ)
        sent, request_headers = len(response.get_data()), list(request.headers.items())
        response_headers, status = list(response.headers.items()), response.status
    else:  # schemathesis: a requests.PreparedRequest and headers as lists
        environ = {"REQUEST_METHOD": request.method, "PATH_INFO": unquote(urlsplit(request.url).path)}
        sent, request_headers = len(response.content), list(request.headers.items())
        response_headers = [(k, ", ".join(v)) for k, v in response.headers.items()]
        status = f"{response.status_code} {response.message}"
    environ.setdefault("REMOTE_ADDR", "127.0.0.1")
    environ.setdefault("RAW_URI", environ.get("PATH_INFO", ""))
    environ.setdefault("SERVER_PROTOCOL", "HTTP/1.1")
    resp = SimpleNamespace(status=status, sent=sent, headers=response_headers)
    atoms = _GUNICORN.atoms_wrapper_class(
        _GUNICORN.atoms(resp, SimpleNamespace(headers=request_headers), environ, dt.timedelta(milliseconds=3))
    )
    return ACCESS_LOG_FORMAT % atoms


def leaks(where: str, text: str, numbers: Iterable[str]) -> list[str]:
    return [f"{number} in {where}: {text[:300]!r}" for number in numbers_in(text, numbers)]
