"""What changed since the last sent edition: new articles, and the last edition's articles edited or gone."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from digest.changes import changes_since
from digest.models import Article, Edition

NOW = datetime(2019, 7, 1, 5, tzinfo=UTC)


def _article(slug: str, title: str, **extra) -> Article:
    return Article(url=f"https://www.ks.no/{slug}/", title=title, teaser="Ingress.", published=NOW,
                   source="content/", **extra)


def _edition(key: str, *articles: Article) -> Edition:
    return Edition(digest="kultur", key=key, date=datetime.fromisoformat(key).date(), since=NOW, until=NOW,
                   articles=articles)


def test_new_edited_and_dropped():
    kept, retitled, gone = _article("a", "A"), _article("b", "B"), _article("c", "C")
    previous = _edition("2019-07-01", kept, retitled, gone)
    fresh = _article("d", "D")
    offered = [fresh, kept, replace(retitled, title="B, rettet", image="https://x.no/b.jpg", image_alt="B")]
    changes = changes_since(previous, _edition("2019-07-08", fresh), offered)
    assert changes.new == (fresh,)
    assert [(edit.before.title, edit.after.title, edit.field_words) for edit in changes.edited] == [
        ("B", "B, rettet", "tittel, bilde, alt-tekst")]
    assert changes.dropped == (gone,)
    assert not changes.nothing


def test_the_same_article_under_a_tracking_link_is_not_new_or_dropped():
    previous = _edition("2019-07-01", _article("a", "A"))
    again = replace(_article("a", "A"), url="https://www.ks.no/a/?utm_source=nyhetsbrev#topp")
    changes = changes_since(previous, _edition("2019-07-08", again), [again])
    assert changes.nothing


def test_first_edition_and_an_edition_already_sent():
    first = changes_since(None, _edition("2019-07-01", _article("a", "A")), [])
    assert first.previous is None and [a.title for a in first.new] == ["A"]
    # An edition shown as it was sent: the sources were not asked, so edits and drops are unknown, not "none".
    shown = changes_since(_edition("2019-06-24", _article("z", "Z")), _edition("2019-07-01", _article("a", "A")),
                          None)
    assert not shown.compared_sources and shown.dropped == () and [a.title for a in shown.new] == ["A"]
