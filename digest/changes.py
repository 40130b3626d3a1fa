"""What changed since the last sent edition: the new articles of the next one, and what became of the last one's.

The last edition's articles are stored exactly as sent. Compared with what the sources offer now, each of them is
unchanged, edited at the source (title, teaser, image … differ) or dropped (no source offers it any more: taken
down, or out of the feed). Identity is the canonical URL, as in `digest/select.py`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from digest.models import Article, Edition
from digest.sources.normalise import canonical_url

# What an editor can see in the e-mail; `source` and the identity (url) are not edits.
COMPARED_FIELDS: dict[str, str] = {
    "title": "tittel",
    "teaser": "ingress",
    "kicker": "stikktittel",
    "image": "bilde",
    "image_alt": "alt-tekst",
    "published": "publiseringstid",
}


@dataclass(frozen=True, kw_only=True)
class Edit:
    before: Article
    after: Article
    fields: tuple[str, ...]  # keys of COMPARED_FIELDS

    @property
    def field_words(self) -> str:
        return ", ".join(COMPARED_FIELDS[name] for name in self.fields)


@dataclass(frozen=True, kw_only=True)
class Changes:
    previous: Edition | None
    new: tuple[Article, ...] = ()
    edited: tuple[Edit, ...] = ()
    dropped: tuple[Article, ...] = ()
    # False when the sources were not asked (the edition shown is one already sent): edits and drops are unknown.
    compared_sources: bool = True

    @property
    def nothing(self) -> bool:
        return not (self.new or self.edited or self.dropped)


def _identity(article: Article) -> str:
    return canonical_url(article.url) or article.url


def _differences(before: Article, after: Article) -> tuple[str, ...]:
    return tuple(name for name in COMPARED_FIELDS if getattr(before, name) != getattr(after, name))


def changes_since(previous: Edition | None, current: Edition, offered: Iterable[Article] | None) -> Changes:
    """`current`'s articles not in `previous`, and `previous`'s articles edited or gone among `offered` (every
    article the sources gave now, whether selected or left out; None when the sources were not asked)."""
    before = {_identity(article): article for article in previous.articles} if previous else {}
    new = tuple(article for article in current.articles if _identity(article) not in before)
    if previous is None or offered is None:
        return Changes(previous=previous, new=new, compared_sources=offered is not None)
    now: dict[str, Article] = {}
    for article in offered:
        now.setdefault(_identity(article), article)
    edited: list[Edit] = []
    dropped: list[Article] = []
    for key, old in before.items():
        fresh = now.get(key)
        if fresh is None:
            dropped.append(old)
            continue
        fields = _differences(old, fresh)
        if fields:
            edited.append(Edit(before=old, after=fresh, fields=fields))
    return Changes(previous=previous, new=new, edited=tuple(edited), dropped=tuple(dropped))
