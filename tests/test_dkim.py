"""DKIM: what the server received verifies with dkimpy (test key, DNS answered by the test), and covers what it must."""

from __future__ import annotations

import base64
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.sending_helpers import AS_OF, add_sending, import_people
from tests.smtp_scripted import ScriptedHandler, scripted_server

SELECTOR = "kd2026"
DOMAIN = "ks.no"  # the sender's domain in schedule.yaml


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def dkim_env(key: rsa.RSAPrivateKey, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The key file and selector in the environment; returns a DNS lookup that answers for the selector only."""
    key_file = tmp_path / "dkim.pem"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    monkeypatch.setenv("DIGEST_DKIM_KEY_FILE", str(key_file))
    monkeypatch.setenv("DIGEST_DKIM_SELECTOR", SELECTOR)
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return dns


def test_every_message_is_signed_and_verifies(project, run_cli, monkeypatch, dkim_env):
    handler = ScriptedHandler()
    add_sending(project, pool_size=2)
    import_people(project, run_cli, 3, extra=(("dot@example.org", ".Åse Ærø"),))
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert len(handler.received) == 4
    for delivered in handler.received:
        assert dkim.verify(delivered.data, dnsfunc=dkim_env), delivered.recipient
        signature = dkim.util.parse_tag_value(delivered.message["DKIM-Signature"].encode())
        assert signature[b"d"] == DOMAIN.encode()
        assert signature[b"s"] == SELECTOR.encode()
        signed = {name.strip() for name in signature[b"h"].decode().split(":")}
        assert {"from", "to", "subject", "date", "message-id", "list-unsubscribe",
                "list-unsubscribe-post"} <= signed


def test_a_changed_header_or_body_breaks_the_signature(project, run_cli, monkeypatch, dkim_env):
    handler = ScriptedHandler()
    import_people(project, run_cli, 1)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        assert run_cli("send", "kultur", "--as-of", AS_OF).exit_code == 0
    data = handler.received[0].data
    assert dkim.verify(data, dnsfunc=dkim_env)
    assert not dkim.verify(data.replace(b"\nSubject: ", b"\nSubject: FW: ", 1), dnsfunc=dkim_env)
    assert not dkim.verify(data.replace(b"\nList-Unsubscribe: <http", b"\nList-Unsubscribe: <ftp", 1),
                           dnsfunc=dkim_env)
    assert not dkim.verify(data.replace(b"Hei, Person 0!", b"Hei, Person X!"), dnsfunc=dkim_env)


def test_outbox_copies_are_signed_too(project, run_cli, dkim_env):
    import_people(project, run_cli, 2)
    result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 0, result.stderr
    files = sorted((project / "outbox" / "kultur-2019-07-01").glob("*.eml"))
    assert len(files) == 2
    assert all(dkim.verify(path.read_bytes(), dnsfunc=dkim_env) for path in files)


def test_selector_without_key_file_is_one_clear_line(project, run_cli, monkeypatch):
    import_people(project, run_cli, 1)
    monkeypatch.setenv("DIGEST_DKIM_SELECTOR", SELECTOR)
    result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert result.stderr == ("error: DIGEST_DKIM_SELECTOR is set but DIGEST_DKIM_KEY_FILE is not; "
                             "set both to sign with DKIM\n")


def test_unreadable_key_is_one_clear_line(project, run_cli, monkeypatch, tmp_path):
    import_people(project, run_cli, 1)
    bad = tmp_path / "not-a-key.pem"
    bad.write_text("hello", encoding="utf-8")
    monkeypatch.setenv("DIGEST_DKIM_KEY_FILE", str(bad))
    monkeypatch.setenv("DIGEST_DKIM_SELECTOR", SELECTOR)
    result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert f"error: {bad} (DIGEST_DKIM_KEY_FILE) is not a usable unencrypted PEM RSA private key" in result.stderr
    assert not (project / "outbox").exists()
