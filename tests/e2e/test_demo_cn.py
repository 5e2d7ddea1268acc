"""`maskline demo --region CN`: the same story with mainland numbers and Chinese prompts."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from maskline.demo import CN, mainland_forms
from tests.e2e.conftest import COMMAND_TIMEOUT, maskline_executable
from tests.e2e.test_no_number_leaks import find_leaks


def test_the_mainland_story_goes_as_told_and_prints_no_party_number(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MASKLINE_")}
    done = subprocess.run(
        [maskline_executable(), "demo", "--region", "CN"],
        env={**env, "TMPDIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )
    out = " ".join(done.stdout.split())
    assert done.returncode == 0 and "NOT AS EXPECTED" not in out and "FOUND" not in out, out
    assert "pool add: +861065520100, +861065520101, +862165520102" in out  # landline relays
    assert 'hears: "请输入分机号。"' in out and "抱歉" in out  # Chinese prompts
    assert "[phone removed]" in out  # the Shanghai number in the merchant's text
    assert out.count("-> buyer's number not found") >= 4
    assert "/admin" in out and "MASKLINE_CONSOLE_LANGUAGE=zh-CN" in out
    for role in ("buyer", "merchant", "courier", "stranger"):
        assert find_leaks("stdout", done.stdout, mainland_forms(CN.cast[role]).values()) == []
    assert done.stderr == ""


def test_mainland_forms_cover_mobiles_and_landlines() -> None:
    assert set(mainland_forms("+8613912340003").values()) >= {"13912340003", "139 1234 0003", "12340003"}
    assert set(mainland_forms("+862165520143").values()) >= {"021-65520143", "021 6552 0143", "65520143"}
    assert set(mainland_forms("+861065520100").values()) >= {"010-65520100", "1065520100"}
