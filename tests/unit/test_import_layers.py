"""The import contract (.importlinter, issue 21): imports point down the
layers, faces do not import each other, and the allow-list of the imports that
did not when it was written only shrinks. `make lint` runs lint-imports; these
tests prove that it would catch a new upward import, and that no module is
left out of the layers."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _layered() -> set[str]:
    parser = configparser.ConfigParser()
    parser.read(CONTRACT)
    names: set[str] = set()
    for layer in parser["importlinter:contract:layers"]["layers"].split("\n"):
        names.update(n.strip() for n in layer.replace("|", ":").split(":") if n.strip())
    return names


def _top_level_modules() -> set[str]:
    """Each module and package directly under maskline/, and config."""
    root = REPO / "maskline"
    names = {"config"}
    for path in root.iterdir():
        if path.suffix == ".py" and path.name != "__init__.py":
            names.add(f"maskline.{path.stem}")
        elif (path / "__init__.py").exists():
            names.add(f"maskline.{path.name}")
    return names


def _lint(cwd: Path, *, pythonpath: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    if pythonpath is not None:
        # Ahead of the editable install, so the copy is the one analysed.
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", str(cwd / ".importlinter")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_every_module_is_in_a_layer() -> None:
    missing = _top_level_modules() - _layered()
    assert not missing, f"put these in a layer in .importlinter: {sorted(missing)}"


def test_the_layers_name_only_modules_that_exist() -> None:
    assert _layered() <= _top_level_modules()


def test_the_code_keeps_the_contract() -> None:
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two root packages and the contract, in a folder of their own."""
    target = tmp_path_factory.mktemp("layers")
    skip = shutil.ignore_patterns("__pycache__", "static", "templates", "translations", "migrations")
    for package in ("maskline", "config"):
        shutil.copytree(REPO / package, target / package, ignore=skip)
    shutil.copy(CONTRACT, target / ".importlinter")
    return target


def test_an_unchanged_copy_keeps_the_contract(copy: Path) -> None:
    # The control for the next test: the copy itself is clean.
    result = _lint(copy, pythonpath=copy)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # core reaching up into a face
        (
            "vault/planted.py",
            "import maskline.api.views",
            "maskline.vault is not allowed to import maskline.api",
        ),
        # a service reaching into the entry layer, from inside a function
        (
            "events/planted.py",
            "def f():\n    from maskline import wiring",
            "maskline.events is not allowed to import maskline.wiring",
        ),
        # one face importing another
        (
            "api/planted.py",
            "from maskline.admin import views",
            "maskline.api is not allowed to import maskline.admin",
        ),
    ],
)
def test_a_planted_upward_import_breaks_the_contract(copy: Path, module: str, line: str, broken: str) -> None:
    planted = copy / "maskline" / module
    planted.write_text(line + "\n")
    try:
        result = _lint(copy, pythonpath=copy)
    finally:
        planted.unlink()
    assert result.returncode != 0
    assert broken in result.stdout
