"""The archive to follow: the Atom feed per digest, read by feedparser over real HTTP, and the public archive pages
(index with date, subject and articles; editions without anything that belongs to one subscriber)."""

from __future__ import annotations

import feedparser
import httpx
import lxml.html

from tests.conftest import SMTPServer, WebApp, add_article
from tests.helpers_mail import html_of, text_of


def _send(run_cli, day: str) -> None:
    result = run_cli("send", "kultur", "--as-of", day)
    assert result.exit_code == 0, result.stderr


def test_the_feed_has_one_entry_per_sent_edition_each_linking_its_archive_page(web_app: WebApp, run_cli,
                                                                             smtp_server: SMTPServer):
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    _send(run_cli, "2019-07-01")
    add_article(web_app.settings.root, "2019-07-05", "Sommerles for alle")
    _send(run_cli, "2019-07-08")

    # Every e-mail's footer, in both parts, points to the feed.
    message = smtp_server.received[0].message
    feed_address = f"{web_app.url}/arkiv/kultur.atom"
    assert f"Følg arkivet (Atom): {feed_address}" in text_of(message)
    assert f'href="{feed_address}"' in html_of(message)

    response = httpx.get(feed_address)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/atom+xml")
    assert "set-cookie" not in response.headers
    feed = feedparser.parse(response.content)
    assert feed.bozo == 0, feed.get("bozo_exception")
    assert feed.version == "atom10"
    assert feed.feed.title == "Kultur: arkiv"
    assert feed.feed.link == f"{web_app.url}/arkiv/kultur"
    pages = [entry.link for entry in feed.entries]
    assert pages == [f"{web_app.url}/arkiv/kultur/2019-07-08", f"{web_app.url}/arkiv/kultur/2019-07-01"]
    newest, first = feed.entries
    assert newest.title == "Kultur: Sommerles for alle"
    assert "Sommerles for alle" in newest.content[0].value
    assert "Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019" in first.content[0].value
    assert newest.published_parsed[:3] == (2019, 7, 8)
    # Nothing personal in the feed: no address, no signed link.
    for personal in ("kari.nordmann@example.org", "/avmeld/", "/innstillinger/", "@@"):
        assert personal not in response.text, personal
    # Each entry's link is the edition's public page.
    for page in pages:
        assert httpx.get(page).status_code == 200

    assert httpx.get(f"{web_app.url}/arkiv/ukjent.atom").status_code == 404


def test_the_feed_of_a_digest_with_nothing_sent_is_valid_and_empty(web_app: WebApp):
    feed = feedparser.parse(httpx.get(f"{web_app.url}/arkiv/kultur.atom").content)
    assert feed.bozo == 0 and feed.entries == []


def test_archive_pages_announce_the_feed_and_the_index_shows_date_subject_and_articles(web_app: WebApp, run_cli):
    _send(run_cli, "2019-07-01")
    listing = httpx.get(f"{web_app.url}/arkiv/kultur").text
    tree = lxml.html.fromstring(listing)
    assert tree.xpath('//head/link[@rel="alternate"][@type="application/atom+xml"]/@href') == ["/arkiv/kultur.atom"]
    edition = tree.xpath('//section[@class="edition"]')[0]
    assert edition.xpath(".//h2/a/text()") == ["1. juli 2019"]
    assert edition.xpath('.//p[@class="subject"]/text()')[0].startswith("Kultur: ")
    titles = edition.xpath(".//li/a/text()")
    assert "Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019" in titles and len(titles) == 6

    page = httpx.get(f"{web_app.url}/arkiv/kultur/2019-07-01").text
    tree = lxml.html.fromstring(page)
    assert tree.xpath('//head/link[@rel="alternate"][@type="application/atom+xml"]/@href') == [
        f"{web_app.url}/arkiv/kultur.atom"]
    for personal in ("Du får denne e-posten", "abonnerer på", "Vis i nettleser", "Meld deg av", "@@"):
        assert personal not in page, personal
    footer = tree.xpath('//p[a[text()="Følg arkivet (Atom)"]]')[0]
    assert footer.text_content().startswith("Dette er en utgave av Kultur fra KS.")
    assert footer.xpath("a/@href") == [f"{web_app.url}/abonner", f"{web_app.url}/arkiv/kultur",
                                       f"{web_app.url}/arkiv/kultur.atom"]
