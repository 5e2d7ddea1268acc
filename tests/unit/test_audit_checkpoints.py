"""Checkpoint signing keys, the checkpoint format and its signature, without a database."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import stat
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from hypothesis import given
from hypothesis import strategies as st

from config import load_settings
from maskline.audit import checkpoints as cp
from maskline.audit.interfaces import CheckpointError

AT = dt.datetime(2026, 11, 24, 12, 0, 5, 123456, tzinfo=dt.UTC)
HEAD = "ab" * 32


@pytest.fixture(scope="module")
def key() -> cp.SigningKey:
    return cp.SigningKey.generate()


def signed(key: cp.SigningKey, **fields: Any) -> cp.Checkpoint:
    values = {"seq": 42, "hash": HEAD, "records": 42, "at": AT, **fields}
    return key.sign(**values)


def test_a_signed_checkpoint_verifies_with_its_public_key(key: cp.SigningKey) -> None:
    checkpoint = signed(key)

    assert key.public.verifies(checkpoint)
    assert checkpoint.key_id == key.public.key_id
    assert not cp.SigningKey.generate().public.verifies(checkpoint)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("seq", 43),
        ("records", 41),
        ("hash", "cd" * 32),
        ("at", AT + dt.timedelta(microseconds=1)),
        ("key_id", "0" * 16),
    ],
)
def test_changing_any_signed_field_breaks_the_signature(key: cp.SigningKey, field: str, value: Any) -> None:
    forged = dataclasses.replace(signed(key), **{field: value})

    assert not key.public.verifies(forged)


def test_a_garbled_signature_does_not_verify_and_does_not_raise(key: cp.SigningKey) -> None:
    for signature in ("", "not base64!", "AAAA"):
        assert not key.public.verifies(dataclasses.replace(signed(key), signature=signature))


def test_the_line_is_sorted_compact_json_and_parses_back(key: cp.SigningKey) -> None:
    checkpoint = signed(key)

    line = checkpoint.line()

    assert list(json.loads(line)) == ["at", "hash", "key_id", "records", "seq", "sig", "v"]
    assert " " not in line
    assert json.loads(line)["at"] == "2026-11-24T12:00:05.123456Z"
    assert cp.Checkpoint.from_json(json.loads(line)) == checkpoint


@given(
    seq=st.integers(min_value=0, max_value=2**53),
    head=st.text(alphabet="0123456789abcdef", min_size=64, max_size=64),
    micros=st.integers(min_value=0, max_value=10**15),
)
def test_any_checkpoint_survives_its_line(seq: int, head: str, micros: int) -> None:
    key = cp.SigningKey.generate()
    at = dt.datetime(2000, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=micros)
    checkpoint = key.sign(seq=seq, hash=head, records=seq, at=at)

    back = cp.Checkpoint.from_json(json.loads(checkpoint.line()))

    assert back == checkpoint and key.public.verifies(back)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"v": 2}, "version"),
        ({"seq": -1}, "seq"),
        ({"seq": "42"}, "seq"),
        ({"records": True}, "records"),
        ({"hash": "AB" * 32}, "hash"),
        ({"hash": "ab"}, "hash"),
        ({"key_id": "xyz"}, "key_id"),
        ({"sig": ""}, "signature"),
        ({"at": 5}, "time"),
        ({"at": "yesterday"}, "does not match format"),
    ],
)
def test_a_malformed_checkpoint_says_what_is_wrong(
    key: cp.SigningKey, change: dict[str, Any], problem: str
) -> None:
    body = {**json.loads(signed(key).line()), **change}

    with pytest.raises(ValueError, match=problem):
        cp.Checkpoint.from_json(body)


def test_a_bad_line_in_a_checkpoint_file_is_named_by_number(key: cp.SigningKey) -> None:
    lines = [signed(key).line(), "", "{not json", signed(key).line()]

    with pytest.raises(CheckpointError, match=r"file\.jsonl line 3 is not a checkpoint"):
        list(cp.parse_checkpoints(lines, source="file.jsonl"))


# -- keys -------------------------------------------------------------------------------


def test_keygen_writes_a_0600_pem_that_loads_back_and_never_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"

    made = cp.write_new_key_file(path)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = cp.load_signing_key(path=path, text=None, production=True)
    assert loaded.public.key_id == made.public.key_id
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="never overwritten"):
        cp.write_new_key_file(path)
    assert path.read_bytes() == before


def test_the_key_is_accepted_as_environment_text(key: cp.SigningKey) -> None:
    loaded = cp.load_signing_key(path=None, text=key.pem().decode(), production=True)

    assert loaded.public.key_id == key.public.key_id


def test_an_openssl_style_key_file_is_accepted(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private = Ed25519PrivateKey.generate()
    path = tmp_path / "openssl.pem"
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    path.chmod(0o600)

    assert cp.load_signing_key(path=path, text=None, production=True).public.key == private.public_key()


def test_production_refuses_a_key_file_others_can_read(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    cp.write_new_key_file(path)
    path.chmod(0o640)

    with pytest.raises(CheckpointError, match="chmod 600"):
        cp.load_signing_key(path=path, text=None, production=True)
    assert cp.load_signing_key(path=path, text=None, production=False)


@pytest.mark.parametrize(
    ("path", "text", "message"),
    [
        (Path("/nonexistent/signing.pem"), None, "does not exist"),
        (Path("/x"), "-----BEGIN PRIVATE KEY-----", "not both"),
        (None, "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----", "not an"),
        (None, None, "no audit signing key"),
    ],
)
def test_an_unusable_key_is_refused_without_quoting_it(
    path: Path | None, text: str | None, message: str
) -> None:
    with pytest.raises(CheckpointError, match=message) as refused:
        cp.load_signing_key(path=path, text=text, production=False)
    assert "c2VjcmV0" not in str(refused.value)


def test_an_ec_key_is_not_a_signing_key() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )

    with pytest.raises(CheckpointError, match="not an Ed25519 key"):
        cp.parse_signing_key(pem, source="the key")


def test_the_public_key_is_one_line_and_parses_back(key: cp.SigningKey, tmp_path: Path) -> None:
    text = key.public.text
    in_file = tmp_path / "audit.pub"
    in_file.write_text(text + "\n")
    pem_file = tmp_path / "audit-pub.pem"
    pem_file.write_bytes(
        key.public.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )

    assert text.startswith("ed25519:") and "\n" not in text
    for value in (text, str(in_file), str(pem_file)):
        assert cp.parse_public_key(value).key_id == key.public.key_id


@pytest.mark.parametrize(
    "value", ["ed25519:", "ed25519:AAAA", "ed25519:!!!", "/nonexistent/key.pub", "rsa:AAAA"]
)
def test_a_bad_public_key_is_refused(value: str) -> None:
    with pytest.raises(CheckpointError):
        cp.parse_public_key(value)


def test_the_key_id_is_a_fingerprint_of_the_public_key(key: cp.SigningKey) -> None:
    import base64
    import hashlib

    raw = base64.b64decode(key.public.text.removeprefix("ed25519:"))

    assert key.public.key_id == hashlib.sha256(raw).hexdigest()[:16]
    assert "PRIVATE" not in repr(key) and key.public.key_id in repr(key)


# -- settings and destinations ---------------------------------------------------------


@pytest.mark.parametrize(
    ("environ", "problems"),
    [
        ({}, ["no audit signing key", "no audit checkpoint destination"]),
        ({"MASKLINE_AUDIT_SIGNING_KEY_FILE": "/k.pem"}, ["no audit checkpoint destination"]),
        ({"MASKLINE_AUDIT_CHECKPOINT_FILE": "/c.jsonl"}, ["no audit signing key"]),
        ({"MASKLINE_AUDIT_SIGNING_KEY": "pem", "MASKLINE_AUDIT_CHECKPOINT_URL": "https://x.example/c"}, []),
    ],
)
def test_checkpoint_problems_name_what_is_missing(environ: dict[str, str], problems: list[str]) -> None:
    settings = load_settings(environ={"MASKLINE_ENV": "production", **environ})

    found = settings.audit_checkpoint_problems()

    assert [p.split(" (")[0] for p in found] == problems


def test_production_start_up_does_not_require_the_signing_key() -> None:
    """Only the worker signs: web nodes must not need (and so hold) the private key."""
    settings = load_settings(environ={"MASKLINE_ENV": "production"})

    assert not any("AUDIT" in problem for problem in settings.problems())


def test_a_url_that_cannot_be_reached_is_reported_by_type_only(key: cp.SigningKey) -> None:
    def refuse(url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        raise ConnectionRefusedError(f"cannot reach {url}")

    destination = cp.UrlDestination("https://audit.example.com/in?token=s3cret", send=refuse)

    with pytest.raises(CheckpointError) as failed:
        destination.send(signed(key))
    assert str(failed.value) == "checkpoint URL: ConnectionRefusedError"
    assert "s3cret" not in repr(destination)


def test_the_last_checkpoint_of_a_missing_or_garbled_file_is_none(tmp_path: Path, key: cp.SigningKey) -> None:
    path = tmp_path / "checkpoints.jsonl"
    assert cp.FileDestination(path).last() is None
    path.write_text(signed(key).line() + "\n{garbled\n")
    assert cp.FileDestination(path).last() is None
    path.write_text("{garbled\n" + signed(key, seq=7, records=7).line() + "\n")
    last = cp.FileDestination(path).last()
    assert last is not None and last.seq == 7


def test_the_production_worker_refuses_to_run_without_checkpoints() -> None:
    import click

    from maskline.worker import _checkpointer

    production = SimpleNamespace(settings=load_settings(environ={"MASKLINE_ENV": "production"}))
    development = SimpleNamespace(settings=load_settings(environ={"MASKLINE_ENV": "development"}))

    with pytest.raises(click.ClickException, match="refusing to start the worker: no audit signing key"):
        _checkpointer(production)
    assert _checkpointer(development) is None
