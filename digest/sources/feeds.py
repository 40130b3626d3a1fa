"""RSS 0.9x/1.0/2.0 and Atom → Items, through feedparser (the `feed` source)."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

import feedparser

from digest.errors import SourceError
from digest.sources.normalise import (
    Item,
    Parsed,
    absolute_url,
    canonical_url,
    check_deadline,
    parse_date,
    plain_text,
    representable,
    shorten,
)


def parse_feed(body: bytes, *, url: str, content_type: str | None, tz: tzinfo, kicker: str | None = None,
               deadline: float | None = None) -> Parsed:
    """The items of a feed; `url` is where it was fetched from (relative links are resolved against it).

    Raises SourceError for a body that is no feed at all, or XML so broken that no entry survives.
    """
    parsed = feedparser.parse(
        body,
        response_headers={"content-location": url, "content-type": content_type or "application/xml"},
        # Off: everything we keep from a feed goes through plain_text (nh3, no tags allowed) or a URL check anyway,
        # and feedparser's own sanitiser takes quadratic time on nested markup (1 MB: minutes).
        sanitize_html=False,
        resolve_relative_uris=False,
    )
    items: list[Item] = []
    skipped = 0
    for entry in parsed.entries:
        check_deadline(deadline, url)
        item = _item(entry, base=url, tz=tz, kicker=kicker)
        if item is None:
            skipped += 1
        else:
            items.append(item)

    problem = _xml_problem(parsed)
    if not items:
        if problem:
            raise SourceError(f"malformed XML, no entry could be read ({problem})", url=url)
        if not parsed.get("version"):
            raise SourceError("not an RSS or Atom feed (is the URL a web page?)", url=url)
        if skipped:
            raise SourceError(f"none of the {skipped} entries has both a title and a link", url=url)
    note = f"malformed XML, read leniently ({problem})" if problem else None
    return Parsed(items, skipped, note)


def _item(entry: Any, *, base: str, tz: tzinfo, kicker: str | None) -> Item | None:
    link = entry.get("link") or (entry.get("id") if entry.get("guidislink") else None)
    url = canonical_url(link, base)
    title = plain_text(entry.get("title"))
    if url is None or not title:
        return None
    summary = entry.get("summary") or ""
    if not summary and entry.get("content"):
        summary = entry["content"][0].get("value", "")
    image, image_alt = _image(entry, base)
    return Item(
        url=url,
        title=title,
        teaser=shorten(plain_text(summary)),
        published=_published(entry, tz),
        kicker=kicker,
        image=image,
        image_alt=image_alt,
    )


def _published(entry: Any, tz: tzinfo) -> datetime | None:
    # The raw text first: feedparser reads a date without a zone as UTC, but a Norwegian feed means Oslo time.
    for key in ("published", "updated", "created"):
        value = parse_date(entry.get(key), tz)
        if value is not None:
            return value
    for key in ("published_parsed", "updated_parsed", "created_parsed"):
        struct = entry.get(key)
        if struct:
            try:
                value = representable(datetime(*struct[:6], tzinfo=UTC), tz)
            except (TypeError, ValueError, OverflowError):  # 0000-00-00 reads as year -1: that item has no date
                continue
            if value is not None:
                return value
    return None


def _image(entry: Any, base: str) -> tuple[str | None, str | None]:
    candidates: list[str | None] = []
    candidates += [thumb.get("url") for thumb in entry.get("media_thumbnail") or []]
    candidates += [media.get("url") for media in entry.get("media_content") or []
                   if media.get("medium") == "image" or str(media.get("type", "")).startswith("image/")]
    candidates += [enclosure.get("href") for enclosure in entry.get("enclosures") or []
                   if str(enclosure.get("type", "")).startswith("image/")]
    for candidate in candidates:
        image = absolute_url(candidate, base)
        if image:
            # Feeds rarely describe their pictures; an empty alt marks the picture as decoration beside the title.
            return image, plain_text(entry.get("media_description")) or ""
    return None, None


def _xml_problem(parsed: Any) -> str | None:
    if not parsed.get("bozo"):
        return None
    error = parsed.get("bozo_exception")
    # Harmless: a wrong charset label or a feed served as text/html; feedparser recovers from both exactly.
    if isinstance(error, (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)):
        return None
    line = getattr(error, "getLineNumber", lambda: None)()
    message = getattr(error, "getMessage", lambda: str(error))()
    return f"line {line}: {message}" if line else str(message)
