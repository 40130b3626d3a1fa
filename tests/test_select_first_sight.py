"""The selection rules of first sight and maximum age, on their own: which article is in, and the words `--explain`
prints for each one left out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from digest.models import Article
from digest.select import SEEN_BEFORE, TOO_OLD, select_explained

OSLO = ZoneInfo("Europe/Oslo")
UNTIL = datetime(2019, 7, 8, 7, 0, tzinfo=OSLO)  # Monday's run
PREVIOUS = datetime(2019, 7, 1, 7, 0, tzinfo=OSLO)  # last Monday's cut-off


def article(slug: str, published: datetime) -> Article:
    return Article(url=f"https://kommune.example.no/{slug}", title=slug.capitalize(), teaser="", published=published,
                   source="Kommunen")


def select(articles: list[Article], *, previous: datetime | None = PREVIOUS,
           first_seen: dict[str, datetime] | None = None, max_age_days: int = 14, first_window_days: int = 365):
    return select_explained(articles, digest="kultur", day=date(2019, 7, 8), until=UNTIL, previous_until=previous,
                            max_articles=10, first_window_days=first_window_days, first_seen=first_seen,
                            max_age_days=max_age_days)


def test_first_sight_after_the_cut_off_lets_a_late_item_in_and_age_keeps_an_old_one_out():
    late = article("late", PREVIOUS - timedelta(days=2))
    known = article("known", PREVIOUS - timedelta(days=3))
    ancient = article("ancient", UNTIL - timedelta(days=15))
    after_cut_off = PREVIOUS + timedelta(hours=5)
    seen = {late.url: after_cut_off, known.url: PREVIOUS - timedelta(days=1), ancient.url: after_cut_off}

    selection = select([late, known, ancient], first_seen=seen)

    assert [a.url for a in selection.edition.articles] == [late.url]
    why = {exclusion.article.url: exclusion for exclusion in selection.excluded}
    assert why[known.url].reason == SEEN_BEFORE
    assert why[known.url].detail == ("published and first seen (2019-06-30 07:00) before the previous edition's "
                                     "cut-off (2019-07-01 07:00): it was on offer then")
    assert why[ancient.url].reason == TOO_OLD
    assert why[ancient.url].detail == "older than max_age_days (14): published before 2019-06-24 07:00"


def test_without_first_sight_times_only_the_date_counts():
    late = article("late", PREVIOUS - timedelta(days=2))

    selection = select([late])

    assert selection.edition.articles == ()
    assert selection.excluded[0].reason == SEEN_BEFORE
    assert "never seen after it" in selection.excluded[0].detail


def test_an_item_published_since_the_previous_edition_is_in_however_long_ago_that_was():
    # Editions months apart (a paused digest): what was published since the last one is news, whatever its age.
    long_ago = PREVIOUS - timedelta(days=120)
    spring = article("spring", long_ago + timedelta(days=10))

    selection = select([spring], previous=long_ago, first_seen={spring.url: UNTIL - timedelta(hours=1)})

    assert [a.url for a in selection.edition.articles] == [spring.url]


def test_the_first_edition_reaches_back_first_window_days_not_max_age_days():
    autumn = article("autumn", UNTIL - timedelta(days=200))
    older = article("older", UNTIL - timedelta(days=400))
    now = datetime(2026, 12, 1, tzinfo=UTC)  # first seen today, long after the backdated edition

    selection = select([autumn, older], previous=None, first_seen={autumn.url: now, older.url: now})

    assert [a.url for a in selection.edition.articles] == [autumn.url]
    assert selection.excluded[0].reason == TOO_OLD
    assert selection.excluded[0].detail == ("published before the first edition's window, which reaches back "
                                            "first_window_days (365) to 2018-07-08 07:00")
