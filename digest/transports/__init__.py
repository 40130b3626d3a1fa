"""Where messages go. One interface (open, close, send), several transports, chosen by a URL."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import urlsplit

from digest.errors import ConfigError


@dataclass(frozen=True)
class Envelope:
    """One message on its way: SMTP envelope addresses, the bytes, and a label for humans (and the outbox)."""

    sender: str
    recipient: str
    data: bytes
    batch: str  # e.g. "kultur-2019-07-01", or "test" for a test copy
    # `data` as SMTP sends it after DATA (dot-stuffed, CRLF, without the final dot), when the builder had it for
    # less than the transport would pay to make it; an SMTP transport uses it instead of `data`.
    wire: bytes | None = None


class Transport(Protocol):
    description: str

    def open(self) -> None: ...

    def close(self) -> None: ...

    def send(self, envelope: Envelope) -> None:
        """Deliver one message or raise SendError (with the SMTP code when there is one)."""

    def __enter__(self) -> Transport: ...

    def __exit__(self, *exc: object) -> None: ...


def transport_from_url(url: str, *, root: Path, environ: Mapping[str, str] | None = None) -> Transport:
    """`outbox:DIR` (relative to the config's folder) or `smtp://[user@]host[:port]`.

    `smtp://` uses STARTTLS when the server offers it, `smtp+starttls://` insists on it, `smtps://` is implicit TLS.
    Certificates are always checked, unless the URL ends in `?verify=false` (a relay on a private network only).
    """
    env = os.environ if environ is None else environ
    scheme, _, rest = url.partition(":")
    if scheme == "outbox":
        from digest.transports.outbox import OutboxTransport

        folder = Path(rest or "outbox")
        return OutboxTransport(folder if folder.is_absolute() else root / folder)
    if scheme in {"smtp", "smtp+starttls", "smtps"}:
        from digest.transports.smtp import SMTPTransport

        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as err:  # a port that is no number or over 65535, an unbalanced IPv6 bracket
            raise ConfigError(f"{url!r} is not a transport URL we can read ({err})", key="transport") from None
        if not parts.hostname:
            raise ConfigError(f"{url!r} names no host (e.g. smtp://user@mail.example.org:587)", key="transport")
        password = env.get("DIGEST_SMTP_PASSWORD")
        if parts.username and not password:
            raise ConfigError("DIGEST_SMTP_PASSWORD is not set, but the transport URL names a user",
                              key="transport")
        if parts.password:
            raise ConfigError("put the SMTP password in DIGEST_SMTP_PASSWORD, not in the URL", key="transport")
        return SMTPTransport(
            host=parts.hostname,
            port=port or (465 if scheme == "smtps" else 587 if parts.username else 25),
            username=parts.username,
            password=password if parts.username else None,
            implicit_tls=scheme == "smtps",
            require_starttls=scheme == "smtp+starttls",
            verify=_verify_option(url, parts.query),
        )
    raise ConfigError(f"unknown transport {url!r} (use outbox:DIR or smtp://user@host:587)", key="transport")


def _verify_option(url: str, query: str) -> bool:
    """The one query option an SMTP URL takes: `verify=false` switches certificate checks off, explicitly."""
    from urllib.parse import parse_qsl

    try:
        options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    except ValueError:
        options = {"": query}
    unknown = sorted(set(options) - {"verify"})
    if unknown:
        raise ConfigError(f"{url!r}: unknown option {unknown[0]!r} (the only one is ?verify=false)", key="transport")
    value = options.get("verify", "true").lower()
    if value not in {"true", "false"}:
        raise ConfigError(f"{url!r}: verify must be true or false, not {value!r}", key="transport")
    return value == "true"
