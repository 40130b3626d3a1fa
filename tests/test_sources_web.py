"""Feeds and listing pages served by a real HTTP server on 127.0.0.1, collected through the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from digest.store import Store
from tests.conftest import SMTPServer
from tests.httpserver import HTTPFixtureServer, Route

FIXTURES = Path(__file__).parent / "fixtures" / "web"
NOW = datetime(2019, 6, 30, 10, 0, tzinfo=UTC)  # the clock while collecting; the edition goes out 1 July 2019

PAGE_SELECTORS = """\
        selectors:
          item: .article-list__item
          title: .article-list__title
          link: .article-list__title a
          teaser: .article-list__teaser
          kicker: .article-list__kicker
          image: .article-list__image img
"""


def _fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def web() -> Iterator[HTTPFixtureServer]:
    routes = {
        "/feeds/kultur.rss": Route(body=_fixture("kultur.rss"), content_type="application/rss+xml; charset=utf-8"),
        "/feeds/kultur.atom": Route(body=_fixture("kultur.atom"), content_type="application/atom+xml"),
        "/kultur/": Route(body=_fixture("kultur.html"), content_type="text/html; charset=utf-8"),
        "/slow/kultur.rss": Route(body=_fixture("late.rss"), hang=True),
        "/error/kultur.rss": Route(status=500, body=b"<h1>Internal Server Error</h1>", content_type="text/html"),
        "/feeds/broken.rss": Route(body=_fixture("broken.rss")),
        "/redesign/": Route(body=_fixture("redesign.html"), content_type="text/html; charset=utf-8"),
        "/huge.rss": Route(body=_fixture("kultur.rss") * 4),
    }
    with HTTPFixtureServer(routes) as server:
        yield server


def write_schedule(project: Path, sources: str, **digest_keys: object) -> None:
    text = (project / "schedule.yaml").read_text(encoding="utf-8")
    text = text.replace("      - type: files\n        path: content/\n", sources)
    for key, value in digest_keys.items():
        text = text.replace("    first_window_days: 365\n", f"    first_window_days: 365\n    {key}: {value}\n")
    text = text.replace("    max_articles: 10\n", "") if "max_articles" in digest_keys else text
    (project / "schedule.yaml").write_text(text, encoding="utf-8")


def good_sources(web: HTTPFixtureServer) -> str:
    return f"""\
      - type: feed
        url: {web.url("/feeds/kultur.rss")}
        label: KS kultur (RSS)
        kicker: NYHET
      - type: feed
        url: {web.url("/feeds/kultur.atom")}
      - type: page
        url: {web.url("/kultur/")}
        label: ks.no/kultur
{PAGE_SELECTORS}"""


def failing_sources(web: HTTPFixtureServer) -> str:
    return f"""\
      - type: feed
        url: {web.url("/slow/kultur.rss")}
        label: Treg kommune
        timeout: 1
        retries: 1
      - type: feed
        url: {web.url("/error/kultur.rss")}
        label: Kommune med feil
        timeout: 5
        retries: 1
      - type: feed
        url: {web.url("/feeds/broken.rss")}
        label: Ødelagt feed
      - type: page
        url: {web.url("/redesign/")}
        label: Ny design
{PAGE_SELECTORS}"""


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("digest.cli._now", lambda: NOW)


def test_collect_json_gives_clean_articles(project, web, run_cli, clock):
    write_schedule(project, good_sources(web), max_articles=20)

    result = run_cli("collect", "kultur", "--as-of", "2019-07-01", "--json")

    assert result.exit_code == 0, result.stderr
    articles = json.loads(result.stdout)
    assert all(set(article) == {"url", "title", "teaser", "published", "kicker", "image", "source"}
               for article in articles)
    for article in articles:
        for text in (article["title"], article["teaser"]):
            assert "<" not in text and ">" not in text, text
            assert "&amp;" not in text and "&lt;" not in text and "&nbsp;" not in text, text
            assert "  " not in text and text == text.strip()
        assert "sporingskode" not in article["teaser"] and "trackTeaser" not in article["teaser"]
        parts = urlsplit(article["url"])
        assert parts.scheme in {"http", "https"} and parts.netloc, article["url"]
        assert not parts.fragment and "utm_" not in parts.query, article["url"]
        assert datetime.fromisoformat(article["published"]).utcoffset() is not None
        assert len(article["teaser"]) <= 301
    urls = [article["url"] for article in articles]
    assert len(urls) == len(set(urls)), "the same URL twice"
    site_titles = [(urlsplit(a["url"]).hostname, a["title"].casefold()) for a in articles]
    assert len(site_titles) == len(set(site_titles)), "the same title from the same site twice"

    by_title = {article["title"]: article for article in articles}
    assert sorted(by_title) == sorted([
        # RSS: HTML in CDATA, markup escaped twice, an entity, and an item without a date
        "Årets kulturkommune & juryens valg",
        "Kulturskolen i Ås – dobbelt så mye som nabokommunene",
        "Bibliotekene åpner på søndager",
        "Lederkonferansen i april",
        # Atom: the XHTML title; its other two entries are the RSS stories again
        "Kunst & helse i Larvik",
        # the listing page built like the seed
        "Drammen, Larvik eller Sarpsborg blir årets kulturkommune 2019",
        "KS arrangerer lederkonferanse",
        "KS ønsker en sterkere rolle i den nasjonale kulturpolitikken",
        "Regionalisering av kulturen – for kulturens skyld",
        "Kulturpolitikk mot en ny tid",
        "Ås satser på kulturskolen",
    ])
    base = web.base
    kulturkommune = by_title["Årets kulturkommune & juryens valg"]
    assert kulturkommune["url"] == f"{base}/kultur/arets-kulturkommune/"
    assert kulturkommune["teaser"] == ("Juryen har valgt tre finalister: Drammen, Larvik og Sarpsborg. "
                                       "Vinneren kåres i høst.")
    assert kulturkommune["source"] == "KS kultur (RSS)" and kulturkommune["kicker"] == "NYHET"

    kulturskolen = by_title["Kulturskolen i Ås – dobbelt så mye som nabokommunene"]
    assert kulturskolen["url"] == "https://www.ks.no/fagomrader/samfunnsutvikling/kultur/as-satser-pa-kulturskolen/"
    assert kulturskolen["published"] == "2019-06-12T08:00:00+02:00"  # no zone in the feed: read as Oslo time
    assert kulturskolen["image"] == f"{base}/bilder/kulturskolen.jpg"
    assert kulturskolen["teaser"].startswith("Ås bruker nesten dobbelt så mye penger på kulturskole")
    assert kulturskolen["teaser"].endswith("…") and len(kulturskolen["teaser"]) > 250
    assert not kulturskolen["teaser"][:-1].endswith(" ")

    assert by_title["Bibliotekene åpner på søndager"]["url"] == f"{base}/feeds/bibliotek-sondag.html"
    assert by_title["Bibliotekene åpner på søndager"]["published"] == "2019-06-30T12:00:00+02:00"  # first seen
    lederkonferansen = by_title["Lederkonferansen i april"]
    assert lederkonferansen["teaser"] == "Slik skaper du en effektiv ledergruppe «på tvers» av sektorer."
    assert by_title["Kunst & helse i Larvik"]["published"] == "2019-06-25T10:00:00+02:00"
    assert by_title["Kunst & helse i Larvik"]["url"] == f"{base}/kultur/kunst-og-helse"

    as_school = by_title["Ås satser på kulturskolen"]
    assert as_school["kicker"] == "KOMMUNESPEILET" and as_school["source"] == "ks.no/kultur"
    assert as_school["url"] == f"{base}/kultur/as-satser-pa-kulturskolen/"
    assert as_school["image"] == f"{base}/globalassets/kultur/as-kulturskole.jpg"
    assert as_school["published"] == "2019-06-30T12:00:00+02:00"
    assert "Les flere artikler" not in by_title and "Mer om kultur" not in by_title

    # Newest first.
    assert [a["published"] for a in articles] == sorted((a["published"] for a in articles), reverse=True)


def test_explain_says_what_was_left_out_and_why(project, web, run_cli, clock):
    write_schedule(project, good_sources(web), max_articles=8)

    result = run_cli("collect", "kultur", "--as-of", "2019-07-01", "--explain")

    assert result.exit_code == 0, result.stderr
    out = " ".join(result.stdout.split())
    assert "kultur 2019-07-01 (not sent yet): 8 articles" in out
    # The old RSS item, the two Atom entries that repeat RSS stories, and what did not fit under the cap.
    assert "old" in out and "Kulturminneåret er over" in out
    assert out.count("duplicate") == 2
    assert "same story as https://www.ks.no/fagomrader/samfunnsutvikling/kultur/as-satser-pa-kulturskolen/" in out
    assert "over the cap" in out and "beyond max_articles (8)" in out
    assert "feed KS kultur (RSS)" in out and "5 articles" in out


def test_failing_sources_stay_local_and_are_reported(project, web, run_cli, clock, smtp_server: SMTPServer,
                                                     monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    write_schedule(project, good_sources(web) + failing_sources(web), max_articles=20)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0

    result = run_cli("send", "kultur", "--as-of", "2019-07-01")

    assert result.exit_code == 0, result.stderr
    assert len(smtp_server.received) == 3
    body = smtp_server.received[0].message.get_body(("plain",)).get_content()
    assert "Ås satser på kulturskolen" in body and "Kunst & helse i Larvik" in body
    # The hanging source answers only when the server stops; its late article must not be in the edition.
    assert "Svar etter fristen" not in body
    errors = result.stderr
    assert "warning: feed Treg kommune" in errors and "no answer within 1 s (2 attempts)" in errors
    assert "warning: feed Kommune med feil" in errors and "HTTP 500" in errors
    assert "warning: feed Ødelagt feed" in errors and "malformed XML" in errors
    assert "warning: page Ny design" in errors and "matched nothing: has the page layout changed?" in errors
    # A 500 is retried once (retries: 1) and then given up.
    assert [hit.status for hit in web.hits("/error/kultur.rss")] == [500, 500]


def test_every_source_failing_sends_nothing(project, web, run_cli, clock, smtp_server: SMTPServer, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    write_schedule(project, failing_sources(web))
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0

    result = run_cli("send", "kultur", "--as-of", "2019-07-01")

    assert result.exit_code == 1
    assert "error: every source of 'kultur' failed, nothing was sent" in result.stderr
    assert "Traceback" not in result.stderr
    assert smtp_server.received == []
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    assert store.find_edition("kultur", "2019-07-01") is None


def test_unchanged_feed_costs_a_304_and_keeps_its_articles(project, web, run_cli, clock):
    web.routes["/feeds/kultur.rss"].etag = '"v1"'
    web.routes["/feeds/kultur.rss"].last_modified = "Sun, 30 Jun 2019 08:00:00 GMT"
    rss_only = good_sources(web).split("      - type: feed\n        url: " + web.url("/feeds/kultur.atom"))[0]
    write_schedule(project, rss_only)

    first = run_cli("collect", "kultur", "--as-of", "2019-07-01", "--json")
    second = run_cli("collect", "kultur", "--as-of", "2019-07-01", "--json")

    assert first.exit_code == 0 and second.exit_code == 0, second.stderr
    assert json.loads(second.stdout) == json.loads(first.stdout) != []
    hits = web.hits("/feeds/kultur.rss")
    assert [hit.status for hit in hits] == [200, 304]
    assert "If-None-Match" not in hits[0].headers
    assert hits[1].headers["If-None-Match"] == '"v1"'
    assert hits[1].headers["If-Modified-Since"] == "Sun, 30 Jun 2019 08:00:00 GMT"
    assert "unchanged since the last fetch (304)" in second.stderr
    assert hits[0].headers["User-Agent"] == "kulturdigest/0.1.0 (+http://127.0.0.1:8000)"


def test_size_cap(project, web, run_cli, clock):
    write_schedule(project, good_sources(web) + f"""\
      - type: feed
        url: {web.url("/huge.rss")}
        label: Stor feed
        max_bytes: 5000
""")
    result = run_cli("collect", "kultur", "--as-of", "2019-07-01")

    assert result.exit_code == 0, result.stderr
    assert "FAIL feed Stor feed" in result.stdout
    assert "larger than the size cap of 5 000 bytes (max_bytes)" in result.stdout


def test_sent_articles_never_return_and_undated_ones_keep_their_first_date(project, web, run_cli, monkeypatch):
    write_schedule(project, good_sources(web), max_articles=20)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0
    monkeypatch.setattr("digest.cli._now", lambda: NOW)
    first = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert first.exit_code == 0, first.stderr

    # A week later the page still lists the same six undated articles, and the feeds the same items.
    monkeypatch.setattr("digest.cli._now", lambda: datetime(2019, 7, 7, 10, 0, tzinfo=UTC))
    web.routes["/feeds/kultur.atom"].body = _fixture("kultur.atom").replace(
        b"<entry>", b"<entry><title>Ny uke, ny sak</title><link href='ny-sak'/><id>urn:ks:ny</id>"
                    b"<updated>2019-07-05T12:00:00+02:00</updated></entry><entry>", 1)
    result = run_cli("collect", "kultur", "--as-of", "2019-07-08", "--json", "--explain")

    assert result.exit_code == 0, result.stderr
    assert [article["title"] for article in json.loads(result.stdout)] == ["Ny uke, ny sak"]
    # The 11 articles of the first edition, and the two Atom entries that told two of those stories again.
    assert result.stderr.count("left out (already sent)") == 13
    assert "left out (already sent): Ås satser på kulturskolen [ks.no/kultur, 2019-06-30 12:00]" in result.stderr
    # The undated items were first seen on 30 June; a week later they are not new.
    store = Store.open(f"sqlite:///{project / 'digest.db'}")
    seen = store.first_seen([f"{web.base}/kultur/as-satser-pa-kulturskolen/"], datetime.now(UTC))
    assert seen == {f"{web.base}/kultur/as-satser-pa-kulturskolen/": NOW}


def test_too_few_articles_skip_the_edition(project, web, run_cli, clock, smtp_server: SMTPServer, monkeypatch):
    monkeypatch.setenv("DIGEST_TRANSPORT", smtp_server.url)
    write_schedule(project, good_sources(web), min_articles=12, max_articles=20)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0

    result = run_cli("send", "kultur", "--as-of", "2019-07-01")

    assert result.exit_code == 0, result.stderr
    assert "Only 11 new articles for 'kultur' (min_articles is 12); the edition is skipped" in result.stdout
    assert smtp_server.received == []
