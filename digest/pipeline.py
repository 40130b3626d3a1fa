"""Run the stages in order: collect → select → render → personalise → send → record. The one place that knows it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time
from pathlib import Path
from time import monotonic
from zoneinfo import ZoneInfo

from digest.config import DigestConfig, Settings
from digest.consent import Segment
from digest.errors import AllSourcesFailed
from digest.guards import check_send
from digest.message import MessageTemplate, build_template, example_values, fill, fill_text, recipient_for
from digest.models import Edition, RenderedEdition, SendReport, Subscriber
from digest.render import render
from digest.select import Exclusion, edition_key, select_explained
from digest.sender import Notice, Sender
from digest.signing import DKIMSigner, signer_from_env
from digest.sources import SourceReport, collect
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
        first_seen=collection.first_seen,
        max_age_days=digest.max_age_days,
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
    values = example_values(settings)
    txt_path = out.with_suffix(".txt")
    _write_atomically(out, fill(rendered.html, values))
    _write_atomically(txt_path, fill_text(rendered.text, values))
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
    rendered = render(settings, digest, edition)
    signer = signer_from_env(digest.sender.domain)
    if _refused_by_guards(report, settings, rendered, transport, signer):
        return report
    template = build_template(rendered, digest, now=now, subject_prefix="[TEST] ")
    recipient = recipient_for(settings, name, digest, template, resolve_secret(store), subscriber_id=None,
                              email=address, name="")
    data = template.personalise(recipient)
    if signer is not None:
        data = signer.sign(data)
    with transport:
        transport.send(Envelope(template.envelope_from, address, data, "test"))
    report.sent = 1
    report.destination = transport.description
    return report


def send_edition(settings: Settings, store: Store, transport: Transport, name: str, *,
                 as_of: date | datetime | None, now: datetime, dry_run: bool = False,
                 progress: Progress | None = None, notice: Notice | None = None,
                 stop: Callable[[], bool] | None = None) -> SendReport:
    """Send the edition to every active subscriber who has not had it. Safe to run again: sends nothing twice.

    After a crash (even `kill -9`) the next call resumes where the ledger says the last one stopped; see
    `digest.sender` for why nobody is left out and duplicates stay within the messages that were in flight.
    Only one process sends an edition at a time (`Store.sending_lock`); another one that asks meanwhile leaves
    the edition to it. `stop()` turning true ends the run once the messages in flight are recorded.
    """
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
    rendered = render(settings, digest, edition)
    signer = signer_from_env(digest.sender.domain)
    if _refused_by_guards(report, settings, rendered, transport, signer):
        return report
    template = build_template(rendered, digest, now=now)
    batch = f"{name}-{edition.key}"
    build = message_builder(settings, name, template, resolve_secret(store), signer,
                            batch, for_smtp=isinstance(transport, SMTPTransport) and not dry_run)

    segment = segment_of(digest)
    if dry_run:
        return _dry_run(settings, store, name, edition.key, segment, build, report, progress)

    stored, created = store.create_edition(edition, segment=segment)
    report.destination = _destination(transport, batch)
    with store.sending_lock(stored.id) as ours:
        if not ours:
            report.busy = True
            report.problems.append(f"Another process is sending {name} {edition.key} right now; left to it.")
            return report
        return _send_pending(store, stored.id, created, transport, build, settings, report, progress, notice, stop)


def _refused_by_guards(report: SendReport, settings: Settings, rendered: RenderedEdition, transport: Transport,
                       signer: DKIMSigner | None) -> bool:
    """Run the send-time guards into the report; True when one is required (sending.require): send nothing."""
    guards = check_send(settings, html_bytes=rendered.html_bytes, smtp=isinstance(transport, SMTPTransport),
                        signed=signer is not None)
    report.guards = guards.lines()
    report.refused = bool(guards.refusals)
    return report.refused


def _send_pending(store: Store, edition_id: int, created: bool, transport: Transport,
                  build: Callable[[Job], Envelope], settings: Settings, report: SendReport,
                  progress: Progress | None, notice: Notice | None, stop: Callable[[], bool] | None) -> SendReport:
    counts = store.delivery_counts(edition_id)
    report.audience = sum(counts.values())
    report.skipped_already_sent = counts.get("sent", 0)
    report.remaining_at_start, report.in_flight_at_start = store.pending_count(edition_id)
    report.resumed = not created and report.remaining_at_start > 0
    if report.resumed and notice:
        notice(resume_message(report))
    if not report.remaining_at_start:
        return report
    Sender(store, edition_id, transport, build, settings.sending, progress=progress, notice=notice,
           stop=stop).run(report)
    report.remaining = store.pending_count(edition_id)[0]
    return report


def segment_of(digest: DigestConfig) -> Segment | None:
    """The digest's audience limit from schedule.yaml, as the store understands it."""
    if digest.segment is None:
        return None
    return Segment(municipalities=tuple(digest.segment.municipalities), topics=tuple(digest.segment.topics))


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


def _dry_run(settings: Settings, store: Store, name: str, key: str, segment: Segment | None,
             build: Callable[[Job], Envelope], report: SendReport, progress: Progress | None) -> SendReport:
    """Build every message that a send would send; connect to nothing, record nothing."""
    stored = store.find_edition(name, key)
    audience: Iterable[Subscriber]
    if stored is not None:
        total = store.pending_count(stored.id)[0]
        audience = _pending(store, stored.id, settings.sending.batch_size)
    else:
        people = store.audience(name, segment)  # what create_edition would queue
        total, audience = len(people), people
    started = monotonic()
    for subscriber in audience:
        report.message_bytes += len(build(Job(subscriber.id, subscriber.email, subscriber.name)).data)
        report.sent += 1
        if progress and report.sent % 500 == 0:
            progress(report.sent, total)
    if progress:
        progress(report.sent, total)
    report.elapsed = monotonic() - started
    report.destination = "nowhere (dry run)"
    return report


def _pending(store: Store, edition_id: int, batch_size: int) -> Iterator[Subscriber]:
    """The edition's pending subscribers, read a batch at a time so that memory stays flat."""
    after = 0
    while True:
        batch = store.pending_batch(edition_id, after_id=after, limit=batch_size)
        yield from batch
        if len(batch) < batch_size:
            return
        after = batch[-1].id


def _destination(transport: Transport, batch: str) -> str:
    folder = getattr(transport, "folder", None)
    return str(Path(folder) / batch) if folder is not None else transport.description

