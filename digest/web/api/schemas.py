"""What the JSON API takes and gives, as pydantic models; the OpenAPI description is made from them.

Digest names, topics and (when the schedule lists them) municipalities are enums of what schedule.yaml configures,
so a developer sees in the description which values are accepted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from digest.config import Settings


class Status(StrEnum):
    active = "active"
    pending = "pending"            # signed up, the confirmation link not followed yet
    unsubscribed = "unsubscribed"
    bounced = "bounced"
    complained = "complained"


class Confirmation(StrEnum):
    sent = "sent"                            # a confirmation e-mail went out now
    sent_within_the_hour = "sent_within_the_hour"  # one went out less than an hour ago; not sent again
    not_needed = "not_needed"                # subscribed already, or consent held by the organisation


class EditionState(StrEnum):
    draft = "draft"
    approved = "approved"
    held = "held"
    expired = "expired"
    sending = "sending"
    sent = "sent"
    stopped = "stopped"


# What the description promises an address looks like: a plain, deliverable address (the API checks it further, as
# the sign-up form does). Special-use domains (.test, .local, …) are refused, so they are left out here too.
_SPECIAL_USE = ("test", "local", "localhost", "invalid", "onion", "arpa", "home", "lan", "internal", "example", "alt")
# Case-insensitive by character classes, not by a flag: ECMA-262 patterns (JSON Schema's) have no inline flags.
ADDRESS_PATTERN = (r"^[A-Za-z0-9_%+-]{1,32}(\.[A-Za-z0-9_%+-]{1,16}){0,2}@"
                   r"([A-Za-z0-9]([A-Za-z0-9-]{0,30}[A-Za-z0-9])?\.){1,3}"
                   "(?!(" + "|".join("".join(f"[{c}{c.upper()}]" for c in word) for word in _SPECIAL_USE) + ")$)"
                   r"[A-Za-z]{2,24}$")


# One line of text: no line breaks or other control characters (C0, DEL, C1, the Unicode line and paragraph
# separators), as digest.subscribers.clean_name refuses for a name that goes into a To: header.
ONE_LINE = r"^[^\u0000-\u001f\u007f-\u009f\u2028\u2029]*$"


class Strict(BaseModel):
    # Python's regular expressions: the address pattern looks ahead, which pydantic's default engine cannot.
    model_config = ConfigDict(extra="forbid", regex_engine="python-re")


class Consent(Strict):
    """Consent the organisation holds (as for `digest subscribers import`): where, in which words, and when."""

    source: str = Field(min_length=1, max_length=150, examples=["asker.kommune.no/skjema/kultur"])
    text: str = Field(min_length=1, max_length=2000, examples=["Ja, jeg vil ha nyhetsbrevet Kultur på e-post."])
    at: AwareDatetime = Field(examples=["2026-11-30T14:05:00+01:00"])


class Subscriber(BaseModel):
    email: str = Field(examples=["kari.nordmann@example.org"])
    name: str
    status: Status
    municipality: str
    topics: list[str]
    digests: list[str] = Field(description="The digests the address receives (or, while pending, asked for); "
                               "empty once it has left.")
    confirmation: Confirmation | None = Field(None, description="Only in the answer to a create.")


class Forgotten(BaseModel):
    email: str
    erased: bool = Field(description="Whether anything was stored about the address (now erased).")
    suppressed: bool = Field(True, description="A salted hash stays, so the address is never mailed again.")


class Schedule(BaseModel):
    cron: str = Field(examples=["0 7 * * mon"])
    timezone: str = Field(examples=["Europe/Oslo"])


class DigestInfo(BaseModel):
    name: str = Field(examples=["kultur"])
    title: str
    description: str | None
    schedule: Schedule
    next_run: datetime | None = Field(description="When it is due next, in its time zone.")
    approval: bool = Field(description="Whether an edition waits for an editor's approval before it goes out.")
    archive_url: str


class NextRun(BaseModel):
    digest: str
    next_run: datetime | None
    edition: str | None = Field(description="The key (date) of the edition that run sends.")


class Deliveries(BaseModel):
    queued: int = 0
    sending: int = 0
    sent: int = 0
    deferred: int = 0
    failed: int = 0


class ArticleInfo(BaseModel):
    url: str
    title: str
    teaser: str
    published: datetime
    source: str
    kicker: str | None
    image: str | None
    image_alt: str | None


class EditionSummary(BaseModel):
    digest: str
    key: str = Field(examples=["2026-11-23"])
    date: date
    state: EditionState
    scheduled_for: datetime | None
    subject: str | None
    articles: int
    deliveries: Deliveries
    archive_url: str | None = Field(description="The public copy, once the edition has been sent.")


class EditionDetail(EditionSummary):
    preheader: str | None
    introduction: str
    article_list: list[ArticleInfo]


class ProblemType(BaseModel):
    type: str
    title: str
    description: str


@dataclass(frozen=True)
class Inputs:
    """The request bodies, with the choices schedule.yaml configures as enums."""

    create: type[BaseModel]
    update: type[BaseModel]
    unsubscribe: type[BaseModel]


def _choice(name: str, values: list[str]) -> Any:
    if not values:
        return str
    return StrEnum(name, {value: value for value in values})  # type: ignore[return-value]


def inputs(settings: Settings) -> Inputs:
    digest = _choice("DigestName", list(settings.digests))
    topic = _choice("Topic", list(settings.topics))
    municipality = _choice("Municipality", list(settings.municipalities)) if settings.municipalities else str
    topics_field = (list[topic], Field(default_factory=list, max_length=len(settings.topics) or 0))
    name_field = (str, Field("", max_length=200, pattern=ONE_LINE, examples=["Kari Nordmann"]))
    municipality_field = ((municipality | None, Field(None, max_length=100, pattern=ONE_LINE)) if municipality is str
                          else (municipality | None, None))
    digests_default = list(settings.digests) if len(settings.digests) == 1 else None
    create = create_model(
        "SubscriberCreate", __base__=Strict,
        email=(str, Field(max_length=254, pattern=ADDRESS_PATTERN, description="An e-mail address.",
                          examples=["kari.nordmann@example.org"])),
        name=name_field,
        municipality=municipality_field,
        topics=topics_field,
        digests=(list[digest], Field(default_factory=lambda: list(digests_default or []),  # type: ignore[misc]
                                     min_length=1, max_length=len(settings.digests),
                                     description="The digests asked for" + (f" (default: {digests_default[0]})"
                                                                              if digests_default else ""))),
        consent=(Consent | None, Field(None, description="Consent the organisation holds: the address is "
                                       "subscribed at once, no confirmation e-mail (needs the scope "
                                       "subscribers:consent). Without it: double opt-in, as the sign-up form.")),
    )
    update = create_model(
        "SubscriberUpdate", __base__=Strict,
        name=(str | None, Field(None, max_length=200, pattern=ONE_LINE)),
        municipality=municipality_field,
        topics=(list[topic] | None, Field(None, max_length=len(settings.topics) or 0)),
        digests=(list[digest] | None, Field(None, min_length=1, max_length=len(settings.digests),
                                            description="To leave every digest, use unsubscribe.")),
    )
    unsubscribe = create_model(
        "Unsubscribe", __base__=Strict,
        digest=(digest | None, Field(None, description="The digest to stop; none: every digest (leaving).")),
    )
    return Inputs(create=create, update=update, unsubscribe=unsubscribe)
