"""schedule.yaml + environment → validated settings. Errors name the file, the line and the key."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    HttpUrl,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from digest import yamlfile
from digest.errors import ConfigError

DEFAULT_DB_URL = "sqlite:///digest.db"
DEFAULT_TRANSPORT = "outbox:outbox"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"


def _no_newlines(value: str) -> str:
    # A CR or LF in anything that ends up in a header would let a value inject headers.
    if "\r" in value or "\n" in value:
        raise ValueError("must be a single line (no line breaks)")
    return value


def _address(value: str) -> str:
    from email.utils import parseaddr

    from email_validator import EmailNotValidError, validate_email

    _no_newlines(value)
    _, addr = parseaddr(value)
    try:
        validate_email(addr, check_deliverability=False)
    except EmailNotValidError as err:
        raise ValueError(f"{value!r} is not a valid e-mail address ({err})") from None
    return value


def _bare_address(value: str) -> str:
    from email.utils import parseaddr

    _address(value)
    if parseaddr(value)[1] != value.strip():
        raise ValueError(f"{value!r} must be a bare address such as bounces@example.org (no name, no <>)")
    return value.strip()


SingleLine = Annotated[str, Field(min_length=1), AfterValidator(_no_newlines)]
Address = Annotated[str, AfterValidator(_address)]
BareAddress = Annotated[str, AfterValidator(_bare_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class Sender(_Strict):
    from_: Address = Field(alias="from")
    reply_to: Address | None = None
    # The envelope sender (SMTP MAIL FROM), where bounces go; the receiving server writes it as Return-Path, we
    # never do. Unset: the From address.
    return_path: BareAddress | None = None

    @cached_property  # the sender asks once per message; parsing the address each time showed in profiles
    def domain(self) -> str:
        from email.utils import parseaddr

        return parseaddr(self.from_)[1].rpartition("@")[2]

    @cached_property
    def envelope_from(self) -> str:
        """SMTP MAIL FROM: the return path when there is one, else the From address."""
        from email.utils import parseaddr

        return self.return_path or parseaddr(self.from_)[1]


class Contact(_Strict):
    organisation: SingleLine
    address: SingleLine | None = None
    phone: SingleLine | None = None
    email: Address | None = None
    web: HttpUrl | None = None


class FilesSource(_Strict):
    type: Literal["files"]
    path: str
    label: str | None = None


def _web_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise ValueError(f"{value!r} is not an absolute http(s) URL")
    return value


def _css_selector(value: str) -> str:
    from cssselect import SelectorError
    from lxml.cssselect import CSSSelector

    try:
        CSSSelector(value, translator="html")
    except SelectorError as err:
        raise ValueError(f"{value!r} is not a CSS selector we can use ({err})") from None
    return value


def _transport_url(value: str) -> str:
    """The transport URL's syntax, checked at start (what it connects to is the transport's business at send time)."""
    from urllib.parse import urlsplit

    _no_newlines(value)
    scheme = value.partition(":")[0]
    if scheme == "outbox":
        return value
    if scheme not in {"smtp", "smtp+starttls", "smtps"}:
        raise ValueError(f"unknown transport {value!r} (use outbox:DIR or smtp://user@host:587)")
    try:
        parts = urlsplit(value)
    except ValueError as err:  # an unbalanced IPv6 bracket: smtp://[::1:25
        raise ValueError(f"{value!r} is not a URL we can read ({err})") from None
    try:
        parts.port  # noqa: B018 (urllib checks the port only when asked)
    except ValueError:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535") from None
    if parts.port == 0:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    if not parts.hostname:
        raise ValueError(f"{value!r} names no host (e.g. smtp://user@mail.example.org:587)")
    return value


def _ip_network(value: str) -> str:
    import ipaddress

    try:
        ipaddress.ip_network(value.strip(), strict=False)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address or network (e.g. 127.0.0.1 or 10.0.0.0/8)") from None
    return value.strip()


WebUrl = Annotated[str, AfterValidator(_web_url)]
CssSelector = Annotated[str, Field(min_length=1), AfterValidator(_css_selector)]


class _WebSource(_Strict):
    """What feeds and pages share: where, what to call it, and how patient to be with the server."""

    url: WebUrl
    label: SingleLine | None = None
    kicker: SingleLine | None = None
    # The whole budget for this source, retries included: a hanging server never delays an edition beyond it.
    timeout: float = Field(default=20.0, gt=0, le=300)
    retries: int = Field(default=2, ge=0, le=5)
    max_bytes: int = Field(default=5_000_000, ge=1_000)


class FeedSource(_WebSource):
    type: Literal["feed"]


class PageSelectors(_Strict):
    """CSS selectors for a listing page: `item` finds each entry, the others are read inside it."""

    item: CssSelector
    title: CssSelector
    link: CssSelector
    teaser: CssSelector | None = None
    kicker: CssSelector | None = None
    date: CssSelector | None = None
    image: CssSelector | None = None


class PageSource(_WebSource):
    type: Literal["page"]
    selectors: PageSelectors


Source = Annotated[FilesSource | FeedSource | PageSource, Field(discriminator="type")]
SOURCE_TYPES = frozenset({"files", "feed", "page"})


_DURATION = re.compile(r"(\d+)\s*(d|h|m|s)")
_UNIT_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration(value: object) -> object:
    """'6h', '90m', '1h30m', '2d' → timedelta. A bare number is refused: its unit would be a guess."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().lower().replace(" ", "") if isinstance(value, str) else ""
    if not text or _DURATION.sub("", text):
        raise ValueError(f"{value!r} is not a duration; write e.g. 6h, 90m or 1h30m")
    return timedelta(seconds=sum(int(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION.findall(text)))


Duration = Annotated[timedelta, BeforeValidator(_duration)]


class Schedule(_Strict):
    cron: str
    timezone: str = "Europe/Oslo"
    # A run later than this (the machine was down, the scheduler was stopped) is skipped, not sent days late.
    misfire_grace: Duration = timedelta(hours=6)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError(f"{value!r} is not a cron expression of five fields (minute hour day month weekday)")
        from digest.cron import cron_trigger

        cron_trigger(value, "UTC")  # the time zone is checked on its own; here only the expression matters
        return value

    @field_validator("misfire_grace")
    @classmethod
    def _positive_grace(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError("must be longer than zero, e.g. 6h")
        return value


class Approval(_Strict):
    """`approval: required` waits for `digest approve`; `approval: {auto_after: 2h}` goes after the delay."""

    auto_after: Duration | None = None


class SegmentConfig(_Strict):
    """Limits a digest to subscribers of some municipalities and/or topics (an empty list limits nothing)."""

    municipalities: list[SingleLine] = Field(default_factory=list)
    topics: list[SingleLine] = Field(default_factory=list)


class Logo(_Strict):
    """The sender's logo at the top of the e-mail: an image on the web (https), its alt text and width in pixels."""

    url: WebUrl
    alt: SingleLine
    width: int = Field(default=160, ge=16, le=552)  # 552 px: the content width inside the masthead's padding


class ContentOptions(_Strict):
    """`content: {strict: true}`: a bad content file stops the edition instead of being left out with a warning."""

    strict: bool = False


class DigestConfig(_Strict):
    title: SingleLine
    description: str | None = None
    subject: SingleLine = "{title}: {first_title}"
    sender: Sender
    more_url: HttpUrl
    contact: Contact
    sources: list[Source] = Field(min_length=1)
    max_articles: int = Field(default=10, ge=1, le=100)
    min_articles: int = Field(default=1, ge=1, le=100)
    first_window_days: int = Field(default=365, ge=1)
    # How much older than the edition an item dated before the previous cut-off may be and still come in because
    # it was first seen after that cut-off (a late feed, a newly added source); see digest/select.py.
    max_age_days: int = Field(default=14, ge=1)
    schedule: Schedule
    unsubscribe_mailto: Address | None = None
    locale: str = "nb_NO"
    segment: SegmentConfig | None = None
    approval: Approval | None = None
    content: ContentOptions = Field(default_factory=ContentOptions)
    # Who gets the preview of an edition that waits for approval. Validated after `approval`, which it depends on.
    editors: list[Address] = Field(default_factory=list, validate_default=True)
    logo: Logo | None = None

    @field_validator("approval", mode="before")
    @classmethod
    def _approval_word(cls, value: object) -> object:
        if value == "required":
            return {}
        if value is not None and not isinstance(value, dict):
            raise ValueError(f"{value!r} is not an approval rule; write 'required' or 'auto_after: 2h'")
        return value

    @field_validator("editors")
    @classmethod
    def _editors_for_approval(cls, value: list[str], info: ValidationInfo) -> list[str]:
        if info.data.get("approval") is not None and not value:
            raise ValueError("required when 'approval' is set: the addresses that get the preview")
        return value

    @property
    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.schedule.timezone)

    @property
    def unsubscribe_address(self) -> str:
        """Where mailto unsubscribes go: configured, or `unsubscribe@<sender domain>`."""
        return self.unsubscribe_mailto or f"unsubscribe@{self.sender.domain}"


class Sending(_Strict):
    """How `digest send` talks to a relay: connections, rate limits, retries. Every key has a sensible default."""

    pool_size: int = Field(default=4, ge=1, le=64)
    max_messages_per_connection: int = Field(default=1000, ge=1)
    # Relays' limits: messages per second, and at most `window_messages` in any `window_seconds` (e.g. 10000/3600).
    per_second: float | None = Field(default=None, gt=0)
    window_messages: int | None = Field(default=None, ge=1)
    window_seconds: float = Field(default=3600, gt=0)
    # Per recipient and run: 4xx, timeouts and dropped connections are retried after retry_delay_seconds, doubling
    # (with jitter) up to max_retry_delay_seconds, at most max_attempts times; the rest waits for the next run.
    max_attempts: int = Field(default=5, ge=1)
    retry_delay_seconds: float = Field(default=2.0, ge=0)
    max_retry_delay_seconds: float = Field(default=60.0, ge=0)
    # This many connection failures in a row pause the run instead of burning through the list.
    max_errors: int = Field(default=10, ge=1)
    timeout_seconds: float = Field(default=30.0, gt=0)
    # Subscribers are read from the store this many at a time, so memory stays flat however long the list is.
    batch_size: int = Field(default=500, ge=1, le=100_000)
    # Guards that refuse a send instead of warning (see digest/guards.py): https base_url and a DKIM key over SMTP,
    # HTML small enough that Gmail does not clip it.
    require: list[Literal["https", "dkim", "unclipped"]] = Field(default_factory=list)


class Settings(_Strict):
    """The whole file, after the environment has had its say."""

    state: str = DEFAULT_DB_URL
    transport: Annotated[str, AfterValidator(_transport_url)] = DEFAULT_TRANSPORT
    base_url: HttpUrl = Field(default=HttpUrl(DEFAULT_BASE_URL))
    digests: dict[str, DigestConfig] = Field(min_length=1)
    sending: Sending = Field(default_factory=Sending)
    # What the sign-up and preferences forms offer: municipalities (empty: free text) and topics (key → label).
    municipalities: list[SingleLine] = Field(default_factory=list)
    topics: dict[str, SingleLine] = Field(default_factory=dict)
    # A folder of the site's own e-mail templates (relative to this file), looked up before the built-in ones.
    templates: str | None = None
    # Reverse proxies (addresses or networks) whose X-Forwarded-For the web app believes; none by default, so a
    # client cannot pick its own address for the rate limits.
    trusted_proxies: list[Annotated[str, AfterValidator(_ip_network)]] = Field(default_factory=list)

    # Where the file lives: relative paths (content/, outbox/, sqlite files) are read from there.
    root: Path = Field(default=Path("."), exclude=True)

    def digest(self, name: str) -> DigestConfig:
        try:
            return self.digests[name]
        except KeyError:
            known = ", ".join(sorted(self.digests))
            raise ConfigError(f"no digest named {name!r} (known: {known})") from None

    def resolve(self, path: str | Path) -> Path:
        path = Path(path)
        return path if path.is_absolute() else self.root / path

    @property
    def public_url(self) -> str:
        return str(self.base_url).rstrip("/")


def load_settings(path: str | Path, environ: dict[str, str] | None = None) -> Settings:
    """Read and validate schedule.yaml once; environment variables override state, transport and base URL."""
    env = os.environ if environ is None else environ
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found (pass --config PATH or run from the project folder)", path=path) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read: {err}", path=path) from err

    try:
        node = yamlfile.compose(text)
        data = yamlfile.load(text)  # a key written twice is an error here, not a silent "last one wins"
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(f"invalid YAML: {problem}", path=path, line=line) from None
    except RecursionError:
        raise ConfigError("invalid YAML: nested too deeply", path=path) from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping with a 'digests:' key", path=path, line=1)

    overrides = {"state": "DIGEST_DB_URL", "transport": "DIGEST_TRANSPORT", "base_url": "DIGEST_BASE_URL"}
    for key, variable in overrides.items():
        if env.get(variable):
            data[key] = env[variable]

    try:
        settings = Settings.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = _without_union_tags(tuple(first["loc"]))
        key = ".".join(str(part) for part in loc) or None
        # pydantic prefixes our own validators' messages with "Value error, "; the user needs only the reason.
        message = first["msg"].removeprefix("Value error, ")
        if first["type"] == "extra_forbidden":
            message = "unknown key"
        elif first["type"] == "missing":
            message = "required key is missing"
        elif first["type"] == "union_tag_invalid":
            ctx = first.get("ctx", {})
            message = f"unknown {ctx.get('discriminator')} {ctx.get('tag')!r} (known: {ctx.get('expected_tags')})"
        elif first["type"] == "union_tag_not_found":
            message = f"required key {first.get('ctx', {}).get('discriminator')} is missing"
        if loc and loc[0] in overrides and env.get(overrides[str(loc[0])]):
            # The value came from the environment, not from the file: name the variable the user has to fix.
            raise ConfigError(message, path=overrides[str(loc[0])], key=key) from None
        line = _line_of(node, loc, env_overridden={k for k, v in overrides.items() if env.get(v)})
        raise ConfigError(message, path=path, line=line, key=key) from None
    return settings.model_copy(update={"root": path.resolve().parent})


def _without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """Tagged unions put the tag in the location ('sources', 0, 'feed', 'url'); users never wrote it."""
    return tuple(
        part for i, part in enumerate(loc)
        if not (i >= 2 and loc[i - 2] == "sources" and isinstance(loc[i - 1], int) and part in SOURCE_TYPES)
    )


def _line_of(node: yaml.Node | None, loc: tuple[Any, ...], env_overridden: set[str]) -> int | None:
    """The 1-based line of the deepest YAML node on the path `loc` (the parent's line for a missing key)."""
    if loc and loc[0] in env_overridden:
        return None
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if key_node.value == str(part):
                    # For an unknown key the key's own line is the useful one.
                    line = key_node.start_mark.line + 1
                    node = value_node
                    break
            else:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
        else:
            return line
    return line
