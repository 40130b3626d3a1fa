"""The data that flows between the stages: frozen dataclasses, no I/O."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import ClassVar


@dataclass(frozen=True, kw_only=True)
class Article:
    """One news item, whatever source it came from. `url` is its identity."""

    url: str
    title: str
    teaser: str
    published: datetime
    source: str
    kicker: str | None = None
    image: str | None = None
    image_alt: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {
            "url": self.url,
            "title": self.title,
            "teaser": self.teaser,
            "published": self.published.isoformat(),
            "kicker": self.kicker,
            "image": self.image,
            "image_alt": self.image_alt,
            "source": self.source,
        }

    @classmethod
    def from_json(cls, data: dict[str, str | None]) -> Article:
        published = data["published"]
        assert published is not None
        return cls(
            url=str(data["url"]),
            title=str(data["title"]),
            teaser=str(data["teaser"]),
            published=datetime.fromisoformat(published),
            source=str(data["source"]),
            kicker=data.get("kicker"),
            image=data.get("image"),
            image_alt=data.get("image_alt"),
        )


@dataclass(frozen=True, kw_only=True)
class Edition:
    """What one issue of a digest holds. (digest, key) is the idempotency key of a send."""

    digest: str
    key: str
    date: date
    since: datetime
    until: datetime
    articles: tuple[Article, ...]
    sent: bool = False
    # Frozen with the draft (None: worked out from the articles when rendered, as for editions sent before drafts).
    subject: str | None = None
    preheader: str | None = None
    introduction: str = ""  # the editors' own words above the articles, plain text


@dataclass(frozen=True, kw_only=True)
class Draft:
    """An edition as stored before it is sent: made once for its scheduled run, changed only by editors or a refresh.

    Everything afterwards (preview, test copies, approval, send, resume) reads this record, so what an editor saw
    and approved is what goes out.
    """

    edition: Edition
    revision: int                  # grows with every change; an approval is of one revision
    scheduled_for: datetime | None
    created_at: datetime
    updated_at: datetime
    stop_reason: str | None = None  # why the last send of it stopped before everyone had it
    # When its articles were chosen from the sources (made or refreshed): what is first seen later belongs to the
    # next edition.
    collected_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class DraftChange:
    """One entry in a draft's history: who did what, when."""

    revision: int
    at: datetime
    editor: str
    action: str   # made | refreshed | dropped | moved | introduction | approved | held
    detail: str   # a sentence for the desk (Norwegian)


@dataclass(frozen=True)
class Placeholders:
    """Where each recipient's own values go in a rendered edition: markers that the template engine writes.

    Each render draws a new random `nonce` for its markers (`@@greeting.<32 hex digits>@@`). Text from a source
    cannot know it, so no title, teaser or introduction can act as a placeholder, whatever it contains; and only
    the markers of this render are ever filled.
    """

    nonce: str
    NAMES: ClassVar[tuple[str, ...]] = ("greeting", "email", "unsubscribe_url", "preferences_url")

    @classmethod
    def fresh(cls) -> Placeholders:
        return cls(secrets.token_hex(16))

    def marker(self, name: str) -> str:
        return f"@@{name}.{self.nonce}@@"

    # For the templates: {{ personal.greeting }} and so on.
    @property
    def greeting(self) -> str:
        return self.marker("greeting")

    @property
    def email(self) -> str:
        return self.marker("email")

    @property
    def unsubscribe_url(self) -> str:
        return self.marker("unsubscribe_url")

    @property
    def preferences_url(self) -> str:
        return self.marker("preferences_url")

    def split(self, text: str) -> list[str]:
        """The text cut at this render's markers: literal text at even indexes, placeholder names at odd ones."""
        return self._pattern.split(text)

    def fill(self, text: str, values: Mapping[str, str]) -> str:
        """Every marker replaced by its value (one for each of NAMES)."""
        pieces = self.split(text)
        return "".join(piece if i % 2 == 0 else values[piece] for i, piece in enumerate(pieces))

    @property
    def _pattern(self) -> re.Pattern[str]:
        return re.compile("@@(" + "|".join(self.NAMES) + r")\." + re.escape(self.nonce) + "@@")


@dataclass(frozen=True, kw_only=True)
class RenderedEdition:
    """HTML and text of one edition, with this render's `placeholders` where each recipient's own values go."""

    edition: Edition
    subject: str
    preheader: str
    html: str
    text: str
    placeholders: Placeholders

    @property
    def html_bytes(self) -> int:
        return len(self.html.encode("utf-8"))


@dataclass(frozen=True, kw_only=True)
class Subscriber:
    id: int
    email: str
    name: str = ""
    status: str = "active"


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """A subscriber's per-message values: what personalisation substitutes into the rendered edition."""

    subscriber_id: int | None
    email: str
    name: str
    unsubscribe_url: str
    unsubscribe_mailto: str
    message_id: str
    preferences_url: str = ""


@dataclass(kw_only=True)
class SendReport:
    """What a send did, for the CLI and the log."""

    digest: str
    edition_key: str
    articles: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    skipped_already_sent: int = 0
    dry_run: bool = False
    interrupted: bool = False  # stopped (SIGTERM, Ctrl-C) before every pending delivery was tried
    busy: bool = False  # another process was sending this edition; this one left it alone
    destination: str = ""
    problems: list[str] = field(default_factory=list)
    # The pooled sender's account (issue 5): what a resumed run found, what is left, how long it took.
    bounced: int = 0
    audience: int = 0             # subscribers the edition was queued for when it was created
    remaining_at_start: int = 0   # subscribers still without the edition when this run began
    in_flight_at_start: int = 0   # of those, being sent when an earlier run stopped (may get a second copy)
    resumed: bool = False
    remaining: int = 0            # still without the edition when this run ended (sent by the next `digest send`)
    left: int = 0                 # left (unsubscribed, bounced, complained, forgotten) during the run: not mailed
    paused: str | None = None     # why the run stopped early (e.g. too many connection failures in a row)
    elapsed: float = 0.0          # seconds spent sending
    message_bytes: int = 0        # bytes of all messages built (a dry run's measure of the work)
    # Subscribers still with us whom a server refused with 5xx, in this run or an earlier one: they do not have
    # the edition, and `digest send NAME --as-of KEY --retry-failed` tries them again.
    refused: int = 0
    # Sources that failed while collecting this edition (it went out without them).
    source_problems: list[str] = field(default_factory=list)
    # The send-time guards' lines (digest/guards.py); `guard_refused`: one is required, so nothing was sent.
    guards: list[str] = field(default_factory=list)
    guard_refused: bool = False
