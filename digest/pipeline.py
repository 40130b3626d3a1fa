"""Run the stages in order: collect → select → render → personalise → send → record. The one place that knows it."""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.config import DigestConfig, Settings
from digest.consent import Segment
from digest.errors import AllSourcesFailed, SendError
from digest.message import MessageTemplate, build_template, preferences_url, recipient_for, unsubscribe_url
from digest.models import Edition, RenderedEdition, SendReport
from digest.render import render
from digest.select import Exclusion, edition_key, select_explained
from digest.sources import SourceReport, collect
from digest.store import Store
from digest.subscribers import normalise_address
from digest.tokens import resolve_secret
from digest.transports import Envelope, Transport

Progress = Callable[[int, int], None]


def edition_moment(as_of: date | datetime | None, tz: ZoneInfo, now: datetime) -> tuple[date, datetime]:
    """The edition's day and the moment it covers up to. A bare date covers that whole day (Oslo time)."""
    if as_of is None:
        local = now.astimezone(tz)
        return local.date(), local
    if isinstance(as_of, datetime):
        local = as_of.replace(tzinfo=tz) if as_of.tzinfo is None else as_of.astimezone(tz)
        return local.date(), local
    return as_of, datetime.combine(as_of, time.max, tzinfo=tz)


@dataclass(frozen=True, kw_only=True)
class Prepared:
    """An edition with how it came about: the sources' reports, what was left out, and why it may be skipped."""

    edition: Edition
    reports: tuple[SourceReport, ...] = ()
    excluded: tuple[Exclusion, ...] = ()
    skip_reason: str | None = None

    @property
    def source_problems(self) -> list[str]:
        return [report.describe() for report in self.reports if not report.ok]


def prepare(settings: Settings, store: Store, name: str, *, as_of: date | datetime | None,
            now: datetime) -> Prepared:
    """The edition for that day: as it was sent if it was, else freshly collected and selected.

    Raises AllSourcesFailed when no source gave anything: an edition must not go out just because the web was down.
    """
    digest = settings.digest(name)
    day, until = edition_moment(as_of, digest.timezone, now)
    stored = store.find_edition(name, edition_key(day))
    if stored is not None:
        return Prepared(edition=stored.edition)
    collection = collect(settings, digest, store=store, now=now)
    if collection.all_failed:
        raise AllSourcesFailed(name, [report.describe() for report in collection.failures])
    selection = select_explained(
        collection,
        digest=name,
        day=day,
        until=until,
        previous_until=store.previous_until(name, until),
        max_articles=digest.max_articles,
        first_window_days=digest.first_window_days,
        already_sent=store.sent_articles(name, before=day),
        min_articles=digest.min_articles,
    )
    edition = selection.edition
    skip_reason = None
    if not edition.articles:
        skip_reason = nothing_new_message(edition)
    elif selection.too_few:
        skip_reason = (f"Only {len(edition.articles)} new article{'' if len(edition.articles) == 1 else 's'} for "
                       f"'{name}' (min_articles is {digest.min_articles}); the edition is skipped, nothing to send.")
    return Prepared(edition=edition, reports=collection.reports, excluded=selection.excluded,
                    skip_reason=skip_reason)


def prepare_edition(settings: Settings, store: Store, name: str, *, as_of: date | datetime | None,
                    now: datetime) -> Edition:
    """The edition for that day: as it was sent if it was, else freshly collected and selected.

    An edition to be skipped (fewer articles than `min_articles`) comes back without articles.
    """
    prepared = prepare(settings, store, name, as_of=as_of, now=now)
    if prepared.skip_reason is not None and not prepared.edition.sent:
        return replace(prepared.edition, articles=())
    return prepared.edition


def nothing_new_message(edition: Edition) -> str:
    since = edition.since.astimezone(edition.until.tzinfo).strftime("%Y-%m-%d %H:%M")
    return f"No new articles for '{edition.digest}' since {since}; nothing to send."


def write_preview(settings: Settings, rendered: RenderedEdition, out: Path) -> tuple[Path, Path]:
    """The edition as a subscriber sees it (with example personal values), as .html and .txt side by side."""
    sample = {
        "@@greeting@@": "Hei!",
        "@@email@@": "abonnent@example.org",
        "@@unsubscribe_url@@": unsubscribe_url(settings, "eksempel"),
        "@@preferences_url@@": preferences_url(settings, "eksempel"),
    }
    html_text, text = rendered.html, rendered.text
    for placeholder, value in sample.items():
        html_text = html_text.replace(placeholder, html.escape(value))
        text = text.replace(placeholder, value)
    txt_path = out.with_suffix(".txt")
    _write_atomically(out, html_text)
    _write_atomically(txt_path, text)
    return out, txt_path


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.replace(tmp, path)


def send_test(settings: Settings, store: Store, transport: Transport, name: str, *, as_of: date | datetime | None,
              now: datetime, to: str) -> SendReport:
    """One copy to `to`, marked [TEST] in the subject. Records nothing: no edition, no delivery."""
    address = normalise_address(to)
    digest = settings.digest(name)
    prepared = prepare(settings, store, name, as_of=as_of, now=now)
    edition = prepared.edition
    report = SendReport(digest=name, edition_key=edition.key, articles=len(edition.articles),
                        source_problems=prepared.source_problems)
    if prepared.skip_reason and not edition.sent:
        report.articles = 0
        report.problems.append(prepared.skip_reason)
        return report
    template = build_template(render(settings, digest, edition), digest, now=now, subject_prefix="[TEST] ")
    recipient = recipient_for(settings, name, digest, template, resolve_secret(store), subscriber_id=None,
                              email=address, name="")
    with transport:
        transport.send(Envelope(template.envelope_from, address, template.personalise(recipient), "test"))
    report.sent = 1
    report.destination = transport.description
    return report


def send_edition(settings: Settings, store: Store, transport: Transport, name: str, *,
                 as_of: date | datetime | None, now: datetime, dry_run: bool = False,
                 progress: Progress | None = None, stop: Callable[[], bool] | None = None) -> SendReport:
    """Send the edition to every active subscriber who has not had it. Safe to run again: sends nothing twice."""
    digest = settings.digest(name)
    prepared = prepare(settings, store, name, as_of=as_of, now=now)
    edition = prepared.edition
    report = SendReport(digest=name, edition_key=edition.key, articles=len(edition.articles), dry_run=dry_run,
                        source_problems=prepared.source_problems)
    if prepared.skip_reason and not edition.sent:
        report.articles = 0
        report.problems.append(prepared.skip_reason)
        return report
    # Render before recording anything: a broken template must not leave an edition that looks sent.
    template = build_template(render(settings, digest, edition), digest, now=now)
    secret = resolve_secret(store)
    batch = f"{name}-{edition.key}"

    if dry_run:
        audience = store.audience(name, segment_of(digest))
        stored = store.find_edition(name, edition.key)
        if stored is not None:
            audience = list(store.pending_deliveries(stored.id))
        for subscriber in audience:
            recipient_for(settings, name, digest, template, secret, subscriber_id=subscriber.id,
                          email=subscriber.email, name=subscriber.name)
        report.sent = len(audience)
        report.destination = "nowhere (dry run)"
        return report

    stored, _created = store.create_edition(edition, segment=segment_of(digest))
    pending = list(store.pending_deliveries(stored.id))
    counts = store.delivery_counts(stored.id)
    report.skipped_already_sent = counts.get("sent", 0)
    report.destination = _destination(transport, batch)
    if not pending:
        return report
    with transport:
        for done, subscriber in enumerate(pending, start=1):
            if stop is not None and stop():
                # SIGTERM: the message in flight has been recorded; the rest stay queued for the next run.
                report.interrupted = True
                break
            recipient = recipient_for(settings, name, digest, template, secret, subscriber_id=subscriber.id,
                                      email=subscriber.email, name=subscriber.name)
            _deliver(store, transport, template, stored.id, subscriber.id, recipient.email,
                     template.personalise(recipient), batch, report)
            if progress:
                progress(done, len(pending))
    return report


def segment_of(digest: DigestConfig) -> Segment | None:
    """The digest's audience limit from schedule.yaml, as the store understands it."""
    if digest.segment is None:
        return None
    return Segment(municipalities=tuple(digest.segment.municipalities), topics=tuple(digest.segment.topics))


def _deliver(store: Store, transport: Transport, template: MessageTemplate, edition_id: int, subscriber_id: int,
             address: str, data: bytes, batch: str, report: SendReport) -> None:
    # The ledger says "sending" before the attempt and "sent" only after the server took it: a crash in between
    # leaves "sending", which a later run retries (one possible duplicate, never a lost subscriber). The claim is
    # atomic: when another process (a second scheduler, a manual send) has this delivery, we leave it to it.
    if not store.claim_delivery(edition_id, subscriber_id):
        return
    try:
        transport.send(Envelope(template.envelope_from, address, data, batch))
    except SendError as err:
        state = "deferred" if err.temporary else "failed"
        store.mark_delivery(edition_id, subscriber_id, state, code=err.code, reason=str(err))
        if state == "deferred":
            report.deferred += 1
        else:
            report.failed += 1
        report.problems.append(f"{_mask(address)}: {err}")
        return
    store.mark_delivery(edition_id, subscriber_id, "sent")
    report.sent += 1


def _destination(transport: Transport, batch: str) -> str:
    folder = getattr(transport, "folder", None)
    return str(Path(folder) / batch) if folder is not None else transport.description


def _mask(address: str) -> str:
    """k***@example.org: enough to recognise, not enough to harvest from a log."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"

