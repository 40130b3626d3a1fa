"""Which articles go into an edition: the window since the previous edition, newest first, capped."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta

from digest.models import Article, Edition


def edition_key(day: date) -> str:
    """The idempotency key of an edition: its date. One edition per digest per day."""
    return day.isoformat()


def select(
    articles: Iterable[Article],
    *,
    digest: str,
    day: date,
    until: datetime,
    previous_until: datetime | None,
    max_articles: int,
    first_window_days: int,
) -> Edition:
    """Articles published in (previous edition, until], newest first, at most `max_articles`.

    The first edition of a digest has no previous one and looks back `first_window_days` instead.
    """
    since = previous_until if previous_until is not None else until - timedelta(days=first_window_days)
    chosen: dict[str, Article] = {}
    for article in articles:
        if since < article.published <= until:
            # The URL is the article's identity: the same story twice keeps its newest version.
            kept = chosen.get(article.url)
            if kept is None or article.published > kept.published:
                chosen[article.url] = article
    newest_first = sorted(chosen.values(), key=lambda a: (a.published, a.url), reverse=True)
    return Edition(
        digest=digest,
        key=edition_key(day),
        date=day,
        since=since,
        until=until,
        articles=tuple(newest_first[:max_articles]),
    )
