"""docs/configuration.md and config/ cannot drift: every MASKLINE_ variable
config reads has a row, and every row names a variable config reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from config import load_settings
from config.doc import rendered

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


class _Recording(dict[str, str]):
    """An empty environment that remembers every name asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default


def _read_by_config() -> set[str]:
    environ = _Recording()
    load_settings(environ=environ)
    return {name for name in environ.asked if name.startswith("MASKLINE_")}


def _documented() -> set[str]:
    rows = [line for line in DOC.read_text().splitlines() if line.startswith("| `MASKLINE_")]
    return {name for row in rows for name in re.findall(r"`(MASKLINE_[A-Z0-9_]+)`", row.split(" | ")[0])}


def test_the_recording_sees_every_setting() -> None:
    read = _read_by_config()

    assert {
        "MASKLINE_ENV",
        "MASKLINE_SECRET_KEY",
        "MASKLINE_PUBLIC_URL",
        "MASKLINE_AUDIT_CHECKPOINT_URL",
    } <= (read)


def test_every_setting_config_reads_has_a_row() -> None:
    assert sorted(_read_by_config() - _documented()) == []


def test_every_row_names_a_setting_config_reads() -> None:
    assert sorted(_documented() - _read_by_config()) == []


def test_the_table_is_written_from_the_declarations() -> None:
    # python -m config.doc rewrites it; a setting added without that fails here.
    assert DOC.read_text(encoding="utf-8") == rendered(DOC.read_text(encoding="utf-8"))
