"""A client generated from /openapi.json by openapi-python-client binds,
reads and unbinds through a real ``maskline serve``: the document is good
enough for the tools order systems use, names and all."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Cli, RunningServer, maskline_environ, serving

pytestmark = pytest.mark.slow

RELAY, BUYER, MERCHANT = "+14155550100", "+14155550132", "+12125550143"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[Cli, RunningServer]]:
    instance = tmp_path / "instance"
    # SQLite and the embedded Redis: what `make run` gives a newcomer.
    cli = Cli(
        instance_path=instance, env=maskline_environ(instance, f"sqlite:///{instance}/db.sqlite3", None)
    )
    cli.run("init")
    cli.run("pool", "add", RELAY)
    with serving(cli, tmp_path / "server.log") as running:
        yield cli, running


def _generate(base_url: str, where: Path) -> Any:
    """Generate the client package from the served document and import it."""
    document = where / "openapi.json"
    with urllib.request.urlopen(base_url + "/openapi.json", timeout=30) as response:  # noqa: S310 (loopback)
        document.write_bytes(response.read())
    generator = Path(sys.executable).with_name("openapi-python-client")
    subprocess.run(
        [str(generator), "generate", "--path", str(document), "--output-path", str(where / "client")],
        check=True,
        capture_output=True,
    )
    sys.path.insert(0, str(where / "client"))
    return importlib.import_module("maskline_api_client")


def test_a_generated_client_creates_reads_and_deletes_a_binding(
    server: tuple[Cli, RunningServer], tmp_path: Path
) -> None:
    cli, running = server
    issued = json.loads(
        cli.out(
            "apikey",
            "create",
            "--name",
            "gen",
            "--owner",
            "shop",
            "--scope",
            "bindings:write",
            "--scope",
            "bindings:read",
        )
    )
    package = _generate(running.base_url, tmp_path)
    create_binding, get_binding, delete_binding = (
        importlib.import_module(f"maskline_api_client.api.bindings.{name}")
        for name in ("create_binding", "get_binding", "delete_binding")
    )
    models = importlib.import_module("maskline_api_client.models")
    client = package.AuthenticatedClient(base_url=running.base_url, token=issued["key"])

    body = models.NewBinding.from_dict(
        {"order_id": "o-gen", "mode": "axb", "parties": {"buyer": BUYER, "merchant": MERCHANT}}
    )
    created = create_binding.sync_detailed(client=client, body=body)
    assert created.status_code == 201, created.content
    binding = created.parsed
    assert binding.relay_number == RELAY and BUYER not in created.content.decode()

    read = get_binding.sync(client=client, binding_id=binding.id)
    assert read.id == binding.id and read.status.value == "active"

    deleted = delete_binding.sync(client=client, binding_id=binding.id)
    assert deleted.status.value == "unbound"

    # The error shape parses too, with its enumerated code.
    missing = get_binding.sync_detailed(client=client, binding_id="bd_nosuchbinding000")
    assert missing.status_code == 404
    assert missing.parsed.error.code.value == "not_found"
