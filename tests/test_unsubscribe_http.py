"""RFC 8058 one-click unsubscribe over real HTTP: the URL from a message a real SMTP server received."""

from __future__ import annotations

import httpx

from digest.tokens import make_preferences_token, make_token
from tests.conftest import SMTPServer, WebApp, add_article
from tests.helpers_mail import list_unsubscribe_url

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


def _statuses(web_app: WebApp) -> dict[str, str]:
    return {s.email: s.status for s in web_app.store.list_subscribers()}  # type: ignore[attr-defined]


def _send(run_cli, day: str) -> None:
    result = run_cli("send", "kultur", "--as-of", day)
    assert result.exit_code == 0, result.stderr


def _message_to(smtp_server: SMTPServer, address: str):  # type: ignore[no-untyped-def]
    return next(r.message for r in smtp_server.received if r.recipients == [address])


def test_one_click_post_unsubscribes_at_once_and_the_next_send_skips_them(web_app, smtp_server, run_cli, project):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    _send(run_cli, "2019-07-01")
    message = _message_to(smtp_server, "ola.hansen@example.org")
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = list_unsubscribe_url(message)
    assert url.startswith(web_app.url + "/avmeld/")

    response = httpx.post(url, data=ONE_CLICK, follow_redirects=False)

    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    assert "location" not in response.headers
    assert "ola.hansen@example.org får ikke flere e-poster fra oss" in response.text
    assert _statuses(web_app)["ola.hansen@example.org"] == "unsubscribed"
    assert _statuses(web_app)["kari.nordmann@example.org"] == "active"

    # Mailbox providers retry: the same POST again is still a 200 and changes nothing more.
    again = httpx.post(url, data=ONE_CLICK, follow_redirects=False)
    assert again.status_code == 200

    add_article(project, "2019-07-05", "Sommerles for alle")
    before = len(smtp_server.received)
    _send(run_cli, "2019-07-08")
    new = [r.recipients[0] for r in smtp_server.received[before:]]
    assert sorted(new) == ["bjorn.aase@example.org", "kari.nordmann@example.org"]


def test_get_shows_a_button_and_never_unsubscribes(web_app, smtp_server, run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    _send(run_cli, "2019-07-01")
    url = list_unsubscribe_url(_message_to(smtp_server, "kari.nordmann@example.org"))

    for _ in range(3):  # a mail scanner, a link preview, the reader
        page = httpx.get(url, follow_redirects=False)
        assert page.status_code == 200
        assert "set-cookie" not in page.headers
    assert f'<form method="post" action="{url.removeprefix(web_app.url)}">' in page.text
    assert "Meld meg av Kultur" in page.text
    assert "/innstillinger/" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert set(_statuses(web_app).values()) == {"active"}


def test_altered_foreign_and_unknown_tokens_change_nothing(web_app, smtp_server, run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    _send(run_cli, "2019-07-01")
    url = list_unsubscribe_url(_message_to(smtp_server, "ola.hansen@example.org"))
    token = url.rsplit("/", 1)[1]
    flipped = token[:-3] + ("x" if token[-3] != "x" else "y") + token[-2:]
    secret = b"test-secret"
    cases = {
        flipped: 400,                                                   # one character changed
        token[:-1]: 400,                                                # cut short
        make_token(b"another-secret", 2, "kultur"): 400,                # signed elsewhere
        make_preferences_token(secret, 2, "kultur"): 400,               # a preferences link, not an unsubscribe one
        make_token(secret, 999, "kultur"): 404,                         # well signed, but nobody
    }
    for candidate, status in cases.items():
        for method in ("GET", "POST"):
            response = httpx.request(method, f"{web_app.url}/avmeld/{candidate}", data=ONE_CLICK)
            assert response.status_code == status, (candidate, method)
            assert "set-cookie" not in response.headers
    assert set(_statuses(web_app).values()) == {"active"}


def test_test_copy_links_lead_to_a_polite_404(web_app, run_cli, smtp_server):
    result = run_cli("send", "kultur", "--as-of", "2019-07-01", "--to", "redaktor@example.org")
    assert result.exit_code == 0, result.stderr
    url = list_unsubscribe_url(smtp_server.received[-1].message)
    response = httpx.post(url, data=ONE_CLICK)
    assert response.status_code == 404
    assert "Fant ikke abonnementet" in response.text
