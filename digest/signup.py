"""Double opt-in: keep a sign-up pending, send the confirmation e-mail with its signed link, and imports that ask."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

from digest.config import Settings
from digest.consent import PendingResult, SignUp, SubscriberImport, mask
from digest.errors import DigestError, SendError
from digest.message import SubjectHeader
from digest.outgoing import Outgoing
from digest.store import Store
from digest.tokens import make_confirmation_token
from digest.transports import Transport


def digest_titles(settings: Settings, digests: Sequence[str]) -> str:
    """'Kultur', 'Kultur og Idrett', 'Kultur, Idrett og Skole' — as people write lists in Norwegian."""
    titles = [settings.digests[name].title for name in digests if name in settings.digests]
    if len(titles) <= 1:
        return "".join(titles)
    return ", ".join(titles[:-1]) + " og " + titles[-1]


def consent_text(settings: Settings, digests: Sequence[str]) -> str:
    """The sentence a person agrees to when signing up; stored word for word with the consent record."""
    organisations = sorted({settings.digests[name].contact.organisation for name in digests if name in
                            settings.digests})
    sender = " og ".join(organisations) or "avsenderen"
    return (f"Jeg vil ha nyhetsbrevet {digest_titles(settings, digests)} fra {sender} på e-post. Adressen min og "
            "valgene mine brukes bare til å sende nyhetsbrevet, og jeg kan melde meg av når som helst.")


def confirmation_url(settings: Settings, secret: bytes, pending_id: int) -> str:
    return f"{settings.public_url}/bekreft/{make_confirmation_token(secret, pending_id)}"


def confirmation_message(settings: Settings, secret: bytes, pending_id: int, signup: SignUp, *,
                         now: datetime) -> bytes:
    """A short plain-text e-mail with the link that confirms the sign-up. Nothing is sent until it is followed."""
    digest = settings.digest(signup.digests[0])
    titles = digest_titles(settings, signup.digests)
    link = confirmation_url(settings, secret, pending_id)
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = digest.sender.from_
    if digest.sender.reply_to:
        msg["Reply-To"] = digest.sender.reply_to
    msg["To"] = formataddr((signup.name, signup.email), charset="utf-8")
    msg["Subject"] = SubjectHeader("Subject", f"Bekreft abonnementet på {titles}")
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(idstring="bekreft", domain=digest.sender.domain)
    msg["Auto-Submitted"] = "auto-generated"
    greeting = f"Hei, {signup.name}!" if signup.name else "Hei!"
    msg.set_content(
        f"{greeting}\n\n"
        f"Noen, forhåpentlig du, ba om å få {titles} fra {digest.contact.organisation} på e-post til "
        f"{signup.email}.\n\n"
        f"Bekreft at du vil ha nyhetsbrevet ved å åpne lenken og trykke «Bekreft»:\n\n{link}\n\n"
        "Var det ikke deg, kan du se bort fra denne e-posten. Da får du ingenting mer fra oss.\n\n"
        f"Hilsen {digest.contact.organisation}\n",
        charset="utf-8",
    )
    return msg.as_bytes(policy=policy.SMTP)


def send_confirmation(settings: Settings, transport: Transport, secret: bytes, pending_id: int, signup: SignUp, *,
                      now: datetime, outgoing: Outgoing | None = None) -> None:
    """The confirmation e-mail on the digests' own way out (digest.outgoing): signed with DKIM when a key is
    configured, from the return path. `outgoing` saves reading the key again for each of many."""
    outgoing = outgoing or Outgoing.for_sender(settings.digest(signup.digests[0]).sender)
    message = confirmation_message(settings, secret, pending_id, signup, now=now)
    outgoing.send(transport, signup.email, message, "bekreft")


def request_confirmation(settings: Settings, store: Store, transport: Transport, secret: bytes, signup: SignUp, *,
                         now: datetime) -> PendingResult:
    """Keep the sign-up and mail its confirmation link, unless one went to that address within the hour."""
    result = store.add_pending_signup(signup, now=now)
    if result.send:
        try:
            with transport:
                send_confirmation(settings, transport, secret, result.pending_id, signup, now=now)
        except (DigestError, ValueError):  # ValueError: a header the email package refuses; nothing stays pending
            store.discard_pending_signup(result.pending_id)
            raise
    return result


def import_asking_for_confirmation(settings: Settings, store: Store, transport: Transport, secret: bytes,
                                   rows: Sequence[tuple[str, str]], *, source: str, digests: Sequence[str],
                                   now: datetime) -> SubscriberImport:
    """`subscribers import --confirm`: nobody is subscribed by the import; each new address gets a confirmation
    e-mail, and only those who follow it become subscribers. Suppressed and current subscribers are left alone."""
    report = SubscriberImport()
    seen: dict[str, str] = {}
    for email, name in rows:
        if email.lower() in seen:
            report.merged_duplicates += 1
        seen[email.lower()] = name or seen.get(email.lower(), "")
    text = consent_text(settings, digests)
    outgoing = Outgoing.for_sender(settings.digest(digests[0]).sender) if digests else None
    with transport:
        for email, name in seen.items():
            current = store.subscriber_by_email(email)
            if store.suppression_reason(email) or (current is not None and current.status != "active"):
                report.suppressed.append(email)
                continue
            if current is not None:
                profile = store.profile(current.id)
                if profile is not None and all(profile.receives(d) for d in digests):
                    report.already_subscribed += 1
                    continue
            signup = SignUp(email=email, name=name, digests=tuple(digests), source=source, consent_text=text)
            result = store.add_pending_signup(signup, now=now)
            if result.send:
                try:
                    send_confirmation(settings, transport, secret, result.pending_id, signup, now=now,
                                      outgoing=outgoing)
                except (SendError, ValueError) as err:  # ValueError: a header the email package refuses
                    store.discard_pending_signup(result.pending_id)
                    report.problems.append(f"{mask(email)}: {err}")
                    continue
                report.confirmations_sent += 1
            else:
                report.confirmations_recent += 1
    return report
