"""docs/configuration.md's table of settings, written from the declarations.

``python -m config.doc`` rewrites the table between its two markers;
``python -m config.doc --check`` exits 1 if it is stale (a unit test does the
same). Everything outside the markers is written by hand.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Any

from config import SETTINGS
from config.declare import Declared, format_duration

DOC = Path(__file__).resolve().parents[1] / "docs" / "configuration.md"
BEGIN = "<!-- settings: begin (written by `python -m config.doc` from config/__init__.py) -->"
END = "<!-- settings: end -->"


def shown_default(setting: Declared) -> str:
    """The default as the table shows it."""
    if setting.spec.shown is not None:
        return setting.spec.shown
    value: Any = setting.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, dt.timedelta):
        text = format_duration(value)
    elif isinstance(value, float):
        text = f"{value:g}"
    else:
        text = str(value)
    return f"`{text}`"


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def table() -> str:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for setting in SETTINGS:
        bounds = ""
        if setting.spec.low is not None:
            bounds = f"; range {_number(setting.spec.low)} to {_number(setting.spec.high)}"
        rows.append(f"| `{setting.env}` | {shown_default(setting)} | {setting.spec.doc}{bounds} |")
    return "\n".join(rows)


def rendered(current: str) -> str:
    """``current`` with the text between the markers replaced by :func:`table`."""
    head, begin, rest = current.partition(BEGIN)
    _, end, tail = rest.partition(END)
    if not begin or not end:
        raise SystemExit(f"{DOC}: the markers {BEGIN!r} and {END!r} are missing")
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main(argv: list[str]) -> int:
    current = DOC.read_text(encoding="utf-8")
    wanted = rendered(current)
    if "--check" in argv:
        if current != wanted:
            print(f"{DOC} is stale: run python -m config.doc", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(wanted, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
