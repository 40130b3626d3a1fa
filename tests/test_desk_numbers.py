"""The desk's numbers page (/redaksjon/kultur/tall): the figures of `digest stats`, charts as SVG with their data
as tables and CSV, behind the login; in Chromium, the charts load and axe-core finds nothing serious."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import timedelta

import httpx
import lxml.etree
import lxml.html
import pytest
from playwright.sync_api import Browser, BrowserContext, expect

from tests.a11y import axe_violations, describe
from tests.conftest import EDITOR, EDITOR_PASSWORD, Desk, SMTPServer
from tests.desk_client import logged_in

NUMBERS = "/redaksjon/kultur/tall"


@pytest.fixture
def sent(desk: Desk, run_cli, smtp_server: SMTPServer) -> Desk:
    """The three example subscribers got the 2019-07-01 edition (Ola refused: no such user); Kari then left."""
    smtp_server.handler.replies["ola.hansen@example.org"] = "550 5.1.1 No such user"
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    assert run_cli("send", "kultur", "--as-of", "2019-07-01").exit_code in (0, 2)
    store = desk.store
    kari = store.subscriber_by_email("kari.nordmann@example.org")
    [edition] = store.edition_counts("kultur", window=timedelta(days=7))
    store.leave(kari.id, source="web:avmeld", now=edition.sent_at + timedelta(hours=3))
    return desk


def _table(page: str, caption: str) -> list[list[str]]:
    tree = lxml.html.fromstring(page)
    [table] = [t for t in tree.iter("table") if caption in t.findtext("caption", "")]
    return [[cell.text_content().strip() for cell in row] for row in table.iter("tr")]


def test_the_numbers_page_shows_the_figures_of_digest_stats_with_charts_tables_and_csv(sent: Desk, run_cli):
    stats = json.loads(run_cli("stats", "kultur", "--json").stdout)
    [edition] = stats["editions"]
    assert (edition["audience"], edition["sent"], edition["failed"], edition["bounced"], edition["unsubscribes"]) \
        == (3, 2, 1, 1, 1)

    client = logged_in(sent)
    page = client.get(NUMBERS)
    assert page.status_code == 200
    text = page.text
    assert "<h1>Kultur: tall</h1>" in text
    assert "Vi sporer ikke hvem som åpner e-postene" in text
    rows = _table(text, "Utgavene")
    assert rows[0] == ["Utgave", "Dato", "Mottakere", "Sendt", "Utsatt", "Feilet", "Venter", "Avvist (bounce)",
                       "Klager", "Avmeldt"]
    assert rows[1] == ["2019-07-01", "1. juli 2019", *(str(edition[key]) for key in (
        "audience", "sent", "deferred", "failed", "pending", "bounced", "complaints", "unsubscribes"))]
    facts = dict(zip(*[[node.text_content() for node in lxml.html.fromstring(text).iter(tag)] for tag in ("dt", "dd")],
                     strict=True))
    assert (facts["Mottakere"], facts["Sendt"], facts["Avvist (bounce)"], facts["Avmeldt"]) == ("3", "2", "1", "1")

    # The charts are SVG pictures with the series the table holds.
    for chart, series in (("utgaver.svg", ("Sendt", "Avvist (bounce)", "Klager", "Avmeldt")),
                          ("uker.svg", ("Aktive", "Nye", "Sluttet"))):
        svg = client.get(f"{NUMBERS}/{chart}")
        assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
        root = lxml.etree.fromstring(svg.content)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert all(name in svg.text for name in series), chart
        assert f'src="{NUMBERS}/{chart}"' in text

    # The same data as CSV (UTF-8 with a BOM, for Excel).
    download = client.get(f"{NUMBERS}/utgaver.csv")
    assert download.headers["content-type"].startswith("text/csv")
    assert download.content.startswith("\ufeff".encode())
    assert list(csv.reader(io.StringIO(download.content.decode("utf-8-sig")))) == rows
    weeks = list(csv.reader(io.StringIO(client.get(f"{NUMBERS}/uker.csv").content.decode("utf-8-sig"))))
    assert weeks == _table(text, "Per uke")
    assert weeks[0] == ["Uke", "Fra", "Aktive", "Nye", "Sluttet"] and len(weeks) == 1 + 26

    # Reached from the desk's list of digests; only for editors.
    assert f'href="{NUMBERS}"' in client.get("/redaksjon").text
    for path in (NUMBERS, f"{NUMBERS}/utgaver.svg", f"{NUMBERS}/utgaver.csv"):
        anonymous = httpx.get(sent.url + path, follow_redirects=True)
        assert "Logg inn i redaksjonen" in anonymous.text and "Avvist" not in anonymous.text, path
    assert client.get("/redaksjon/ukjent/tall").status_code == 404


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # bypass_csp: axe-core is injected as a script, which the desk's Content-Security-Policy forbids.
    context = browser.new_context(locale="nb-NO", viewport={"width": 1400, "height": 1000}, bypass_csp=True)
    yield context
    context.close()


def test_the_numbers_page_in_chromium_has_its_charts_and_no_serious_axe_violations(context: BrowserContext,
                                                                                    sent: Desk):
    page = context.new_page()
    page.goto(sent.url + NUMBERS)
    page.get_by_label("Navn").fill(EDITOR)
    page.get_by_label("Passord").fill(EDITOR_PASSWORD)
    page.get_by_role("button", name="Logg inn").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Kultur: tall")
    for alt in ("Stolpediagram over de siste utgavene", "Linjediagram over abonnentene per uke"):
        chart = page.get_by_role("img", name=alt)
        expect(chart).to_be_visible()
        assert chart.evaluate("img => img.complete && img.naturalWidth > 0"), alt
    expect(page.get_by_role("link", name="Last ned som CSV")).to_have_count(2)
    violations = axe_violations(page)
    assert not violations, describe(violations)
    page.screenshot(path=str(sent.project / "tall.png"), full_page=True)
