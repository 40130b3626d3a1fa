"""The desk on a phone (375 px wide, headless Chromium): the login page, the digests and the edition page fit the
screen; nothing makes the page scroll sideways."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.conftest import EDITOR, EDITOR_PASSWORD, Desk

SIDEWAYS = "document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_the_desk_fits_a_phone_without_scrolling_sideways(browser: Browser, desk: Desk):
    context = browser.new_context(locale="nb-NO", viewport={"width": 375, "height": 800})
    try:
        page = context.new_page()
        page.goto(desk.url + "/redaksjon/logg-inn")
        assert page.evaluate(SIDEWAYS) <= 0, "the login page"
        page.get_by_label("Navn").fill(EDITOR)
        page.get_by_label("Passord").fill(EDITOR_PASSWORD)
        page.get_by_role("button", name="Logg inn").click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Redaksjonen")
        assert page.evaluate(SIDEWAYS) <= 0, "the digests"
        # Each digest's row, stacked: its name, when it goes next and the way to its next edition, all on screen.
        link = page.get_by_role("link", name="Forhåndsvis neste utgave av Kultur")
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 375, box
        link.click()
        expect(page.get_by_role("heading", level=1)).to_have_text("Kultur: neste utgave")
        assert page.evaluate(SIDEWAYS) <= 0, "the edition page"
    finally:
        context.close()
