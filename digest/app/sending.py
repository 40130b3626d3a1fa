"""Sending a stored edition: to everyone waiting for it, as a dry run, or as one [TEST] copy; and the preview files.

The edition is the stored draft (made here if nothing has acted on it yet); what it says is what goes out."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime
from pathlib import Path
from time import monotonic

from digest.app.editions import DRAFT, EXPIRED, HELD, prepare
from digest.config import DigestConfig, Settings
from digest.consent import Segment
from digest.errors import NotApproved
from digest.guards import check_send
from digest.message import MessageTemplate, build_template, example_values, fill, fill_text, recipient_for
from digest.models import RenderedEdition, SendReport, Subscriber
from digest.outgoing import Outgoing, edition_builder
from digest.render import render
from digest.sender import Notice, Sender
from digest.signing import DKIMSigner, signer_from_env
from digest.store import Store
from digest.subscribers import normalise_address
from digest.tokens import resolve_secret
from digest.transports import Envelope, Transport
from digest.transports.pool import Job
from digest.transports.smtp import SMTPTransport

Progress = Callable[[int, int], None]


def write_preview(settings: Settings, rendered: RenderedEdition, out: Path) -> tuple[Path, Path]:
    """The edition as a subscriber sees it (with example personal values), as .html and .txt side by side."""
    values = example_values(settings)
    txt_path = out.with_suffix(".txt")
    _write_atomically(out, fill(rendered.html, rendered.placeholders, values))
    _write_atomically(txt_path, fill_text(rendered.text, rendered.placeholders, values))
    return out, txt_path


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(content)
    os.replace(tmp, path)


def send_test(settings: Settings, store: Store, transport: Transport, name: str, *, as_of: date | datetime | None,
              now: datetime, to: str, made_by: str = "system") -> SendReport:
    """One copy of the stored edition to `to`, marked [TEST] in the subject; records no delivery. Makes the draft
    when nothing has acted on the edition yet, so the copy shows exactly what approval would send."""
    address = normalise_address(to)
    digest = settings.digest(name)
    prepared = prepare(settings, store, name, as_of=as_of, now=now, freeze=True, made_by=made_by)
    edition = prepared.edition
    report = SendReport(digest=name, edition_key=edition.key, articles=len(edition.articles),
                        source_problems=prepared.source_problems)
    if prepared.skip_reason and not prepared.stored:
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
    outgoing = Outgoing(envelope_from=digest.sender.envelope_from, signer=signer)
    with transport:
        outgoing.send(transport, address, template.personalise(recipient), "test")
    report.sent = 1
    report.destination = transport.description
    return report


def send_edition(settings: Settings, store: Store, transport: Transport, name: str, *,
                 as_of: date | datetime | None, now: datetime, dry_run: bool = False,
                 progress: Progress | None = None, notice: Notice | None = None,
                 stop: Callable[[], bool] | None = None, retry_failed: bool = False) -> SendReport:
    """Send the stored edition to every active subscriber who has not had it. Safe to run again: sends nothing twice.

    A digest with an approval rule sends only an approved edition. After a crash (even `kill -9`) the next call
    resumes where the ledger says the last one stopped; see `digest.sender` for why nobody is left out and
    duplicates stay within the messages that were in flight. Only one process sends an edition at a time
    (`Store.sending_lock`); another one that asks meanwhile leaves the edition to it. `stop()` turning true ends
    the run once the messages in flight are recorded. `retry_failed` queues again those a server refused (5xx).
    """
    digest = settings.digest(name)
    prepared = prepare(settings, store, name, as_of=as_of, now=now, freeze=not dry_run)
    edition = prepared.edition
    report = SendReport(digest=name, edition_key=edition.key, articles=len(edition.articles), dry_run=dry_run,
                        source_problems=prepared.source_problems)
    if prepared.skip_reason and not prepared.stored:
        report.articles = 0
        report.problems.append(prepared.skip_reason)
        return report
    if digest.approval is not None and prepared.state in (DRAFT, HELD, EXPIRED) and not dry_run:
        raise NotApproved(name, edition.key, prepared.state)
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
    if retry_failed:
        retried = store.requeue_refused(stored.id)
        if retried and notice:
            notice(f"Trying again {retried} subscriber{'' if retried == 1 else 's'} the server refused before.")
    report.destination = _destination(transport, batch)
    with store.sending_lock(stored.id) as ours:
        if not ours:
            report.busy = True
            report.problems.append(f"Another process is sending {name} {edition.key} right now; left to it.")
            return report
        _send_pending(store, stored.id, created, transport, build, settings, report, progress, notice, stop)
    report.refused = store.refused_count(stored.id)
    # Kept with the draft so that status and the desk can say why the edition is not out yet.
    store.set_stop_reason(name, edition.key, report.paused or None)
    return report


def _refused_by_guards(report: SendReport, settings: Settings, rendered: RenderedEdition, transport: Transport,
                       signer: DKIMSigner | None) -> bool:
    """Run the send-time guards into the report; True when one is required (sending.require): send nothing."""
    guards = check_send(settings, html_bytes=rendered.html_bytes, smtp=isinstance(transport, SMTPTransport),
                        signed=signer is not None)
    report.guards = guards.lines()
    report.guard_refused = bool(guards.refusals)
    return report.guard_refused


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
    """Job → envelope with the personalised (and, with a DKIM key, signed) message: digest.outgoing's mail path."""
    outgoing = Outgoing(envelope_from=template.envelope_from, signer=signer)
    return edition_builder(settings, name, template, secret, outgoing, batch, for_smtp=for_smtp)


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

