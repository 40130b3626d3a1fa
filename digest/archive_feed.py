"""The archive as an Atom feed (feedgen): one entry per sent edition, its articles as the entry's content, linking
the edition's archive page. Pure: editions and settings in, bytes out; nothing personal, nothing tracked."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import jinja2
from feedgen.feed import FeedGenerator

from digest.config import DigestConfig, Settings
from digest.models import Edition
from digest.render import feed_url, introduction_paragraphs, nb_date, view_url

# The entry's content, autoescaped: titles and teasers are content from the sources, never markup.
_CONTENT = jinja2.Environment(autoescape=True).from_string(
    "{% for paragraph in introduction %}<p>{{ paragraph }}</p>{% endfor %}"
    "<ul>{% for article in articles %}<li><a href=\"{{ article.url }}\">{{ article.title }}</a>"
    "{% if article.teaser %} – {{ article.teaser }}{% endif %}</li>{% endfor %}</ul>"
)


def archive_url(settings: Settings, name: str) -> str:
    return f"{settings.public_url}/arkiv/{name}"


def _sent_at(edition: Edition) -> datetime:
    # The moment the edition covers up to is its scheduled run: a stable date that does not move on a resend.
    return edition.until


def atom_feed(settings: Settings, digest: DigestConfig, name: str, editions: Sequence[Edition]) -> bytes:
    """The feed of the digest's archive; `editions` newest first."""
    feed = FeedGenerator()
    feed.id(archive_url(settings, name))
    feed.title(f"{digest.title}: arkiv")
    feed.subtitle(digest.description or f"Alle utgavene av {digest.title} fra {digest.contact.organisation}.")
    feed.author({"name": digest.contact.organisation})
    feed.link(href=archive_url(settings, name), rel="alternate", type="text/html")
    feed.link(href=feed_url(settings, name), rel="self", type="application/atom+xml")
    feed.language("nb")
    if editions:
        feed.updated(max(_sent_at(edition) for edition in editions))
    for edition in editions:
        page = view_url(settings, edition)
        entry = feed.add_entry(order="append")
        entry.id(page)
        entry.title(edition.subject or f"{digest.title} {nb_date(edition.date, digest.locale)}")
        entry.link(href=page, rel="alternate", type="text/html")
        entry.published(_sent_at(edition))
        entry.updated(_sent_at(edition))
        entry.content(_CONTENT.render(introduction=introduction_paragraphs(edition.introduction),
                                      articles=edition.articles), type="html")
    return feed.atom_str(pretty=True)
