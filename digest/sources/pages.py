"""HTML listing pages → Items, read with the CSS selectors given in schedule.yaml (the `page` source).

A listing like the seed page at ks.no repeats one block per article: a linked title, a teaser, sometimes a kicker
(KOMMUNESPEILET) and a picture. `item` selects each block; the other selectors are read inside it.
"""

from __future__ import annotations

import codecs
import re
from datetime import datetime, tzinfo
from functools import lru_cache

import lxml.html
from lxml.cssselect import CSSSelector
from lxml.etree import ParserError, _Element

from digest.config import PageSelectors
from digest.errors import SourceError
from digest.sources.normalise import (
    Item,
    Parsed,
    absolute_url,
    canonical_url,
    check_deadline,
    parse_date,
    plain_text,
    shorten,
)

_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE)


def parse_page(body: bytes, *, url: str, content_type: str | None, selectors: PageSelectors, tz: tzinfo,
               kicker: str | None = None, deadline: float | None = None) -> Parsed:
    """The items of a listing page; `url` is where it was fetched from (relative links are resolved against it)."""
    try:
        parser = lxml.html.HTMLParser(encoding=_encoding(body, content_type))
        document = lxml.html.document_fromstring(body, parser=parser)
    except (ParserError, ValueError) as err:
        raise SourceError(f"not an HTML page ({err})", url=url) from None
    base = url
    base_element = document.find(".//base[@href]")
    if base_element is not None:
        base = absolute_url(base_element.get("href"), url) or url

    blocks = _select(selectors.item)(document)
    if not blocks:
        raise SourceError(f"the item selector {selectors.item!r} matched nothing: has the page layout changed?",
                          url=url)
    items: list[Item] = []
    for block in blocks:
        check_deadline(deadline, url)
        item = _item(block, selectors, base=base, tz=tz, kicker=kicker)
        if item is not None:
            items.append(item)
    skipped = len(blocks) - len(items)
    if not items:
        raise SourceError(
            f"{len(blocks)} blocks matched {selectors.item!r}, but none had both a title ({selectors.title!r}) "
            f"and a link ({selectors.link!r}): has the page layout changed?", url=url)
    return Parsed(items, skipped)


def _item(block: _Element, selectors: PageSelectors, *, base: str, tz: tzinfo, kicker: str | None) -> Item | None:
    title = plain_text(_markup(_first(block, selectors.title)))
    url = canonical_url(_href(_first(block, selectors.link)), base)
    if not title or url is None:
        return None
    image, image_alt = _image(_first(block, selectors.image), base)
    return Item(
        url=url,
        title=title,
        teaser=shorten(plain_text(_markup(_first(block, selectors.teaser)))),
        published=_date(_first(block, selectors.date), tz),
        kicker=plain_text(_markup(_first(block, selectors.kicker))) or kicker,
        image=image,
        image_alt=image_alt,
    )


@lru_cache(maxsize=256)
def _select(selector: str) -> CSSSelector:
    return CSSSelector(selector, translator="html")


def _first(block: _Element, selector: str | None) -> _Element | None:
    if not selector:
        return None
    # lxml's CSS selectors match the block itself too, so `link: a` works when the block is the <a>.
    found = _select(selector)(block)
    return found[0] if found else None


def _markup(element: _Element | None) -> str:
    if element is None:
        return ""
    # Serialised and cleaned like feed HTML, so scripts and entities are handled the same way everywhere.
    return lxml.html.tostring(element, encoding="unicode", with_tail=False)


def _href(element: _Element | None) -> str | None:
    if element is None:
        return None
    if element.get("href"):
        return element.get("href")
    anchor = element.find(".//a[@href]")
    return anchor.get("href") if anchor is not None else None


def _date(element: _Element | None, tz: tzinfo) -> datetime | None:
    if element is None:
        return None
    for value in (element.get("datetime"), element.get("content"), plain_text(_markup(element))):
        parsed = parse_date(value, tz)
        if parsed is not None:
            return parsed
    return None


def _image(element: _Element | None, base: str) -> tuple[str | None, str | None]:
    if element is None:
        return None, None
    image = element if element.tag == "img" else element.find(".//img")
    if image is None:
        return None, None
    srcset = (image.get("srcset") or "").split(",")[0].strip().split(" ")[0]
    src = absolute_url(image.get("src") or image.get("data-src") or srcset, base)
    if src is None:
        return None, None
    return src, plain_text(image.get("alt"))


def _encoding(body: bytes, content_type: str | None) -> str:
    """The page's character set: the HTTP header, else its <meta>, else UTF-8 (what almost every page uses)."""
    candidates: list[str] = []
    if content_type and "charset=" in content_type.lower():
        candidates.append(content_type.lower().split("charset=", 1)[1].split(";")[0].strip(" \"'"))
    meta = _META_CHARSET.search(body[:4096])
    if meta:
        candidates.append(meta.group(1).decode("ascii", "replace"))
    for candidate in candidates:
        try:
            codecs.lookup(candidate)
            return candidate
        except LookupError:
            continue
    return "utf-8"
