"""RenderedEdition → MIME bytes built once per edition; personalise(recipient) → bytes by substitution.

The expensive work (MIME structure, quoted-printable encoding of ~60 KB of HTML) happens once. Each recipient costs
a few string replacements: every placeholder sits alone on an encoded line between soft line breaks, so a value can
be spliced into the *encoded* bytes without re-encoding the body.
"""

from __future__ import annotations

import hashlib
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from email.quoprimime import body_encode
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from functools import cached_property

from digest.config import DigestConfig, Settings
from digest.models import Recipient, RenderedEdition
from digest.tokens import make_preferences_token, make_token

_PLACEHOLDER_NAMES = ("greeting", "email", "unsubscribe_url", "preferences_url")
_PLACEHOLDER = re.compile(r"@@(" + "|".join(_PLACEHOLDER_NAMES) + r")@@")
_ENCODED_PLACEHOLDER = re.compile(rb"@@([a-z]_[a-z_]+)@@")
_SOFT_BREAK = "=\r\n"


_QP_SAFE_LINE = re.compile(r"[!-<>-~](?:[ !-<>-~]{0,74}[!-<>-~])?")


def _qp(text: str) -> str:
    # A short line of printable ASCII without "=" (most addresses, names and links) is its own encoding; this
    # runs several times per recipient, so skip the encoder when it would change nothing.
    if _QP_SAFE_LINE.fullmatch(text):
        return text
    # quoprimime works on "one char per byte" strings: hand it the UTF-8 bytes spelled as latin-1.
    return body_encode(text.encode("utf-8").decode("latin-1"), maxlinelen=76, eol="\r\n")


def _encode_with_placeholders(text: str, flavour: str) -> str:
    """Quoted-printable, with each @@name@@ on a line of its own as @@<flavour>_name@@."""
    out: list[str] = []
    for i, part in enumerate(_PLACEHOLDER.split(text)):
        if i % 2:
            out.append(f"{_SOFT_BREAK}@@{flavour}_{part}@@{_SOFT_BREAK}")
        elif part:
            # "@@" in an article's own text must not look like a placeholder: spell one "@" as =40.
            out.append(_qp(part).replace("@@", "@=40"))
    return "".join(out)


def _text_part(body: str, subtype: str, flavour: str) -> MIMEPart:
    part = MIMEPart(policy=policy.SMTP)
    part["Content-Type"] = f'text/{subtype}; charset="utf-8"'
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(_encode_with_placeholders(body, flavour))
    return part


@dataclass(frozen=True)
class MessageTemplate:
    """One edition's message as bytes, split at the per-recipient placeholders."""

    pieces: tuple[bytes, ...]      # even indexes: literal bytes; odd: placeholder names (e.g. b"h_email")
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
    domain = digest.sender.domain
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = digest.sender.from_
    if digest.sender.reply_to:
        msg["Reply-To"] = digest.sender.reply_to
    msg["Subject"] = subject_prefix + rendered.subject
    msg["Date"] = format_datetime(now)
    msg["List-Id"] = f"{digest.title} <{edition.digest}.{domain}>"
    # RFC 8058: with an https List-Unsubscribe this tells mailbox providers a bare POST unsubscribes.
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["MIME-Version"] = "1.0"
    msg["Content-Type"] = "multipart/alternative"
    # Text first, HTML last: clients show the last part they can display.
    msg.attach(_text_part(rendered.text, "plain", "t"))
    msg.attach(_text_part(rendered.html, "html", "h"))
    data = msg.as_bytes(policy=policy.SMTP)
    return MessageTemplate(
        pieces=tuple(_ENCODED_PLACEHOLDER.split(data)),
        envelope_from=parseaddr(digest.sender.from_)[1],
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
        "@@greeting@@": "Hei!",
        "@@email@@": EXAMPLE_ADDRESS,
        "@@unsubscribe_url@@": unsubscribe_url(settings, "eksempel"),
        "@@preferences_url@@": preferences_url(settings, "eksempel"),
    }


def fill(html_text: str, values: Mapping[str, str]) -> str:
    """The rendered HTML with its @@placeholders@@ replaced by `values` (escaped), for a page rather than a send."""
    for placeholder, value in values.items():
        html_text = html_text.replace(placeholder, html.escape(value))
    return html_text


def fill_text(text: str, values: Mapping[str, str]) -> str:
    """The rendered text part with its @@placeholders@@ replaced by `values`."""
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


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
