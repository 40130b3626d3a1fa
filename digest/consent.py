"""The subscriber side as plain data: profiles, segments, pending sign-ups, consent records, import reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

# Statuses of a subscriber. Only "active" is ever mailed; the other three also put the address on the suppression list.
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"
BOUNCED = "bounced"
COMPLAINED = "complained"
SUPPRESSING_STATUSES = (UNSUBSCRIBED, BOUNCED, COMPLAINED)

# How long a confirmation link works, and how often one address can be sent a new one.
CONFIRMATION_VALID_DAYS = 14
CONFIRMATION_RESEND_AFTER_SECONDS = 3600


@dataclass(frozen=True, kw_only=True)
class Segment:
    """Who a digest is limited to: an empty list means 'anyone' for that dimension."""

    municipalities: tuple[str, ...] = ()
    topics: tuple[str, ...] = ()

    def admits(self, municipality: str, topics: tuple[str, ...]) -> bool:
        if self.municipalities and municipality.casefold() not in {m.casefold() for m in self.municipalities}:
            return False
        return not self.topics or bool(set(self.topics) & set(topics))


@dataclass(frozen=True, kw_only=True)
class Profile:
    """What a subscriber chose: name, municipality, topics and digests (None: every digest, as imported before
    per-digest subscriptions existed)."""

    subscriber_id: int
    email: str
    name: str
    status: str
    municipality: str = ""
    topics: tuple[str, ...] = ()
    digests: tuple[str, ...] | None = None

    def receives(self, digest: str) -> bool:
        return self.status == ACTIVE and (self.digests is None or digest in self.digests)


@dataclass(frozen=True, kw_only=True)
class SignUp:
    """A sign-up waiting for its confirmation link to be followed (double opt-in)."""

    email: str
    name: str = ""
    municipality: str = ""
    topics: tuple[str, ...] = ()
    digests: tuple[str, ...]
    source: str           # which form or import, e.g. "web:/abonner" or "import:list.csv"
    consent_text: str     # the words the person agreed to, exactly as shown


@dataclass(frozen=True, kw_only=True)
class PendingSignUp:
    id: int
    signup: SignUp
    created_at: datetime
    confirmed_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class PendingResult:
    """`send` is False when the address already had a confirmation sent within the hour (nothing new goes out)."""

    pending_id: int
    send: bool


@dataclass(frozen=True, kw_only=True)
class UnsubscribeResult:
    subscriber_id: int
    email: str
    digest: str
    changed: bool                      # False when the subscriber had already left that digest
    remaining: tuple[str, ...]         # digests still received; empty means they left altogether


@dataclass(kw_only=True)
class SubscriberImport:
    """What an import did (or, with --confirm, whom it asked)."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0
    merged_duplicates: int = 0
    suppressed: list[str] = field(default_factory=list)   # addresses not resubscribed (masked when printed)
    confirmations_sent: int = 0
    confirmations_recent: int = 0     # a confirmation went out within the hour; not sent again
    already_subscribed: int = 0
    problems: list[str] = field(default_factory=list)   # confirmation e-mails that could not be sent


def mask(address: str) -> str:
    """k***@example.org: enough to recognise, not enough to harvest from a log."""
    local, _, domain = address.partition("@")
    return f"{local[:1]}***@{domain}"
