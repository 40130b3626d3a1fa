"""Returned mail → subscriber states: RFC 3464 bounces, ARF complaints and mailto unsubscribes from a Maildir or mbox.

Each message is read, classified and applied on its own; reading the same mailbox twice changes nothing more (a hard
bounce of a bounced address, a repeated delay notice or a second unsubscribe are recognised). The mailbox itself is
left as it was.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr
from pathlib import Path
from urllib.parse import unquote

from digest.consent import COMPLAINED, mask
from digest.errors import DigestError
from digest.store import Store
from digest.tokens import InvalidToken, TokenClaims, read_token

_TOKEN_IN_SUBJECT = re.compile(r"\bavmeld\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)", re.IGNORECASE)
_TOKEN_IN_URL = re.compile(r"/avmeld/([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)")
_STATUS = re.compile(r"^\s*([245])\.\d{1,3}\.\d{1,3}")


class MailboxError(DigestError, ValueError):
    """The path is neither a Maildir nor an mbox file."""


@dataclass(frozen=True, kw_only=True)
class Finding:
    """What one returned message says. kind: hard | soft | complaint | unsubscribe | other."""

    kind: str
    email: str = ""
    status: str = ""
    original_message_id: str = ""
    token: str = ""
    note: str = ""


@dataclass(kw_only=True)
class BounceSummary:
    messages: int = 0
    hard_bounced: int = 0          # → bounced
    soft_counted: int = 0          # counted, below three in a row
    soft_bounced: int = 0          # the third soft bounce in a row → bounced
    complaints: int = 0            # → complained
    unsubscribed: int = 0          # mailto unsubscribes → unsubscribed (from that digest)
    already_handled: int = 0       # repeats, and addresses that were not mailed any more
    unknown_recipient: int = 0     # no subscriber with that address (or forgotten)
    invalid_token: int = 0         # unsubscribe mails whose token did not verify: nobody was changed
    not_understood: int = 0        # auto-replies, spam, anything else
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        return [
            f"Read {self.messages} messages.",
            f"  hard bounces → bounced:          {self.hard_bounced}",
            f"  soft bounces counted:            {self.soft_counted}",
            f"  soft, third in a row → bounced:  {self.soft_bounced}",
            f"  complaints → complained:         {self.complaints}",
            f"  unsubscribe mails → unsubscribed: {self.unsubscribed}",
            f"  already handled:                 {self.already_handled}",
            f"  unknown recipient:               {self.unknown_recipient}",
            f"  unsubscribe with invalid token:  {self.invalid_token}",
            f"  not understood (ignored):        {self.not_understood}",
        ]


def read_mailbox(path: Path) -> Iterator[tuple[str, EmailMessage]]:
    """(key, message) for each message in a Maildir folder (new/ and cur/) or an mbox file."""
    box: mailbox.Mailbox
    if path.is_dir():
        if not all((path / sub).is_dir() for sub in ("new", "cur")):
            raise MailboxError(f"{path}: a folder, but not a Maildir (it needs new/ and cur/ folders)")
        box = mailbox.Maildir(path, factory=None, create=False)
    elif path.is_file():
        with path.open("rb") as fh:
            head = fh.read(5)
        if head and head != b"From ":
            raise MailboxError(f"{path}: not an mbox file (it does not start with a 'From ' line)")
        box = mailbox.mbox(path, factory=None, create=False)
    else:
        raise MailboxError(f"{path}: no such Maildir folder or mbox file")
    try:
        for key in sorted(box.keys()):
            if isinstance(box, mailbox.Maildir) and str(key).startswith("."):
                continue  # hidden files (.gitkeep, editors' leftovers) are no mail
            data = box.get_bytes(key)
            yield str(key), email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[misc]
    finally:
        box.close()


def classify(msg: EmailMessage) -> list[Finding]:
    """Read one message: a delivery status notification (one finding per recipient), a feedback report, an
    unsubscribe request, or something else."""
    content_type = msg.get_content_type()
    report_type = (msg.get_param("report-type") or "").lower() if content_type == "multipart/report" else ""
    original = _original_headers(msg)
    original_id = (original.get("Message-ID") or "").strip() if original else ""
    original_token = _token_from_list_unsubscribe(original.get("List-Unsubscribe", "")) if original else ""

    if report_type == "delivery-status":
        findings: list[Finding] = []
        for blocks in _parts_of_type(msg, "message/delivery-status"):
            for block in blocks[1:]:  # the first block is about the message, the others about recipients
                action = (block.get("Action") or "").strip().lower()
                status = (block.get("Status") or "").strip()
                if action in {"delivered", "relayed", "expanded"}:
                    continue
                matched = _STATUS.match(status)
                if not matched:
                    continue
                recipient = _address_field(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                kind = "hard" if matched.group(1) == "5" else "soft"
                findings.append(Finding(kind=kind, email=recipient, status=status,
                                        original_message_id=original_id, token=original_token))
        return findings or [Finding(kind="other", note="a delivery report without failed recipients")]

    if report_type == "feedback-report":
        recipient = ""
        for blocks in _parts_of_type(msg, "message/feedback-report"):
            recipient = _address_field(blocks[0].get("Original-Rcpt-To") or "") if blocks else ""
        if not recipient and original is not None:
            recipient = parseaddr(original.get("To") or "")[1]
        return [Finding(kind="complaint", email=recipient, original_message_id=original_id, token=original_token)]

    subject = str(msg.get("Subject") or "")
    found = _TOKEN_IN_SUBJECT.search(unquote(subject))
    if found:
        return [Finding(kind="unsubscribe", email=parseaddr(str(msg.get("From") or ""))[1], token=found.group(1))]
    return [Finding(kind="other", note=subject[:60])]


def ingest(store: Store, path: Path, *, secret: bytes, all_digests: Sequence[str], now: datetime) -> BounceSummary:
    """Apply every message in the mailbox to the store and say what happened."""
    summary = BounceSummary()
    for key, msg in read_mailbox(path):
        summary.messages += 1
        for finding in classify(msg):
            _apply(store, finding, key, secret=secret, all_digests=all_digests, now=now, summary=summary)
    return summary


def _apply(store: Store, finding: Finding, key: str, *, secret: bytes, all_digests: Sequence[str], now: datetime,
           summary: BounceSummary) -> None:
    claims = _claims(secret, finding.token)
    if finding.kind in {"hard", "soft"}:
        address = finding.email or _address_of(store, claims)
        if not address:
            summary.unknown_recipient += 1
            return
        outcome = store.record_bounce(address, hard=finding.kind == "hard",
                                      message_ref=finding.original_message_id or f"{key}/{finding.status}",
                                      edition_id=_edition_of(store, finding.original_message_id), now=now)
        if outcome == "bounced":
            if finding.kind == "hard":
                summary.hard_bounced += 1
            else:
                summary.soft_bounced += 1
            summary.notes.append(f"{mask(address)}: {finding.kind} bounce {finding.status} → bounced")
        elif outcome == "counted":
            summary.soft_counted += 1
        elif outcome == "unknown":
            summary.unknown_recipient += 1
        else:
            summary.already_handled += 1
        return

    if finding.kind == "complaint":
        # The token names the subscriber even when the provider redacted the recipient's address.
        subscriber = store.subscriber(claims.subscriber_id) if claims else None
        if subscriber is None and finding.email:
            subscriber = store.subscriber_by_email(finding.email)
        if subscriber is None:
            summary.unknown_recipient += 1
            return
        if store.leave(subscriber.id, status=COMPLAINED, source="complaint", now=now):
            summary.complaints += 1
            summary.notes.append(f"{mask(subscriber.email)}: complaint → complained")
        else:
            summary.already_handled += 1
        return

    if finding.kind == "unsubscribe":
        # Only the signed token counts: a From line is easy to forge, and nobody may unsubscribe someone else.
        if claims is None:
            summary.invalid_token += 1
            return
        result = store.unsubscribe(claims.subscriber_id, claims.digest, all_digests=all_digests,
                                   source="mailto", now=now)
        if result is None:
            summary.unknown_recipient += 1
        elif result.changed:
            summary.unsubscribed += 1
            summary.notes.append(f"{mask(result.email)}: unsubscribed from {claims.digest} by e-mail")
        else:
            summary.already_handled += 1
        return

    summary.not_understood += 1


def _claims(secret: bytes, token: str) -> TokenClaims | None:
    if not token:
        return None
    try:
        return read_token(secret, token)
    except InvalidToken:
        return None


def _address_of(store: Store, claims: TokenClaims | None) -> str:
    subscriber = store.subscriber(claims.subscriber_id) if claims else None
    return subscriber.email if subscriber else ""


def _edition_of(store: Store, message_id: str) -> int | None:
    """Our Message-IDs read <digest.edition-key.tag@domain> (see message.message_id)."""
    local = message_id.strip("<> ").partition("@")[0]
    head, _, _tag = local.rpartition(".")
    digest, _, edition_key = head.partition(".")
    if not digest or not edition_key:
        return None
    return store.edition_id(digest, edition_key)


def _parts_of_type(msg: EmailMessage, content_type: str) -> Iterator[list[EmailMessage]]:
    for part in msg.walk():
        if part.get_content_type() == content_type:
            payload = part.get_payload()
            if isinstance(payload, list):
                yield payload  # type: ignore[misc]


def _original_headers(msg: EmailMessage) -> email.message.Message | None:
    """The headers of the message that came back: a message/rfc822 part or text/rfc822-headers."""
    for part in msg.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return payload[0]
        if content_type == "text/rfc822-headers":
            text = part.get_payload(decode=True) or b""
            return HeaderParser(policy=email.policy.default).parsestr(text.decode("utf-8", "replace"))
    return None


def _token_from_list_unsubscribe(value: str) -> str:
    found = _TOKEN_IN_URL.search(str(value))
    return found.group(1) if found else ""


def _address_field(value: str) -> str:
    """'rfc822; someone@example.org' → 'someone@example.org'."""
    _type, _, address = str(value).partition(";")
    address = (address or _type).strip()
    if not address:
        return ""
    parsed = getaddresses([address])
    return ((parsed[0][1] if parsed else "") or address).strip("<> ")
