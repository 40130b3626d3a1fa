"""Web sources: the HTTP cache and when each article was first seen."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from digest.store.base import StoreBase, _aware, _chunks, _upsert, _utc
from digest.store.schema import (
    http_cache,
    seen_articles,
)


@dataclass(frozen=True, kw_only=True)
class CachedResponse:
    url: str
    final_url: str
    etag: str | None
    last_modified: str | None
    content_type: str | None
    body: bytes
    fetched_at: datetime



class WebCacheStore(StoreBase):
    """Cached answers and first-seen times."""

    # -- web sources: HTTP cache, first-seen times, articles sent before -------------------------------------------
    def cached_response(self, url: str) -> CachedResponse | None:
        """The last full answer for `url`, with the validators that let the server answer 304 next time."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(http_cache).where(http_cache.c.url == url)).first()
        if row is None:
            return None
        return CachedResponse(url=row.url, final_url=row.final_url, etag=row.etag, last_modified=row.last_modified,
                              content_type=row.content_type, body=row.body, fetched_at=_aware(row.fetched_at))

    def remember_responses(self, responses: Iterable[CachedResponse]) -> None:
        """Keep these answers (one transaction), replacing what was cached for the same URLs."""
        with self.engine.begin() as conn:
            for response in responses:
                values = {"final_url": response.final_url, "etag": response.etag,
                          "last_modified": response.last_modified, "content_type": response.content_type,
                          "body": response.body, "fetched_at": _utc(response.fetched_at)}
                _upsert(conn, http_cache, {"url": response.url, **values}, update=list(values))

    def first_seen(self, urls: Iterable[str], now: datetime) -> dict[str, datetime]:
        """When each URL was first seen, recording `now` for those never seen before.

        Every collected article is recorded: selection lets in an item first seen after the previous edition's cut-off
        even when its own date is older (a late feed), and undated articles get this as their date, so that they do
        not look new again in every edition.
        """
        wanted = set(urls)
        if not wanted:
            return {}
        with self.engine.begin() as conn:
            known = {
                row.url: _aware(row.first_seen)
                for chunk in _chunks(sorted(wanted), 500)
                for row in conn.execute(sa.select(seen_articles).where(seen_articles.c.url.in_(chunk)))
            }
            missing = sorted(wanted - set(known))
            for url in missing:
                # Another process may record the same URL meanwhile: keep whichever time got there first.
                _upsert(conn, seen_articles, {"url": url, "first_seen": _utc(now)}, update=[])
            for chunk in _chunks(missing, 500):
                for row in conn.execute(sa.select(seen_articles).where(seen_articles.c.url.in_(chunk))):
                    known[row.url] = _aware(row.first_seen)
        return known
