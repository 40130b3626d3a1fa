"""What a run means, decided in one place: its kind, the exit code, the log level and the sentence that ends it.

Exit 0 only when everyone in the audience has the edition (or there was nothing to send, or it waits for an
editor); 2 when some were sent and some still lack it; 1 when none were sent and some lack it, or the run failed.
The CLI prints `reason` as its last line, `digest run --once` logs it at `level` and exits with the worst code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from digest.models import SendReport

# Kinds of outcome a shell may see; the scheduler counts them in digest_editions_total.
SENT = "sent"
UP_TO_DATE = "up_to_date"
PARTIAL = "partial"
STOPPED = "stopped"
INTERRUPTED = "interrupted"
NOTHING_NEW = "nothing_new"
BUSY = "busy"
DRY_RUN = "dry_run"
TEST_COPY = "test_copy"
AWAITING_APPROVAL = "awaiting_approval"
EXPIRED = "expired"
MISSED = "missed"
FAILED = "failed"
REFUSED = "refused"  # a send-time guard named in sending.require (digest/guards.py): nothing sent


@dataclass(frozen=True, kw_only=True)
class Outcome:
    kind: str
    exit_code: int
    reason: str
    level: int = logging.INFO
    report: SendReport | None = None

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def outcome_of(report: SendReport) -> Outcome:
    """The meaning of a send (or dry run, or test copy) of one edition."""
    name, key = report.digest, report.edition_key
    if report.articles == 0:
        reason = report.problems[0] if report.problems else f"Nothing to send for {name}."
        return Outcome(kind=NOTHING_NEW, exit_code=0, reason=reason, report=report)
    if report.guard_refused:
        return Outcome(kind=REFUSED, exit_code=1, level=logging.ERROR, report=report,
                       reason=f"Nothing was sent: {name} {key} is refused by sending.require (see above).")
    if report.dry_run:
        return Outcome(kind=DRY_RUN, exit_code=0, report=report,
                       reason=f"Dry run of {name} {key}: {plural(report.sent, 'message', 'messages')} built, "
                              "nothing sent.")
    if report.busy:
        return Outcome(kind=BUSY, exit_code=0, report=report,
                       reason=f"Another process is sending {name} {key} right now; left to it.")
    # A hard bounce in this run is a message that did not arrive; later runs no longer count the address (it is
    # not mailed again), so they can end with everyone in the audience having the edition.
    missing = report.remaining + report.refused + report.bounced
    partial_code = 2 if report.sent else 1
    if report.interrupted:
        return Outcome(kind=INTERRUPTED, exit_code=partial_code, level=logging.WARNING, report=report,
                       reason=f"Stopped on request: {plural(report.remaining, 'subscriber', 'subscribers')} still "
                              f"wait for {name} {key}; the next `digest send {name}` or `digest run` continues.")
    if missing == 0:
        if report.sent:
            return Outcome(kind=SENT, exit_code=0, report=report,
                           reason=f"Everyone in the audience has {name} {key} "
                                  f"({plural(report.sent, 'message', 'messages')} sent now).")
        return Outcome(kind=UP_TO_DATE, exit_code=0, report=report,
                       reason="Every subscriber already has this edition; nothing new was sent.")
    sentences = []
    if report.paused:
        sentences.append(f"Stopped early: {report.paused}.")
    if report.remaining and report.paused:
        waiting = plural(report.remaining, "subscriber still waits", "subscribers still wait")
        sentences.append(f"{waiting} for this edition; run `digest send {name} --as-of {key}` again to continue.")
    elif report.remaining:
        waiting = plural(report.remaining, "deferred subscriber still waits", "deferred subscribers still wait")
        sentences.append(f"{waiting} for this edition; the next `digest send {name} --as-of {key}` tries again.")
    if report.bounced:
        bounced = plural(report.bounced, "address", "addresses")
        sentences.append(f"{bounced} bounced (no such mailbox) and will not be mailed again.")
    if report.refused:
        refused = plural(report.refused, "subscriber was", "subscribers were")
        sentences.append(f"{refused} refused by the server (5xx) and do not have {name} {key}; "
                         f"`digest send {name} --as-of {key} --retry-failed` tries them again.")
    return Outcome(kind=PARTIAL if report.sent else STOPPED, exit_code=partial_code, level=logging.ERROR,
                   report=report, reason=" ".join(sentences))


def worst(outcomes: list[Outcome]) -> int:
    """The exit code of a run over several editions: 1 beats 2 beats 0."""
    codes = {outcome.exit_code for outcome in outcomes}
    return 1 if 1 in codes else 2 if 2 in codes else 0
