"""Editors shape the draft in the desk (headless Chromium): drop an article, move one up, write an introduction,
approve; the subscribers get exactly that. A form post without its CSRF token changes nothing; axe-core finds
nothing serious on the edition page, and it fits a phone."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from html import escape

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.a11y import axe_violations, describe
from tests.conftest import EDITOR, EDITOR_PASSWORD, Desk, SMTPServer
from tests.helpers_mail import html_of, text_of

EDITION_PAGE = "/redaksjon/kultur?dato=2019-07-01"
KEY = "2019-07-01"
INTRODUCTION = "Sommeren er her, og kommunene satser på kultur.\nGod lesing – og <b>god ferie</b>!"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # bypass_csp: axe-core is injected as a script, which the desk's Content-Security-Policy (rightly) forbids.
    context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, desk: Desk) -> None:
    page.goto(desk.url + EDITION_PAGE)
    page.get_by_label("Navn").fill(EDITOR)
    page.get_by_label("Passord").fill(EDITOR_PASSWORD)
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kultur: neste utgave")


def draft_order(page: Page) -> list[tuple[str, str]]:
    """(url, title) of the draft's articles, in the order the edition page lists them."""
    items = page.locator("ol.draft-articles > li")
    return [(item.get_attribute("data-url") or "", item.locator("p.article a").inner_text()) for item in items.all()]


def article_item(page: Page, url: str):
    return page.locator(f'ol.draft-articles > li[data-url="{url}"]')


def squash(text: str) -> str:
    """Text with every run of white space as one space: the text part wraps long lines."""
    return " ".join(text.split())


def in_order(text: str, needles: list[str]) -> list[int]:
    return [text.find(needle) for needle in needles]


def wait_for_mail(smtp_server: SMTPServer, count: int) -> None:
    deadline = time.monotonic() + 30
    while len(smtp_server.received) < count:
        assert time.monotonic() < deadline, f"expected {count} messages, got {len(smtp_server.received)}"
        time.sleep(0.05)


def test_drop_move_introduce_and_approve_send_exactly_that(page: Page, desk: Desk, smtp_server: SMTPServer,
                                                            run_cli):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    log_in(page, desk)
    before = draft_order(page)
    assert len(before) >= 4, before

    # Drop the second article, then move the last one up a place.
    dropped = before[1]
    article_item(page, dropped[0]).get_by_role("button", name="Fjern").click()
    expect(page.get_by_role("status").first).to_contain_text("Artikkelen er fjernet")
    moved = before[-1]
    article_item(page, moved[0]).get_by_role("button", name="Flytt opp").click()
    expect(page.get_by_role("status").first).to_contain_text("Artikkelen er flyttet opp")
    expected = [before[0], *before[2:-2], before[-1], before[-2]]
    assert draft_order(page) == expected

    # The introduction, plain text (markup stays text).
    page.get_by_label("Innledning").fill(INTRODUCTION)
    page.get_by_role("button", name="Lagre innledningen").click()
    expect(page.get_by_role("status").first).to_contain_text("Innledningen er lagret")
    expect(page.get_by_label("Innledning")).to_have_value(INTRODUCTION)

    # The preview shows the draft as it will go out: the introduction above the articles, in the new order.
    frame = page.frame_locator("#ramme-600")
    expect(frame.get_by_text("Sommeren er her, og kommunene satser på kultur.")).to_be_visible()
    expect(frame.get_by_role("link", name=dropped[1])).to_have_count(0)
    preview_text = page.locator("#tekstversjon").inner_text()
    positions = in_order(preview_text, ["Sommeren er her", *(title for _, title in expected)])
    assert -1 not in positions and positions == sorted(positions), positions

    # Who did what, and when, in the history.
    history = page.locator("#historikk")
    expect(history).to_contain_text(f"{EDITOR}: Fjernet «{dropped[1]}»")
    expect(history).to_contain_text(f"{EDITOR}: Flyttet «{moved[1]}» opp")
    expect(history).to_contain_text("1. juli 2019 kl. 07:00")

    # A form post without its CSRF token (same session, same fields) is refused and changes nothing.
    refused = page.request.post(f"{desk.url}/redaksjon/kultur/utgave/{KEY}/fjern",
                                form={"url": expected[0][0], "dato": KEY}, max_redirects=0)
    assert refused.status == 403
    assert "sikkerhetskode" in refused.text()
    page.reload()
    assert draft_order(page) == expected

    # Accessible, and it fits a phone without scrolling sideways.
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.set_viewport_size({"width": 375, "height": 800})
    widths = page.evaluate("({client: document.documentElement.clientWidth,"
                           " scroll: document.documentElement.scrollWidth})")
    assert widths["scroll"] <= widths["client"], widths
    page.set_viewport_size({"width": 1280, "height": 900})

    # Approve: the page answers at once and shows the send under way, then what came of it.
    page.get_by_role("button", name="Godkjenn og send").click()
    expect(page.locator("#utkast-tilstand")).to_have_text("Sendt", timeout=30_000)
    expect(page.locator("#utsending")).to_contain_text("3 e-poster gikk ut")
    expect(page.get_by_role("button", name="Godkjenn og send")).to_have_count(0)
    expect(page.get_by_role("button", name="Fjern")).to_have_count(0)

    wait_for_mail(smtp_server, 3)
    assert sorted(r.recipients[0] for r in smtp_server.received) == [
        "bjorn.aase@example.org", "kari.nordmann@example.org", "ola.hansen@example.org"]
    for received in smtp_server.received:
        message = received.message
        html, text = html_of(message), text_of(message)
        links = list(dict.fromkeys(url for url in re.findall(r'href="([^"]+)"', html)
                                   if url in {u for u, _ in before}))
        assert links == [url for url, _ in expected], links
        assert dropped[0] not in html and dropped[1] not in text
        text = squash(text)
        positions = in_order(text, ["Sommeren er her", *(squash(title) for _, title in expected)])
        assert -1 not in positions and positions == sorted(positions), positions
        # The introduction is text in both parts: its markup arrives as the characters the editor typed.
        for line in INTRODUCTION.splitlines():
            assert squash(line) in text
            assert escape(line, quote=False) in html
        assert "<b>god" not in html
