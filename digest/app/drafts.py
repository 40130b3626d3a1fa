"""Editors shape a stored draft: drop an article, move one, write an introduction, refresh it from the sources.

Each change is a new revision, recorded with who made it and when; a change to an approved draft needs approval
again, because what goes out must be what an editor approved. Once a send has started the draft no longer changes.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from datetime import datetime

from digest.app.editions import Prepared, collect_edition, key_day, prepare, target_of_draft, with_frame
from digest.app.outcome import SENT, UP_TO_DATE, Outcome, outcome_of
from digest.app.sending import Progress, send_edition
from digest.changes import Changes, changes_since
from digest.config import DigestConfig, Settings
from digest.errors import DraftError
from digest.models import Article, Draft, DraftChange
from digest.store import Store
from digest.transports import Transport

MAX_INTRODUCTION = 1000


def editable_draft(settings: Settings, store: Store, name: str, key: str, *, editor: str, now: datetime) -> Draft:
    """The stored draft of edition `key`, made now if nothing has acted on it yet; DraftError when it cannot
    change any more (a send has started) or there is no such edition."""
    settings.digest(name)  # an unknown digest is a config error naming the known ones
    day = key_day(key)
    if day is None:
        raise DraftError(f"{key!r} is not an edition of {name!r} (editions are dates, YYYY-MM-DD)", reason="not_found")
    if store.find_edition(name, key) is not None:
        raise DraftError(f"{name} {key} is being sent or was sent; it can no longer change", reason="frozen")
    draft = store.draft(name, key)
    if draft is not None:
        return draft
    prepared = prepare(settings, store, name, as_of=day, now=now, freeze=True, made_by=editor)
    if prepared.draft is None:
        raise DraftError(prepared.skip_reason or f"{name} {key} has nothing to send", reason="too_few")
    return prepared.draft


def _position(draft: Draft, url: str) -> int:
    for index, article in enumerate(draft.edition.articles):
        if article.url == url:
            return index
    raise DraftError(f"{url} is not in {draft.edition.digest} {draft.edition.key}", reason="unknown_article")


def _save(settings: Settings, store: Store, draft: Draft, *, articles: tuple[Article, ...] | None = None,
          introduction: str | None = None, editor: str, action: str, detail: str, now: datetime) -> Draft:
    digest = settings.digest(draft.edition.digest)
    edition = draft.edition
    edition = replace(edition, articles=edition.articles if articles is None else articles,
                      introduction=edition.introduction if introduction is None else introduction)
    changed = replace(draft, edition=with_frame(edition, digest))
    saved = store.replace_draft(changed, expected_revision=draft.revision, change=DraftChange(
        revision=draft.revision + 1, at=now, editor=editor, action=action, detail=detail))
    if saved is None:
        raise DraftError(f"{edition.digest} {edition.key} was changed by someone else meanwhile, or its send has "
                         "started; look at it again", reason="conflict")
    _needs_approval_again(store, digest, saved, editor=editor)
    return saved


def _needs_approval_again(store: Store, digest: DigestConfig, draft: Draft, *, editor: str) -> None:
    if digest.approval is None:
        return
    edition = draft.edition
    store.decide_approval(edition.digest, edition.key, to="pending", allowed_from=("approved",), by=editor)


def drop_article(settings: Settings, store: Store, name: str, key: str, url: str, *, editor: str,
                 now: datetime) -> Draft:
    """Take one article out of the draft (it may come back only with a refresh)."""
    draft = editable_draft(settings, store, name, key, editor=editor, now=now)
    index = _position(draft, url)
    articles = draft.edition.articles
    if len(articles) == 1:
        raise DraftError("the edition's last article cannot be dropped; an edition needs at least one",
                         reason="too_few")
    dropped = articles[index]
    return _save(settings, store, draft, articles=articles[:index] + articles[index + 1:], editor=editor,
                 action="dropped", detail=f"Fjernet «{dropped.title}».", now=now)


def move_article(settings: Settings, store: Store, name: str, key: str, url: str, step: int, *, editor: str,
                 now: datetime) -> Draft:
    """Move one article `step` places (-1: up, +1: down); at the top or bottom it stays where it is."""
    draft = editable_draft(settings, store, name, key, editor=editor, now=now)
    index = _position(draft, url)
    articles = list(draft.edition.articles)
    to = max(0, min(len(articles) - 1, index + step))
    if to == index:
        return draft
    article = articles.pop(index)
    articles.insert(to, article)
    way = "opp" if to < index else "ned"
    return _save(settings, store, draft, articles=tuple(articles), editor=editor, action="moved",
                 detail=f"Flyttet «{article.title}» {way} til plass {to + 1}.", now=now)


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_introduction(text: str) -> str:
    """Plain text as an editor typed it: line breaks kept (as LF), control characters and edge spaces removed."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text).strip()
    if len(text) > MAX_INTRODUCTION:
        raise DraftError(f"the introduction is {len(text)} characters; at most {MAX_INTRODUCTION} fit",
                         reason="too_long")
    return text


def set_introduction(settings: Settings, store: Store, name: str, key: str, text: str, *, editor: str,
                     now: datetime) -> Draft:
    """The editors' own words above the articles (plain text; empty removes it)."""
    introduction = clean_introduction(text)
    draft = editable_draft(settings, store, name, key, editor=editor, now=now)
    if introduction == draft.edition.introduction:
        return draft
    detail = "Fjernet innledningen." if not introduction else "Endret innledningen."
    return _save(settings, store, draft, introduction=introduction, editor=editor, action="introduction",
                 detail=detail, now=now)


@dataclass(frozen=True, kw_only=True)
class Refreshed:
    """A draft rebuilt from the sources on purpose, with what changed against the draft it replaced."""

    draft: Draft
    changes: Changes
    prepared: Prepared


def refresh_draft(settings: Settings, store: Store, name: str, key: str | None, *, editor: str,
                  now: datetime) -> Refreshed:
    """Collect again and rebuild the draft (the editors' introduction stays). It needs approval again."""
    digest = settings.digest(name)
    if key is None:
        waiting = store.unsent_drafts(name)
        if not waiting:
            raise DraftError(f"{name!r} has no draft waiting to be sent; nothing to refresh", reason="not_found")
        key = waiting[0].edition.key
    draft = editable_draft(settings, store, name, key, editor=editor, now=now)
    fresh = collect_edition(settings, store, name, target_of_draft(digest, draft), now=now)
    if fresh.skip_reason is not None:
        raise DraftError(f"{fresh.skip_reason} The draft was kept as it was.", reason="too_few")
    changes = changes_since(draft.edition, fresh.edition, fresh.offered)
    words = []
    if changes.new:
        words.append(f"{len(changes.new)} nye")
    if changes.edited:
        words.append(f"{len(changes.edited)} endret ved kilden")
    if changes.dropped:
        words.append(f"{len(changes.dropped)} borte")
    detail = "Hentet på nytt fra kildene: " + (", ".join(words) if words else "ingen endringer") + "."
    edition = replace(fresh.edition, introduction=draft.edition.introduction)
    saved = store.replace_draft(replace(draft, edition=edition, collected_at=now), expected_revision=draft.revision,
                                change=DraftChange(revision=draft.revision + 1, at=now, editor=editor,
                                                   action="refreshed", detail=detail))
    if saved is None:
        raise DraftError(f"{name} {key} was changed by someone else meanwhile, or its send has started; look at it "
                         "again", reason="conflict")
    _needs_approval_again(store, digest, saved, editor=editor)
    return Refreshed(draft=saved, changes=changes, prepared=fresh)


def _approval_record(store: Store, digest: DigestConfig, draft: Draft, now: datetime) -> None:
    """An edition that an editor approves before its scheduled run has no place in the approval gate yet."""
    edition = draft.edition
    if store.approval(edition.digest, edition.key) is None:
        auto_after = digest.approval.auto_after if digest.approval is not None else None
        scheduled = draft.scheduled_for or now
        store.request_approval(edition.digest, edition.key, scheduled_for=scheduled,
                               auto_at=None if auto_after is None else scheduled + auto_after)


def approve_edition(settings: Settings, store: Store, transport: Transport, name: str, key: str, *, editor: str,
                    now: datetime, progress: Progress | None = None) -> Outcome:
    """An editor approves the stored draft (as it is now) and it is sent at once; the outcome says how it went."""
    digest = settings.digest(name)
    draft = editable_draft(settings, store, name, key, editor=editor, now=now)
    if digest.approval is not None:
        _approval_record(store, digest, draft, now)
        if not store.decide_approval(name, key, to="approved", allowed_from=("pending", "held", "expired"),
                                     by=editor):
            state = store.approval(name, key)
            if state is None or state.state != "approved":
                raise DraftError(f"{name} {key} cannot be approved now", reason="frozen")
    store.record_draft_event(name, key, DraftChange(revision=draft.revision, at=now, editor=editor,
                                                    action="approved", detail="Godkjent og sendt."))
    report = send_edition(settings, store, transport, name, as_of=draft.scheduled_for or key_day(key), now=now,
                          progress=progress)
    outcome = outcome_of(report)
    if outcome.kind in (SENT, UP_TO_DATE):
        store.decide_approval(name, key, to="sent", allowed_from=("approved",))
    return outcome


def hold_edition(settings: Settings, store: Store, name: str, key: str, *, editor: str, now: datetime) -> None:
    """Keep the draft from going out by itself (auto_after); approving still sends it."""
    digest = settings.digest(name)
    if digest.approval is None:
        raise DraftError(f"{name!r} has no approval rule; there is nothing to hold back", reason="not_found")
    draft = editable_draft(settings, store, name, key, editor=editor, now=now)
    _approval_record(store, digest, draft, now)
    if not store.decide_approval(name, key, to="held", allowed_from=("pending", "approved"), by=editor):
        state = store.approval(name, key)
        if state is None or state.state != "held":
            raise DraftError(f"{name} {key} cannot be held now", reason="frozen")
    store.record_draft_event(name, key, DraftChange(revision=draft.revision, at=now, editor=editor, action="held",
                                                    detail="Holdt tilbake."))
