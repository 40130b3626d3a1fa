"""The desk's subscribers (/redaksjon/abonnenter): search by part of an address or name, filters, keyset pages,
and a page per subscriber with the consent history and deliveries; axe-core on both pages in Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import lxml.html
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.a11y import axe_violations, describe
from tests.conftest import EDITOR, EDITOR_PASSWORD, Desk, SMTPServer
from tests.desk_client import logged_in

LIST = "/redaksjon/abonnenter"


@pytest.fixture
def listed(desk: Desk, run_cli, smtp_server: SMTPServer) -> Desk:
    """120 subscribers (every third at bergen.kommune.no), the 2019-07-01 edition sent to them, one unsubscribed."""
    lines = ["email,name"] + [
        f"person{n:03d}@{'bergen.kommune.no' if n % 3 == 0 else 'example.org'},Person {n:03d}" for n in range(120)]
    lines.append("kari.nordmann@example.org,Kari Nordmann")
    (desk.project / "many.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_cli("subscribers", "import", "many.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code == 0
    kari = desk.store.subscriber_by_email("kari.nordmann@example.org")
    desk.store.unsubscribe(kari.id, "kultur", all_digests=list(desk.settings.digests), source="web:avmeld",
                           now=desk.store.last_success("kultur"))
    return desk


def _addresses(page: str) -> list[str]:
    tree = lxml.html.fromstring(page)
    return [cell.text_content().strip() for cell in tree.xpath("//tbody/tr/th")]


def _next(page: str) -> str | None:
    found = re.search(r'<a href="([^"]+)" rel="next">Neste side</a>', page)
    return None if found is None else found.group(1).replace("&amp;", "&")


def test_search_filter_and_keyset_pages(listed: Desk):
    client = logged_in(listed)
    seen: list[str] = []
    url: str | None = LIST
    pages = 0
    while url is not None:
        page = client.get(url).text
        seen += _addresses(page)
        url = _next(page)
        pages += 1
    assert pages == 3 and len(seen) == 121 and seen == sorted(seen) and len(set(seen)) == 121

    bergen = client.get(LIST, params={"q": "BERGEN.kommune"}).text
    assert _addresses(bergen) == sorted(f"person{n:03d}@bergen.kommune.no" for n in range(0, 120, 3))
    assert _next(bergen) is None
    by_name = client.get(LIST, params={"q": "nordmann"}).text
    assert _addresses(by_name) == ["kari.nordmann@example.org"]
    assert "avmeldt" in by_name
    assert _addresses(client.get(LIST, params={"status": "unsubscribed"}).text) == ["kari.nordmann@example.org"]
    assert len(_addresses(client.get(LIST, params={"status": "active", "nyhetsbrev": "kultur",
                                                   "q": "person11"}).text)) == 10
    assert "Ingen abonnenter passer til søket." in client.get(LIST, params={"q": "%"}).text
    assert f'href="{LIST}"' in client.get("/redaksjon").text

    # A page per subscriber: the consent and its withdrawal, the edition and its outcome.
    link = lxml.html.fromstring(by_name).xpath("//tbody/tr/th/a/@href")[0]
    person = client.get(link).text
    assert "<h1>kari.nordmann@example.org</h1>" in person
    tree = lxml.html.fromstring(person)
    consents = [[c.text_content().strip() for c in row] for row in tree.xpath(
        '//table[@aria-labelledby="h-samtykker"]/tbody/tr')]
    assert [row[1:] for row in consents] == [["trakk samtykket", "Kultur", "web:avmeld"],
                                             ["samtykke", "Kultur", "import:many.csv"]]
    deliveries = [[c.text_content().strip() for c in row] for row in tree.xpath(
        '//table[@aria-labelledby="h-utsendinger"]/tbody/tr')]
    assert [row[:2] for row in deliveries] == [["kultur 2019-07-01", "sendt"]]
    assert client.get(f"{LIST}/999999").status_code == 404
    anonymous = httpx.get(listed.url + link, follow_redirects=True)
    assert "Logg inn i redaksjonen" in anonymous.text and "kari.nordmann" not in anonymous.text


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # bypass_csp: axe-core is injected as a script, which the desk's Content-Security-Policy forbids.
    context = browser.new_context(locale="nb-NO", viewport={"width": 1280, "height": 900}, bypass_csp=True)
    yield context
    context.close()


def test_find_a_subscriber_in_chromium_and_no_serious_axe_violations(context: BrowserContext, listed: Desk):
    page = context.new_page()
    page.goto(listed.url + LIST)
    page.get_by_label("Navn").fill(EDITOR)
    page.get_by_label("Passord").fill(EDITOR_PASSWORD)
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Abonnenter")
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.get_by_label("Søk i adresse eller navn").fill("nordmann")
    page.get_by_role("button", name="Søk").click()
    page.get_by_role("link", name="kari.nordmann@example.org").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("kari.nordmann@example.org")
    expect(page.get_by_role("cell", name="trakk samtykket")).to_be_visible()
    violations = axe_violations(page)
    assert not violations, describe(violations)
