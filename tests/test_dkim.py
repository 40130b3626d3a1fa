"""DKIM: what the server received verifies with dkimpy (test key, DNS answered by the test), and covers what it must."""

from __future__ import annotations

import base64
import email
import email.policy
import re
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


# -- oversigning (issue 11): each header a reader trusts is named once more than it occurs --------------------------

OVERSIGNED = ("from", "to", "subject", "date", "message-id", "reply-to", "list-id", "list-unsubscribe",
              "list-unsubscribe-post")


def signed_names(data: bytes) -> list[str]:
    message = email.message_from_bytes(data, policy=email.policy.default)
    tags = dkim.util.parse_tag_value(message["DKIM-Signature"].encode())
    return [name.strip().lower() for name in tags[b"h"].decode().split(":")]


def assert_oversigned(data: bytes) -> None:
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    names = signed_names(data)
    for name in OVERSIGNED:
        assert names.count(name) == len(message.get_all(name, [])) + 1, (name, names)


def with_header_above(data: bytes, name: bytes, value: bytes) -> bytes:
    """`data` with a field added above the first one of that name (as a tampering relay or list would)."""
    at = re.search(rb"(?m)^" + name + rb":", data).start()
    return data[:at] + name + b": " + value + b"\r\n" + data[at:]


def test_every_signed_message_is_oversigned_and_an_added_header_breaks_it(project, run_cli, monkeypatch, dkim_env,
                                                                           smtp_server):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    import_people(project, run_cli, 2)
    assert run_cli("send", "kultur", "--as-of", AS_OF).exit_code == 0
    assert run_cli("send", "kultur", "--as-of", AS_OF, "--to", "redaktor@example.org").exit_code == 0
    assert run_cli("subscribers", "import", "people.csv", "--confirm").exit_code == 0  # nobody new: no mail
    (project / "new.csv").write_text("email,name\nny@example.org,Ny Leser\n", encoding="utf-8")
    assert run_cli("subscribers", "import", "new.csv", "--confirm").exit_code == 0
    kinds = [r.message["Subject"] for r in smtp_server.received]
    assert len(kinds) == 4 and kinds[2].startswith("[TEST] ") and kinds[3] == "Bekreft abonnementet på Kultur"

    for received in smtp_server.received:
        data = received.data
        assert dkim.verify(data, dnsfunc=dkim_env), received.message["Subject"]
        assert_oversigned(data)
        assert not dkim.verify(with_header_above(data, b"Subject", b"Vinn en iPhone!"), dnsfunc=dkim_env)
        assert not dkim.verify(with_header_above(data, b"From", b"Svindel <svindel@example.org>"), dnsfunc=dkim_env)
        # A header the message lacked, added anywhere, breaks it too (the signature named it once, as empty).
        assert "list-id" in signed_names(data)
        unsigned_extra = data.replace(b"\r\nDate: ", b"\r\nX-Note: hei\r\nDate: ", 1)
        assert dkim.verify(unsigned_extra, dnsfunc=dkim_env)  # an unsigned header is no threat and verifies
    confirmation = smtp_server.received[3].data
    assert b"\r\nList-Id:" not in confirmation
    assert not dkim.verify(confirmation.replace(b"\r\nDate: ", b"\r\nList-Id: <falsk.ks.no>\r\nDate: ", 1),
                           dnsfunc=dkim_env)


def test_the_confirmation_email_from_the_web_form_is_signed(web_app, smtp_server, dkim_env):
    import httpx

    response = httpx.post(f"{web_app.url}/abonner", data={"epost": "liv.berg@example.org", "navn": "Liv Berg",
                                                          "kommune": "Asker", "nyhetsbrev": "kultur"})
    assert response.status_code == 200, response.text
    [confirmation] = smtp_server.received
    assert confirmation.message["Subject"] == "Bekreft abonnementet på Kultur"
    assert dkim.verify(confirmation.data, dnsfunc=dkim_env)
    assert_oversigned(confirmation.data)
    signature = dkim.util.parse_tag_value(confirmation.message["DKIM-Signature"].encode())
    assert (signature[b"d"], signature[b"s"]) == (DOMAIN.encode(), SELECTOR.encode())
