"""The editors' desk in headless Chromium: log in, preview in two frames, read the checks, send a test, live reload,
the public archive, and an axe-core audit of the e-mail and the desk pages."""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Iterator

import pytest
import yaml
from playwright.sync_api import Browser, BrowserContext, Frame, Page, expect

from tests.a11y import axe_violations, describe
from tests.conftest import EDITOR, EDITOR_PASSWORD, Desk, SMTPServer, start_desk
from tests.helpers_mail import html_of, link_in
from tests.httpserver import HTTPFixtureServer, Route

PREVIEW = "/redaksjon/kultur?dato=2019-07-01"


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # bypass_csp: axe-core is injected as a script, which our pages' Content-Security-Policy (rightly) forbids.
    context = browser.new_context(locale="nb-NO", viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    return context.new_page()


def log_in(page: Page, desk: Desk, path: str = PREVIEW) -> None:
    page.goto(desk.url + path)
    expect(page.get_by_role("heading", level=1)).to_have_text("Logg inn i redaksjonen")
    page.get_by_label("Navn").fill(EDITOR)
    page.get_by_label("Passord").fill(EDITOR_PASSWORD)
    page.get_by_role("button", name="Logg inn").click()


def email_frame(page: Page, width: int) -> Frame:
    frame = page.locator(f"#ramme-{width}").element_handle().content_frame()
    assert frame is not None
    frame.wait_for_load_state()
    return frame


def _wait_for_mail(smtp_server: SMTPServer, count: int) -> None:
    deadline = time.monotonic() + 10
    while len(smtp_server.received) < count:
        assert time.monotonic() < deadline, f"expected {count} messages, got {len(smtp_server.received)}"
        time.sleep(0.05)


def test_log_in_preview_in_two_frames_read_the_checks_and_send_a_test(page: Page, desk: Desk,
                                                                       smtp_server: SMTPServer):
    log_in(page, desk)
    expect(page.get_by_role("heading", level=1)).to_have_text("Kultur: neste utgave")
    expect(page.locator("#emne")).to_have_text("Kultur: Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019")

    # Both frames render the e-mail, at their own widths; on the phone nothing sticks out sideways.
    for width in (600, 375):
        frame = email_frame(page, width)
        expect(frame.get_by_role("heading", level=1)).to_have_text("Kultur")
        expect(frame.get_by_role("link", name="Ås satser på kulturskolen")).to_be_visible()
        size = frame.evaluate("({client: document.documentElement.clientWidth,"
                              " scroll: document.documentElement.scrollWidth,"
                              " height: document.documentElement.scrollHeight})")
        assert size["client"] == width, size
        assert size["scroll"] <= size["client"], f"{width} px frame scrolls sideways: {size}"
        assert size["height"] > 1000, size
        # The page fits the frame to the e-mail's height, so the frame itself never needs a scroll bar.
        assert page.locator(f"#ramme-{width}").bounding_box()["height"] >= size["height"]

    # The checks, as an editor reads them.
    checks = page.get_by_role("region", name="Sjekker")
    expect(checks.locator("#sjekk-sammendrag")).to_contain_text("1 advarsel")
    verdicts = {item.get_attribute("data-check"): item.get_attribute("data-verdict")
                for item in checks.locator("li[data-check]").all()}
    assert verdicts == {"articles": "ok", "sources": "ok", "size": "ok", "alt": "ok", "headings": "ok",
                        "contrast": "ok", "unsubscribe": "warn", "links": "ok"}
    expect(checks.locator('[data-check="unsubscribe"]')).to_contain_text("Gmail og Yahoo krever https")
    expect(checks.locator('[data-check="links"]')).to_contain_text("Alle svarer")
    expect(page.locator("#tekstversjon")).to_contain_text("KULTUR – 1. juli 2019")

    # Send a test; it reaches the SMTP server, marked [TEST].
    page.get_by_label("E-postadresser").fill("redaktor@example.org")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status")).to_contain_text("Testen er sendt til redaktor@example.org")
    _wait_for_mail(smtp_server, 1)
    received = smtp_server.received[0]
    assert received.recipients == ["redaktor@example.org"]
    assert received.message["Subject"].startswith("[TEST] Kultur: Drammen")
    assert desk.store.find_edition("kultur", "2019-07-01") is None


def test_archive_link_of_a_sent_edition_opens_without_logging_in(context: BrowserContext, desk: Desk, run_cli,
                                                                 smtp_server: SMTPServer):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    message = next(r.message for r in smtp_server.received if r.recipients == ["kari.nordmann@example.org"])
    view = link_in(html_of(message), "/arkiv/kultur/")

    page = context.new_page()
    page.goto(view)
    assert context.cookies() == []
    expect(page.get_by_role("heading", level=1)).to_have_text("Kultur")
    title = "Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019"
    expect(page.get_by_role("link", name=title)).to_be_visible()
    expect(page.get_by_text("Du får denne e-posten fordi du abonnerer på Kultur fra KS.")).to_be_visible()
    expect(page.get_by_role("link", name="Meld deg av")).to_have_count(0)
    expect(page.get_by_role("link", name="Endre innstillinger")).to_have_count(0)
    assert "kari" not in page.content().lower()
    violations = axe_violations(page)
    assert not violations, describe(violations)


def test_open_preview_reloads_when_a_content_file_changes(page: Page, desk: Desk):
    log_in(page, desk)
    frame = email_frame(page, 600)
    expect(frame.get_by_role("link", name="Ås satser på kulturskolen")).to_be_visible()
    article = desk.project / "content" / "2018-12-05-as-satser-pa-kulturskolen.md"
    article.write_text(article.read_text(encoding="utf-8").replace("title: Ås satser på kulturskolen",
                                                                   "title: Ås satser stort på kulturskolen"),
                       encoding="utf-8")
    # No click: the page notices the change and reloads, frames included.
    expect(page.frame_locator("#ramme-600").get_by_role("link", name="Ås satser stort på kulturskolen")).to_be_visible(
        timeout=15_000)
    expect(page.frame_locator("#ramme-375").get_by_role("link", name="Ås satser stort på kulturskolen")).to_be_visible()


def test_desk_pages_and_the_email_have_no_serious_accessibility_violations(browser: Browser, page: Page,
                                                                           desk: Desk):
    page.goto(f"{desk.url}/redaksjon/logg-inn")
    audited = {"login": axe_violations(page)}
    log_in(page, desk, "/redaksjon")
    expect(page.get_by_role("heading", level=1)).to_have_text("Redaksjonen")
    audited["digests"] = axe_violations(page)
    page.goto(desk.url + PREVIEW)
    email_frame(page, 375)
    audited["preview"] = axe_violations(page)
    # The e-mail itself (the framed document; the frames run no scripts, so it is audited as a page of its own) at
    # the desktop and the phone width.
    for width in (600, 375):
        alone = page.context.new_page()
        alone.set_viewport_size({"width": width, "height": 900})
        alone.goto(desk.url + "/redaksjon/kultur/epost?dato=2019-07-01")
        audited[f"e-mail at {width} px"] = axe_violations(alone)
    found = {where: describe(violations) for where, violations in audited.items() if violations}
    assert not found, found


def _png() -> bytes:
    """A 2×2 grey PNG: a real image for the frame to load."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"".join(b"\x00" + b"\x80\x80\x80" * 2 for _ in range(2))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


FEED = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0" xmlns:media="http://search.yahoo.com/mrss/">
  <channel>
    <title>Bodø kommune</title><link>{base}/</link><description>Kultur i Bodø</description>
    <item>
      <title>Nytt kulturhus åpner i sentrum</title>
      <link>{base}/kulturhus/</link>
      <description>Kulturhuset åpner dørene med konserter hele helgen.</description>
      <pubDate>Thu, 27 Jun 2019 10:00:00 +0200</pubDate>
      <media:content url="{base}/bilder/kulturhus.png" medium="image" type="image/png"/>
    </item>
  </channel>
</rss>
"""


@pytest.fixture
def feed_desk(project, smtp_server, monkeypatch) -> Iterator[Desk]:
    """The desk over content/ plus a feed whose item has an image and no alt text."""
    site = HTTPFixtureServer().start()
    site.routes["/kultur.rss"] = Route(body=FEED.format(base=site.base).encode(),
                                       content_type="application/rss+xml")
    site.routes["/bilder/kulturhus.png"] = Route(body=_png(), content_type="image/png")
    site.routes["/kulturhus/"] = Route(body=b"<!doctype html><title>ok</title>", content_type="text/html")
    config = yaml.safe_load((project / "schedule.yaml").read_text(encoding="utf-8"))
    config["digests"]["kultur"]["sources"].append({"type": "feed", "url": f"{site.base}/kultur.rss",
                                                   "label": "Bodø kommune", "timeout": 5})
    (project / "schedule.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    running, stop = start_desk(project, smtp_server, monkeypatch)
    try:
        yield running
    finally:
        stop()
        site.stop()


def test_a_feed_image_without_alt_text_fails_the_alt_check(page: Page, feed_desk: Desk):
    log_in(page, feed_desk)
    frame = email_frame(page, 600)
    image = frame.locator("img").first
    expect(image).to_be_visible()
    assert image.evaluate("img => img.complete && img.naturalWidth") == 2  # the picture itself loaded
    alt = page.locator('[data-check="alt"]')
    expect(alt).to_have_attribute("data-verdict", "fail")
    expect(alt).to_contain_text("Feil")
    expect(alt).to_contain_text("Ett bilde mangler alt-tekst")
    expect(alt).to_contain_text("/bilder/kulturhus.png")
    expect(page.locator("#sjekk-sammendrag")).to_contain_text("1 feil")
