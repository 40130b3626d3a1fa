"""Imports: ops' import counts as consent (recorded); --confirm asks by e-mail instead; suppressed stay suppressed."""

from __future__ import annotations

import email
import email.policy
import json

from tests.conftest import SMTPServer
from tests.helpers_mail import link_in, text_of


def test_import_with_confirm_subscribes_nobody_until_they_confirm(project, run_cli, smtp_server: SMTPServer,
                                                                   monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    assert run_cli("subscribers", "forget", "ola.hansen@example.org").exit_code == 0

    result = run_cli("subscribers", "import", "examples/subscribers.csv", "--confirm")

    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Asked examples/subscribers.csv: 2 confirmation e-mails sent via SMTP")
    assert "Not resubscribed: 1 addresses on the suppression list" in result.stdout and "o***@example.org" in \
        result.stdout
    assert sorted(r.recipients[0] for r in smtp_server.received) == ["bjorn.aase@example.org",
                                                                     "kari.nordmann@example.org"]
    assert "0 subscribers" in run_cli("subscribers", "list").stdout

    again = run_cli("subscribers", "import", "examples/subscribers.csv", "--confirm")
    assert "0 confirmation e-mails sent" in again.stdout and "2 already sent within the hour" in again.stdout
    assert len(smtp_server.received) == 2

    link = link_in(text_of(smtp_server.received[0].message), "/bekreft/")
    assert link.startswith("http://127.0.0.1:8000/bekreft/")  # base_url from schedule.yaml
    pending = json.loads(run_cli("subscribers", "export", smtp_server.received[0].recipients[0]).stdout)
    assert pending["subscriber"] is None
    assert pending["pending_signups"][0]["source"] == "import:subscribers.csv"


def test_every_digest_carries_a_preferences_link(project, run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    eml = (project / "outbox" / "kultur-2019-07-01" / "kari.nordmann@example.org.eml").read_bytes()
    message = email.message_from_bytes(eml, policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "Endre innstillinger: http://127.0.0.1:8000/innstillinger/" in text
    assert ">Endre innstillinger</a>" in html and 'href="http://127.0.0.1:8000/innstillinger/' in html
    assert "@@" not in text and "@@" not in html

    preview = run_cli("preview", "kultur", "--as-of", "2019-07-01", "--out", "p.html")
    assert preview.exit_code == 0
    assert "/innstillinger/eksempel" in (project / "p.txt").read_text(encoding="utf-8")
