"""Subscribe → confirm → receive → change preferences → leave, in headless Chromium against the real app and SMTP."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import SMTPServer, WebApp, add_article
from tests.helpers_mail import html_of, link_in, list_unsubscribe_url, text_of


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="nb-NO")
    yield context.new_page()
    context.close()


def _wait_for_mail(smtp_server: SMTPServer, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(smtp_server.received) < count:
        assert time.monotonic() < deadline, f"expected {count} messages, got {len(smtp_server.received)}"
        time.sleep(0.05)


def test_subscribe_confirm_receive_change_and_leave(page: Page, web_app: WebApp, smtp_server: SMTPServer, run_cli,
                                                    project):
    store = web_app.store
    # Subscribe through the form.
    page.goto(f"{web_app.url}/abonner")
    expect(page.get_by_role("heading", level=1)).to_have_text("Meld deg på nyhetsbrev")
    page.get_by_label("E-postadresse").fill("liv.berg@example.org")
    page.get_by_role("textbox", name="Navn").fill("Liv Berg")
    page.get_by_role("textbox", name="Kommune").fill("Asker")
    expect(page.get_by_role("checkbox", name="Kultur")).to_be_checked()
    page.get_by_role("button", name="Meld meg på").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Sjekk e-posten din")

    # Follow the link in the confirmation e-mail the SMTP server received.
    _wait_for_mail(smtp_server, 1)
    confirmation = smtp_server.received[0]
    assert confirmation.recipients == ["liv.berg@example.org"]
    page.goto(link_in(text_of(confirmation.message), "/bekreft/"))
    assert store.subscriber_by_email("liv.berg@example.org") is None  # opening the link confirms nothing
    page.get_by_role("button", name="Bekreft abonnementet").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Takk! Du er påmeldt")

    # Receive the next edition.
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    _wait_for_mail(smtp_server, 2)
    digest = smtp_server.received[1]
    assert digest.recipients == ["liv.berg@example.org"]
    assert "Hei, Liv Berg!" in text_of(digest.message)

    # Change preferences from the link in the footer.
    page.goto(link_in(html_of(digest.message), "/innstillinger/"))
    expect(page.get_by_role("textbox", name="Navn")).to_have_value("Liv Berg")
    page.get_by_role("textbox", name="Navn").fill("Liv B. Berg")
    page.get_by_role("textbox", name="Kommune").fill("Bærum")
    page.get_by_role("button", name="Lagre").click()
    expect(page.get_by_role("status")).to_have_text("Endringene er lagret.")
    profile = store.profile(store.subscriber_by_email("liv.berg@example.org").id)
    assert (profile.name, profile.municipality) == ("Liv B. Berg", "Bærum")

    # Leave from the unsubscribe link of the e-mail: the page asks, the button does it.
    page.goto(list_unsubscribe_url(digest.message))
    expect(page.get_by_role("heading", level=1)).to_have_text("Meld deg av Kultur")
    assert store.subscriber_by_email("liv.berg@example.org").status == "active"
    page.get_by_role("button", name="Meld meg av Kultur").click()
    expect(page.get_by_role("status")).to_contain_text("liv.berg@example.org får ikke flere e-poster fra oss")
    assert store.subscriber_by_email("liv.berg@example.org").status == "unsubscribed"

    # And the next edition does not reach them.
    add_article(project, "2019-07-05", "Sommerles for alle")
    assert run_cli("send", "kultur", "--as-of", "2019-07-08").exit_code == 0
    assert len(smtp_server.received) == 2
