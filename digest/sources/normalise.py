"""What the web sends, made fit for an e-mail: canonical URLs, plain text, short teasers, aware dates."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import parsedate_to_datetime
from time import monotonic
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import nh3

from digest.errors import SourceError

TEASER_LIMIT = 300

# Query parameters that only say where a click came from: two links differing in them are the same article.
_TRACKING_PARAMS = ("utm_",)
_TRACKING_NAMES = frozenset({"fbclid", "gclid", "mc_cid", "mc_eid"})
# Characters a URL path or query may keep as they are; everything else (æøå, spaces) is percent-encoded, so a link
# written raw in one feed and encoded in another is still the same article.
_SAFE_PATH = "/%:@!$&'()*+,;=-._~"
_SAFE_QUERY = _SAFE_PATH + "?"
_DEFAULT_PORTS = {"http": 80, "https": 443}

# Where a block ends, text from both sides must not run together once the tags are gone ("slutt.Neste").
_BLOCK_BOUNDARY = re.compile(
    r"<(?:br|hr|/?(?:p|div|li|ul|ol|dl|dt|dd|h[1-6]|tr|td|th|table|blockquote|section|article|header|footer|figure"
    r"|figcaption|pre))\b",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")
# C0 and C1 control characters other than whitespace: never text a reader should get, and poison in a header.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_ISO_SHAPE = re.compile(r"\d{4}-\d{2}-\d{2}")
# See plain_text: the markup read for one title or teaser, and how often escaping is peeled off.
MAX_MARKUP = 16_000
MAX_CLEAN_ROUNDS = 8


@dataclass(frozen=True, kw_only=True)
class Item:
    """One entry of a feed or a listing page, normalised. `published` is None when the source gave no date."""

    url: str
    title: str
    teaser: str
    published: datetime | None
    kicker: str | None = None
    image: str | None = None
    image_alt: str | None = None


def canonical_url(url: str | None, base: str | None = None) -> str | None:
    """The URL as an identity: absolute, scheme and host lower-case, no default port, no fragment, no utm_*.

    Returns None for anything that is not an http(s) URL (mailto:, javascript:, an empty href).
    """
    if not url:
        return None
    url = url.strip()
    if base:
        url = urljoin(base, url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # a port that is not a number, an unbalanced IPv6 bracket
        return None
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        return None
    if ":" in host:
        host = f"[{host}]"
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = "&".join(
        pair for pair in parts.query.split("&")
        if pair and not _is_tracking(pair.partition("=")[0])
    )
    return urlunsplit((scheme, netloc, quote(parts.path or "/", safe=_SAFE_PATH), quote(query, safe=_SAFE_QUERY), ""))


def _is_tracking(name: str) -> bool:
    name = name.lower()
    return name.startswith(_TRACKING_PARAMS) or name in _TRACKING_NAMES


def check_deadline(deadline: float | None, url: str) -> None:
    """Raise SourceError once `deadline` (time.monotonic) has passed: parsers call it between items."""
    if deadline is not None and monotonic() > deadline:
        raise SourceError("ran out of time while reading it (the timeout covers fetching and reading)", url=url)


def site_of(url: str) -> str:
    """The site a URL belongs to, for "same title from the same site": host without `www.`."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def plain_text(markup: str | None) -> str:
    """HTML (or text that may hold some) → one line of plain text: tags and scripts gone, entities decoded.

    Feeds often escape their HTML twice or more (`&amp;lt;b&amp;gt;`), so unescaping and cleaning repeat until
    nothing changes (at most MAX_CLEAN_ROUNDS times): no escaped tag survives as literal text. Only the first
    MAX_MARKUP characters are read: nh3's time grows with the square of the nesting depth (a megabyte of nested
    <div>s takes minutes), and a title or a 300-character teaser never needs more.
    """
    text = (markup or "")[:MAX_MARKUP]
    for _ in range(MAX_CLEAN_ROUNDS):
        spaced = _BLOCK_BOUNDARY.sub(lambda match: " " + match.group(0), html.unescape(text))
        # nh3 with no allowed tags keeps the text, drops every tag, and drops the content of <script> and <style>.
        cleaned = html.unescape(nh3.clean(spaced, tags=set()))
        if cleaned == text:
            break
        text = cleaned
    else:
        # Still changing after that many rounds: whatever is left must not look like markup to anyone.
        text = text.replace("<", "").replace(">", "")
    return _WHITESPACE.sub(" ", _CONTROL.sub("", text)).strip()


def shorten(text: str, limit: int = TEASER_LIMIT) -> str:
    """Cut `text` at about `limit` characters, on a word boundary, with "…"."""
    if len(text) <= limit:
        return text
    head = text[: limit + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else text[:limit]
    return cut.rstrip(" ,.;:–-") + "…"


def parse_date(value: str | None, tz: tzinfo) -> datetime | None:
    """An aware datetime from the date formats feeds and pages use; a date without an offset is read in `tz`.

    ISO 8601 (Atom, `<time datetime>`), RFC 822 (RSS), and what people write ("14. juni 2019", "14.06.2019 kl.
    09.30"). None when nothing in `value` reads as a date.
    """
    text = _WHITESPACE.sub(" ", value or "").strip()
    if not text:
        return None
    # Something shaped like ISO 8601 that fromisoformat refused (0000-00-00) is no date; dateparser would spend a
    # third of a second per item finding that out.
    parsed = _iso(text) or _rfc822(text) or (None if _ISO_SHAPE.match(text) else _written(text, tz))
    if parsed is None:
        return None
    aware = parsed.replace(tzinfo=tz) if parsed.tzinfo is None or parsed.utcoffset() is None else parsed
    return representable(aware, tz)


def representable(moment: datetime, tz: tzinfo) -> datetime | None:
    """`moment` when it can be shown in UTC and in the digest's zone, else None (the item is dated when first seen).

    9999-12-31T23:59:59-14:00 is a valid ISO date, but year 10000 in UTC: converting it later would end the whole
    run in an OverflowError. Such a date tells the reader nothing anyway.
    """
    try:
        moment.astimezone(UTC)
        moment.astimezone(tz)
    except (OverflowError, ValueError):
        return None
    return moment


def _iso(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _rfc822(text: str) -> datetime | None:
    try:
        # A missing zone (or "-0000", "zone unknown") comes back naive, and is then read in the local zone.
        return parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _written(text: str, tz: tzinfo) -> datetime | None:
    import dateparser

    settings = {"TIMEZONE": str(tz), "RETURN_AS_TIMEZONE_AWARE": False, "DATE_ORDER": "DMY",
                "PREFER_DATES_FROM": "past"}
    candidates = [text]
    # "Publisert 14. juni 2019": drop the words before the first digit.
    first_digit = re.search(r"\d", text)
    if first_digit and first_digit.start() > 0:
        candidates.append(text[first_digit.start():])
    for candidate in candidates:
        parsed = dateparser.parse(candidate.replace(" kl.", ""), languages=["nb", "nn", "en"], settings=settings)
        if parsed is not None:
            return parsed
    return None


def absolute_url(url: str | None, base: str) -> str | None:
    """`url` resolved against `base` when it is an http(s) URL (images: kept as given, tracking and all)."""
    if not url or not url.strip():
        return None
    resolved = urljoin(base, url.strip())
    return resolved if urlsplit(resolved).scheme in _DEFAULT_PORTS else None


@dataclass(frozen=True)
class Parsed:
    """What one feed or page held: its items, and how many entries were skipped for lack of a title or link."""

    items: list[Item]
    skipped: int = 0
    note: str | None = None
