"""The archive's editions: every edition a send has started, as it went out (the draft's subject and
introduction with the articles the ledger recorded), newest first. Read by the public archive pages and the feed."""

from __future__ import annotations

from dataclasses import replace

from digest.config import DigestConfig
from digest.models import Edition
from digest.render import subject_line
from digest.store import Store, StoredEdition


def as_sent(store: Store, digest: DigestConfig, stored: StoredEdition) -> Edition:
    """The edition with the words it was sent with: the draft's frozen subject and introduction when there is a
    draft (editions sent before drafts existed get their subject worked out from the articles, as then)."""
    edition = stored.edition
    draft = store.draft(edition.digest, edition.key)
    if draft is not None:
        edition = replace(draft.edition, articles=edition.articles, sent=True)
    if not edition.subject and edition.articles:
        edition = replace(edition, subject=subject_line(edition, digest))
    return edition


def archived_editions(store: Store, digest: DigestConfig, name: str) -> list[Edition]:
    """Every edition of the digest that has been sent (or is being sent), newest first, without empty ones."""
    return [as_sent(store, digest, stored) for stored in store.sent_editions(name) if stored.edition.articles]


def archived_edition(store: Store, digest: DigestConfig, name: str, key: str) -> Edition | None:
    stored = store.find_edition(name, key)
    if stored is None or not stored.edition.articles:
        return None
    return as_sent(store, digest, stored)
