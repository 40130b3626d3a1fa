"""STARTTLS and AUTH against a real aiosmtpd server with a certificate made at test time (trustme)."""

from __future__ import annotations

import ssl

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.conftest import RecordingHandler, free_port


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"kultur" and auth_data.password == b"hemmelig"
    # handled=False: let aiosmtpd answer 535 itself (its default assumes the hook already replied).
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def tls_server(tmp_path, monkeypatch):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("SSL_CERT_FILE", str(ca_file))  # our client trusts the test CA, and only through this
    handler = RecordingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), tls_context=context,
                            require_starttls=True, authenticator=authenticator, auth_required=True)
    controller.start()
    yield controller, handler
    controller.stop()


def test_starttls_and_auth_with_password_from_environment(project, tls_server, run_cli, monkeypatch):
    controller, handler = tls_server
    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://kultur@127.0.0.1:{controller.port}")
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "hemmelig")
    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    assert len(handler.received) == 3
    assert "hemmelig" not in result.stdout + result.stderr


def test_wrong_password_is_one_clear_line(project, tls_server, run_cli, monkeypatch):
    controller, handler = tls_server
    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://kultur@127.0.0.1:{controller.port}")
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "feil")
    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1
    assert "refused the login for 'kultur'" in result.stderr and "feil" not in result.stderr
    assert handler.received == []


def test_user_without_password_in_environment(project, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", "smtp://kultur@127.0.0.1:2525")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1 and "DIGEST_SMTP_PASSWORD is not set" in result.stderr


def test_untrusted_certificate_is_refused(project, tls_server, run_cli, monkeypatch):
    controller, handler = tls_server
    monkeypatch.delenv("SSL_CERT_FILE")
    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://kultur@127.0.0.1:{controller.port}")
    monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "hemmelig")
    run_cli("subscribers", "import", "examples/subscribers.csv")
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1 and "certificate" in result.stderr.lower()
    assert handler.received == []
