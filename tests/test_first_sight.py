"""Eligibility by first sight: a feed on a real HTTP server on 127.0.0.1 that changes between two editions, sent
through the CLI into the outbox, with the state in a real SQLite file."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

from tests.httpserver import HTTPFixtureServer, Route
from tests.test_sources_web import write_schedule

FEED = "/kommune/kultur.rss"


def rss(*items: tuple[str, str, datetime]) -> bytes:
    """An RSS 2.0 feed with these (title, slug, published) items, in the given order."""
    entries = "".join(
        f"<item><title>{escape(title)}</title><link>https://kommune.example.no/kultur/{slug}</link>"
        f"<description>Om {escape(title.lower())}.</description><pubDate>{format_datetime(published)}</pubDate>"
        "</item>"
        for title, slug, published in items)
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Kultur i kommunen</title>'
            f"<link>https://kommune.example.no/kultur/</link><description>Nytt</description>{entries}"
            "</channel></rss>").encode()


SUMMER_CONCERT = ("Sommerkonsert i parken", "sommerkonsert", datetime(2019, 6, 28, 10, 0, tzinfo=UTC))
LIBRARY_OPEN = ("Biblioteket holder åpent hele sommeren", "bibliotek", datetime(2019, 6, 26, 10, 0, tzinfo=UTC))
BOOK_TALK = ("Bokbad med lokale forfattere", "bokbad", datetime(2019, 6, 25, 10, 0, tzinfo=UTC))
# Dated before the first edition's cut-off, but the feed shows it only afterwards.
LATE = ("Kulturprisen går til korpset", "kulturprisen", datetime(2019, 6, 30, 12, 0, tzinfo=UTC))
NEW = ("Jazz på kaia i helgen", "jazz", datetime(2019, 7, 5, 9, 0, tzinfo=UTC))
# Also first seen after the cut-off, but from May: older than max_age_days (14) on 8 July.
ANCIENT = ("Vårens utstilling er åpnet", "utstilling", datetime(2019, 5, 2, 9, 0, tzinfo=UTC))


@pytest.fixture
def feed() -> HTTPFixtureServer:
    with HTTPFixtureServer({FEED: Route(body=rss(SUMMER_CONCERT, LIBRARY_OPEN, BOOK_TALK),
                                        content_type="application/rss+xml; charset=utf-8")}) as server:
        yield server


def titles_in_outbox(project: Path, batch: str) -> set[str]:
    files = sorted((project / "outbox" / batch).glob("*.eml"))
    assert files, f"nothing in outbox/{batch}"
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    text = message.get_body(("plain",)).get_content()
    return {title for title, _, _ in (SUMMER_CONCERT, LIBRARY_OPEN, BOOK_TALK, LATE, NEW, ANCIENT) if title in text}


def test_a_late_feed_item_goes_into_the_next_edition_and_an_ancient_one_does_not(project, feed, run_cli,
                                                                                  monkeypatch):
    write_schedule(project, f"      - type: feed\n        url: {feed.url(FEED)}\n        label: Kommunen\n",
                   max_articles=2)
    assert run_cli("subscribers", "import", "examples/subscribers.csv").exit_code == 0

    # Monday 1 July, 07:00 in Oslo: two of the three items fit under the cap; the book talk does not.
    monkeypatch.setattr("digest.cli._now", lambda: datetime(2019, 7, 1, 5, 0, tzinfo=UTC))
    first = run_cli("send", "kultur", "--as-of", "2019-07-01")
    assert first.exit_code == 0, first.stderr
    assert titles_in_outbox(project, "kultur-2019-07-01") == {SUMMER_CONCERT[0], LIBRARY_OPEN[0]}

    # During the week the feed gains a late item (dated Sunday 30 June), a new one, and one from May.
    feed.routes[FEED].body = rss(NEW, LATE, SUMMER_CONCERT, LIBRARY_OPEN, BOOK_TALK, ANCIENT)
    monkeypatch.setattr("digest.cli._now", lambda: datetime(2019, 7, 8, 5, 0, tzinfo=UTC))

    explained = run_cli("collect", "kultur", "--as-of", "2019-07-08", "--explain")
    assert explained.exit_code == 0, explained.stderr
    lines = {line.strip().split(":", 1)[1].split("[", 1)[0].strip(): line.strip()
             for line in explained.stdout.splitlines() if line.startswith("  ") and "[Kommunen," in line}
    assert lines[ANCIENT[0]].startswith("too old:"), explained.stdout
    assert "older than max_age_days (14)" in lines[ANCIENT[0]]
    assert lines[BOOK_TALK[0]].startswith("seen before the previous edition:"), explained.stdout
    assert lines[SUMMER_CONCERT[0]].startswith("already sent:")
    assert LATE[0] not in lines and NEW[0] not in lines  # neither is left out

    second = run_cli("send", "kultur", "--as-of", "2019-07-08")
    assert second.exit_code == 0, second.stderr
    assert titles_in_outbox(project, "kultur-2019-07-08") == {NEW[0], LATE[0]}


def test_max_age_days_is_a_config_key_with_a_clear_error(project, run_cli):
    write_schedule(project, "      - type: files\n        path: content/\n", max_age_days=0)

    result = run_cli("collect", "kultur", "--as-of", "2019-07-01")

    assert result.exit_code != 0
    assert "max_age_days" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
