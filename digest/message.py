"""RenderedEdition → MIME bytes built once per edition; personalise(recipient) → bytes by substitution.

The expensive work (MIME structure, quoted-printable encoding of ~60 KB of HTML) happens once. Each recipient costs
a few string joins: the template engine wrote this render's placeholder markers (`digest.models.Placeholders`, with a
random part no article can know) where the recipient's values go; the encoder puts each one alone on an encoded line
between soft line breaks, and building the message records where they are. A value is then spliced into the
*encoded* bytes at those places without re-encoding the body, and nothing else in the message is ever filled: a
title, teaser or kicker is text in every header and part, whatever it contains.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.charset import QP, Charset
from email.header import Header
from email.message import EmailMessage, MIMEPart
from email.policy import Policy
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr, make_msgid
from functools import cached_property

from digest.config import DigestConfig, Settings
from digest.models import Placeholders, Recipient, RenderedEdition
from digest.tokens import make_preferences_token, make_token

_SOFT_BREAK = "=\r\n"
# A quoted-printable line is at most 76 characters (RFC 2045 6.7). Whatever stands before a soft line break that we
# add ourselves (a per-recipient value, or the text before one) is encoded in lines of 75, so that with the "=" of
# the break it still fits.
_QP_LINE = 76
_BEFORE_BREAK = _QP_LINE - 1
# Printable ASCII but "=", neither starting nor ending with a space, at most _BEFORE_BREAK long: its own encoding.
_QP_SAFE_LINE = re.compile(r"[!-<>-~](?:[ !-<>-~]{0,73}[!-<>-~])?")

# Encoded words in quoted-printable (not base64), as most senders write them: shorter for Norwegian text.
_UTF8_Q = Charset("utf-8")
_UTF8_Q.header_encoding = QP


def _qp(text: str, maxlinelen: int = _BEFORE_BREAK) -> str:
    # A short line of printable ASCII without "=" (most addresses, names and links) is its own encoding; this
    # runs several times per recipient, so skip the encoder when it would change nothing.
    if _QP_SAFE_LINE.fullmatch(text):
        return text
    # quoprimime works on "one char per byte" strings: hand it the UTF-8 bytes spelled as latin-1.
    return body_encode(text.encode("utf-8").decode("latin-1"), maxlinelen=maxlinelen, eol="\r\n")


def _slot(flavour: str, name: str, placeholders: Placeholders) -> str:
    """The marker of one per-recipient value in the encoded bytes, e.g. @@h_email.<nonce>@@."""
    return f"@@{flavour}_{name}.{placeholders.nonce}@@"


def _encode_with_slots(text: str, placeholders: Placeholders, flavour: str) -> str:
    """Quoted-printable, with each of this render's placeholders on a line of its own as a slot marker."""
    pieces = placeholders.split(text)
    out: list[str] = []
    for i, piece in enumerate(pieces):
        if i % 2:
            out.append(f"{_SOFT_BREAK}{_slot(flavour, piece, placeholders)}{_SOFT_BREAK}")
        elif piece:
            last = i == len(pieces) - 1
            out.append(_qp(piece, _QP_LINE if last else _BEFORE_BREAK))
    return "".join(out)


def _text_part(body: str, subtype: str, placeholders: Placeholders, flavour: str) -> MIMEPart:
    part = MIMEPart(policy=policy.SMTP)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(_encode_with_slots(body, placeholders, flavour))
    return part


@dataclass(frozen=True)
class SubjectHeader:
    """The Subject, encoded and folded by the standard library's `email.header`, as a header object the `email`
    package writes as it is (EmailPolicy folds an object with a `name` by calling its `fold`).

    Assigned as a plain string, the modern policy reads any `=?utf-8?q?…?=` in a title as an encoded word (the
    message would say something else than the article), and at some lengths it folds an empty encoded word into the
    line. So: printable ASCII that cannot be taken for an encoded word goes as it is, folded at spaces; anything
    else (æøå, "=?", control characters) as quoted-printable encoded words, which hold any text literally.
    """

    name: str
    value: str

    def __str__(self) -> str:
        return self.value

    def fold(self, *, policy: Policy) -> str:
        return f"{self.name}: {encode_subject(self.value, linesep=policy.linesep)}{policy.linesep}"


def encode_subject(subject: str, *, linesep: str = "\r\n") -> str:
    """The Subject field's value as it goes on the wire: ASCII, lines of at most 76 characters (a single word
    longer than a line stays whole), without empty encoded words."""
    plain = subject.isascii() and subject.isprintable() and "=?" not in subject
    header = Header(subject, "us-ascii" if plain else _UTF8_Q, header_name="Subject")
    return header.encode(splitchars=" ", maxlinelen=_QP_LINE, linesep=linesep)


@dataclass(frozen=True)
class MessageTemplate:
    """One edition's message as bytes, split where each recipient's own values go."""

    pieces: tuple[bytes, ...]      # even indexes: literal bytes; odd: slot names (e.g. b"h_email")
    envelope_from: str
    domain: str
    digest: str
    edition_key: str
    def personalise(self, recipient: Recipient) -> bytes:
        values = _values(recipient)
        head = _recipient_headers(recipient)
        body = b"".join(piece if i % 2 == 0 else values[piece] for i, piece in enumerate(self.pieces))
        return head + body

    def personalise_for_smtp(self, recipient: Recipient) -> tuple[bytes, bytes]:
        """The message, and the same as SMTP sends it after DATA: every line that starts with a dot gets a second
        one (RFC 5321 4.5.2), and it ends with CRLF (the final "." is the transport's).

        The literal pieces were stuffed once per edition, so a send need not scan the whole message again; only
        the short per-recipient values are stuffed here. Each value starts a line (a soft line break precedes it).
        """
        values = _values(recipient)
        head = _recipient_headers(recipient)
        message = head + b"".join(piece if i % 2 == 0 else values[piece] for i, piece in enumerate(self.pieces))
        stuffed = {name: _dot_stuffed(value) for name, value in values.items()}
        wire = head + b"".join(piece if i % 2 == 0 else stuffed[piece] for i, piece in enumerate(self._wire_pieces))
        return message, wire

    @cached_property
    def _wire_pieces(self) -> tuple[bytes, ...]:
        pieces = list(self.pieces)
        for i in range(0, len(pieces), 2):
            # Only dots after a line break: each piece but the first begins in the middle of a line.
            pieces[i] = pieces[i].replace(b"\r\n.", b"\r\n..")
        if not pieces[-1].endswith(b"\r\n"):
            pieces[-1] += b"\r\n"
        return tuple(pieces)


def _dot_stuffed(line_start: bytes) -> bytes:
    if b"." not in line_start:
        return line_start
    line_start = line_start.replace(b"\r\n.", b"\r\n..")
    return b"." + line_start if line_start.startswith(b".") else line_start


def _values(recipient: Recipient) -> dict[bytes, bytes]:
    greeting = f"Hei, {recipient.name}!" if recipient.name else "Hei!"
    plain = {"greeting": greeting, "email": recipient.email, "unsubscribe_url": recipient.unsubscribe_url,
             "preferences_url": recipient.preferences_url}
    values: dict[bytes, bytes] = {}
    for name, value in plain.items():
        values[f"t_{name}".encode()] = _qp(value).encode("ascii")
        values[f"h_{name}".encode()] = _qp(html.escape(value)).encode("ascii")
    return values


def _recipient_headers(recipient: Recipient) -> bytes:
    to = formataddr((recipient.name, recipient.email), charset="utf-8")
    lines = [
        f"To: {to}",
        f"Message-ID: {recipient.message_id}",
        f"List-Unsubscribe: <{recipient.unsubscribe_url}>,\r\n <{recipient.unsubscribe_mailto}>",
    ]
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def build_template(rendered: RenderedEdition, digest: DigestConfig, *, now: datetime,
                   subject_prefix: str = "") -> MessageTemplate:
    """The edition's MIME message with the stdlib `email` package (policy SMTP), once per edition."""
    edition = rendered.edition
    placeholders = rendered.placeholders
    domain = digest.sender.domain
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = digest.sender.from_
    if digest.sender.reply_to:
        msg["Reply-To"] = digest.sender.reply_to
    # A Subject is one line: line breaks or tabs in a title become spaces.
    msg["Subject"] = SubjectHeader("Subject", " ".join((subject_prefix + rendered.subject).split()))
    msg["Date"] = format_datetime(now)
    msg["List-Id"] = f"{digest.title} <{edition.digest}.{domain}>"
    # RFC 8058: with an https List-Unsubscribe this tells mailbox providers a bare POST unsubscribes.
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/alternative"
    # Text first, HTML last: clients show the last part they can display.
    msg.attach(_text_part(rendered.text, "plain", placeholders, "t"))
    msg.attach(_text_part(rendered.html, "html", placeholders, "h"))
    data = msg.as_bytes(policy=policy.SMTP)
    # Where the slots are: only this render's markers, which only the encoder above wrote.
    slots = re.compile(rb"@@([th]_[a-z_]+)\." + placeholders.nonce.encode("ascii") + rb"@@")
    return MessageTemplate(
        pieces=tuple(slots.split(data)),
        envelope_from=digest.sender.envelope_from,
        domain=domain,
        digest=edition.digest,
        edition_key=edition.key,
    )


def message_id(digest: str, edition_key: str, subscriber_id: int | None, domain: str) -> str:
    """Stable per (edition, subscriber), so a retried message is recognisably the same one."""
    if subscriber_id is None:
        return make_msgid(idstring=f"{digest}.{edition_key}.test", domain=domain)
    tag = hashlib.sha256(f"{digest}/{edition_key}/{subscriber_id}".encode()).hexdigest()[:20]
    return f"<{digest}.{edition_key}.{tag}@{domain}>"


def unsubscribe_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/avmeld/{token}"


def preferences_url(settings: Settings, token: str) -> str:
    return f"{settings.public_url}/innstillinger/{token}"


EXAMPLE_ADDRESS = "abonnent@example.org"


def example_values(settings: Settings) -> dict[str, str]:
    """What a preview shows in place of a subscriber's own values (the links lead nowhere personal)."""
    return {
        "greeting": "Hei!",
        "email": EXAMPLE_ADDRESS,
        "unsubscribe_url": unsubscribe_url(settings, "eksempel"),
        "preferences_url": preferences_url(settings, "eksempel"),
    }


def fill(html_text: str, placeholders: Placeholders, values: Mapping[str, str]) -> str:
    """Rendered HTML with this render's placeholders replaced by `values` (escaped), for a page rather than a send."""
    return placeholders.fill(html_text, {name: html.escape(value) for name, value in values.items()})


def fill_text(text: str, placeholders: Placeholders, values: Mapping[str, str]) -> str:
    """The rendered text part with this render's placeholders replaced by `values`."""
    return placeholders.fill(text, values)


def recipient_for(settings: Settings, digest_name: str, digest: DigestConfig, template: MessageTemplate,
                  secret: bytes, *, subscriber_id: int | None, email: str, name: str) -> Recipient:
    # A test copy (no subscriber) gets a token for id 0, which matches nobody: its links lead to a polite 404.
    token = make_token(secret, subscriber_id or 0, digest_name)
    return Recipient(
        subscriber_id=subscriber_id,
        email=email,
        name=name,
        unsubscribe_url=unsubscribe_url(settings, token),
        unsubscribe_mailto=f"mailto:{digest.unsubscribe_address}?subject=avmeld%20{token}",
        message_id=message_id(template.digest, template.edition_key, subscriber_id, template.domain),
        preferences_url=preferences_url(settings, make_preferences_token(secret, subscriber_id or 0, digest_name)),
    )
