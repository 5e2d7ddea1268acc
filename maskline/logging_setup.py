"""Logging with a last line of defence: every record is scrubbed of phone numbers.

Code never logs party numbers on purpose; the filter catches accidents
(an exception message quoting input, a library's debug line).
"""

from __future__ import annotations

import logging
from pathlib import Path

from maskline.redaction import redact_phone_numbers

_CONFIGURED_MARK = "_maskline_handler"


class RedactPhoneNumbers(logging.Filter):
    """Rewrites each record's message with phone numbers masked."""

    def __init__(self, region: str = "US") -> None:
        super().__init__()
        self.region = region

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact_phone_numbers(message, region=self.region)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            # Exception text is rendered by the formatter; render it here,
            # redacted, and drop the live exception.
            formatter = logging.Formatter()
            record.exc_text = redact_phone_numbers(
                formatter.formatException(record.exc_info), region=self.region
            )
            record.exc_info = None
        return True


def configure_logging(
    *,
    level: str = "INFO",
    log_file: Path | None = None,
    region: str = "US",
    console_level: str | None = None,
) -> None:
    """Attach maskline's handlers to the root logger (once per process).

    ``level`` applies to the log file; ``console_level`` (default: the same)
    lets the CLI keep stderr to warnings while the file gets everything.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, _CONFIGURED_MARK, False):
            root.removeHandler(handler)
            handler.close()  # releases the log file of a previous configuration
    console = logging.StreamHandler()
    console.setLevel(console_level or level)
    handlers: list[logging.Handler] = [console]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        file_handler = logging.FileHandler(log_file)
        file_handler.setLevel(level)
        handlers.append(file_handler)
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in handlers:
        handler.setFormatter(fmt)
        handler.addFilter(RedactPhoneNumbers(region))
        setattr(handler, _CONFIGURED_MARK, True)
        root.addHandler(handler)
    # The root passes everything either handler wants; each handler filters.
    root.setLevel(min(h.level for h in handlers))
    # twilio's HTTP client logs every request's URL, query and headers at
    # INFO: noise in maskline's log (and its query strings could carry
    # numbers, which the filter would have to catch). Its warnings still show.
    logging.getLogger("twilio.http_client").setLevel(logging.WARNING)
