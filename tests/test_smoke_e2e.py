"""End to end over real SMTP: content/ → rendered edition → three inboxes at an aiosmtpd server."""

from __future__ import annotations

from tests.conftest import SMTPServer


def test_edition_reaches_each_subscriber_once(project, smtp_server: SMTPServer, run_cli, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0

    result = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.received) == 3
    assert sorted(r.recipients[0] for r in smtp_server.received) == [
        "bjorn.aase@example.org", "kari.nordmann@example.org", "ola.hansen@example.org"]

    again = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert again.exit_code == 0
    assert len(smtp_server.received) == 3
