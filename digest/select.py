"""Which articles go into an edition: the window since the previous edition, never sent before, each story once,
newest first, capped — and, for `--explain`, why each other article was left out."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from digest.models import Article, Edition
from digest.sources.normalise import canonical_url, site_of

# Why an article was left out; the words `digest collect --explain` prints.
OLD = "old"
NOT_YET = "not yet published"
ALREADY_SENT = "already sent"
DUPLICATE = "duplicate"
OVER_CAP = "over the cap"


@dataclass(frozen=True, kw_only=True)
class Exclusion:
    article: Article
    reason: str  # one of OLD, NOT_YET, ALREADY_SENT, DUPLICATE, OVER_CAP
    detail: str  # a sentence for people


@dataclass(frozen=True, kw_only=True)
class Selection:
    edition: Edition
    excluded: tuple[Exclusion, ...]
    min_articles: int = 1

    @property
    def too_few(self) -> bool:
        """Fewer articles than `min_articles`: the edition should be skipped (an empty one always is)."""
        return len(self.edition.articles) < self.min_articles


def edition_key(day: date) -> str:
    """The idempotency key of an edition: its date. One edition per digest per day."""
    return day.isoformat()


def select_explained(
    articles: Iterable[Article],
    *,
    digest: str,
    day: date,
    until: datetime,
    previous_until: datetime | None,
    max_articles: int,
    first_window_days: int,
    already_sent: Iterable[Article] = (),
    min_articles: int = 1,
) -> Selection:
    """Like `select`, and keeps every article left out with the reason.

    An article sent in an earlier edition never returns (same canonical URL, or the same title from the same site).
    The same story from two sources appears once: the newest version stays.
    """
    since = previous_until if previous_until is not None else until - timedelta(days=first_window_days)
    sent_urls = {_identity(article) for article in already_sent}
    sent_titles = {_title_key(article) for article in already_sent}
    excluded: list[Exclusion] = []
    candidates: list[Article] = []
    for article in articles:
        if _identity(article) in sent_urls or _title_key(article) in sent_titles:
            excluded.append(Exclusion(article=article, reason=ALREADY_SENT,
                                      detail="was in an earlier edition of this digest"))
        elif article.published <= since:
            excluded.append(Exclusion(article=article, reason=OLD,
                                      detail=f"published before this edition's window (from {_when(since)})"))
        elif article.published > until:
            excluded.append(Exclusion(article=article, reason=NOT_YET,
                                      detail=f"published after this edition ({_when(until)})"))
        else:
            candidates.append(article)

    # Newest first. Equal times keep the sources' order (the sort is stable): undated items of one listing page,
    # all first seen at the same moment, stay in the page's own order, which is newest first too.
    newest_first = sorted(candidates, key=lambda a: a.published, reverse=True)
    kept: list[Article] = []
    by_url: dict[str, Article] = {}
    by_title: dict[tuple[str, str], Article] = {}
    for article in newest_first:
        twin = by_url.get(_identity(article)) or by_title.get(_title_key(article))
        if twin is not None:
            excluded.append(Exclusion(article=article, reason=DUPLICATE,
                                      detail=f"same story as {twin.url} from {twin.source}"))
            continue
        by_url[_identity(article)] = article
        by_title[_title_key(article)] = article
        kept.append(article)
    for article in kept[max_articles:]:
        excluded.append(Exclusion(article=article, reason=OVER_CAP,
                                  detail=f"beyond max_articles ({max_articles})"))

    return Selection(
        edition=Edition(
            digest=digest,
            key=edition_key(day),
            date=day,
            since=since,
            until=until,
            articles=tuple(kept[:max_articles]),
        ),
        excluded=tuple(excluded),
        min_articles=min_articles,
    )


def _identity(article: Article) -> str:
    return canonical_url(article.url) or article.url


def _title_key(article: Article) -> tuple[str, str]:
    return site_of(_identity(article)), re.sub(r"\s+", " ", article.title).strip().casefold()


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")
