"""Run the stages in order: collect → select → render → personalise → send → record. The one place that knows it."""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Callable
from datetime import date, datetime, time
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

from digest.config import Settings
from digest.message import MessageTemplate, build_template, recipient_for, unsubscribe_url
from digest.models import Edition, RenderedEdition, SendReport
from digest.render import render
from digest.select import edition_key, select
from digest.sender import Notice, Sender
from digest.signing import DKIMSigner, signer_from_env
from digest.sources import collect
from digest.store import Store
from digest.subscribers import normalise_address
from digest.tokens import resolve_secret
from digest.transports import Envelope, Transport
from digest.transports.pool import Job
from digest.transports.smtp import SMTPTransport

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


def prepare_edition(settings: Settings, store: Store, name: str, *, as_of: date | datetime | None,
                    now: datetime) -> Edition:
    """The edition for that day: as it was sent if it was, else freshly collected and selected."""
    digest = settings.digest(name)
    day, until = edition_moment(as_of, digest.timezone, now)
    stored = store.find_edition(name, edition_key(day))
    if stored is not None:
        return stored.edition
    return select(
        collect(settings, digest),
        digest=name,
        day=day,
        until=until,
        previous_until=store.previous_until(name, until),
        max_articles=digest.max_articles,
        first_window_days=digest.first_window_days,
    )


def nothing_new_message(edition: Edition) -> str:
    since = edition.since.astimezone(edition.until.tzinfo).strftime("%Y-%m-%d %H:%M")
    return f"No new articles for '{edition.digest}' since {since}; nothing to send."


def write_preview(settings: Settings, rendered: RenderedEdition, out: Path) -> tuple[Path, Path]:
    """The edition as a subscriber sees it (with example personal values), as .html and .txt side by side."""
    sample = {
        "@@greeting@@": "Hei!",
        "@@email@@": "abonnent@example.org",
        "@@unsubscribe_url@@": unsubscribe_url(settings, "eksempel"),
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
    edition = prepare_edition(settings, store, name, as_of=as_of, now=now)
    report = SendReport(digest=name, edition_key=edition.key, articles=len(edition.articles))
    if not edition.articles:
        report.problems.append(nothing_new_message(edition))
        return report
    template = build_template(render(settings, digest, edition), digest, now=now, subject_prefix="[TEST] ")
    recipient = recipient_for(settings, name, digest, template, resolve_secret(store), subscriber_id=None,
                              email=address, name="")
    data = template.personalise(recipient)
    signer = signer_from_env(digest.sender.domain)
    if signer is not None:
        data = signer.sign(data)
    with transport:
        transport.send(Envelope(template.envelope_from, address, data, "test"))
    report.sent = 1
    report.destination = transport.description
    return report


def send_edition(settings: Settings, store: Store, transport: Transport, name: str, *,
                 as_of: date | datetime | None, now: datetime, dry_run: bool = False,
                 progress: Progress | None = None, notice: Notice | None = None) -> SendReport:
    """Send the edition to every active subscriber who has not had it. Safe to run again: sends nothing twice.

    After a crash (even `kill -9`) the next call resumes where the ledger says the last one stopped; see
    `digest.sender` for why nobody is left out and duplicates stay within the messages that were in flight.
    """
    digest = settings.digest(name)
    edition = prepare_edition(settings, store, name, as_of=as_of, now=now)
    report = SendReport(digest=name, edition_key=edition.key, articles=len(edition.articles), dry_run=dry_run)
    if not edition.articles:
        report.problems.append(nothing_new_message(edition))
        return report
    # Render before recording anything: a broken template must not leave an edition that looks sent.
    template = build_template(render(settings, digest, edition), digest, now=now)
    batch = f"{name}-{edition.key}"
    build = message_builder(settings, name, template, resolve_secret(store), signer_from_env(digest.sender.domain),
                            batch, for_smtp=isinstance(transport, SMTPTransport) and not dry_run)

    if dry_run:
        return _dry_run(settings, store, name, edition.key, build, report, progress)

    stored, created = store.create_edition(edition)
    counts = store.delivery_counts(stored.id)
    report.audience = sum(counts.values())
    report.skipped_already_sent = counts.get("sent", 0)
    report.remaining_at_start, report.in_flight_at_start = store.pending_count(stored.id)
    report.resumed = not created and report.remaining_at_start > 0
    report.destination = _destination(transport, batch)
    if report.resumed and notice:
        notice(resume_message(report))
    if not report.remaining_at_start:
        return report
    Sender(store, stored.id, transport, build, settings.sending, progress=progress, notice=notice).run(report)
    report.remaining = store.pending_count(stored.id)[0]
    return report


def resume_message(report: SendReport) -> str:
    """What a run that picks up an edition already under way says first."""
    text = (f"Resuming {report.digest} {report.edition_key}: {report.remaining_at_start} of {report.audience} "
            f"subscribers remain")
    if report.in_flight_at_start:
        verb = "was" if report.in_flight_at_start == 1 else "were"
        text += (f" ({report.in_flight_at_start} {verb} being sent when the last run stopped and may get a second "
                 "copy)")
    return text + "."


def message_builder(settings: Settings, name: str, template: MessageTemplate, secret: bytes,
                    signer: DKIMSigner | None, batch: str, *, for_smtp: bool = False) -> Callable[[Job], Envelope]:
    """Job → envelope with the personalised (and, with a DKIM key, signed) message. Runs in the pool's threads.

    `for_smtp` also gives the envelope its wire form, dot-stuffed from pieces stuffed once per edition.
    """
    digest = settings.digest(name)

    def build(job: Job) -> Envelope:
        recipient = recipient_for(settings, name, digest, template, secret, subscriber_id=job.subscriber_id,
                                  email=job.email, name=job.name)
        wire = None
        if for_smtp:
            data, wire = template.personalise_for_smtp(recipient)
        else:
            data = template.personalise(recipient)
        if signer is not None:
            # The signature covers the message as the receiver reads it, i.e. before dot-stuffing; the header
            # itself has no line that starts with a dot.
            header = signer.signature(data)
            data = header + data
            wire = None if wire is None else header + wire
        return Envelope(template.envelope_from, job.email, data, batch, wire)

    return build


def _dry_run(settings: Settings, store: Store, name: str, key: str, build: Callable[[Job], Envelope],
             report: SendReport, progress: Progress | None) -> SendReport:
    """Build every message that a send would send, a batch of subscribers at a time; connect to nothing."""
    stored = store.find_edition(name, key)
    batch_size = settings.sending.batch_size
    total = store.pending_count(stored.id)[0] if stored is not None else store.active_count()
    started = monotonic()
    after = 0
    while True:
        if stored is not None:
            batch = store.pending_batch(stored.id, after_id=after, limit=batch_size)
        else:
            batch = store.active_subscribers_batch(after_id=after, limit=batch_size)
        for subscriber in batch:
            report.message_bytes += len(build(Job(subscriber.id, subscriber.email, subscriber.name)).data)
            report.sent += 1
        if progress:
            progress(report.sent, total)
        if len(batch) < batch_size:
            break
        after = batch[-1].id
    report.elapsed = monotonic() - started
    report.destination = "nowhere (dry run)"
    return report


def _destination(transport: Transport, batch: str) -> str:
    folder = getattr(transport, "folder", None)
    return str(Path(folder) / batch) if folder is not None else transport.description

