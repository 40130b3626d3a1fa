"""TLS and AUTH against real aiosmtpd servers with a trustme certificate: STARTTLS, implicit TLS, checks on."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from tests.sending_helpers import AS_OF, add_sending, import_people
from tests.smtp_scripted import ScriptedHandler, password_check, scripted_server


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


@pytest.fixture
def trust_ca(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client trusts the test CA the way an operator would: SSL_CERT_FILE names the bundle."""
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def test_starttls_and_auth_with_the_password_from_the_environment(project, run_cli, monkeypatch, server_tls,
                                                                  trust_ca):
    handler = ScriptedHandler()
    add_sending(project, pool_size=2)
    people = import_people(project, run_cli, 4)
    with scripted_server(handler, tls_context=server_tls, require_starttls=True, auth_require_tls=True,
                         authenticator=password_check("digest", "hemmelig")) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp+starttls://digest@127.0.0.1:{server.port}")
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "hemmelig")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert handler.copies() == dict.fromkeys(people, 1)
    assert {d.login for d in handler.received} == {"digest"}
    assert "hemmelig" not in result.stdout + result.stderr


def test_wrong_password_is_one_clear_line(project, run_cli, monkeypatch, server_tls, trust_ca):
    handler = ScriptedHandler()
    add_sending(project, pool_size=1, max_errors=2, retry_delay_seconds=0.01)
    import_people(project, run_cli, 2)
    with scripted_server(handler, tls_context=server_tls, require_starttls=True,
                         authenticator=password_check("digest", "hemmelig")) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://digest@127.0.0.1:{server.port}")
        monkeypatch.setenv("DIGEST_SMTP_PASSWORD", "feil")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 1
    assert f"SMTP 127.0.0.1:{server.port} refused the login for 'digest': 535" in result.stderr
    assert "feil" not in result.stdout + result.stderr
    assert handler.received == []


def test_implicit_tls(project, run_cli, monkeypatch, server_tls, trust_ca):
    handler = ScriptedHandler()
    people = import_people(project, run_cli, 3)
    with scripted_server(handler, ssl_context=server_tls) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtps://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)

    assert result.exit_code == 0, result.stderr
    assert handler.copies() == dict.fromkeys(people, 1)


def test_untrusted_certificate_is_refused_unless_verify_is_switched_off(project, run_cli, monkeypatch, server_tls):
    handler = ScriptedHandler()
    add_sending(project, pool_size=1, max_errors=1)
    people = import_people(project, run_cli, 2)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with scripted_server(handler, tls_context=server_tls) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}")
        refused = run_cli("send", "kultur", "--as-of", AS_OF)
        assert refused.exit_code == 1
        assert "the server's certificate is not trusted" in refused.stderr
        assert "?verify=false" in refused.stderr
        assert handler.received == []

        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:{server.port}?verify=false")
        allowed = run_cli("send", "kultur", "--as-of", AS_OF)
    assert allowed.exit_code == 0, allowed.stderr
    assert handler.copies() == dict.fromkeys(people, 1)


def test_starttls_required_but_not_offered(project, run_cli, monkeypatch):
    handler = ScriptedHandler()
    add_sending(project, pool_size=1, max_errors=1)
    import_people(project, run_cli, 1)
    with scripted_server(handler) as server:
        monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp+starttls://127.0.0.1:{server.port}")
        result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert "does not offer STARTTLS, which the URL requires" in result.stderr
    assert handler.received == []


@pytest.mark.parametrize(("query", "message"), [
    ("?verify=no", "verify must be true or false, not 'no'"),
    ("?timeout=5", "unknown option 'timeout' (the only one is ?verify=false)"),
])
def test_bad_url_option_is_a_config_error(project, run_cli, monkeypatch, query, message):
    import_people(project, run_cli, 1)
    monkeypatch.setenv("DIGEST_TRANSPORT", f"smtp://127.0.0.1:2525{query}")
    result = run_cli("send", "kultur", "--as-of", AS_OF)
    assert result.exit_code == 1
    assert message in result.stderr
    assert result.stderr.count("\n") == 1


def test_user_without_password_in_environment(project, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", "smtp://kultur@127.0.0.1:2525")
    monkeypatch.delenv("DIGEST_SMTP_PASSWORD", raising=False)
    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 1 and "DIGEST_SMTP_PASSWORD is not set" in result.stderr
