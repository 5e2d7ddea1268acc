"""The lazy ``maskline`` command: cheap to import, the same listing as before.

Subcommands of other packages are imported when run; ``maskline --help``
lists them from registered help texts. These tests keep that registry honest
and check that neither importing the CLI nor ``--help`` loads a web framework,
alembic or the twilio SDK (in a fresh interpreter: this one has them loaded).
"""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from maskline.cli import KEY_KINDS, LazyGroup, load_command, main
from maskline.vault import keyring as kr

HEAVY = ("flask", "alembic", "twilio")

_PROBE = """
import json, sys
import maskline.cli
after_import = sorted(m for m in {heavy!r} if m in sys.modules)
try:
    maskline.cli.main(["--help"], prog_name="maskline")
except SystemExit:
    pass
after_help = sorted(m for m in {heavy!r} if m in sys.modules)
import maskline.compat, maskline.compat.aliyun.cli, maskline.compat.twilio
after_compat = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"import": after_import, "help": after_help, "compat": after_compat}}), file=sys.stderr)
"""


def _loaded_in_fresh_interpreter() -> dict[str, list[str]]:
    completed = subprocess.run(
        [sys.executable, "-c", _PROBE.format(heavy=HEAVY)],
        capture_output=True,
        text=True,
        check=True,
    )
    loaded: dict[str, list[str]] = json.loads(completed.stderr.strip().splitlines()[-1])
    assert "Commands:" in completed.stdout
    return loaded


def test_the_cli_its_help_and_the_compat_package_leave_flask_alembic_and_twilio_unloaded() -> None:
    loaded = _loaded_in_fresh_interpreter()

    assert loaded == {"import": [], "help": [], "compat": []}


def test_every_registered_command_is_a_click_command_of_that_name() -> None:
    assert isinstance(main, LazyGroup)
    for name, (target, _help) in main.lazy.items():
        command = load_command(target)
        assert command.name == name, target


@pytest.mark.parametrize("limit", [20, 45, 80, 200])
def test_the_listing_help_of_each_lazy_command_is_its_own(limit: int) -> None:
    for name, (target, help_text) in main.lazy.items():
        real = load_command(target).get_short_help_str(limit)
        listed = click.Command(name, help=help_text).get_short_help_str(limit)
        assert listed == real, name


def test_help_lists_every_command_once_sorted() -> None:
    result = CliRunner().invoke(main, ["--help"], prog_name="maskline", terminal_width=100)

    assert result.exit_code == 0
    listing = result.output.split("Commands:\n", 1)[1].splitlines()
    names = [line.split()[0] for line in listing if line.strip()]
    assert names == sorted({*main.commands, *main.lazy})
    assert {"bind", "serve", "sim", "demo", "aliyun", "vault"} <= set(names)


def test_an_unknown_command_is_refused_as_before() -> None:
    result = CliRunner().invoke(main, ["no-such-command"], prog_name="maskline")

    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def test_load_command_refuses_what_is_not_a_command() -> None:
    with pytest.raises(TypeError, match="not a click command"):
        load_command("maskline.cli:KEY_KINDS")


def test_the_kind_choices_are_the_key_rings() -> None:
    assert KEY_KINDS == kr.KEY_KINDS
